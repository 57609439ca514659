"""PrepareExpertWeights micro-op: golden semantics, variant choice, validation, and every variant's
ProgramDescriptor on tt-metal's mock N150 (descriptor validation + host compile check of both RISCs).

Hardware tests (bit-exact vs golden and vs the unfused ttnn chain) are written as they would run on an
N150 and skip without a device.
"""
import math

import pytest
import torch

import ttnn
from micro_ops import common
from micro_ops import mock_device as md
from micro_ops.prepare_expert_weights import (
    PrepareExpertWeightsMultiCore,
    PrepareExpertWeightsPipelined,
    PrepareExpertWeightsSingleCore,
    choose_variant,
    descriptor_cache,
    golden,
    last_descriptor,
    last_work_split,
    output_shape,
    prepare_expert_weights,
)

VARIANTS = [PrepareExpertWeightsSingleCore, PrepareExpertWeightsPipelined, PrepareExpertWeightsMultiCore]


def _g(op):
    return ttnn.get_golden_function(op)


def unfused_golden(x, k, h):
    """The seed's 5-op chain composed from ttnn's own golden functions."""
    y = _g(ttnn.reshape)(x, (-1, 1, 1, k))
    y = _g(ttnn.to_layout)(y, ttnn.ROW_MAJOR_LAYOUT)
    y = _g(ttnn.repeat)(y, ttnn.Shape((1, 1, h, 1)))
    y = _g(ttnn.permute)(y, (3, 1, 0, 2))
    return _g(ttnn.to_layout)(y, ttnn.TILE_LAYOUT)


def unfused_chain(x, k, h):
    """The seed's 5-op chain on a device."""
    y = ttnn.reshape(x, (-1, 1, 1, k))
    y = ttnn.to_layout(y, ttnn.ROW_MAJOR_LAYOUT)
    y = ttnn.repeat(y, ttnn.Shape((1, 1, h, 1)))
    y = ttnn.permute(y, (3, 1, 0, 2))
    return ttnn.to_layout(y, ttnn.TILE_LAYOUT)


def input_shape(bs, k):
    """Exercise the token layouts a model produces: [B,1,S,K] prefill, [B,1,1,K] decode, [1,1,T,K]."""
    if bs == 32:
        return (4, 1, 8, k)
    if bs == 8:
        return (8, 1, 1, k)
    if bs == 100:
        return (4, 1, 25, k)
    return (1, 1, bs, k)


# --- golden ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1, 1, 4), (1, 1, 32, 8), (4, 1, 8, 8), (8, 1, 1, 4), (3, 5, 7, 4), (2, 4)])
@pytest.mark.parametrize("h", [1, 32, 100, 256])
def test_golden_equals_the_unfused_chains_golden_functions(shape, h):
    k = shape[-1]
    x = torch.randn(shape, dtype=torch.bfloat16)
    want = unfused_golden(x, k, h)
    got = golden(x, k, h)
    assert got.dtype == x.dtype and got.shape == want.shape
    assert torch.equal(got, want)


def test_golden_broadcasts_each_weight_over_h():
    x = torch.randn(2, 1, 3, 4, dtype=torch.bfloat16)
    out = golden(x, 4, 64)
    flat = x.reshape(-1, 4)
    for bs in range(6):
        for k in range(4):
            assert torch.all(out[k, 0, bs, :] == flat[bs, k])
    assert torch.equal(out, out[:, :, :, :1].expand_as(out))


def test_golden_is_bit_exact_for_special_values():
    x = torch.tensor([[[[0.0, -0.0, float("inf"), float("nan")]]]], dtype=torch.bfloat16)
    out = golden(x, 4, 3)
    assert torch.equal(out.view(torch.int16)[:, 0, 0, 0], x.view(torch.int16).reshape(4))


def test_entry_golden_has_the_entry_signature():
    """prepare_expert_weights.golden takes what prepare_expert_weights takes (torch in, torch out)."""
    import inspect

    from micro_ops.prepare_expert_weights.op import entry_golden

    x = torch.randn(2, 1, 3, 4, dtype=torch.bfloat16)
    assert torch.equal(entry_golden(x, 4, 8, variant="multi_core", memory_config=ttnn.L1_MEMORY_CONFIG),
                       golden(x, 4, 8))
    assert list(inspect.signature(entry_golden).parameters) == \
        list(inspect.signature(prepare_expert_weights).parameters)
    # the fusion pass may wrap it, but whatever is attached must accept the entry's arguments
    assert torch.equal(prepare_expert_weights.golden(x, 4, 8, variant="auto", memory_config=None), golden(x, 4, 8))
    for cls in VARIANTS:
        assert cls.golden is golden


def test_golden_refuses_mismatched_k():
    with pytest.raises(ValueError, match="last dim K=8"):
        golden(torch.zeros(1, 1, 4, 4), 8, 32)


def test_output_shape_rule():
    assert prepare_expert_weights.output_shape((2, 1, 3, 4), 4, 10) == (4, 1, 6, 10)
    assert output_shape([1, 1, 32, 8], 8, 7168) == (8, 1, 32, 7168)
    with pytest.raises(ValueError):
        output_shape((1, 1, 3, 4), 8, 10)


# --- variant choice ---------------------------------------------------------------------------------


def _height_sharded(grid_cols, grid_rows, shard, buffer=ttnn.BufferType.L1):
    grid = ttnn.CoreRangeSet({ttnn.CoreRange(ttnn.CoreCoord(0, 0), ttnn.CoreCoord(grid_cols - 1, grid_rows - 1))})
    spec = ttnn.ShardSpec(grid, shard, ttnn.ShardOrientation.ROW_MAJOR)
    return ttnn.MemoryConfig(ttnn.TensorMemoryLayout.HEIGHT_SHARDED, buffer, spec)


def test_choose_variant_small_output_runs_on_one_core():
    cls, kwargs = choose_variant(8, 4, 256, None)
    assert cls is PrepareExpertWeightsPipelined and kwargs == {"tiles_per_block": 4}
    assert cls.variant_name == "pipelined"


def test_choose_variant_large_output_goes_multi_core():
    assert choose_variant(32, 8, 7168, ttnn.DRAM_MEMORY_CONFIG)[0] is PrepareExpertWeightsMultiCore
    assert choose_variant(64, 8, 256, None)[0] is PrepareExpertWeightsMultiCore
    assert choose_variant(4096, 8, 2880, None)[0] is PrepareExpertWeightsMultiCore


def test_choose_variant_keeps_a_single_core_sharded_output_local():
    mc = _height_sharded(1, 1, (8 * 32, 7168))
    assert choose_variant(32, 8, 7168, mc)[0] is PrepareExpertWeightsPipelined


@pytest.mark.parametrize("bs,k,h,mc,reason", [
    (32, 64, 256, None, r"K=64 > 32"),
    (32, 33, 256, None, r"K <= 32"),
    (0, 8, 256, None, r"must be >= 1"),
    (32, 8, 256, "DRAM", r"ttnn.MemoryConfig or None"),
])
def test_choose_variant_refuses_with_the_limit_named(bs, k, h, mc, reason):
    with pytest.raises(ValueError, match=reason):
        choose_variant(bs, k, h, mc)


# --- on the mock device --------------------------------------------------------------------------------


def _device_input(device, shape, memory_config=None, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, seed=0):
    torch.manual_seed(seed)
    x = torch.randn(shape, dtype=torch.bfloat16)
    return ttnn.from_torch(x, dtype=dtype, layout=layout, device=device,
                           memory_config=memory_config or ttnn.DRAM_MEMORY_CONFIG)


def _output(device, k, bs, h, memory_config=None, dtype=ttnn.bfloat16):
    return ttnn.allocate_tensor_on_device(ttnn.Shape([k, 1, bs, h]), dtype, ttnn.TILE_LAYOUT, device,
                                          memory_config or ttnn.DRAM_MEMORY_CONFIG)


def _assert_checked_and_covered(k, bs, h):
    """Every RISC of both kernels host-checked with this descriptor's args; every output page
    assigned to exactly one core, inside the worker grid."""
    checks = md.assert_program_checked(last_descriptor())
    assert sorted(c.risc for c in checks) == ["BRISC", "NCRISC"]
    pages = k * math.ceil(bs / 32) * math.ceil(h / 32)
    split = last_work_split()
    assert sum(n for _, _, n in split) == pages
    nxt = 0
    for c, first, n in split:
        assert first == nxt and n > 0 and 0 <= c.x < 8 and 0 <= c.y < 8
        nxt = first + n
    return checks


GRID = [(bs, k, h) for bs in (1, 4, 8, 16, 32) for k in (4, 8) for h in (256, 2880, 7168)]


@pytest.mark.mock_device
@pytest.mark.parametrize("bs,k,h", GRID)
def test_every_variant_builds_and_compiles_on_the_mock_device(mock_device, bs, k, h):
    x = _device_input(mock_device, input_shape(bs, k))
    for cls in VARIANTS:
        out = _output(mock_device, k, bs, h)
        result = cls.op(x, out, k, h)
        assert tuple(result.shape) == (k, 1, bs, h)
        _assert_checked_and_covered(k, bs, h)
        if cls is not PrepareExpertWeightsMultiCore:
            assert len(last_work_split()) == 1


@pytest.mark.mock_device
@pytest.mark.parametrize("shape,h", [((1, 1, 64, 8), 2880), ((4, 1, 25, 8), 256), ((1, 1, 1024, 4), 7168),
                                     ((1, 1, 40, 4), 100), ((2, 1, 48, 32), 512)])
def test_multi_core_beyond_one_tile_row(mock_device, shape, h):
    k, bs = shape[-1], math.prod(shape[:-1])
    x = _device_input(mock_device, shape)
    PrepareExpertWeightsMultiCore.op(x, _output(mock_device, k, bs, h), k, h)
    _assert_checked_and_covered(k, bs, h)
    assert len(last_work_split()) == min(64, k * math.ceil(bs / 32) * math.ceil(h / 32))


def _seed_input_config(bs):
    """The seed's input placement: the routing weights as one L1 shard on core (0, 0)."""
    return _height_sharded(1, 1, (32 * math.ceil(bs / 32), 32))


@pytest.mark.mock_device
@pytest.mark.parametrize("case", ["l1_interleaved", "input_sharded", "seed_all_sharded", "output_height_sharded",
                                  "output_width_sharded", "dram_in_l1_out"])
def test_memory_configs_on_the_mock_device(mock_device, case):
    k, bs, h = 8, 32, 256
    in_mc, out_mc = ttnn.DRAM_MEMORY_CONFIG, ttnn.DRAM_MEMORY_CONFIG
    variants = VARIANTS
    if case == "l1_interleaved":
        in_mc = out_mc = ttnn.L1_MEMORY_CONFIG
    elif case == "input_sharded":
        in_mc, h = _seed_input_config(bs), 2880
    elif case == "seed_all_sharded":
        in_mc, out_mc = _seed_input_config(bs), _height_sharded(1, 1, (k * bs, h))
    elif case == "output_height_sharded":
        out_mc = _height_sharded(8, 1, (bs, h))  # one expert's tile row per core
        variants = [PrepareExpertWeightsMultiCore]
    elif case == "output_width_sharded":
        grid = ttnn.CoreRangeSet({ttnn.CoreRange(ttnn.CoreCoord(0, 0), ttnn.CoreCoord(7, 0))})
        spec = ttnn.ShardSpec(grid, (k * bs, 32), ttnn.ShardOrientation.ROW_MAJOR)
        out_mc = ttnn.MemoryConfig(ttnn.TensorMemoryLayout.WIDTH_SHARDED, ttnn.BufferType.L1, spec)
    elif case == "dram_in_l1_out":
        out_mc = ttnn.L1_MEMORY_CONFIG
    # a single-shard input holds [BS, K] as one tile column (the seed's topk output)
    shape = (1, 1, bs, k) if common.is_sharded(in_mc) else input_shape(bs, k)
    x = _device_input(mock_device, shape, in_mc)
    for cls in variants:
        out = _output(mock_device, k, bs, h, out_mc)
        cls.op(x, out, k, h)
        _assert_checked_and_covered(k, bs, h)
        if case == "output_height_sharded":
            # one range per shard, on the core that holds it: every write is local
            assert [(c.x, c.y, n) for c, _, n in last_work_split()] == [(i, 0, h // 32) for i in range(8)]
        if case == "seed_all_sharded" and cls is not PrepareExpertWeightsMultiCore:
            assert [(c.x, c.y) for c, _, _ in last_work_split()] == [(0, 0)]


@pytest.mark.mock_device
@pytest.mark.parametrize("tiles_per_block", [1, 2, 8])
def test_pipelined_block_sizes_compile(mock_device, tiles_per_block):
    x = _device_input(mock_device, (1, 1, 32, 8))
    PrepareExpertWeightsPipelined.op(x, _output(mock_device, 8, 32, 2880), 8, 2880, tiles_per_block=tiles_per_block)
    checks = _assert_checked_and_covered(8, 32, 2880)
    assert {c.compile_time_args[2] for c in checks if c.risc == "NCRISC"} == {tiles_per_block}


@pytest.mark.mock_device
def test_entry_point_allocates_and_chooses(mock_device):
    x = _device_input(mock_device, (1, 1, 32, 8))
    y = prepare_expert_weights(x, 8, 7168)
    assert tuple(y.shape) == (8, 1, 32, 7168) and y.layout == ttnn.TILE_LAYOUT and y.dtype == ttnn.bfloat16
    assert y.memory_config().buffer_type == ttnn.BufferType.DRAM and not y.is_sharded()
    assert len(last_work_split()) == 64  # multi-core for a 1792-page output
    small = prepare_expert_weights(x, 8, 64, memory_config=ttnn.L1_MEMORY_CONFIG)
    assert small.memory_config().buffer_type == ttnn.BufferType.L1
    assert len(last_work_split()) == 1
    for name in ("single_core", "pipelined", "multi_core"):
        out = prepare_expert_weights(x, 8, 256, variant=name)
        assert tuple(out.shape) == (8, 1, 32, 256)
        _assert_checked_and_covered(8, 32, 256)


@pytest.mark.mock_device
def test_descriptor_is_cached_and_only_addresses_change(mock_device):
    cache = descriptor_cache()
    x1 = _device_input(mock_device, (1, 1, 16, 4))
    x2 = _device_input(mock_device, (1, 1, 16, 4), seed=1)
    PrepareExpertWeightsPipelined.op(x1, _output(mock_device, 4, 16, 512), 4, 512)
    first = last_descriptor()
    hits = cache.hits
    out2 = _output(mock_device, 4, 16, 512)
    PrepareExpertWeightsPipelined.op(x2, out2, 4, 512)
    assert cache.hits == hits + 1 and last_descriptor() is first
    reader, writer = first.kernels[0], first.kernels[1]
    assert list(reader.common_runtime_args)[0] == x2.buffer_address()
    assert list(writer.common_runtime_args)[0] == out2.buffer_address()
    assert first.custom_program_hash


# --- validation: refused in Python before anything reaches generic_op ----------------------------------


@pytest.fixture
def no_generic_op(monkeypatch):
    def boom(*_a, **_k):
        raise AssertionError("generic_op must not be reached")

    monkeypatch.setattr(ttnn, "generic_op", boom)


@pytest.mark.mock_device
@pytest.mark.parametrize("case,exc,match", [
    ("row_major", ValueError, "must be TILE layout"),
    ("float32", TypeError, "must be bfloat16"),
    ("bfloat8_b", TypeError, "must be bfloat16"),
    ("k_mismatch", ValueError, "last dim must be K"),
    ("k_too_big", ValueError, r"K=num_experts_per_tok must be in 1..32"),
    ("host_tensor", ValueError, "must be on a device"),
    ("not_a_tensor", TypeError, "must be a ttnn.Tensor"),
    ("input_memory_config_for_output", ValueError, r"must describe the \[K, 1, BS, H\] output"),
    ("bad_variant", ValueError, "variant must be 'auto' or one of"),
    ("single_core_bs_64", ValueError, "needs BS <= 32"),
    ("hidden_size_zero", ValueError, "hidden_size must be >= 1"),
])
def test_entry_point_validation(mock_device, no_generic_op, case, exc, match):
    k, h, shape, kwargs = 8, 256, (1, 1, 32, 8), {}
    x = None
    if case == "row_major":
        x = _device_input(mock_device, shape, layout=ttnn.ROW_MAJOR_LAYOUT)
    elif case == "float32":
        x = _device_input(mock_device, shape, dtype=ttnn.float32)
    elif case == "bfloat8_b":
        x = _device_input(mock_device, shape, dtype=ttnn.bfloat8_b)
    elif case == "k_mismatch":
        k = 4
    elif case == "k_too_big":
        shape, k = (1, 1, 32, 64), 64
    elif case == "host_tensor":
        x = ttnn.from_torch(torch.zeros(shape, dtype=torch.bfloat16), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT)
    elif case == "not_a_tensor":
        x = torch.zeros(shape, dtype=torch.bfloat16)
    elif case == "input_memory_config_for_output":
        kwargs["memory_config"] = _seed_input_config(32)
    elif case == "bad_variant":
        kwargs["variant"] = "fastest"
    elif case == "single_core_bs_64":
        shape, kwargs["variant"] = (1, 1, 64, 8), "single_core"
    elif case == "hidden_size_zero":
        h = 0
    if x is None:
        x = _device_input(mock_device, shape)
    with pytest.raises(exc, match=match):
        prepare_expert_weights(x, k, h, **kwargs)


@pytest.mark.mock_device
@pytest.mark.parametrize("case,exc,match", [
    ("wrong_output_shape", ValueError, r"output_tensor must have shape \[8, 1, 32, 256\]"),
    ("output_dtype", TypeError, "output_tensor must be bfloat16"),
    ("output_row_major", ValueError, "output_tensor must be TILE layout"),
    ("tiles_per_block", ValueError, "tiles_per_block must be an int in 1..8"),
    ("core_outside_grid", ValueError, r"outside the device's 8x8 worker grid"),
])
def test_variant_op_validation(mock_device, no_generic_op, case, exc, match):
    x = _device_input(mock_device, (1, 1, 32, 8))
    out = _output(mock_device, 8, 32, 256)
    kwargs = {}
    if case == "wrong_output_shape":
        out = _output(mock_device, 8, 32, 512)
    elif case == "output_dtype":
        out = _output(mock_device, 8, 32, 256, dtype=ttnn.float32)
    elif case == "output_row_major":
        out = ttnn.allocate_tensor_on_device(ttnn.Shape([8, 1, 32, 256]), ttnn.bfloat16, ttnn.ROW_MAJOR_LAYOUT,
                                             mock_device, ttnn.DRAM_MEMORY_CONFIG)
    elif case == "tiles_per_block":
        kwargs["tiles_per_block"] = 0
    elif case == "core_outside_grid":
        kwargs["core"] = (8, 0)
    cls = PrepareExpertWeightsSingleCore if case == "core_outside_grid" else PrepareExpertWeightsPipelined
    with pytest.raises(exc, match=match):
        cls.op(x, out, 8, 256, **kwargs)


# --- hardware: bit-exact results (skip without a Tenstorrent device) -------------------------------------

HW_GRID = [(bs, k, h) for bs in (1, 4, 8, 16, 32) for k in (4, 8) for h in (256, 2880, 7168)]


@pytest.mark.hardware
@pytest.mark.parametrize("bs,k,h", HW_GRID)
@pytest.mark.parametrize("cls", VARIANTS, ids=lambda c: c.variant_name)
def test_op_matches_golden_on_hardware(device, cls, bs, k, h):
    torch.manual_seed(bs * 1000 + k * 10 + h)
    x = torch.randn(input_shape(bs, k), dtype=torch.bfloat16)
    xt = ttnn.from_torch(x, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device)
    out = _output(device, k, bs, h)
    result = ttnn.to_torch(cls.op(xt, out, k, h))
    assert torch.equal(result, golden(x, k, h))


@pytest.mark.hardware
@pytest.mark.parametrize("shape,h", [((1, 1, 64, 8), 2880), ((4, 1, 25, 8), 256), ((1, 1, 40, 4), 100)])
def test_multi_core_matches_golden_on_hardware(device, shape, h):
    k = shape[-1]
    x = torch.randn(shape, dtype=torch.bfloat16)
    xt = ttnn.from_torch(x, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device)
    result = ttnn.to_torch(prepare_expert_weights(xt, k, h, variant="multi_core"))
    assert torch.equal(result, golden(x, k, h))


@pytest.mark.hardware
@pytest.mark.parametrize("bs,k,h", [(32, 8, 7168), (8, 4, 2880), (1, 4, 256)])
@pytest.mark.parametrize("memory", ["dram", "l1_sharded_input"])
def test_fused_matches_unfused_chain_on_hardware(device, bs, k, h, memory):
    x = torch.randn(input_shape(bs, k), dtype=torch.bfloat16)
    mc = ttnn.DRAM_MEMORY_CONFIG if memory == "dram" else _height_sharded(1, 1, (32 * math.ceil(bs / 32), 32))
    if memory != "dram":
        x = x.reshape(1, 1, bs, k)
    xt = ttnn.from_torch(x, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device, memory_config=mc)
    unfused = ttnn.to_torch(unfused_chain(ttnn.to_memory_config(xt, ttnn.DRAM_MEMORY_CONFIG), k, h))
    fused = ttnn.to_torch(prepare_expert_weights(xt, k, h))
    assert torch.equal(fused, unfused)
    assert torch.equal(fused, golden(x, k, h))


