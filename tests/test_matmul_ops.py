"""Decode matmul micro-op (weight width-sharded in L1, act multicast): golden vs ttnn's linear golden,
constraint refusals, runtime validation, mock-device descriptor + per-RISC compile checks, hardware tests."""
from __future__ import annotations

import pytest
import torch
import ttnn

from micro_ops.matmul import (
    MatmulWidthSharded,
    McastPlan,
    a_memory_config,
    matmul,
    matmul_reference,
    out_memory_config,
    prepare_weight,
)
from micro_ops.rmsnorm import InvalidInputError
from micro_ops.rmsnorm import _util as U

_TORCH_ACT = {None: lambda t: t, "silu": torch.nn.functional.silu, "sigmoid": torch.sigmoid, "relu": torch.relu}


def _inputs(m, k, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(1, 1, m, k, generator=g).to(torch.bfloat16)
    w = (torch.randn(k, n, generator=g) / k ** 0.5).to(torch.bfloat16)
    return a, w


# ------------------------------------------------------------------------------------------ golden


@pytest.mark.parametrize("k,n,m,activation,fp32", [
    (k, n, m, None, fp32) for k, n in [(2048, 1536), (4096, 1536), (7168, 1536), (2048, 64)]
    for m in (1, 32) for fp32 in (True, False)
] + [(2048, 1536, 32, act, fp32) for act in ("silu", "sigmoid", "relu") for fp32 in (True, False)])
def test_golden_matches_ttnn_linear_golden(k, n, m, activation, fp32):
    a, w = _inputs(m, k, n, seed=k + n + m)
    ref = _TORCH_ACT[activation](ttnn.get_golden_function(ttnn.linear)(a, w).float())
    ours = MatmulWidthSharded.golden(a, w, activation=activation, fp32_dest_acc_en=fp32)
    assert ours.shape == (1, 1, m, n) and ours.dtype == torch.bfloat16
    assert U.pcc(ref, ours.float()) >= 0.999


def test_golden_bf16_accumulation_is_less_precise():
    a, w = _inputs(32, 7168, 256, seed=1)
    exact = a.double() @ w.double()
    e32 = (matmul_reference(a, w, fp32_dest_acc_en=True).double() - exact).abs().mean()
    e16 = (matmul_reference(a, w, fp32_dest_acc_en=False).double() - exact).abs().mean()
    assert e16 > 1.5 * e32


def test_entry_attributes():
    a, w = _inputs(8, 2048, 256)
    assert matmul.output_shape([1, 1, 8, 2048], [2048, 256]) == [1, 1, 8, 256]
    assert torch.equal(matmul.golden(a, w, activation="silu"), matmul_reference(a, w, activation="silu"))
    assert matmul.check is MatmulWidthSharded.check


# ------------------------------------------------------------------------------------------ constraints


@pytest.mark.parametrize("a_shape,w_shape,cores", [
    ([1, 1, 32, 2048], [2048, 1536], 8), ([1, 32, 4096], [1, 1, 4096, 1536], 16),
    ([32, 7168], [7168, 1536], 48), ([1, 2048], [2048, 64], 1),
])
def test_check_accepts(a_shape, w_shape, cores):
    assert MatmulWidthSharded.check(a_shape, w_shape, num_cores=cores) is None


@pytest.mark.parametrize("a_shape,w_shape,kw,needle", [
    ([1, 1, 64, 2048], [2048, 1536], {}, "1..32 rows"),
    ([2, 1, 32, 2048], [2048, 1536], {}, "leading dims 1"),
    ([1, 1, 32, 2048], [2, 2048, 1536], {}, "leading dims 1"),
    ([1, 1, 32, 2048], [4096, 1536], {}, "inner dims differ"),
    ([1, 1, 32, 2016], [2016, 1536], {"num_cores": 1}, "L1"),
    ([1, 1, 32, 2040], [2040, 1536], {}, "multiple of 32"),
    ([1, 1, 32, 2048], [2048, 1536], {"num_cores": 7}, "whole tiles"),
    ([1, 1, 32, 2048], [2048, 1536], {"activation": "gelu"}, "not fused"),
    ([1, 1, 32, 2048], [2048, 1536], {"w_dtype": ttnn.bfloat8_b}, "only bfloat16"),
    ([1, 1, 32, 7168], [7168, 1536], {"num_cores": 24}, "use more cores"),
    ([1, 1, 32, 2048], [2048, 8192], {"num_cores": 128}, "1..64"),
])
def test_check_refuses(a_shape, w_shape, kw, needle):
    kw = {"num_cores": 8, **kw}
    reason = MatmulWidthSharded.check(a_shape, w_shape, **kw)
    assert reason is not None and needle in reason, reason


def test_mcast_plan_roles():
    grid = ttnn.CoreRange(ttnn.CoreCoord(0, 0), ttnn.CoreCoord(3, 1))  # 8 cores
    inside = McastPlan(ttnn.CoreCoord(1, 1), grid, (19, 19), (18, 18), (21, 19))
    assert inside.sender_in_grid and inside.num_dests == 7
    rx = [(r.start.x, r.start.y, r.end.x, r.end.y) for r in inside.receivers()]
    assert sorted(rx) == [(0, 0, 3, 0), (0, 1, 0, 1), (2, 1, 3, 1)]
    outside = McastPlan(ttnn.CoreCoord(5, 5), grid, (23, 23), (18, 18), (21, 19))
    assert not outside.sender_in_grid and outside.num_dests == 8 and len(outside.receivers()) == 2
    alone = McastPlan(ttnn.CoreCoord(0, 0), ttnn.CoreRange(ttnn.CoreCoord(0, 0), ttnn.CoreCoord(0, 0)),
                      (18, 18), (18, 18), (18, 18))
    assert alone.num_dests == 0 and alone.receiver_set() is None


# ------------------------------------------------------------------------------------------ mock device


def _place(device, a, w, cores, sender):
    k, n = w.shape
    grid = U.grid_rect(cores)
    ta = ttnn.from_torch(a, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                         memory_config=a_memory_config(k, ttnn.CoreCoord(*sender)))
    tw = prepare_weight(w, device, grid)
    out = ttnn.allocate_tensor_on_device(ttnn.Shape([1, 1, a.shape[-2], n]), ttnn.bfloat16, ttnn.TILE_LAYOUT, device,
                                         out_memory_config(n, grid))
    return ta, tw, out


# (K, N, cores, sender core, activation, fp32): sender outside / inside the grid, alone, 48-core 7168
MOCK_CASES = [
    (2048, 1536, 8, (0, 7), "silu", True),
    (4096, 1536, 16, (3, 1), None, False),
    (7168, 1536, 48, (0, 7), "sigmoid", True),  # 24 cores would not fit L1 (checked above)
    (2048, 64, 1, (0, 0), "relu", True),
]


@pytest.mark.mock_device
@pytest.mark.parametrize("k,n,cores,sender,activation,fp32", MOCK_CASES)
def test_mock_descriptor_and_kernels(mock_device, k, n, cores, sender, activation, fp32):
    a, w = _inputs(32, k, n)
    ta, tw, out = _place(mock_device, a, w, cores, sender)
    program = MatmulWidthSharded.program_descriptor(ta, tw, out, activation=activation, fp32_dest_acc_en=fp32)
    y = MatmulWidthSharded.op(ta, tw, out, activation=activation, fp32_dest_acc_en=fp32)
    assert list(y.shape) == [1, 1, 32, n]
    in_grid = U.in_rect(ttnn.CoreCoord(*sender), U.grid_rect(cores))
    # sender: NCRISC + BRISC (+ compute when it owns a weight shard); receivers: NCRISC + BRISC + 3 TRISCs
    expected = (2 + (3 if in_grid else 0)) + (5 if cores - in_grid > 0 else 0)
    assert U.assert_program_checked_named(program) == expected


@pytest.mark.mock_device
def test_mock_entry_allocates_output(mock_device):
    a, w = _inputs(3, 2048, 1536)  # same kernels as the first MOCK_CASES entry: compiled once
    ta, tw, _ = _place(mock_device, a, w, 8, (0, 7))
    y = matmul(ta, tw, activation="silu")
    assert list(y.shape) == [1, 1, 3, 1536]
    assert y.memory_config().shard_spec.grid == tw.memory_config().shard_spec.grid


@pytest.fixture
def no_generic_op(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("generic_op reached with an invalid input")

    monkeypatch.setattr(ttnn, "generic_op", refuse)


@pytest.mark.mock_device
@pytest.mark.parametrize("case,needle", [
    ("a_width_sharded", "HEIGHT_SHARDED"), ("w_height_sharded", "WIDTH_SHARDED"), ("w_dram", "L1"),
    ("out_other_grid", "shard grid"), ("a_two_cores", "exactly one core"), ("bad_activation", "activation"),
    ("w_nonrect", "one rectangle"),
])
def test_mock_validation_refuses_before_generic_op(mock_device, no_generic_op, case, needle):
    d = mock_device
    a, w = _inputs(32, 2048, 512)
    ta, tw, out = _place(d, a, w, 8, (0, 7))
    kw = {}
    if case == "a_width_sharded":
        ta = ttnn.from_torch(a, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=d,
                             memory_config=U.width_sharded(U.grid_rect(8), (32, 256)))
    elif case == "w_height_sharded":
        spec = ttnn.ShardSpec(U.core_set(U.grid_rect(8)), [256, 512], ttnn.ShardOrientation.ROW_MAJOR)
        tw = ttnn.from_torch(w, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=d,
                             memory_config=ttnn.MemoryConfig(ttnn.TensorMemoryLayout.HEIGHT_SHARDED,
                                                             ttnn.BufferType.L1, spec))
    elif case == "w_dram":
        tw = ttnn.from_torch(w, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=d,
                             memory_config=ttnn.DRAM_MEMORY_CONFIG)
    elif case == "out_other_grid":
        out = ttnn.allocate_tensor_on_device(out.shape, ttnn.bfloat16, ttnn.TILE_LAYOUT, d,
                                             out_memory_config(512, U.grid_rect(8, start=(0, 3))))
    elif case == "a_two_cores":
        spec = ttnn.ShardSpec(U.core_set(U.grid_rect(2)), [32, 2048], ttnn.ShardOrientation.ROW_MAJOR)
        a2 = torch.cat([a, a], dim=-2)
        ta = ttnn.from_torch(a2, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=d,
                             memory_config=ttnn.MemoryConfig(ttnn.TensorMemoryLayout.HEIGHT_SHARDED,
                                                             ttnn.BufferType.L1, spec))
    elif case == "bad_activation":
        kw = {"activation": "tanh"}
    elif case == "w_nonrect":
        rs = ttnn.CoreRangeSet({ttnn.CoreRange(ttnn.CoreCoord(0, 0), ttnn.CoreCoord(3, 0)),
                                ttnn.CoreRange(ttnn.CoreCoord(0, 2), ttnn.CoreCoord(3, 2))})
        spec = ttnn.ShardSpec(rs, [2048, 64], ttnn.ShardOrientation.ROW_MAJOR)
        tw = ttnn.from_torch(w, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=d,
                             memory_config=ttnn.MemoryConfig(ttnn.TensorMemoryLayout.WIDTH_SHARDED,
                                                             ttnn.BufferType.L1, spec))
    with pytest.raises(InvalidInputError, match=needle):
        MatmulWidthSharded.op(ta, tw, out, **kw)


# ------------------------------------------------------------------------------------------ hardware


@pytest.mark.hardware
@pytest.mark.parametrize("k,n,cores,sender,activation,fp32", MOCK_CASES + [
    (2048, 1536, 8, (2, 0), None, True),      # sender inside a one-row grid
    (4096, 3072, 32, (7, 7), "silu", False),
])
@pytest.mark.parametrize("m", [1, 32])
def test_hw_matmul_vs_golden_and_ttnn(device, k, n, cores, sender, activation, fp32, m):
    a, w = _inputs(m, k, n, seed=k + n + m)
    ta, tw, out = _place(device, a, w, cores, sender)
    y = ttnn.to_torch(MatmulWidthSharded.op(ta, tw, out, activation=activation, fp32_dest_acc_en=fp32))
    golden = MatmulWidthSharded.golden(a, w, activation=activation, fp32_dest_acc_en=fp32)
    assert U.pcc(golden.float(), y.float()) >= 0.999

    # the unfused chain: ttnn.linear on DRAM tensors, then the activation op
    ad = ttnn.from_torch(a, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                         memory_config=ttnn.DRAM_MEMORY_CONFIG)
    wd = ttnn.from_torch(w, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                         memory_config=ttnn.DRAM_MEMORY_CONFIG)
    r = ttnn.linear(ad, wd)
    r = {None: lambda t: t, "silu": ttnn.silu, "sigmoid": ttnn.sigmoid, "relu": ttnn.relu}[activation](r)
    assert U.pcc(ttnn.to_torch(r).float(), y.float()) >= 0.999
