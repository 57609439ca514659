"""Residual add feeding RMSNorm -> RMSNorm with its residual input (the sum is not kept).

When the sum is also used elsewhere (the next residual), the intermediate escapes and this
rewrite is refused; the ResidualRMSNorm micro-op, which writes both, covers that case.
"""
import ttnn

from fusion import FloatIn, Pattern, TensorSpec


def add_norm(x, residual, gamma, eps):
    return ttnn.rms_norm(ttnn.add(x, residual), weight=gamma, epsilon=eps)


def add_norm_commuted(x, residual, gamma, eps):
    return ttnn.rms_norm(ttnn.add(residual, x), weight=gamma, epsilon=eps)


def fused(x, residual, gamma, eps):
    return ttnn.rms_norm(x, residual_input_tensor=residual, weight=gamma, epsilon=eps)


def _check(m):
    if m.x.shape != m.residual.shape:
        return f"residual shape {list(m.residual.shape)} differs from {list(m.x.shape)}: rms_norm's residual input does not broadcast"
    if m.x.dtype != m.residual.dtype:
        return "x and residual differ in dtype"
    return None


def _example(rng):
    shape = (1, 1, rng.choice([32, 64]), rng.choice([32, 64, 128]))
    return ({"x": TensorSpec(shape), "residual": TensorSpec(shape), "gamma": TensorSpec((1, 1, 1, shape[-1]))},
            {"eps": rng.choice([1e-5, 1e-6])})


PATTERNS = [
    Pattern("residual_rmsnorm", [add_norm, add_norm_commuted], fused, captures={"eps": FloatIn(0.0, 1e-2)},
            check=_check, example=_example, becomes="ttnn.rms_norm(x, residual_input_tensor=residual)"),
]
