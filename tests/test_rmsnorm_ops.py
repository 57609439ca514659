"""RMSNorm micro-op: golden vs ttnn's golden, constraint refusals, runtime validation, mock-device
descriptor validation + per-RISC kernel compile checks, and hardware tests (skipped without a device)."""
from __future__ import annotations

import pytest
import torch
import ttnn

from micro_ops.rmsnorm import (
    InvalidInputError,
    RMSNormSingleCore,
    prepare_gamma,
    rms_norm,
    rms_norm_reference,
    x_memory_config,
)
from micro_ops.rmsnorm import _util as U

EPS = 1e-5


def _inputs(rows, width, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 1, rows, width, generator=g).to(torch.bfloat16)
    gamma = (1.0 + 0.1 * torch.randn(width, generator=g)).to(torch.bfloat16)
    return x, gamma


# ------------------------------------------------------------------------------------------ golden


@pytest.mark.parametrize("width", [2048, 4096, 7168])
@pytest.mark.parametrize("rows", [1, 7, 32])
@pytest.mark.parametrize("fp32", [True, False])
def test_golden_matches_ttnn_golden(width, rows, fp32):
    x, gamma = _inputs(rows, width)
    ref = ttnn.get_golden_function(ttnn.rms_norm)(x, weight=gamma, epsilon=EPS)
    ours = RMSNormSingleCore.golden(x, gamma, epsilon=EPS, fp32_dest_acc_en=fp32)
    assert ours.shape == x.shape and ours.dtype == torch.bfloat16
    assert U.pcc(ref.float(), ours.float()) >= 0.999


def test_golden_rounding_modes_differ_as_expected():
    # the bf16-DST model must lose precision against a float64 reference; fp32 accumulation must not
    x, gamma = _inputs(32, 7168, seed=3)
    x = x * 8  # larger sums make bf16 accumulation error visible
    xd = x.double()
    exact = xd * torch.rsqrt((xd * xd).mean(-1, keepdim=True) + EPS) * gamma.double()
    e32 = (RMSNormSingleCore.golden(x, gamma, epsilon=EPS, fp32_dest_acc_en=True).double() - exact).abs().mean()
    e16 = (RMSNormSingleCore.golden(x, gamma, epsilon=EPS, fp32_dest_acc_en=False).double() - exact).abs().mean()
    assert e16 > 1.5 * e32


def test_entry_attributes():
    x, gamma = _inputs(32, 2048)
    assert rms_norm.output_shape([1, 1, 32, 2048], [2048]) == [1, 1, 32, 2048]
    y = rms_norm.golden(x, gamma, epsilon=EPS)
    assert torch.equal(y, rms_norm_reference(x, gamma, epsilon=EPS))
    assert rms_norm.check is RMSNormSingleCore.check


# ------------------------------------------------------------------------------------------ constraints


@pytest.mark.parametrize("x_shape,gamma_shape", [
    ([1, 1, 32, 2048], [2048]), ([1, 1, 1, 7168], [1, 1, 1, 7168]), ([5, 4096], [1, 4096]),
])
def test_check_accepts(x_shape, gamma_shape):
    assert RMSNormSingleCore.check(x_shape, gamma_shape) is None


@pytest.mark.parametrize("x_shape,gamma_shape,kw,needle", [
    ([1, 1, 64, 2048], [2048], {}, "1..32 rows"),
    ([1, 2, 32, 2048], [2048], {}, "leading dims 1"),
    ([1, 1, 32, 2000], [2000], {}, "multiple of 32"),
    ([1, 1, 32, 2048], [4096], {}, "per-channel weight"),
    ([1, 1, 32, 2048], [2, 2048], {}, "per-channel weight"),
    ([1, 1, 32, 2048], [2048], {"x_dtype": ttnn.float32}, "only bfloat16"),
    ([1, 1, 32, 32768], [32768], {}, "L1"),
])
def test_check_refuses(x_shape, gamma_shape, kw, needle):
    reason = RMSNormSingleCore.check(x_shape, gamma_shape, **kw)
    assert reason is not None and needle in reason


def test_l1_budget_boundary():
    # the widest width accepted must fit the measured per-core L1, one tile more must not
    widths = [w for w in range(32, 16384, 32) if RMSNormSingleCore.check([1, 32, w], [w]) is None]
    widest = max(widths)
    assert RMSNormSingleCore.l1_bytes(widest) <= U.L1_BYTES_PER_CORE < RMSNormSingleCore.l1_bytes(widest + 32)
    assert widest >= 7168


# ------------------------------------------------------------------------------------------ mock device


def _place(device, x, gamma, core=ttnn.CoreCoord(0, 0)):
    width = x.shape[-1]
    tx = ttnn.from_torch(x, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                         memory_config=x_memory_config(width, core))
    tg = prepare_gamma(gamma, device, core)
    out = ttnn.allocate_tensor_on_device(tx.shape, ttnn.bfloat16, ttnn.TILE_LAYOUT, device, x_memory_config(width, core))
    return tx, tg, out


@pytest.mark.mock_device
@pytest.mark.parametrize("width,fp32,core", [
    (2048, True, (0, 0)), (2048, False, (0, 0)), (4096, True, (3, 5)), (4096, False, (0, 0)),
    (7168, True, (7, 7)), (7168, False, (0, 0)),
])
def test_mock_descriptor_and_kernels(mock_device, width, fp32, core):
    x, gamma = _inputs(32, width)
    tx, tg, out = _place(mock_device, x, gamma, ttnn.CoreCoord(*core))
    program = RMSNormSingleCore.program_descriptor(tx, tg, out, epsilon=EPS, fp32_dest_acc_en=fp32)
    y = RMSNormSingleCore.op(tx, tg, out, epsilon=EPS, fp32_dest_acc_en=fp32)
    assert list(y.shape) == [1, 1, 32, width]
    # reader (NCRISC) + writer (BRISC) + compute (TRISC0/1/2) of this descriptor's named args
    assert U.assert_program_checked_named(program) == 5


@pytest.mark.mock_device
@pytest.mark.parametrize("fp32", [True, False])
def test_mock_widest_accepted_width_fits_real_allocator(mock_device, fp32):
    # check()'s L1 budget must not be optimistic: the widest width it accepts allocates and passes
    # tt-metal's CB / L1-buffer clash validation
    width = max(w for w in range(7168, 16384, 32) if RMSNormSingleCore.check([1, 32, w], [w], fp32_dest_acc_en=fp32) is None)
    x, gamma = _inputs(32, width)
    tx, tg, out = _place(mock_device, x, gamma)
    RMSNormSingleCore.op(tx, tg, out, epsilon=EPS, fp32_dest_acc_en=fp32)


@pytest.mark.mock_device
def test_mock_partial_rows_and_entry(mock_device):
    x, gamma = _inputs(5, 2048)
    tx, tg, _ = _place(mock_device, x, gamma)
    y = rms_norm(tx, tg, epsilon=EPS)
    assert list(y.shape) == [1, 1, 5, 2048]
    assert y.memory_config() == tx.memory_config()


@pytest.mark.mock_device
def test_mock_descriptor_cache(mock_device):
    from micro_ops.rmsnorm import op as op_mod

    x, gamma = _inputs(32, 2048)
    tx, tg, out = _place(mock_device, x, gamma)
    RMSNormSingleCore.program_descriptor(tx, tg, out, epsilon=EPS)
    hits = op_mod._CACHE.hits
    RMSNormSingleCore.program_descriptor(tx, tg, out, epsilon=EPS)
    assert op_mod._CACHE.hits == hits + 1
    RMSNormSingleCore.program_descriptor(tx, tg, out, epsilon=2 * EPS)  # new epsilon: new kernels
    assert op_mod._CACHE.hits == hits + 1


@pytest.fixture
def no_generic_op(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("generic_op reached with an invalid input")

    monkeypatch.setattr(ttnn, "generic_op", refuse)


@pytest.mark.mock_device
@pytest.mark.parametrize("case", ["x_interleaved", "x_fp32", "gamma_tile", "gamma_other_core", "out_wrong_shard",
                                  "host_tensor", "bad_eps"])
def test_mock_validation_refuses_before_generic_op(mock_device, no_generic_op, case):
    d = mock_device
    x, gamma = _inputs(32, 2048)
    tx, tg, out = _place(d, x, gamma)
    kw = {"epsilon": EPS}
    needle = {
        "x_interleaved": "HEIGHT_SHARDED", "x_fp32": "dtype", "gamma_tile": "layout",
        "gamma_other_core": "shard grid", "out_wrong_shard": "out", "host_tensor": "device tensor",
        "bad_eps": "epsilon",
    }[case]
    if case == "x_interleaved":
        tx = ttnn.from_torch(x, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=d, memory_config=ttnn.L1_MEMORY_CONFIG)
    elif case == "x_fp32":
        tx = ttnn.from_torch(x, dtype=ttnn.float32, layout=ttnn.TILE_LAYOUT, device=d, memory_config=x_memory_config(2048))
    elif case == "gamma_tile":
        tg = ttnn.from_torch(gamma.reshape(1, -1), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=d,
                             memory_config=x_memory_config(2048))
    elif case == "gamma_other_core":
        tg = prepare_gamma(gamma, d, ttnn.CoreCoord(1, 0))
    elif case == "out_wrong_shard":
        out = ttnn.allocate_tensor_on_device(tx.shape, ttnn.bfloat16, ttnn.TILE_LAYOUT, d,
                                             x_memory_config(2048, ttnn.CoreCoord(2, 2)))
    elif case == "host_tensor":
        tx = ttnn.from_torch(x, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT)
    elif case == "bad_eps":
        kw = {"epsilon": -1.0}
    with pytest.raises(InvalidInputError, match=needle):
        RMSNormSingleCore.op(tx, tg, out, **kw)


# ------------------------------------------------------------------------------------------ hardware


def _pcc(a, b):
    return U.pcc(a.float(), b.float())


@pytest.mark.hardware
@pytest.mark.parametrize("width", [2048, 4096, 7168])
@pytest.mark.parametrize("rows", [1, 32])
@pytest.mark.parametrize("fp32", [True, False])
def test_hw_rmsnorm_vs_golden_and_ttnn(device, width, rows, fp32):
    x, gamma = _inputs(rows, width, seed=width + rows)
    tx, tg, out = _place(device, x, gamma)
    y = ttnn.to_torch(RMSNormSingleCore.op(tx, tg, out, epsilon=EPS, fp32_dest_acc_en=fp32))
    golden = RMSNormSingleCore.golden(x, gamma, epsilon=EPS, fp32_dest_acc_en=fp32)
    assert _pcc(golden, y) >= 0.999

    # the unfused ttnn op on the same inputs (DRAM interleaved, gamma in ttnn's [1, 1, W/32, 32] row-major form)
    xd = ttnn.from_torch(x, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                         memory_config=ttnn.DRAM_MEMORY_CONFIG)
    gd = ttnn.from_torch(gamma.reshape(1, 1, width // 32, 32), dtype=ttnn.bfloat16, layout=ttnn.ROW_MAJOR_LAYOUT,
                         device=device, memory_config=ttnn.DRAM_MEMORY_CONFIG)
    ref = ttnn.to_torch(ttnn.rms_norm(xd, weight=gd, epsilon=EPS))
    assert _pcc(ref, y) >= 0.999


# ================================================================================== ResidualRMSNorm

from micro_ops.residual_rmsnorm import ResidualRMSNormSingleCore, residual_rms_norm  # noqa: E402


@pytest.mark.parametrize("width", [2048, 4096, 5120])
@pytest.mark.parametrize("fp32", [True, False])
def test_residual_golden_matches_ttnn_golden(width, fp32):
    x, gamma = _inputs(32, width, seed=1)
    res, _ = _inputs(32, width, seed=2)
    s, y = ResidualRMSNormSingleCore.golden(x, res, gamma, epsilon=EPS, fp32_dest_acc_en=fp32)
    assert torch.equal(s, (x.float() + res.float()).to(torch.bfloat16))
    ref = ttnn.get_golden_function(ttnn.rms_norm)(x, weight=gamma, epsilon=EPS, residual_input_tensor=res)
    assert U.pcc(ref.float(), y.float()) >= 0.999
    s2, y2 = residual_rms_norm.golden(x, res, gamma, epsilon=EPS, fp32_dest_acc_en=fp32)
    assert torch.equal(s, s2) and torch.equal(y, y2)
    assert residual_rms_norm.output_shape(list(x.shape), list(res.shape), [width]) == [list(x.shape)] * 2


@pytest.mark.parametrize("x_shape,res_shape,needle", [
    ([1, 1, 32, 2048], [1, 1, 1, 2048], "no broadcasting"),
    ([1, 1, 32, 5280], [1, 1, 32, 5280], "L1"),
    ([1, 1, 33, 2048], [1, 1, 33, 2048], "1..32 rows"),
])
def test_residual_check_refuses(x_shape, res_shape, needle):
    reason = ResidualRMSNormSingleCore.check(x_shape, res_shape, [x_shape[-1]])
    assert reason is not None and needle in reason, reason


def test_residual_widest_width():
    ok = [w for w in range(2048, 8192, 32) if ResidualRMSNormSingleCore.check([1, 32, w], [1, 32, w], [w]) is None]
    assert max(ok) == 5248


@pytest.mark.mock_device
@pytest.mark.parametrize("width,fp32", [(2048, True), (4096, False)])
def test_mock_residual_descriptor_and_kernels(mock_device, width, fp32):
    x, gamma = _inputs(32, width)
    res, _ = _inputs(32, width, seed=9)
    tx, tg, s_out = _place(mock_device, x, gamma)
    tr = ttnn.from_torch(res, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=mock_device,
                         memory_config=x_memory_config(width))
    y_out = ttnn.allocate_tensor_on_device(tx.shape, ttnn.bfloat16, ttnn.TILE_LAYOUT, mock_device, x_memory_config(width))
    program = ResidualRMSNormSingleCore.program_descriptor(tx, tr, tg, s_out, y_out, epsilon=EPS, fp32_dest_acc_en=fp32)
    s, y = ResidualRMSNormSingleCore.op(tx, tr, tg, s_out, y_out, epsilon=EPS, fp32_dest_acc_en=fp32)
    assert list(s.shape) == list(y.shape) == [1, 1, 32, width]
    assert U.assert_program_checked_named(program) == 5
    ttnn.deallocate(s)  # four [32, W] shards already fill most of one core's L1
    ttnn.deallocate(y)
    s2, y2 = residual_rms_norm(tx, tr, tg, epsilon=EPS, fp32_dest_acc_en=fp32)  # same kernels, cached
    assert s2.memory_config() == y2.memory_config() == tx.memory_config()


@pytest.mark.mock_device
@pytest.mark.parametrize("case,needle", [("res_other_core", "residual"), ("res_shape", "no broadcasting"),
                                         ("s_out_dram", "s_out")])
def test_mock_residual_validation(mock_device, no_generic_op, case, needle):
    d = mock_device
    x, gamma = _inputs(32, 2048)
    tx, tg, s_out = _place(d, x, gamma)
    y_out = ttnn.allocate_tensor_on_device(tx.shape, ttnn.bfloat16, ttnn.TILE_LAYOUT, d, x_memory_config(2048))
    mc = x_memory_config(2048, ttnn.CoreCoord(1, 1)) if case == "res_other_core" else x_memory_config(2048)
    res = x[..., :1, :] if case == "res_shape" else x
    tr = ttnn.from_torch(res, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=d, memory_config=mc)
    if case == "s_out_dram":
        s_out = ttnn.allocate_tensor_on_device(tx.shape, ttnn.bfloat16, ttnn.TILE_LAYOUT, d, ttnn.DRAM_MEMORY_CONFIG)
    with pytest.raises(InvalidInputError, match=needle):
        ResidualRMSNormSingleCore.op(tx, tr, tg, s_out, y_out, epsilon=EPS)


@pytest.mark.hardware
@pytest.mark.parametrize("width", [2048, 4096])
@pytest.mark.parametrize("fp32", [True, False])
def test_hw_residual_vs_golden_and_ttnn(device, width, fp32):
    x, gamma = _inputs(32, width, seed=width)
    res, _ = _inputs(32, width, seed=width + 1)
    tx, tg, s_out = _place(device, x, gamma)
    tr = ttnn.from_torch(res, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                         memory_config=x_memory_config(width))
    y_out = ttnn.allocate_tensor_on_device(tx.shape, ttnn.bfloat16, ttnn.TILE_LAYOUT, device, x_memory_config(width))
    s, y = ResidualRMSNormSingleCore.op(tx, tr, tg, s_out, y_out, epsilon=EPS, fp32_dest_acc_en=fp32)
    s, y = ttnn.to_torch(s), ttnn.to_torch(y)
    gs, gy = ResidualRMSNormSingleCore.golden(x, res, gamma, epsilon=EPS, fp32_dest_acc_en=fp32)
    assert _pcc(gs, s) >= 0.9999 and _pcc(gy, y) >= 0.999
    # unfused ttnn: add, then rms_norm
    xd, rd = (ttnn.from_torch(t, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                              memory_config=ttnn.DRAM_MEMORY_CONFIG) for t in (x, res))
    gd = ttnn.from_torch(gamma.reshape(1, 1, width // 32, 32), dtype=ttnn.bfloat16, layout=ttnn.ROW_MAJOR_LAYOUT,
                         device=device, memory_config=ttnn.DRAM_MEMORY_CONFIG)
    sd = ttnn.add(xd, rd)
    assert _pcc(ttnn.to_torch(sd), s) >= 0.9999
    assert _pcc(ttnn.to_torch(ttnn.rms_norm(sd, weight=gd, epsilon=EPS)), y) >= 0.999
