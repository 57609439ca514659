"""A result resharded right after it is computed -> computed where it is needed.

    y = ttnn.add(a, b, ...)                  ->   y = ttnn.add(a, b, ..., memory_config=mc)
    y = ttnn.to_memory_config(y, mc)

Real decode code writes this at most layer boundaries (tt_transformers' MLP output, attention
output, norm inputs). The producer keeps every keyword it was given (carry=True); only its output
placement changes. ttnn decides on the mock device whether the producer can write `mc` directly
(a sharded output needs a compatible program): where it cannot, the replacement's spec is
rejected and the rewrite is refused with ttnn's reason.
"""
import ttnn

from fusion import Pattern, TensorSpec

_MC = {"mc": lambda v: isinstance(v, ttnn.MemoryConfig)}


def _binary(op):
    def resharded(a, b, mc):
        return ttnn.to_memory_config(op(a, b), mc)

    def fused(a, b, mc):
        return op(a, b, memory_config=mc)

    return resharded, fused


def _unary(op):
    def resharded(x, mc):
        return ttnn.to_memory_config(op(x), mc)

    def fused(x, mc):
        return op(x, memory_config=mc)

    return resharded, fused


def _biased(op):
    def resharded(x, w, bias, mc):
        return ttnn.to_memory_config(op(x, w, bias=bias), mc)

    def fused(x, w, bias, mc):
        return op(x, w, bias=bias, memory_config=mc)

    return resharded, fused


def _normed(op):
    def resharded(x, gamma, mc):
        return ttnn.to_memory_config(op(x, weight=gamma), mc)

    def fused(x, gamma, mc):
        return op(x, weight=gamma, memory_config=mc)

    return resharded, fused


def _check(m):
    dtype = m.placement.get(("ttnn.to_memory_config", "dtype"))
    if dtype is not None:
        return (f"the reshard also converts to {dtype}: the producer would compute in {dtype} instead of converting "
                f"its rounded result")
    if m.mc.is_sharded() and m.output.layout != ttnn.TILE_LAYOUT:
        return "a sharded row-major result: ttnn's producers write sharded outputs in TILE layout only"
    return None


def _example_for(kind):
    def example(rng):
        shape = (1, 1, rng.choice([32, 64]), rng.choice([64, 128]))
        mc = rng.choice([ttnn.L1_MEMORY_CONFIG, ttnn.DRAM_MEMORY_CONFIG])
        x = TensorSpec(shape, memory_config=ttnn.DRAM_MEMORY_CONFIG if mc == ttnn.L1_MEMORY_CONFIG else ttnn.L1_MEMORY_CONFIG)
        if kind == "binary":
            return {"a": x, "b": x}, {"mc": mc}
        if kind == "matmul":
            return {"a": x, "b": TensorSpec((shape[-1], 64), memory_config=x.memory_config)}, {"mc": mc}
        if kind == "biased":
            return {"x": x, "w": TensorSpec((shape[-1], 64), memory_config=x.memory_config),
                    "bias": TensorSpec((1, 64), memory_config=x.memory_config)}, {"mc": mc}
        if kind == "norm":
            return {"x": x, "gamma": TensorSpec((1, 1, 1, shape[-1]), memory_config=x.memory_config)}, {"mc": mc}
        return {"x": x}, {"mc": mc}

    return example


def _pattern(op, kind):
    make = {"binary": _binary, "matmul": _binary, "biased": _biased, "unary": _unary, "norm": _normed}[kind]
    resharded, fused = make(op)
    name = op.python_fully_qualified_name
    resharded.__name__ = f"{name.split('.')[-1]}{'_bias' if kind == 'biased' else ''}_then_reshard"
    return Pattern("reshard_into_producer", resharded, fused, captures=dict(_MC), check=_check, carry=True,
                   example=_example_for(kind), becomes=f"{name}(..., memory_config=mc)")


PATTERNS = [
    *(_pattern(op, "binary") for op in (ttnn.add, ttnn.multiply, ttnn.subtract)),
    *(_pattern(op, "matmul") for op in (ttnn.linear, ttnn.matmul)),
    _pattern(ttnn.linear, "biased"),
    *(_pattern(op, "unary") for op in (ttnn.silu, ttnn.relu, ttnn.gelu, ttnn.sigmoid)),
    *(_pattern(op, "norm") for op in (ttnn.rms_norm, ttnn.layer_norm)),
]
