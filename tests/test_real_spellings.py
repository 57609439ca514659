"""Real code's spellings: the keyword policy, near-miss reports, and the fusions real models need
(bias adds, reshards, data-movement chains), each with near misses that must not fuse."""
import pytest
import torch
import ttnn

import fusion
from fusion import TensorSpec, keywords
from fusion.verify import pcc

X = TensorSpec((1, 1, 32, 256))
W = TensorSpec((256, 512))
B = TensorSpec((1, 512))
G = TensorSpec((1, 1, 1, 256))
HIFI2 = ttnn.WormholeComputeKernelConfig(math_fidelity=ttnn.MathFidelity.HiFi2, fp32_dest_acc_en=True)


def run(model, inputs, names=None):
    f = fusion.fuse(model, inputs, patterns=names)
    return f, [r.pattern for r in f.report.rewrites], [r.reason for r in f.report.refusals]


def agrees(model, fused, inputs):
    g = torch.Generator().manual_seed(5)
    xs = [torch.randn(s.shape, generator=g) for s in inputs]
    return pcc(fusion.run_reference(model, *xs), fusion.run_reference(fused, *xs)) >= 0.999


def calls(f):
    return [n for n in f.graph_module.graph.nodes if n.op == "call_function"]


def kwarg(node, name):
    """A call's keyword as written (configs are graph constants)."""
    v = node.kwargs[name]
    return v.meta["literal"] if hasattr(v, "meta") and "literal" in v.meta else v


# --- the keyword policy ----------------------------------------------------------------------


def test_every_keyword_of_every_catalog_op_is_classified():
    targets = {c.target for p in fusion.default_patterns() for s in p.spellings for c in s.calls
               if keywords.ttnn_ops.is_ttnn_op(c.target)}
    table = keywords.table(targets)
    assert table["ttnn.rms_norm"]["epsilon"] == keywords.MEANING
    assert table["ttnn.rms_norm"]["compute_kernel_config"] == keywords.PLACEMENT
    assert table["ttnn.linear"]["activation"] == keywords.MEANING
    assert table["ttnn.add"]["output_tensor"] == keywords.OUTPUT
    assert table["ttnn.typecast"]["dtype"] == keywords.MEANING  # a typecast's dtype is what it computes
    for op, kinds in table.items():
        assert set(kinds.values()) <= {keywords.MEANING, keywords.PLACEMENT, keywords.TENSOR, keywords.OUTPUT}, op


def test_real_keywords_on_a_pattern_call_still_match_and_pass_through():
    # tt_transformers writes rms_norm with its configs and the residual add with memory_config and dtype
    def model(x, r, g):
        s = ttnn.add(x, r, memory_config=ttnn.DRAM_MEMORY_CONFIG, dtype=ttnn.bfloat16)
        return ttnn.rms_norm(s, weight=g, epsilon=1e-5, compute_kernel_config=HIFI2)

    f, fused, _ = run(model, [X, X, G], ["residual_rmsnorm"])
    assert fused == ["residual_rmsnorm"] and agrees(model, f, [X, X, G])
    (node,) = calls(f)
    assert node.target is ttnn.rms_norm and kwarg(node, "compute_kernel_config") is HIFI2  # carried over


def test_a_placement_the_fused_op_cannot_take_is_refused_by_name():
    # the decomposed norm's multiply is the output; rms_norm has no sub_core_grids for it
    grids = ttnn.CoreRangeSet({ttnn.CoreRange(ttnn.CoreCoord(0, 0), ttnn.CoreCoord(1, 1))})

    def model(x, g):
        ms = ttnn.mean(ttnn.square(x), dim=-1, keepdim=True)
        return ttnn.multiply(ttnn.multiply(x, ttnn.rsqrt(ttnn.add(ms, 1e-6))), g, sub_core_grids=grids)

    _, fused, refused = run(model, [X, G], ["rmsnorm_decomposed"])
    assert fused == [] and any("sub_core_grids" in r and "cannot take" in r for r in refused), refused


def test_a_meaning_keyword_that_differs_is_a_near_miss_saying_what_differs():
    def model(x, w):
        return ttnn.relu(ttnn.linear(x, w, transpose_a=False, activation="gelu"))

    _, fused, refused = run(model, [X, W], ["matmul_activation"])
    assert fused == []
    assert any(r.startswith("near miss") and "activation='gelu'" in r for r in refused), refused


def test_a_chain_that_differs_in_a_literal_is_reported_not_silently_skipped():
    def model(x, g):
        ms = ttnn.mean(ttnn.square(x), dim=-1, keepdim=True)
        r = ttnn.rsqrt(ttnn.add(ms, 1e-6), fast_and_approximate_mode=True)  # not what rms_norm computes
        return ttnn.multiply(ttnn.multiply(x, r), g)

    _, fused, refused = run(model, [X, G], ["rmsnorm_decomposed"])
    assert fused == [] and any("ttnn.rsqrt fast_and_approximate_mode=True where the pattern has False" in r
                               for r in refused), refused


def test_unrelated_ops_are_not_near_misses():
    def model(x, y):
        return ttnn.multiply(ttnn.exp(x), y)

    _, fused, refused = run(model, [X, X])
    assert fused == [] and refused == []


# --- bias_add ----------------------------------------------------------------------------------


@pytest.mark.parametrize("spell", ["add", "in_place", "operator"])
def test_a_bias_add_becomes_the_linear_bias(spell):
    def model(x, w, b):
        y = ttnn.linear(x, w, compute_kernel_config=HIFI2)
        if spell == "in_place":  # gpt-oss: ttnn.add(y, bias, output_tensor=y)
            ttnn.add(y, b, output_tensor=y)
            return y
        return y + b if spell == "operator" else ttnn.add(y, b)

    f, fused, _ = run(model, [X, W, B], ["bias_add"])
    assert fused == ["bias_add"] and agrees(model, f, [X, W, B])
    (node,) = calls(f)
    assert node.target is ttnn.linear and kwarg(node, "compute_kernel_config") is HIFI2 and "bias" in node.kwargs


@pytest.mark.parametrize("case", ["activation", "full_bias", "sum_escapes", "subtract"])
def test_bias_add_near_misses(case):
    def model(x, w, b):
        y = ttnn.linear(x, w, activation="relu") if case == "activation" else ttnn.linear(x, w)
        out = ttnn.subtract(y, b) if case == "subtract" else ttnn.add(y, b)
        return (out, y) if case == "sum_escapes" else out

    b = TensorSpec((1, 1, 32, 512)) if case == "full_bias" else B
    _, fused, refused = run(model, [X, W, b], ["bias_add"])
    assert fused == []
    if case in ("activation", "full_bias", "sum_escapes"):
        assert refused


# --- reshard_into_producer -----------------------------------------------------------------------


def test_a_reshard_after_a_producer_folds_into_it_with_every_keyword_kept():
    def model(a, b):
        y = ttnn.multiply(a, b, input_tensor_a_activations=[ttnn.UnaryOpType.SILU], dtype=ttnn.bfloat16,
                          memory_config=ttnn.DRAM_MEMORY_CONFIG)
        return ttnn.to_memory_config(y, ttnn.L1_MEMORY_CONFIG)

    f, fused, _ = run(model, [X, X], ["reshard_into_producer"])
    assert fused == ["reshard_into_producer"] and agrees(model, f, [X, X])
    (node,) = calls(f)
    assert kwarg(node, "memory_config") == ttnn.L1_MEMORY_CONFIG and kwarg(node, "input_tensor_a_activations")


@pytest.mark.parametrize("case", ["result_kept", "dtype_change"])
def test_reshard_near_misses(case):
    def model(a, b):
        y = ttnn.add(a, b)
        kw = {"dtype": ttnn.float32} if case == "dtype_change" else {}
        z = ttnn.to_memory_config(y, ttnn.L1_MEMORY_CONFIG, **kw)
        return (z, y) if case == "result_kept" else z

    _, fused, refused = run(model, [X, X], ["reshard_into_producer"])
    assert fused == [] and refused


# --- movement_chain ------------------------------------------------------------------------------


@pytest.mark.parametrize("chain,left", [
    ("layout_round_trip", 0), ("same_shape_reshape", 0), ("permute_inverse", 0), ("two_reshapes", 1),
    ("bf16_f32_bf16", 0), ("reshape_permute_reshape", 1)])
def test_a_data_movement_chain_becomes_one_op_or_none(chain, left):
    def model(x):
        if chain == "layout_round_trip":
            y = ttnn.to_layout(ttnn.to_layout(x, ttnn.ROW_MAJOR_LAYOUT), ttnn.TILE_LAYOUT)
        elif chain == "same_shape_reshape":
            y = ttnn.reshape(x, (1, 1, 32, 256))
        elif chain == "permute_inverse":
            y = ttnn.permute(ttnn.permute(x, (0, 2, 3, 1)), (0, 3, 1, 2))
        elif chain == "two_reshapes":
            y = ttnn.reshape(ttnn.reshape(x, (32, 256)), (1, 32, 256))
        elif chain == "bf16_f32_bf16":
            y = ttnn.typecast(ttnn.typecast(x, ttnn.float32), ttnn.bfloat16)
        else:
            y = ttnn.reshape(ttnn.permute(ttnn.reshape(x, (1, 32, 256)), (0, 1, 2)), (32, 256))
        return ttnn.exp(y)

    f, fused, _ = run(model, [X], ["movement_chain"])
    assert fused and set(fused) == {"movement_chain"}
    assert len(calls(f)) == left + 1  # the exp stays
    g = torch.Generator().manual_seed(1)
    x = torch.randn(X.shape, generator=g)
    assert torch.equal(fusion.run_reference(model, x), fusion.run_reference(f, x))


def test_a_chain_whose_input_is_freed_right_after_hands_the_buffer_over():
    # real code: y = to_layout(x, ...); ttnn.deallocate(x). Without the chain, y is x: the free goes too
    def model(x):
        y = ttnn.to_layout(ttnn.to_layout(x, ttnn.ROW_MAJOR_LAYOUT), ttnn.TILE_LAYOUT)
        ttnn.deallocate(x)
        return ttnn.exp(y)

    f, fused, _ = run(model, [X], ["movement_chain"])
    assert fused == ["movement_chain"]
    assert [n.target for n in calls(f)] == [ttnn.exp]
    x = torch.randn(X.shape, generator=torch.Generator().manual_seed(4))
    assert torch.equal(fusion.run_reference(model, x), fusion.run_reference(f, x))


@pytest.mark.parametrize("case", ["lossy_typecast", "transposing_reshape", "input_freed_later"])
# movement_chain is quiet (it matches every pair of movement ops): only the freed input, a chain that
# would otherwise be removed, is reported
def test_movement_near_misses(case):
    def model(x):
        if case == "lossy_typecast":  # float32 -> bfloat16 -> float32 rounds
            return ttnn.exp(ttnn.typecast(ttnn.typecast(x, ttnn.bfloat16), ttnn.float32))
        if case == "transposing_reshape":  # a reshape then a permute that is not its inverse: still two ops' work
            return ttnn.exp(ttnn.permute(ttnn.reshape(x, (1, 32, 16, 16)), (0, 2, 1, 3)))
        y = ttnn.to_layout(ttnn.to_layout(x, ttnn.ROW_MAJOR_LAYOUT), ttnn.TILE_LAYOUT)  # a buffer of its own
        z = ttnn.exp(x)  # x read again after the chain, then freed: y may not become x
        ttnn.deallocate(x)
        return ttnn.add(y, z)

    spec = TensorSpec((1, 1, 32, 256), dtype=ttnn.float32) if case == "lossy_typecast" else X
    _, fused, refused = run(model, [spec], ["movement_chain"])
    assert fused == [] and bool(refused) == (case == "input_freed_later"), refused


def test_an_op_between_two_layout_conversions_runs_alone_on_tile():
    # DeepSeek / gpt-oss: to_layout(RM) -> reshape -> to_layout(TILE) is the reshape on TILE
    def model(x):
        y = ttnn.to_layout(x, ttnn.ROW_MAJOR_LAYOUT)
        y = ttnn.reshape(y, (1, 32, 256))
        return ttnn.exp(ttnn.to_layout(y, ttnn.TILE_LAYOUT))

    f, fused, _ = run(model, [X], ["movement_chain"])
    assert fused == ["movement_chain"]
    assert [n.target for n in calls(f)] == [ttnn.reshape, ttnn.exp]
    x = torch.randn(X.shape, generator=torch.Generator().manual_seed(2))
    assert torch.equal(fusion.run_reference(model, x), fusion.run_reference(f, x))


# --- scaled_add (all_reduce -> div(num_devices) -> add) ------------------------------------------


@pytest.mark.parametrize("spell", ["divide", "operator", "times_half", "residual_second"])
def test_a_sum_averaged_over_devices_and_added_is_one_addalpha(spell):
    def model(res, partial):
        s = ttnn.exp(partial)  # stands in for the all_reduce: any producer
        scaled = {"divide": lambda: ttnn.divide(s, 8), "operator": lambda: s / 4, "times_half": lambda: s * 0.5,
                  "residual_second": lambda: ttnn.divide(s, 2)}[spell]()
        return ttnn.add(scaled, res) if spell == "residual_second" else ttnn.add(res, scaled)

    f, fused, _ = run(model, [X, X], ["scaled_add"])
    assert fused == ["scaled_add"]
    assert [n.target for n in calls(f)] == [ttnn.exp, ttnn.addalpha]
    x = [torch.randn(X.shape, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    assert torch.equal(fusion.run_reference(model, *x), fusion.run_reference(f, *x))


@pytest.mark.parametrize("case", ["three_devices", "broadcast"])
def test_scaled_add_near_misses(case):
    def model(res, partial):
        return ttnn.add(res, ttnn.divide(partial, 3 if case == "three_devices" else 2))

    partial = TensorSpec((1, 1, 1, 256)) if case == "broadcast" else X
    _, fused, refused = run(model, [X, partial], ["scaled_add"])
    assert fused == [] and refused


# --- residual add -> rms_norm on the real decode placement ----------------------------------------


def _width_sharded(cores_x, cores_y, width):
    grid = ttnn.CoreRangeSet({ttnn.CoreRange(ttnn.CoreCoord(0, 0), ttnn.CoreCoord(cores_x - 1, cores_y - 1))})
    shard = [32, width // (cores_x * cores_y)]
    return ttnn.MemoryConfig(ttnn.TensorMemoryLayout.WIDTH_SHARDED, ttnn.BufferType.L1,
                             ttnn.ShardSpec(grid, shard, ttnn.ShardOrientation.ROW_MAJOR))


def test_residual_norm_on_the_decode_placement_passes_the_sharded_program_config_through():
    # tt_transformers decode: the residual stream L1 WIDTH_SHARDED over 8x8 cores, a sharded norm config
    mc = _width_sharded(8, 8, 4096)
    pc = ttnn.LayerNormShardedMultiCoreProgramConfig(compute_with_storage_grid_size=ttnn.CoreCoord(8, 8),
                                                     subblock_w=2, block_h=1, block_w=2, inplace=False)
    x = TensorSpec((1, 1, 32, 4096), memory_config=mc)
    g = TensorSpec((1, 1, 1, 4096))

    def model(x, r, g):
        s = ttnn.add(x, r, memory_config=mc)
        return ttnn.rms_norm(s, weight=g, epsilon=1e-5, program_config=pc, memory_config=mc,
                             compute_kernel_config=HIFI2)

    f, fused, _ = run(model, [x, x, g], ["residual_rmsnorm"])
    assert fused == ["residual_rmsnorm"]
    (node,) = calls(f)
    assert "residual_input_tensor" in node.kwargs and kwarg(node, "program_config") is pc


def test_residual_norm_keeping_the_sum_on_the_decode_placement_is_refused_naming_it():
    mc = _width_sharded(8, 8, 4096)
    x = TensorSpec((1, 1, 32, 4096), memory_config=mc)

    def model(x, r, g):
        s = ttnn.add(x, r, memory_config=mc)
        return ttnn.rms_norm(s, weight=g, epsilon=1e-5, memory_config=mc), s

    _, fused, refused = run(model, [x, x, TensorSpec((1, 1, 1, 4096))], ["residual_rmsnorm"])
    assert fused == [] and any("WIDTH_SHARDED L1 over 64 cores" in r for r in refused), refused


def test_a_biased_linear_then_reshard_folds_too():
    # gpt-oss's router: linear(x, w, bias=b) then to_memory_config
    def model(x, w, b):
        return ttnn.to_memory_config(ttnn.linear(x, w, bias=b), ttnn.L1_MEMORY_CONFIG)

    f, fused, _ = run(model, [X, W, B], ["reshard_into_producer"])
    assert fused == ["reshard_into_producer"] and agrees(model, f, [X, W, B])


def test_a_same_shape_reshape_whose_result_is_freed_goes_too():
    # gpt-oss / tt_transformers: x = reshape(x, same shape) ... deallocate(x): the reshape may be a
    # view of its input already, so without it nothing about buffers changes
    def model(x):
        y = ttnn.reshape(x, (1, 1, 32, 256))
        z = ttnn.exp(y)
        ttnn.deallocate(y)
        return z

    f, fused, refused = run(model, [X], ["movement_chain"])
    assert fused == ["movement_chain"], refused


# --- the normaliser --------------------------------------------------------------------------------


def test_a_pattern_is_written_once_and_matched_in_every_equivalent_spelling():
    def unfused(a, b):
        return ttnn.add(ttnn.square(a), b)

    p = fusion.Pattern("square_add", unfused, lambda a, b: ttnn.add(ttnn.multiply(a, a), b))
    # square(a) in three spellings x the add's operands in two orders, all named as written
    assert len(p.spellings) == 6 and {s.name for s in p.spellings} == {"unfused"}
    assert fusion.Pattern("same_operand", lambda a: ttnn.multiply(a, a), lambda a: ttnn.square(a)).spellings


def test_too_many_equivalent_spellings_is_a_pattern_error():
    def unfused(a, b):
        x = a
        for _ in range(9):  # 2**9 operand orders
            x = ttnn.add(x, b)
        return x

    with pytest.raises(fusion.PatternError, match="equivalent spellings"):
        fusion.Pattern("too_loose", unfused, unfused)


# --- regressions found by review -----------------------------------------------------------------


def test_a_removed_chain_whose_result_is_freed_while_its_input_lives_on_is_refused():
    # without the chain, freeing y would free x, which is read afterwards
    def model(x):
        y = ttnn.to_layout(ttnn.to_layout(x, ttnn.ROW_MAJOR_LAYOUT), ttnn.TILE_LAYOUT)
        a = ttnn.exp(y)
        ttnn.deallocate(y)
        return ttnn.add(a, ttnn.exp(x))

    _, fused, refused = run(model, [X], ["movement_chain"])
    assert fused == [] and any("frees the chain's output" in r for r in refused), refused


def test_a_round_trip_of_a_program_input_returned_as_is_is_not_removed():
    # the caller would get its own tensor back as the result
    def model(x):
        return ttnn.to_layout(ttnn.to_layout(x, ttnn.ROW_MAJOR_LAYOUT), ttnn.TILE_LAYOUT)

    _, fused, refused = run(model, [X], ["movement_chain"])
    assert fused == [] and any("one buffer twice" in r for r in refused), refused


def test_a_norm_config_that_writes_its_input_is_not_a_placement():
    mc = _width_sharded(8, 8, 4096)
    pc = ttnn.LayerNormShardedMultiCoreProgramConfig(compute_with_storage_grid_size=ttnn.CoreCoord(8, 8),
                                                     subblock_w=2, block_h=1, block_w=2, inplace=True)
    x = TensorSpec((1, 1, 32, 4096), memory_config=mc)

    def model(x, r, g):  # the in-place norm overwrites the temporary sum; fused, it would overwrite x
        y = ttnn.rms_norm(ttnn.add(x, r, memory_config=mc), weight=g, epsilon=1e-5, program_config=pc,
                          memory_config=mc)
        return ttnn.add(y, x, memory_config=mc)

    _, fused, refused = run(model, [x, x, TensorSpec((1, 1, 1, 4096))], ["residual_rmsnorm"])
    assert fused == [] and any("inplace=True" in r for r in refused), refused


def test_an_intermediate_rounded_by_its_dtype_keeps_its_rounding():
    # float32 data rounded to bfloat16 in the middle: dropping dtype= would lose that rounding
    f32 = TensorSpec((1, 1, 32, 256), dtype=ttnn.float32)

    def model(a, b):
        return ttnn.add(a, ttnn.divide(b, 2, dtype=ttnn.bfloat16))

    _, fused, refused = run(model, [f32, f32], ["scaled_add"])
    assert fused == [] and any("dtype=DataType.BFLOAT16" in r for r in refused), refused

    def same_dtype(a, b):  # a dtype= that rounds nothing is a placement: dropped
        return ttnn.add(a, ttnn.divide(b, 2, dtype=ttnn.float32))

    _, fused, _ = run(same_dtype, [f32, f32], ["scaled_add"])
    assert fused == ["scaled_add"]


def test_a_tensor_where_a_pattern_has_a_constant_is_another_structure_not_a_refusal():
    def model(x):  # x * x + eps: scaled_add's swapped spelling must not bind x as its constant
        return ttnn.add(ttnn.multiply(x, x), 1e-6)

    _, fused, refused = run(model, [X], ["scaled_add"])
    assert fused == [] and refused == []


def test_a_reshard_keeps_the_producers_rounding_dtype():
    # tt_transformers' MLP: mul(w1, w3, dtype=bfloat8_b, ...) then to_memory_config: the producer is
    # re-emitted with its dtype, so nothing is lost
    def model(a, b):
        y = ttnn.multiply(a, b, dtype=ttnn.float32)
        return ttnn.to_memory_config(y, ttnn.L1_MEMORY_CONFIG)

    f, fused, refused = run(model, [X, X], ["reshard_into_producer"])
    assert fused == ["reshard_into_producer"], refused
    (node,) = calls(f)
    assert kwarg(node, "dtype") == ttnn.float32
