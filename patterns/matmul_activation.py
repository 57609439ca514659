"""linear/matmul followed by silu, gelu or relu -> the matmul's own fused activation."""
import ttnn

from fusion import Pattern, TensorSpec

_ANY = lambda v: True  # noqa: E731 - passes through unchanged to the fused call
_CAPS = {"ta": lambda v: isinstance(v, bool), "tb": lambda v: isinstance(v, bool), "mc": _ANY, "dtype": _ANY,
         "ckc": _ANY, "pc": lambda v: v is None}


def _make(op, act, act_name, with_bias):
    # one spelling per (op, bias): the pattern is the plain user code with every config captured
    if with_bias:
        def unfused(x, w, bias, ta, tb, mc, dtype, ckc, pc):
            y = op(x, w, bias=bias, transpose_a=ta, transpose_b=tb, memory_config=mc, dtype=dtype,
                   compute_kernel_config=ckc, program_config=pc)
            return act(y)

        def fused(x, w, bias, ta, tb, mc, dtype, ckc, pc):
            return op(x, w, bias=bias, transpose_a=ta, transpose_b=tb, memory_config=mc, dtype=dtype,
                      compute_kernel_config=ckc, program_config=pc, activation=act_name)
    else:
        def unfused(x, w, ta, tb, mc, dtype, ckc, pc):
            y = op(x, w, transpose_a=ta, transpose_b=tb, memory_config=mc, dtype=dtype,
                   compute_kernel_config=ckc, program_config=pc)
            return act(y)

        def fused(x, w, ta, tb, mc, dtype, ckc, pc):
            return op(x, w, transpose_a=ta, transpose_b=tb, memory_config=mc, dtype=dtype,
                      compute_kernel_config=ckc, program_config=pc, activation=act_name)

    unfused.__name__ = f"{op.python_fully_qualified_name.split('.')[-1]}{'_bias' if with_bias else ''}_{act_name}"
    def example(rng):
        m, k, n = rng.choice([32, 64]), rng.choice([32, 64, 128]), rng.choice([32, 64])
        specs = {"x": TensorSpec((1, 1, m, k)), "w": TensorSpec((k, n))}
        if with_bias:
            specs["bias"] = TensorSpec((1, n))
        return specs, {"ta": False, "tb": False, "mc": None, "dtype": None, "ckc": None, "pc": None}

    return Pattern("matmul_activation", unfused, fused, captures=dict(_CAPS), check=_check, example=example,
                   becomes=f"{op.python_fully_qualified_name}(..., activation='{act_name}')")


def _check(m):
    # the explicit-program_config case needs fused_activation set inside the config; captured
    # `pc` must be None (constraint) so only auto-configured matmuls get here
    if m.output.layout != ttnn.TILE_LAYOUT:
        return "matmul output must be TILE"
    return None


PATTERNS = [
    _make(op, act, name, bias)
    for op, has_bias in ((ttnn.linear, (True, False)), (ttnn.matmul, (False,)))
    for bias in has_bias
    for act, name in ((ttnn.silu, "silu"), (ttnn.gelu, "gelu"), (ttnn.relu, "relu"))
]
