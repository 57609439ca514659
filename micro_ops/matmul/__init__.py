"""Decode matmul micro-op (weight width-sharded in L1, act multicast). See op.py."""
from .op import (
    ACTIVATIONS,
    MatmulWidthSharded,
    McastPlan,
    a_memory_config,
    allocate_output,
    matmul,
    matmul_reference,
    out_memory_config,
    prepare_weight,
    weight_memory_config,
)

__all__ = [
    "ACTIVATIONS",
    "MatmulWidthSharded",
    "McastPlan",
    "a_memory_config",
    "allocate_output",
    "matmul",
    "matmul_reference",
    "out_memory_config",
    "prepare_weight",
    "weight_memory_config",
]
