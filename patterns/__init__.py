"""The built-in catalog. Each module holds the unfused code it matches and its replacement."""
from . import prepare_expert_weights

# priority order: on equal size and position, earlier wins
CATALOG = [
    *prepare_expert_weights.PATTERNS,
]
