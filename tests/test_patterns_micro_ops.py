"""rmsnorm_matmul (one and two matmuls) and residual_rmsnorm's keep-sum form, on the L1 placements
their micro-ops need; near-misses that must not fuse."""
import random

import pytest
import torch
import ttnn

import fusion
from fusion import TensorSpec
from fusion.verify import pcc
from patterns import placement as P
from patterns import residual_rmsnorm as RR
from patterns import rmsnorm_matmul as RM

SPECS, CAPS = RM._example(random.Random(0))
X, G, W = SPECS["x"], SPECS["gamma"], SPECS["w"]
OUT_MC = CAPS["mc"]


def fused_names(model, inputs):
    f = fusion.fuse(model, inputs)
    return f, [r.pattern for r in f.report.rewrites], [r.reason for r in f.report.refusals]


def agrees(model, fused, inputs):
    g = torch.Generator().manual_seed(5)
    xs = [torch.randn(s.shape, generator=g) for s in inputs]
    a, b = fusion.run_reference(model, *xs), fusion.run_reference(fused, *xs)
    a, b = (a if isinstance(a, tuple) else (a,)), (b if isinstance(b, tuple) else (b,))
    return all(pcc(x, y) >= 0.999 for x, y in zip(a, b))


def mlp(x, gamma, w1, w3):
    h = ttnn.rms_norm(x, weight=gamma, epsilon=1e-6)
    gate = ttnn.linear(h, w1, memory_config=OUT_MC)
    up = ttnn.linear(h, w3, memory_config=OUT_MC)
    return ttnn.multiply(ttnn.silu(gate), up)


def test_one_norm_two_matmuls_fuse_into_one_program_norm_computed_once():
    f, names, _ = fused_names(mlp, [X, G, W, W])
    assert names == ["rmsnorm_matmul", "silu_mul"]
    rw = f.report.rewrites[0]
    assert rw.spelling == "norm_two_linears" and rw.nodes_replaced == 3 and rw.saved_dispatches == 2
    targets = [getattr(n.target, "ttfuse_name", "") for n in f.graph_module.graph.nodes if n.op == "call_function"]
    assert targets.count("micro_ops.rms_norm_dual_matmul") == 1 and ttnn.rms_norm not in targets
    assert agrees(mlp, f, [X, G, W, W])


@pytest.mark.parametrize("op", ["linear", "matmul"])
def test_norm_then_one_matmul_fuses(op):
    def model(x, gamma, w):
        return getattr(ttnn, op)(ttnn.rms_norm(x, weight=gamma, epsilon=1e-6), w, memory_config=OUT_MC)

    f, names, _ = fused_names(model, [X, G, W])
    assert names == ["rmsnorm_matmul"] and f.report.rewrites[0].saved_dispatches == 1
    assert agrees(model, f, [X, G, W])


def test_norm_kept_for_a_residual_is_not_lost():
    def model(x, gamma, w):
        h = ttnn.rms_norm(x, weight=gamma, epsilon=1e-6)
        return ttnn.linear(h, w, memory_config=OUT_MC), h

    _, names, refused = fused_names(model, [X, G, W])
    assert "rmsnorm_matmul" not in names and any("fusing would lose it" in r for r in refused)


def test_norm_feeding_three_matmuls_is_refused_not_computed_twice():
    def model(x, gamma, w1, w2, w3):
        h = ttnn.rms_norm(x, weight=gamma, epsilon=1e-6)
        return (ttnn.linear(h, w1, memory_config=OUT_MC), ttnn.linear(h, w2, memory_config=OUT_MC),
                ttnn.linear(h, w3, memory_config=OUT_MC))

    f, names, refused = fused_names(model, [X, G, W, W, W])
    assert "rmsnorm_matmul" not in names
    assert sum(1 for n in f.graph_module.graph.nodes if n.target is ttnn.rms_norm) == 1
    assert any("fusing would lose it" in r for r in refused)


@pytest.mark.parametrize("case", ["weights_in_dram", "gamma_tile", "eps_too_big", "other_norm", "activation_gelu",
                                  "conversions_cost_more"])
def test_rmsnorm_matmul_near_misses(case):
    w = TensorSpec(W.shape) if case == "weights_in_dram" else W
    g = TensorSpec(G.shape) if case == "gamma_tile" else G
    x = TensorSpec(X.shape) if case == "conversions_cost_more" else X
    mc = None if case == "conversions_cost_more" else OUT_MC

    def model(x, gamma, w):
        if case == "other_norm":
            h = ttnn.layer_norm(x, weight=gamma, epsilon=1e-6)
        else:
            h = ttnn.rms_norm(x, weight=gamma, epsilon=0.5 if case == "eps_too_big" else 1e-6)
        return ttnn.linear(h, w, memory_config=mc, activation="gelu" if case == "activation_gelu" else None)

    _, names, refused = fused_names(model, [x, g, w])
    assert "rmsnorm_matmul" not in names
    if case in ("weights_in_dram", "gamma_tile", "eps_too_big", "activation_gelu", "conversions_cost_more"):
        assert any(f for f in refused), "a structural match that breaks a rule is reported"
    if case == "conversions_cost_more":
        assert any("not profitable" in r for r in refused)


# --- residual add -> norm, keeping the sum ------------------------------------------------------

RSPECS, _ = RR._example_keep(random.Random(0))
RX, RG = RSPECS["x"], RSPECS["gamma"]


def decoder_tail(x, residual, gamma):
    s = ttnn.add(x, residual)
    y = ttnn.rms_norm(s, weight=gamma, epsilon=1e-6)
    return ttnn.silu(y), s  # s is the next residual


def test_residual_norm_keeping_the_sum_fuses_into_the_two_output_micro_op():
    f, names, _ = fused_names(decoder_tail, [RX, RX, RG])
    assert names == ["residual_rmsnorm"] and f.report.rewrites[0].spelling == "add_norm_keep"
    assert agrees(decoder_tail, f, [RX, RX, RG])


@pytest.mark.parametrize("case", ["interleaved", "broadcast_residual", "subtract", "eps_out_of_range", "gamma_tile"])
def test_residual_keep_near_misses(case):
    x = TensorSpec(RX.shape) if case == "interleaved" else RX
    r = TensorSpec((1, 1, 1, RX.shape[-1]), memory_config=RX.memory_config) if case == "broadcast_residual" else x
    g = TensorSpec(RG.shape) if case == "gamma_tile" else RG

    def model(x, residual, gamma):
        s = ttnn.subtract(x, residual) if case == "subtract" else ttnn.add(x, residual)
        return ttnn.rms_norm(s, weight=gamma, epsilon=0.5 if case == "eps_out_of_range" else 1e-6), s

    _, names, refused = fused_names(model, [x, r, g])
    assert names == []
    if case != "subtract":
        assert refused
