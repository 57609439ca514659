"""Specs asked of ttnn on the mock device, the tracer on real model idioms, and host values."""
import pytest
import torch
import ttnn

import fusion
from fusion.specs import TensorSpec, UnknownSpec
from fusion.trace import trace
from fusion.ttnn_specs import DeviceSpecs, Rejected, SpecStore


def _on(device, shape, dtype=ttnn.bfloat16, memory_config=None, values=None):
    t = values if values is not None else torch.randn(*shape)
    return ttnn.from_torch(t, dtype=dtype, layout=ttnn.TILE_LAYOUT, device=device,
                           memory_config=memory_config or ttnn.DRAM_MEMORY_CONFIG)


def _width_sharded(cores_x, cores_y, shard):
    grid = ttnn.CoreRangeSet({ttnn.CoreRange(ttnn.CoreCoord(0, 0), ttnn.CoreCoord(cores_x - 1, cores_y - 1))})
    return ttnn.MemoryConfig(ttnn.TensorMemoryLayout.WIDTH_SHARDED, ttnn.BufferType.L1,
                             ttnn.ShardSpec(grid, shard, ttnn.ShardOrientation.ROW_MAJOR))


def _calls(traced):
    return [n for n in traced.graph_module.graph.nodes if n.op == "call_function"]


def test_specs_come_from_ttnn_and_equal_the_eager_run(mock_device):
    sharded = _width_sharded(8, 1, (32, 64))
    x = _on(mock_device, (1, 1, 32, 512), memory_config=sharded)
    w = _on(mock_device, (512, 256), dtype=ttnn.bfloat8_b)

    def model(x):
        y = ttnn.linear(x, w, memory_config=ttnn.L1_WIDTH_SHARDED_MEMORY_CONFIG,
                        compute_kernel_config=ttnn.WormholeComputeKernelConfig(math_fidelity=ttnn.MathFidelity.LoFi))
        return ttnn.to_memory_config(y, ttnn.DRAM_MEMORY_CONFIG)

    traced = trace(model, [x])
    linear, _to_dram = _calls(traced)
    eager = ttnn.linear(x, w, memory_config=ttnn.L1_WIDTH_SHARDED_MEMORY_CONFIG,
                        compute_kernel_config=ttnn.WormholeComputeKernelConfig(math_fidelity=ttnn.MathFidelity.LoFi))
    spec = linear.meta["spec"]
    assert spec == fusion.specs.spec_from_value(eager)
    # ttnn derived the shard spec of the output: the hand rules could only have guessed it
    assert spec.memory_config.is_sharded() and spec.memory_config.shard_spec is not None


def test_a_call_ttnn_rejects_is_a_rejected_spec_with_ttnns_reason(mock_device):
    x = _on(mock_device, (1, 1, 32, 64))

    def model(x):
        return ttnn.reshape(x, (1, 1, 7, 3))  # 2048 values into 21

    traced = trace(model, [x])
    spec = _calls(traced)[0].meta["spec"]
    assert isinstance(spec, Rejected)
    assert "reshape" in spec.reason() and "ttnn rejects" in spec.reason()


def test_multi_output_ops_give_a_spec_per_output(mock_device):
    x = _on(mock_device, (1, 1, 32, 256))

    def model(x):
        values, indices = ttnn.topk(x, 8)
        return values, indices

    traced = trace(model, [x])
    topk = _calls(traced)[0]
    values, indices = topk.meta["spec"]
    assert values.shape == indices.shape == (1, 1, 32, 8)
    assert indices.dtype == ttnn.uint16


def test_one_question_per_distinct_call(mock_device):
    engine = DeviceSpecs(mock_device)
    x = _on(mock_device, (1, 1, 32, 64))

    def layers(x):
        for _ in range(10):
            x = ttnn.silu(ttnn.add(x, x))
        return x

    import sys

    tr = sys.modules["fusion.trace"]  # (the package's `trace` attribute is the function)
    saved = dict(tr._ENGINES)
    tr._ENGINES[id(mock_device)] = engine
    try:
        trace(layers, [x])
    finally:
        tr._ENGINES.clear()
        tr._ENGINES.update(saved)
    assert engine.answered == 20 and engine.asked == 2


def test_answers_survive_a_process_through_the_store(tmp_path, mock_device):
    store = SpecStore(str(tmp_path / "specs.json"))
    sharded = TensorSpec((1, 1, 32, 512), ttnn.bfloat16, ttnn.TILE_LAYOUT, _width_sharded(8, 1, (32, 64)))
    answers = {"a": sharded, "b": (sharded, sharded.with_(dtype=ttnn.uint16)), "c": Rejected("ttnn.reshape", "why")}
    for k, v in answers.items():
        store.put("op", ("target", k), v)
    store.flush()
    again = SpecStore(store.path)
    for k, v in answers.items():
        assert again.get("op", ("target", k)) == v
    assert again.get("op", ("target", "missing")) is None


def test_unpacking_an_op_whose_outputs_are_unknown():
    def model(x):
        out, metadata = ttnn.all_to_all_dispatch(x, x, x)
        return out

    traced = trace(model, [TensorSpec((1, 1, 32, 64))], specs="rules")
    names = [n.target for n in _calls(traced)]
    assert names.count(__import__("operator").getitem) == 2


def test_iterating_a_tensor_is_still_an_error_naming_the_line():
    def model(x):
        for row in x:
            pass

    with pytest.raises(fusion.TraceError, match="iterating over a tensor's values"):
        trace(model, [TensorSpec((1, 1, 32, 64))], specs="rules")


def test_shape_arithmetic_after_an_unknown_op_stays_python():
    def model(x):
        y = ttnn.experimental.minimal_matmul(x, x)
        rows = y.shape[-4] * y.shape[-3] * y.shape[-2]
        return ttnn.reshape(y, (1, 1, rows, -1))

    traced = trace(model, [TensorSpec((1, 1, 32, 32))], specs="rules")
    targets = [n.target for n in _calls(traced)]
    assert ttnn.multiply not in targets
    assert __import__("operator").mul in targets


def test_tensor_device_is_the_trace_device(mock_device):
    x = _on(mock_device, (1, 1, 32, 64))
    seen = []

    def model(x):
        grid = x.device().compute_with_storage_grid_size()
        seen.append((grid.x, grid.y))
        return ttnn.silu(x)

    trace(model, [x])
    assert seen == [(8, 8)]


def test_reference_reads_captured_host_values_and_refuses_unknown_ones(mock_device):
    wt = torch.randn(64, 32)
    plain = _on(mock_device, (64, 32), dtype=ttnn.bfloat8_b, values=wt)
    with fusion.capture_host_values():
        captured = _on(mock_device, (64, 32), dtype=ttnn.bfloat8_b, values=wt)
    xt = torch.randn(1, 1, 32, 64)
    x = _on(mock_device, (1, 1, 32, 64), values=xt)
    fused = fusion.fuse(lambda x: ttnn.linear(x, captured), [x])
    got = fusion.run_reference(fused, xt)
    rounded_w = ttnn.to_torch(ttnn.from_torch(wt, dtype=ttnn.bfloat8_b, layout=ttnn.TILE_LAYOUT)).double()
    want = (xt.to(torch.bfloat16).double() @ rounded_w).to(torch.bfloat16)
    assert torch.equal(got.to(torch.bfloat16), want)
    blind = fusion.fuse(lambda x: ttnn.linear(x, plain), [x])
    with pytest.raises(fusion.UnknownValue, match=r"\[64, 32\] BFLOAT8_B.*capture_host_values"):
        fusion.run_reference(blind, xt)


def test_repeat_with_repeat_dims_keyword_has_reference_semantics():
    def model(x):
        return ttnn.repeat(x, repeat_dims=(1, 1, 2, 1))

    x = torch.randn(1, 1, 32, 32)
    out = fusion.run_reference(model, x)
    assert torch.equal(out, x.to(torch.bfloat16).repeat(1, 1, 2, 1))


def test_clamp_bounds_are_honoured_by_reference():
    def model(x):
        return ttnn.clamp(x, min=-0.5, max=0.25)

    out = fusion.run_reference(model, torch.linspace(-2, 2, 1024).reshape(1, 1, 32, 32))
    assert float(out.min()) == -0.5 and float(out.max()) == 0.25


def test_unknown_spec_names_the_op():
    def model(x):
        return ttnn.experimental.minimal_matmul(x, x)

    traced = trace(model, [TensorSpec((1, 1, 32, 32))], specs="rules")
    spec = _calls(traced)[0].meta["spec"]
    assert isinstance(spec, UnknownSpec) and "minimal_matmul" in spec.reason()


def test_a_ttnn_function_that_is_not_an_op_is_named_with_the_users_line():
    def model(x):
        return ttnn.get_device_tensors(ttnn.silu(x))

    with pytest.raises(fusion.TraceError, match=r"test_ttnn_specs.py:\d+: ttnn.get_device_tensors cannot be traced"):
        trace(model, [TensorSpec((1, 1, 32, 32))], specs="rules")


def test_an_op_without_a_spec_does_not_stop_fusion_elsewhere():
    def model(x, y):
        unknown = ttnn.experimental.minimal_matmul(x, x)  # no hand rule: unknown spec
        fused = ttnn.multiply(ttnn.silu(y), y)  # silu(a) * b: the catalog fuses it
        return unknown, fused

    spec = TensorSpec((1, 1, 32, 64))
    out = fusion.fuse(model, [spec, spec])
    assert [r.pattern for r in out.report.rewrites] == ["silu_mul"]


def test_the_report_names_calls_ttnn_rejects(mock_device):
    x = _on(mock_device, (1, 1, 32, 64))

    def model(x):
        bad = ttnn.reshape(x, (1, 1, 7, 3))
        return ttnn.silu(bad)

    report = fusion.fuse(model, [x]).report
    assert [r.pattern for r in report.rejected] == ["ttnn.reshape"]  # its user is not listed again
    assert "ttnn rejects these calls" in str(report) and "rejected_by_ttnn" in report.to_dict()


def test_a_user_of_a_rejected_call_is_unknown_not_rejected(mock_device):
    x = _on(mock_device, (1, 1, 32, 64))

    def model(x):
        return ttnn.silu(ttnn.reshape(x, (1, 1, 7, 3)))

    reshape, silu = _calls(trace(model, [x]))
    assert isinstance(reshape.meta["spec"], Rejected)
    assert not isinstance(silu.meta["spec"], Rejected) and "input is a call ttnn rejects" in silu.meta["spec"].reason()


def test_a_multi_output_result_passed_whole_is_asked_as_tensors(mock_device):
    x = _on(mock_device, (1, 1, 32, 128))

    def model(x):
        return ttnn.concat(ttnn.split(x, 64, dim=-1), dim=-1)

    concat = _calls(trace(model, [x]))[-1]
    assert concat.meta["spec"].shape == (1, 1, 32, 128)


def test_arithmetic_with_a_tensor_is_a_ttnn_op_and_with_shapes_python():
    def model(x):
        y = ttnn.experimental.minimal_matmul(x, x)  # unknown spec: its shape is read at run time
        scaled = x * y.shape[-1]  # a tensor times a run-time int: ttnn.multiply
        neg = -y.shape[-1]  # a run-time int negated: Python
        return scaled, neg // 2

    targets = [n.target for n in _calls(trace(model, [TensorSpec((1, 1, 32, 32))], specs="rules"))]
    assert ttnn.multiply in targets and __import__("operator").neg in targets
    assert ttnn.neg not in targets


def test_python_functions_are_never_spec_keys():
    from fusion.ttnn_specs import _NoKey, literal_key

    for fn in (lambda: 0, lambda: 1):
        with pytest.raises(_NoKey):
            literal_key(fn)
    assert literal_key(ttnn.silu) == ("op", "ttnn.silu")
    assert literal_key(ttnn.Tile((16, 32))) != literal_key(ttnn.Tile((32, 32)))


def test_reference_of_a_fused_model_reads_device_inputs_as_captured(mock_device):
    with fusion.capture_host_values():
        xt = torch.full((1, 1, 32, 32), 3.0)
        x = _on(mock_device, (1, 1, 32, 32), values=xt)
    fused = fusion.fuse(lambda x: ttnn.relu(ttnn.multiply(x, x)), [x])
    out = fusion.run_reference(fused, x)
    assert isinstance(out, torch.Tensor) and float(out.max()) == float(out.min()) == 9.0
    blind = _on(mock_device, (1, 1, 32, 32))
    with pytest.raises(fusion.UnknownValue):
        fusion.run_reference(fused, blind)


def test_a_set_of_ttnn_values_is_a_constant_argument():
    coords = {ttnn.MeshCoordinate(0, 0), ttnn.MeshCoordinate(0, 1)}

    def model(cache, x):
        ttnn.experimental.paged_update_cache(cache, x, update_idxs=[0], mesh_coords=set(coords))
        return cache

    spec = TensorSpec((1, 1, 32, 64))
    traced = trace(model, [spec, spec], specs="rules")
    update = _calls(traced)[0]
    assert update.kwargs["mesh_coords"].meta["literal"] == coords
    assert "writes" in update.meta  # the cache update is a write the output reads


def test_a_ttnn_helper_failing_on_the_models_own_values_is_the_models_error():
    def model(x):
        # a Python helper of ttnn given plain ints that do not fit: not a tracing limitation
        ttnn.create_sharded_memory_config((7, 3), ttnn.CoreGrid(x=8, y=8), ttnn.ShardStrategy.WIDTH)
        return ttnn.silu(x)

    with pytest.raises(fusion.InputError, match="failed while tracing"):
        trace(model, [TensorSpec((1, 1, 32, 32))], specs="rules")
