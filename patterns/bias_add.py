"""A linear's bias added by a separate op -> ttnn.linear(bias=).

    y = ttnn.linear(x, w, ...)                 ->   y = ttnn.linear(x, w, ..., bias=b)
    y = ttnn.add(y, b)   # or in place: ttnn.add(y, b, output_tensor=y), as gpt-oss writes it

The linear keeps every keyword it was given (carry=True); the add's placement (memory_config,
dtype) goes to the fused linear, whose result is the add's. The bias must be one row broadcast
over the rows ([1, N] or [..., 1, N]); a linear with a fused activation is refused (the
activation would then apply after the bias).
"""
import ttnn

from fusion import Pattern, TensorSpec


def linear_then_bias(x, w, b):
    return ttnn.add(ttnn.linear(x, w), b)


def linear_then_bias_in_place(x, w, b):
    y = ttnn.linear(x, w)
    return ttnn.add(y, b, output_tensor=y)


def fused(x, w, b):
    return ttnn.linear(x, w, bias=b)


def _check(m):
    if m.placement.get(("ttnn.linear", "activation")) is not None:
        return "the linear applies an activation: with the bias fused it would act on the biased value instead"
    if m.placement.get(("ttnn.linear", "transpose_b")) or m.placement.get(("ttnn.linear", "transpose_a")):
        return "a transposed operand: ttnn.linear's bias follows the untransposed output columns only"
    n = m.output.shape[-1]
    b = m.b.shape
    if b[-1] != n or any(d != 1 for d in b[:-1]):
        return f"bias {list(b)} is not one row of width {n} (the linear's bias broadcasts one row)"
    if m.b.layout != ttnn.TILE_LAYOUT:
        return "the bias must be TILE layout"
    return None


def _example(rng):
    m, k, n = rng.choice([32, 64]), rng.choice([64, 128]), rng.choice([64, 128])
    return {"x": TensorSpec((1, 1, m, k)), "w": TensorSpec((k, n)), "b": TensorSpec((1, n))}, {}


PATTERNS = [
    Pattern("bias_add", [linear_then_bias, linear_then_bias_in_place], fused, check=_check, example=_example,
            carry=True, becomes="ttnn.linear(x, w, bias=b)"),
]
