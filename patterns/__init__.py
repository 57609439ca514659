"""The built-in catalog. Each module holds the unfused code it matches and its replacement."""
from . import (bias_add, matmul_activation, movement, prepare_expert_weights, reshard, residual_rmsnorm,
               rmsnorm_decomposed, rmsnorm_matmul, scaled_add, silu_mul)

# priority order: on equal size and position, earlier wins
CATALOG = [
    *prepare_expert_weights.PATTERNS,
    *rmsnorm_decomposed.PATTERNS,
    *rmsnorm_matmul.PATTERNS,
    *residual_rmsnorm.PATTERNS,
    *matmul_activation.PATTERNS,
    *silu_mul.PATTERNS,
    *bias_add.PATTERNS,
    *scaled_add.PATTERNS,
    *reshard.PATTERNS,
    *movement.PATTERNS,
]
