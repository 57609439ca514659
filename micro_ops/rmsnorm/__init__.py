"""RMSNorm micro-op (decode rows, single core). See op.py for placement and semantics."""
from ._util import InvalidInputError
from .op import (
    RMSNormSingleCore,
    gamma_memory_config,
    prepare_gamma,
    rms_norm,
    rms_norm_reference,
    x_memory_config,
)

__all__ = [
    "InvalidInputError",
    "RMSNormSingleCore",
    "gamma_memory_config",
    "prepare_gamma",
    "rms_norm",
    "rms_norm_reference",
    "x_memory_config",
]
