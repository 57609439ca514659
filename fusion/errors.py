"""Errors ttfuse raises at the user. Each message says where and what to do."""


class FusionError(Exception):
    """Base of every error ttfuse raises on purpose."""


class TraceError(FusionError):
    """The model cannot be traced into a static graph (tensor-dependent control flow, ...).

    `location` is "file:line" in the user's source.
    """

    def __init__(self, message: str, location: str | None = None):
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class InputError(FusionError, ValueError):
    """example_inputs (or call arguments) that do not fit the model."""


class PatternError(FusionError):
    """A malformed pattern, reported when the pattern is defined, not when a model is fused."""


class VerificationError(FusionError):
    """With fuse(..., strict=True): a rewrite failed verification."""
