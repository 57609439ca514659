"""RMSNorm spelled out with elementwise ops -> ttnn.rms_norm.

    x * rsqrt(mean(x^2, dim=-1, keepdim=True) + eps) * gamma

in its common orderings: x^2 as pow(x, 2), x * x or square(x); x * r or r * x; gamma first
or last. eps must be a constant in (0, 1e-2]; the reduction must be over the last dim.
"""
import itertools

import ttnn

from fusion import FloatIn, OneOf, Pattern, TensorSpec

_SQUARES = {
    "pow": lambda x: ttnn.pow(x, 2),
    "mul": lambda x: ttnn.multiply(x, x),
    "square": lambda x: ttnn.square(x),
}


def _spelling(square_name, x_first, gamma_last):
    sq = _SQUARES[square_name]

    def unfused(x, gamma, eps, dim):
        ms = ttnn.mean(sq(x), dim=dim, keepdim=True)
        r = ttnn.rsqrt(ttnn.add(ms, eps))
        y = ttnn.multiply(x, r) if x_first else ttnn.multiply(r, x)
        return ttnn.multiply(y, gamma) if gamma_last else ttnn.multiply(gamma, y)

    unfused.__name__ = f"rms_{square_name}_{'xr' if x_first else 'rx'}_{'yg' if gamma_last else 'gy'}"
    return unfused


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
    Pattern("rmsnorm_decomposed",
            [_spelling(s, xf, gl) for s, xf, gl in itertools.product(_SQUARES, (True, False), (True, False))],
            fused, captures={"eps": FloatIn(1e-12, 1e-2), "dim": OneOf((-1, 1, 2, 3))}, check=_check, example=_example,
            becomes="ttnn.rms_norm(x, weight=gamma, epsilon=eps)"),
]
