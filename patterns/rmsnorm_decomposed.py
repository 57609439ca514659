"""RMSNorm spelled out with elementwise ops -> ttnn.rms_norm.

    x * rsqrt(mean(x^2, dim=-1, keepdim=True) + eps) * gamma

Written once; the matcher also finds every equivalent spelling (fusion/normalize.py): x^2 as
square(x), pow(x, 2) or x * x; the mean as sum * (1/N) or sum / N; rsqrt as reciprocal(sqrt);
either operand order of each multiply. eps must be a constant in [1e-12, 1e-2]; the reduction
must be over the last dim.
"""
import ttnn

from fusion import FloatIn, OneOf, Pattern, TensorSpec


def rms(x, gamma, eps, dim):
    ms = ttnn.mean(ttnn.square(x), dim=dim, keepdim=True)
    return ttnn.multiply(ttnn.multiply(x, ttnn.rsqrt(ttnn.add(ms, eps))), gamma)


def fused(x, gamma, eps, dim):
    return ttnn.rms_norm(x, weight=gamma, epsilon=eps)


def _check(m):
    if m.dim not in (-1, m.x.rank - 1):
        return f"reduction over dim {m.dim}, not the last: that is not RMSNorm"
    w = m.x.shape[-1]
    if m.gamma.shape[-1] != w or any(d != 1 for d in m.gamma.shape[:-1]):
        return f"gamma {list(m.gamma.shape)} is not a per-channel weight of width {w}"
    if m.x.layout != ttnn.TILE_LAYOUT:
        return "ttnn.rms_norm needs TILE input"
    return None


def _example(rng):
    w = rng.choice([32, 64, 128])
    return ({"x": TensorSpec((1, 1, rng.choice([32, 64]), w)), "gamma": TensorSpec((1, 1, 1, w))},
            {"eps": rng.choice([1e-5, 1e-6]), "dim": -1})


PATTERNS = [
    Pattern("rmsnorm_decomposed", rms, fused, captures={"eps": FloatIn(1e-12, 1e-2), "dim": OneOf((-1, 1, 2, 3))},
            check=_check, example=_example, becomes="ttnn.rms_norm(x, weight=gamma, epsilon=eps)"),
]
