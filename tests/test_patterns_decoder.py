"""silu_mul, matmul_activation, residual_rmsnorm, rmsnorm_decomposed: what fuses, what must not."""
import pytest
import torch
import ttnn

import fusion
from fusion import TensorSpec
from fusion.verify import pcc

S = TensorSpec((1, 1, 32, 256))
W = TensorSpec((256, 512))
G = TensorSpec((1, 1, 1, 256))


def fused_patterns(model, inputs, names=None):
    f = fusion.fuse(model, inputs, patterns=names)
    return f, [r.pattern for r in f.report.rewrites], [r.reason for r in f.report.refusals]


def agrees(model, fused, inputs, threshold=0.999):
    g = torch.Generator().manual_seed(3)
    xs = [torch.randn(s.shape, generator=g) for s in inputs]
    return pcc(fusion.run_reference(model, *xs), fusion.run_reference(fused, *xs)) >= threshold


# --- silu_mul ----------------------------------------------------------------------------


@pytest.mark.parametrize("spell", ["mul", "commuted", "operator"])
def test_silu_mul_fuses(spell):
    def model(a, b):
        s = ttnn.silu(a)
        return {"mul": lambda: ttnn.multiply(s, b), "commuted": lambda: ttnn.mul(b, s), "operator": lambda: s * b}[spell]()

    f, fused, _ = fused_patterns(model, [S, S], ["silu_mul"])
    assert fused == ["silu_mul"] and agrees(model, f, [S, S])
    (node,) = [n for n in f.graph_module.graph.nodes if n.op == "call_function"]
    assert node.target is ttnn.multiply and node.kwargs["input_tensor_a_activations"]


def test_silu_mul_drops_the_placement_of_the_silu_it_no_longer_writes():
    # memory_config is a placement (fusion/keywords.py): the silu's result is never written
    def model(a, b):
        return ttnn.multiply(ttnn.silu(a, memory_config=ttnn.DRAM_MEMORY_CONFIG), b)

    f, fused, _ = fused_patterns(model, [S, S], ["silu_mul"])
    assert fused == ["silu_mul"] and agrees(model, f, [S, S])


def test_silu_mul_refuses_when_the_silu_placement_decided_the_output_placement():
    # the multiply's result follows its first input: in L1 here, in DRAM after the fusion
    def model(a, b):
        return ttnn.multiply(ttnn.silu(a, memory_config=ttnn.L1_MEMORY_CONFIG), b)

    _, fused, refused = fused_patterns(model, [S, S], ["silu_mul"])
    assert fused == [] and any("L1" in r and "differs" in r for r in refused)


@pytest.mark.parametrize("case", ["gelu", "escape", "broadcast", "add", "dtype"])
def test_silu_mul_near_misses(case):
    def model(a, b):
        s = ttnn.gelu(a) if case == "gelu" else ttnn.silu(a)
        out = ttnn.add(s, b) if case == "add" else ttnn.multiply(s, b)
        return (out, s) if case == "escape" else out

    b = {"broadcast": TensorSpec((1, 1, 1, 256)), "dtype": TensorSpec((1, 1, 32, 256), dtype=ttnn.float32)}.get(case, S)
    _, fused, refused = fused_patterns(model, [S, b], ["silu_mul"])
    assert fused == []
    if case in ("escape", "broadcast", "dtype"):
        assert refused, "a structural match with a broken rule is reported"


# --- matmul_activation ---------------------------------------------------------------------


@pytest.mark.parametrize("op,act,bias", [("linear", "silu", False), ("linear", "gelu", True), ("matmul", "relu", False)])
def test_matmul_activation_fuses(op, act, bias):
    def model(x, w, b):
        kw = {"bias": b} if bias else {}
        y = getattr(ttnn, op)(x, w, **kw)
        return getattr(ttnn, act)(y)

    ins = [S, W, TensorSpec((1, 512))]
    f, fused, _ = fused_patterns(model, ins, ["matmul_activation"])
    assert fused == ["matmul_activation"] and agrees(model, f, ins)
    (node,) = [n for n in f.graph_module.graph.nodes if n.op == "call_function"]
    assert node.kwargs["activation"] == act


def _cfg():
    return ttnn.MatmulMultiCoreReuseMultiCast1DProgramConfig(
        compute_with_storage_grid_size=(8, 1), in0_block_w=1, out_subblock_h=1, out_subblock_w=1,
        per_core_M=1, per_core_N=2, fuse_batch=True, fused_activation=None, mcast_in0=True)


@pytest.mark.parametrize("case", ["program_config", "escape", "already_activated", "sigmoid", "other_tensor"])
def test_matmul_activation_near_misses(case):
    def model(x, w):
        kw = {"program_config": _cfg()} if case == "program_config" else {}
        if case == "already_activated":
            kw["activation"] = "relu"
        y = ttnn.linear(x, w, **kw)
        if case == "sigmoid":
            return ttnn.sigmoid(y)
        if case == "other_tensor":
            return ttnn.add(y, ttnn.silu(x))
        a = ttnn.silu(y)
        return (a, y) if case == "escape" else a

    _, fused, refused = fused_patterns(model, [S, W], ["matmul_activation"])
    assert fused == []
    if case in ("program_config", "escape"):
        assert refused


# --- residual_rmsnorm -------------------------------------------------------------------


@pytest.mark.parametrize("commuted", [False, True])
def test_residual_rmsnorm_fuses_when_the_sum_is_not_kept(commuted):
    def model(x, r, g):
        s = ttnn.add(r, x) if commuted else ttnn.add(x, r)
        return ttnn.rms_norm(s, weight=g, epsilon=1e-5)

    f, fused, _ = fused_patterns(model, [S, S, G], ["residual_rmsnorm"])
    assert fused == ["residual_rmsnorm"] and agrees(model, f, [S, S, G], 0.9999)


@pytest.mark.parametrize("case", ["sum_kept", "eps_out_of_range", "subtract", "broadcast_residual", "already_residual"])
def test_residual_rmsnorm_near_misses(case):
    def model(x, r, g):
        s = ttnn.subtract(x, r) if case == "subtract" else ttnn.add(x, r)
        kw = {"residual_input_tensor": r} if case == "already_residual" else {}
        y = ttnn.rms_norm(s, weight=g, epsilon=0.5 if case == "eps_out_of_range" else 1e-5, **kw)
        return (y, s) if case == "sum_kept" else y

    r = TensorSpec((1, 1, 1, 256)) if case == "broadcast_residual" else S
    _, fused, refused = fused_patterns(model, [S, r, G], ["residual_rmsnorm"])
    assert fused == []
    if case in ("sum_kept", "eps_out_of_range", "broadcast_residual"):
        assert refused


# --- rmsnorm_decomposed --------------------------------------------------------------------


@pytest.mark.parametrize("square", ["pow", "mul", "square"])
@pytest.mark.parametrize("order", ["x_r_g", "r_x_g", "g_first"])
def test_rmsnorm_decomposed_fuses(square, order):
    def model(x, g):
        sq = {"pow": lambda: ttnn.pow(x, 2), "mul": lambda: ttnn.multiply(x, x), "square": lambda: ttnn.square(x)}[square]()
        r = ttnn.rsqrt(ttnn.add(ttnn.mean(sq, dim=-1, keepdim=True), 1e-6))
        y = ttnn.multiply(r, x) if order == "r_x_g" else ttnn.multiply(x, r)
        return ttnn.multiply(g, y) if order == "g_first" else ttnn.multiply(y, g)

    f, fused, _ = fused_patterns(model, [S, G], ["rmsnorm_decomposed"])
    assert fused == ["rmsnorm_decomposed"] and agrees(model, f, [S, G], 0.9999)
    (node,) = [n for n in f.graph_module.graph.nodes if n.op == "call_function"]
    assert node.target is ttnn.rms_norm and node.kwargs["epsilon"] == 1e-6


@pytest.mark.parametrize("mean", ["mean", "sum_times_inverse", "sum_over_n", "python_operators"])
@pytest.mark.parametrize("rsqrt", ["rsqrt", "reciprocal_sqrt"])
def test_rmsnorm_decomposed_matches_every_equivalent_spelling(mean, rsqrt):
    # one written spelling; the normaliser derives these (fusion/normalize.py)
    w = S.shape[-1]

    def model(x, g):
        if mean == "python_operators":  # as a PyTorch-first author writes it
            ms = ttnn.sum(x * x, dim=-1, keepdim=True) / w
            r = ttnn.rsqrt(ms + 1e-6) if rsqrt == "rsqrt" else ttnn.reciprocal(ttnn.sqrt(ms + 1e-6))
            return g * (x * r)
        sq = ttnn.square(x)
        ms = {"mean": lambda: ttnn.mean(sq, dim=-1, keepdim=True),
              "sum_times_inverse": lambda: ttnn.multiply(ttnn.sum(sq, dim=-1, keepdim=True), 1.0 / w),
              "sum_over_n": lambda: ttnn.divide(ttnn.sum(sq, dim=-1, keepdim=True), w)}[mean]()
        ms = ttnn.add(ms, 1e-6)
        r = ttnn.rsqrt(ms) if rsqrt == "rsqrt" else ttnn.reciprocal(ttnn.sqrt(ms))
        return ttnn.multiply(ttnn.multiply(x, r), g)

    f, fused, _ = fused_patterns(model, [S, G], ["rmsnorm_decomposed"])
    assert fused == ["rmsnorm_decomposed"] and agrees(model, f, [S, G], 0.9999)


def test_a_sum_scaled_by_another_count_is_not_a_mean():
    def model(x, g):
        ms = ttnn.divide(ttnn.sum(ttnn.square(x), dim=-1, keepdim=True), S.shape[-1] // 2)
        return ttnn.multiply(ttnn.multiply(x, ttnn.rsqrt(ttnn.add(ms, 1e-6))), g)

    _, fused, refused = fused_patterns(model, [S, G], ["rmsnorm_decomposed"])
    assert fused == [] and any("not their mean" in r for r in refused)


@pytest.mark.parametrize("case", ["dim0", "big_eps", "no_keepdim", "gamma_shape", "r_escapes", "cube"])
def test_rmsnorm_decomposed_near_misses(case):
    def model(x, g):
        sq = ttnn.pow(x, 3 if case == "cube" else 2)
        ms = ttnn.mean(sq, dim=2 if case == "dim0" else -1, keepdim=case != "no_keepdim")
        ms = ttnn.add(ms, 0.5 if case == "big_eps" else 1e-6)
        r = ttnn.reciprocal(ttnn.sqrt(ms)) if case == "sqrt_div" else ttnn.rsqrt(ms)
        y = ttnn.multiply(ttnn.multiply(x, r), g)
        return (y, r) if case == "r_escapes" else y

    g = TensorSpec((1, 1, 32, 256)) if case == "gamma_shape" else G
    _, fused, refused = fused_patterns(model, [S, g], ["rmsnorm_decomposed"])
    assert fused == []
    if case in ("dim0", "big_eps", "gamma_shape", "r_escapes"):
        assert refused


def test_decomposed_norm_then_residual_norm_fuse_in_later_rounds():
    # round 1 turns the spelled-out norm into rms_norm; round 2 then folds the residual add in
    def model(x, r, g):
        s = ttnn.add(x, r)
        ms = ttnn.mean(ttnn.multiply(s, s), dim=-1, keepdim=True)
        return ttnn.multiply(ttnn.multiply(s, ttnn.rsqrt(ttnn.add(ms, 1e-5))), g)

    f, fused, _ = fused_patterns(model, [S, S, G])
    assert fused == ["rmsnorm_decomposed", "residual_rmsnorm"]
    assert [n.target for n in f.graph_module.graph.nodes if n.op == "call_function"] == [ttnn.rms_norm]
    assert agrees(model, f, [S, S, G], 0.9999)
