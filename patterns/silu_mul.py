"""SiLU(a) * b -> one multiply with SiLU fused on its first input (the MLP gate, seed 004).

TT-NN's binary ops apply unary activations to an input inside the same program
(`input_tensor_a_activations`), so no new kernel is needed.
"""
import ttnn

from fusion import Pattern, TensorSpec
from fusion.specs import same_memory_config

SILU = ttnn.UnaryOpType.SILU


def silu_mul(a, b, mc):
    return ttnn.multiply(ttnn.silu(a), b, memory_config=mc)


def fused(a, b, mc):
    return ttnn.multiply(a, b, input_tensor_a_activations=[ttnn.UnaryWithParam(SILU)], memory_config=mc)


def _check(m):
    if m.a.shape != m.b.shape:
        return f"operands differ in shape ({list(m.a.shape)} vs {list(m.b.shape)}): fused input activations need equal shapes"
    if m.a.dtype != m.b.dtype or m.a.layout != ttnn.TILE_LAYOUT or m.b.layout != ttnn.TILE_LAYOUT:
        return "operands must share dtype and be TILE layout"
    if (m.a.memory_config is None or m.b.memory_config is None) or not same_memory_config(m.a.memory_config, m.b.memory_config):
        return "operands must share a memory config (the fused op's output follows its first input)"
    return None


def _example(rng):
    shape = (1, 1, rng.choice([32, 64]), rng.choice([32, 64, 128]))
    return {"a": TensorSpec(shape), "b": TensorSpec(shape)}, {"mc": None}


PATTERNS = [
    Pattern("silu_mul", silu_mul, fused, example=_example,
            captures={"mc": lambda v: v is None or isinstance(v, ttnn.MemoryConfig)}, check=_check,
            becomes="ttnn.multiply(a, b, input_tensor_a_activations=[SILU])"),
]
