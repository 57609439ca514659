"""ttfuse: a trace-time fusion pass for TT-NN model code.

    import fusion
    fused = fusion.fuse(model, example_inputs)
    fused(*inputs); fused.report; fused.graph_module
    fusion.run_reference(model_or_fused, *torch_inputs)
"""
from ._version_check import check_ttnn as _check_ttnn

_check_ttnn()

from .api import FusedModel, default_patterns, fuse, fuse_traced  # noqa: E402
from .errors import FusionError, InputError, PatternError, TraceError, VerificationError  # noqa: E402
from .fused_ops import declare as declare_fused_op, fused_op  # noqa: E402
from .numerics import Tolerance  # noqa: E402
from .pattern import AnyValue, Constraint, FloatIn, IntIn, MatchView, OneOf, Pattern, Predicate  # noqa: E402
from .host_values import UnknownValue, capture_host_values, forget_host_values, remember as remember_host_value  # noqa: E402
from .reference import run_reference  # noqa: E402
from .report import FusionReport, Refusal, Rewrite  # noqa: E402
from .specs import TensorSpec, UnknownSpec  # noqa: E402
from .trace import trace  # noqa: E402

__all__ = [
    "fuse", "fuse_traced", "FusedModel", "default_patterns", "run_reference", "trace",
    "TensorSpec", "UnknownSpec", "Pattern", "MatchView", "Constraint", "IntIn", "FloatIn", "OneOf", "AnyValue",
    "Predicate", "fused_op", "declare_fused_op", "FusionReport", "Rewrite", "Refusal", "Tolerance",
    "FusionError", "TraceError", "InputError", "PatternError", "VerificationError",
    "capture_host_values", "forget_host_values", "remember_host_value", "UnknownValue",
]
