"""Fused RMSNorm -> Matmul (one and two matmuls, one program): golden vs the ttnn golden chain,
constraint refusals, runtime validation, mock-device descriptor + per-RISC compile checks, hardware tests."""
from __future__ import annotations

import pytest
import torch
import ttnn

from micro_ops.matmul import out_memory_config, prepare_weight
from micro_ops.rmsnorm import InvalidInputError, prepare_gamma, x_memory_config
from micro_ops.rmsnorm import _util as U
from micro_ops.rmsnorm_matmul import RMSNormDualMatmul, RMSNormMatmul, rms_norm_dual_matmul, rms_norm_matmul

EPS = 1e-5
_TORCH_ACT = {None: lambda t: t, "silu": torch.nn.functional.silu, "sigmoid": torch.sigmoid, "relu": torch.relu}


def _inputs(m, k, ns, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 1, m, k, generator=g).to(torch.bfloat16)
    gamma = (1.0 + 0.1 * torch.randn(k, generator=g)).to(torch.bfloat16)
    ws = [(torch.randn(k, n, generator=g) / k ** 0.5).to(torch.bfloat16) for n in ns]
    return x, gamma, ws


def _ttnn_golden_chain(x, gamma, w, activation):
    h = ttnn.get_golden_function(ttnn.rms_norm)(x, weight=gamma, epsilon=EPS).to(torch.bfloat16)
    return _TORCH_ACT[activation](ttnn.get_golden_function(ttnn.linear)(h, w).float())


# ------------------------------------------------------------------------------------------ golden


@pytest.mark.parametrize("k,n,m,activation,fp32", [
    (2048, 1536, 1, None, True), (2048, 1536, 32, "silu", True), (2048, 1536, 32, "sigmoid", False),
    (4096, 1536, 32, None, False), (4096, 1536, 7, "relu", True), (7168, 1536, 32, None, True),
    (7168, 1536, 32, "silu", False), (7168, 1536, 1, None, True),
])
def test_golden_matches_ttnn_chain(k, n, m, activation, fp32):
    x, gamma, (w,) = _inputs(m, k, [n], seed=k + m)
    ours = RMSNormMatmul.golden(x, gamma, w, epsilon=EPS, activation=activation, fp32_dest_acc_en=fp32)
    assert ours.shape == (1, 1, m, n) and ours.dtype == torch.bfloat16
    assert U.pcc(_ttnn_golden_chain(x, gamma, w, activation), ours.float()) >= 0.999


def test_dual_golden_is_two_singles():
    x, gamma, (w1, w3) = _inputs(32, 2048, [512, 512], seed=5)
    y1, y3 = RMSNormDualMatmul.golden(x, gamma, w1, w3, epsilon=EPS, activation1="silu")
    assert torch.equal(y1, RMSNormMatmul.golden(x, gamma, w1, epsilon=EPS, activation="silu"))
    assert torch.equal(y3, RMSNormMatmul.golden(x, gamma, w3, epsilon=EPS))
    assert U.pcc(_ttnn_golden_chain(x, gamma, w1, "silu") * _ttnn_golden_chain(x, gamma, w3, None),
                 (y1.float() * y3.float())) >= 0.999


def test_entry_attributes():
    x, gamma, (w1, w3) = _inputs(4, 2048, [256, 512])
    assert rms_norm_matmul.output_shape([1, 1, 4, 2048], [2048], [2048, 256]) == [1, 1, 4, 256]
    assert rms_norm_dual_matmul.output_shape([1, 1, 4, 2048], [2048], [2048, 256], [2048, 512]) == \
        [[1, 1, 4, 256], [1, 1, 4, 512]]
    assert torch.equal(rms_norm_matmul.golden(x, gamma, w1, epsilon=EPS),
                       RMSNormMatmul.golden(x, gamma, w1, epsilon=EPS))
    y1, y3 = rms_norm_dual_matmul.golden(x, gamma, w1, w3, epsilon=EPS, activation3="relu")
    assert y1.shape[-1] == 256 and y3.shape[-1] == 512 and bool((y3 >= 0).all())


# ------------------------------------------------------------------------------------------ constraints


def test_check_accepts():
    assert RMSNormMatmul.check([1, 1, 32, 2048], [2048], [2048, 1536], num_cores=8, activation="silu") is None
    assert RMSNormMatmul.check([1, 1, 32, 4096], [4096], [4096, 1536], num_cores=16) is None
    assert RMSNormDualMatmul.check([1, 1, 32, 2048], [2048], [2048, 1536], [2048, 1536], num_cores=16) is None


@pytest.mark.parametrize("args,kw,needle", [
    (([1, 1, 64, 2048], [2048], [2048, 1536]), {"num_cores": 8}, "1..32 rows"),
    (([1, 1, 32, 2048], [1024], [2048, 1536]), {"num_cores": 8}, "per-channel"),
    (([1, 1, 32, 2048], [2048], [4096, 1536]), {"num_cores": 8}, "inner dims"),
    (([1, 1, 32, 2048], [2048], [2048, 1536]), {"num_cores": 7}, "whole tiles"),
    (([1, 1, 32, 2048], [2048], [2048, 1536]), {"num_cores": 8, "activation": "gelu"}, "not fused"),
    (([1, 1, 32, 4096], [4096], [4096, 1536]), {"num_cores": 8}, "L1"),
    (([1, 1, 32, 7168], [7168], [7168, 1536]), {"num_cores": 24}, "use more weight cores"),
    (([1, 1, 32, 7168], [7168], [7168, 1536]), {"num_cores": 48, "norm_core_in_grid": True}, "outside the weight grid"),
    (([1, 1, 32, 2048], [2048], [2048, 1536]), {"num_cores": 8, "stream": True}, "one DST half"),
])
def test_check_refuses(args, kw, needle):
    stream = kw.pop("stream", None)
    if stream is None:
        reason = RMSNormMatmul.check(*args, **kw)
    else:
        from micro_ops.rmsnorm_matmul.op import _Fused

        mode, reason = _Fused.plan(*args[:2], [args[2]], activations=[None], fp32_dest_acc_en=True, stream=stream, **kw)
        assert mode is None
    assert reason is not None and needle in reason, reason


def test_plan_modes():
    from micro_ops.rmsnorm_matmul.op import _Fused

    def plan(k, n, cores, **kw):
        return _Fused.plan([1, 32, k], [k], [[k, n]], num_cores=cores, activations=[None], fp32_dest_acc_en=True, **kw)

    assert plan(2048, 1536, 8) == ("resident", 0)
    assert plan(7168, 1536, 48) == ("streamed", 32)  # 7 blocks of 32 tiles; resident would need 1.43 MB
    assert plan(2048, 512, 8, stream=True) == ("streamed", 32)
    assert plan(2048, 512, 8, stream=False) == ("resident", 0)
    assert plan(7168, 1536, 48, stream=False)[0] is None
    # the stream block is a multiple of the DST block (4 fp32 / 8 bf16 tiles) that divides K/32
    assert _Fused.stream_block(224, True) == 32 and _Fused.stream_block(200, False) == 8
    assert _Fused.stream_block(30, True) is None


def test_dual_check_counts_both_weights():
    # one [2048, 1536] weight fits on 8 cores, two do not
    assert RMSNormMatmul.check([1, 32, 2048], [2048], [2048, 1536], num_cores=8) is None
    reason = RMSNormDualMatmul.check([1, 32, 2048], [2048], [2048, 1536], [2048, 1536], num_cores=8)
    assert reason is not None and "L1" in reason


# ------------------------------------------------------------------------------------------ mock device


def _place(device, x, gamma, ws, cores, sender):
    k = x.shape[-1]
    s = ttnn.CoreCoord(*sender)
    grid = U.grid_rect(cores)
    tx = ttnn.from_torch(x, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                         memory_config=x_memory_config(k, s))
    tg = prepare_gamma(gamma, device, s)
    tws = [prepare_weight(w, device, grid) for w in ws]
    outs = [ttnn.allocate_tensor_on_device(ttnn.Shape([1, 1, x.shape[-2], w.shape[-1]]), ttnn.bfloat16,
                                           ttnn.TILE_LAYOUT, device, out_memory_config(w.shape[-1], grid)) for w in ws]
    return tx, tg, tws, outs


def _expected_checks(cores, sender):
    in_grid = U.in_rect(ttnn.CoreCoord(*sender), U.grid_rect(cores))
    # norm core: NCRISC + BRISC + 3 TRISCs; the other weight cores: NCRISC + BRISC + 3 TRISCs
    return 5 + (5 if cores - in_grid > 0 else 0)


SINGLE_CASES = [  # (K, N, cores, norm core, activation, fp32)
    (2048, 1536, 8, (0, 7), "silu", True),    # norm core outside the weight grid
    (2048, 64, 1, (0, 0), "sigmoid", True),   # norm core is the only weight core: no multicast
    (4096, 1536, 16, (3, 1), None, False),    # norm core inside, 1.37 MB of 1.39 MB L1 (hardware list only:
]                                             # the mock-dual case already covers a norm core inside the grid)


@pytest.mark.mock_device
@pytest.mark.parametrize("k,n,cores,sender,activation,fp32", SINGLE_CASES[:2])
def test_mock_single(mock_device, k, n, cores, sender, activation, fp32):
    x, gamma, ws = _inputs(32, k, [n])
    tx, tg, (tw,), (out,) = _place(mock_device, x, gamma, ws, cores, sender)
    kw = dict(epsilon=EPS, activation=activation, fp32_dest_acc_en=fp32)
    program = RMSNormMatmul.program_descriptor(tx, tg, tw, out, **kw)
    y = RMSNormMatmul.op(tx, tg, tw, out, **kw)
    assert list(y.shape) == [1, 1, 32, n]
    assert U.assert_program_checked_named(program) == _expected_checks(cores, sender)


@pytest.mark.mock_device
def test_mock_streamed_7168(mock_device):
    # K=7168 only fits with the activation streamed through a ring (norm core outside the 48 weight cores)
    x, gamma, ws = _inputs(32, 7168, [1536])
    tx, tg, (tw,), (out,) = _place(mock_device, x, gamma, ws, 48, (0, 7))
    program = RMSNormMatmul.program_descriptor(tx, tg, tw, out, epsilon=EPS, activation="silu")
    assert all(dict(k.defines).get("STREAM_ACT") == "1" for k in program.kernels)
    RMSNormMatmul.op(tx, tg, tw, out, epsilon=EPS, activation="silu")
    assert U.assert_program_checked_named(program) == 10


@pytest.mark.mock_device
def test_mock_dual_streamed(mock_device):
    x, gamma, ws = _inputs(32, 2048, [512, 512])
    tx, tg, tws, outs = _place(mock_device, x, gamma, ws, 8, (0, 7))
    kw = dict(epsilon=EPS, activation1="silu", activation3="sigmoid", stream=True)
    program = RMSNormDualMatmul.program_descriptor(tx, tg, *tws, *outs, **kw)
    assert all({"STREAM_ACT", "DUAL_MATMUL"} <= set(dict(k.defines)) for k in program.kernels)
    RMSNormDualMatmul.op(tx, tg, *tws, *outs, **kw)
    assert U.assert_program_checked_named(program) == 10


@pytest.mark.mock_device
def test_mock_dual(mock_device):
    x, gamma, ws = _inputs(32, 2048, [1536, 1536])
    tx, tg, tws, outs = _place(mock_device, x, gamma, ws, 16, (0, 0))
    kw = dict(epsilon=EPS, activation1="silu", activation3=None, fp32_dest_acc_en=True)
    program = RMSNormDualMatmul.program_descriptor(tx, tg, *tws, *outs, **kw)
    assert all(dict(k.defines).get("DUAL_MATMUL") == "1" for k in program.kernels)
    y1, y3 = RMSNormDualMatmul.op(tx, tg, *tws, *outs, **kw)
    assert list(y1.shape) == list(y3.shape) == [1, 1, 32, 1536]
    assert U.assert_program_checked_named(program) == _expected_checks(16, (0, 0))


@pytest.mark.mock_device
def test_mock_entries(mock_device):
    x, gamma, ws = _inputs(3, 2048, [1536])  # same kernels as SINGLE_CASES[0]: compiled once
    tx, tg, (tw,), _ = _place(mock_device, x, gamma, ws, 8, (0, 7))
    y = rms_norm_matmul(tx, tg, tw, epsilon=EPS, activation="silu")
    assert list(y.shape) == [1, 1, 3, 1536]
    assert y.memory_config().shard_spec.grid == tw.memory_config().shard_spec.grid


@pytest.fixture
def no_generic_op(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("generic_op reached with an invalid input")

    monkeypatch.setattr(ttnn, "generic_op", refuse)


@pytest.mark.mock_device
@pytest.mark.parametrize("case,needle", [
    ("gamma_elsewhere", "shard grid"), ("weights_on_different_grids", "same shard grid"),
    ("out_wrong_width", "out1"), ("x_interleaved", "HEIGHT_SHARDED"), ("bad_activation", "activation"),
])
def test_mock_validation_refuses_before_generic_op(mock_device, no_generic_op, case, needle):
    d = mock_device
    x, gamma, ws = _inputs(32, 2048, [512, 512])
    tx, tg, tws, outs = _place(d, x, gamma, ws, 8, (0, 7))
    kw = dict(epsilon=EPS)
    if case == "gamma_elsewhere":
        tg = prepare_gamma(gamma, d, ttnn.CoreCoord(1, 7))
    elif case == "weights_on_different_grids":
        tws[1] = prepare_weight(ws[1], d, U.grid_rect(8, start=(0, 2)))
    elif case == "out_wrong_width":
        outs[1] = ttnn.allocate_tensor_on_device(ttnn.Shape([1, 1, 32, 256]), ttnn.bfloat16, ttnn.TILE_LAYOUT, d,
                                                 out_memory_config(256, U.grid_rect(8)))
    elif case == "x_interleaved":
        tx = ttnn.from_torch(x, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=d,
                             memory_config=ttnn.DRAM_MEMORY_CONFIG)
    elif case == "bad_activation":
        kw["activation1"] = "tanh"
    with pytest.raises(InvalidInputError, match=needle):
        RMSNormDualMatmul.op(tx, tg, *tws, *outs, **kw)


# ------------------------------------------------------------------------------------------ hardware


def _ttnn_unfused(device, x, gamma, w, activation):
    xd = ttnn.from_torch(x, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                         memory_config=ttnn.DRAM_MEMORY_CONFIG)
    gd = ttnn.from_torch(gamma.reshape(1, 1, -1, 32), dtype=ttnn.bfloat16, layout=ttnn.ROW_MAJOR_LAYOUT,
                         device=device, memory_config=ttnn.DRAM_MEMORY_CONFIG)
    wd = ttnn.from_torch(w, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                         memory_config=ttnn.DRAM_MEMORY_CONFIG)
    r = ttnn.linear(ttnn.rms_norm(xd, weight=gd, epsilon=EPS), wd)
    r = {None: lambda t: t, "silu": ttnn.silu, "sigmoid": ttnn.sigmoid, "relu": ttnn.relu}[activation](r)
    return ttnn.to_torch(r).float()


@pytest.mark.hardware
@pytest.mark.parametrize("k,n,cores,sender,activation,fp32", SINGLE_CASES)
@pytest.mark.parametrize("m", [1, 32])
def test_hw_single_vs_golden_and_ttnn(device, k, n, cores, sender, activation, fp32, m):
    x, gamma, ws = _inputs(m, k, [n], seed=k + n + m)
    tx, tg, (tw,), (out,) = _place(device, x, gamma, ws, cores, sender)
    y = ttnn.to_torch(RMSNormMatmul.op(tx, tg, tw, out, epsilon=EPS, activation=activation,
                                       fp32_dest_acc_en=fp32)).float()
    golden = RMSNormMatmul.golden(x, gamma, ws[0], epsilon=EPS, activation=activation, fp32_dest_acc_en=fp32)
    assert U.pcc(golden.float(), y) >= 0.999
    assert U.pcc(_ttnn_unfused(device, x, gamma, ws[0], activation), y) >= 0.999


@pytest.mark.hardware
@pytest.mark.parametrize("m", [1, 32])
@pytest.mark.parametrize("fp32", [True, False])
def test_hw_streamed_7168_vs_golden_and_ttnn(device, m, fp32):
    x, gamma, ws = _inputs(m, 7168, [1536], seed=7168 + m)
    tx, tg, (tw,), (out,) = _place(device, x, gamma, ws, 48, (0, 7))
    y = ttnn.to_torch(RMSNormMatmul.op(tx, tg, tw, out, epsilon=EPS, fp32_dest_acc_en=fp32)).float()
    golden = RMSNormMatmul.golden(x, gamma, ws[0], epsilon=EPS, fp32_dest_acc_en=fp32)
    assert U.pcc(golden.float(), y) >= 0.999
    assert U.pcc(_ttnn_unfused(device, x, gamma, ws[0], None), y) >= 0.999


@pytest.mark.hardware
@pytest.mark.parametrize("sender,n,cores,stream", [((0, 0), 1536, 16, None), ((0, 7), 1536, 16, None),
                                                   ((0, 7), 512, 8, True)])
def test_hw_dual_vs_golden_and_ttnn(device, sender, n, cores, stream):
    x, gamma, ws = _inputs(32, 2048, [n, n], seed=11)
    tx, tg, tws, outs = _place(device, x, gamma, ws, cores, sender)
    y1, y3 = RMSNormDualMatmul.op(tx, tg, *tws, *outs, epsilon=EPS, activation1="silu", stream=stream)
    g1, g3 = RMSNormDualMatmul.golden(x, gamma, *ws, epsilon=EPS, activation1="silu")
    y1, y3 = ttnn.to_torch(y1).float(), ttnn.to_torch(y3).float()
    assert U.pcc(g1.float(), y1) >= 0.999 and U.pcc(g3.float(), y3) >= 0.999
    assert U.pcc(_ttnn_unfused(device, x, gamma, ws[0], "silu"), y1) >= 0.999
    assert U.pcc(_ttnn_unfused(device, x, gamma, ws[1], None), y3) >= 0.999
