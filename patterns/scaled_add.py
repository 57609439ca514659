"""A sum scaled by a constant, then added: `a + b / n` (or `a + b * s`) -> ttnn.addalpha(a, b, 1/n).

Real code averages a reduction across devices this way (`all_reduce -> div(num_devices) -> add`
into the residual). One op computes a + alpha * b. Folded only where it computes the same bits:
the scale a power of two, so that b / n and b * (1/n) are one exact value and the add rounds once
in both programs.
"""
import math

import ttnn

from fusion import Pattern, Predicate, TensorSpec

_NUMBER = Predicate(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v != 0 and math.isfinite(v),
                    "{name} a non-zero finite number")


def divided_then_added(a, b, n):
    return ttnn.add(a, ttnn.divide(b, n))


def scaled_then_added(a, b, n):
    return ttnn.add(a, ttnn.multiply(b, n))


def fused_divided(a, b, n):
    return ttnn.addalpha(a, b, 1.0 / n)


def fused_scaled(a, b, n):
    return ttnn.addalpha(a, b, float(n))


def _power_of_two(x: float) -> bool:
    m, _e = math.frexp(abs(x))
    return m == 0.5


def _check(m):
    if not _power_of_two(m.n):
        return f"the scale {m.n:g} is not a power of two: scaling inside the add would round differently"
    if m.a.shape != m.b.shape or m.a.dtype != m.b.dtype:
        return "the operands differ in shape or dtype (addalpha does not broadcast)"
    if m.a.dtype not in (ttnn.bfloat16, ttnn.float32):
        return f"{m.a.dtype}: exact scaling needs a float dtype without shared exponents"
    return None


def _example(rng):
    shape = (1, 1, rng.choice([32, 64]), rng.choice([32, 128]))
    return {"a": TensorSpec(shape), "b": TensorSpec(shape)}, {"n": rng.choice([2, 4, 8, 0.5])}


PATTERNS = [
    Pattern("scaled_add", divided_then_added, fused_divided, captures={"n": _NUMBER}, check=_check, example=_example,
            becomes="ttnn.addalpha(a, b, 1/n)"),
    Pattern("scaled_add", scaled_then_added, fused_scaled, captures={"n": _NUMBER}, check=_check, example=_example,
            becomes="ttnn.addalpha(a, b, s)"),
]
