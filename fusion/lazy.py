"""Trace-time fusing: `fuse(model)` without example inputs fuses on first call, once per
distinct input-spec signature (decode and prefill shapes of one model give two graphs)."""
from __future__ import annotations

import inspect

import ttnn

from .errors import InputError
from .specs import TensorSpec, spec_from_value
from .trace import TTProxy, model_callable


_PLAIN = (int, float, str, bool, type(None))
_TENSOR = ttnn.Tensor
_NO_ARG = object()  # no positional argument given


def _fast_key(args: tuple, tensor_type):
    """A per-call key that is cheap to build, or None when an argument has no cheap form.

    A ttnn tensor is keyed by its own `spec` (logical shape, dtype, page layout, memory config),
    which is at least as fine as the TensorSpec ttfuse traces with. Reading it is one nanobind
    call, where tuple(tensor.shape) is several. ttnn specs compare by value but hash by identity,
    so keys are compared, never hashed: a short list, one entry per signature."""
    key = []
    for v in args:
        t = type(v)
        if t is tensor_type:
            key.append(v.spec)
        elif t in _PLAIN:
            key.append((t, v))
        elif t is list or t is tuple:
            if not all(type(x) is tensor_type for x in v):
                return None
            key.append((t, tuple(x.spec for x in v)))
        else:
            return None
    return tuple(key)


def _as_example(v):
    """A value being traced (this model called inside an enclosing ttfuse trace) stands for its
    spec: the model is fused for that spec, and its graph, run on the traced values, records
    into the enclosing trace."""
    if isinstance(v, TTProxy):
        return v.spec if isinstance(v.spec, TensorSpec) else v
    if isinstance(v, (list, tuple)) and any(isinstance(x, TTProxy) for x in v):
        return type(v)(_as_example(x) for x in v)
    return v


class LazyFused:
    def __init__(self, model, *, patterns=None, tolerance=None, pcc=None, strict=False, verifier=None):
        self._model = model
        self._options = dict(patterns=patterns, tolerance=tolerance, pcc=pcc, strict=strict, verifier=verifier)
        fn, self._name = model_callable(model)
        self._signature = inspect.signature(fn)
        self.fused: dict = {}  # signature key -> FusedModel
        self._fast: list = []  # (cheap per-call key, what runs (see _runner)), one per signature
        self._fast1: list = []  # (spec, what runs) for the signatures of one tensor argument
        self._last = (None, None)  # the one of those run last

    def _key(self, values: list) -> tuple:
        key = []
        for v in values:
            spec = v if isinstance(v, TensorSpec) else spec_from_value(v)
            if spec is not None:
                key.append(("t", spec))
            elif isinstance(v, (list, tuple)):  # a list of tensors, *args
                key.append(("l", type(v), self._key(list(v))))
            elif isinstance(v, dict):  # **kwargs
                key.append(("d", tuple(v), self._key(list(v.values()))))
            else:
                try:
                    hash(v)
                    key.append(("c", type(v), v))
                except TypeError:
                    key.append(("c", type(v), repr(v)))
        return tuple(key)

    def _values(self, args, kwargs) -> list:
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as e:
            raise InputError(f"{self._name}: {e}") from None
        bound.apply_defaults()
        return bound.arguments

    def for_inputs(self, *args, **kwargs):
        """The FusedModel for these inputs' specs (traced and fused on first sight)."""
        from .api import fuse

        values = {k: _as_example(v) for k, v in self._values(args, kwargs).items()}
        key = self._key(list(values.values()))
        fused = self.fused.get(key)
        if fused is None:
            fused = fuse(self._model, values, **self._options)
            self.fused[key] = fused
        return fused

    def __call__(self, x=_NO_ARG, /, *args, **kwargs):
        # the hottest call, one activation: its spec against the last signature run, then the
        # others (measured: a positional-only `x` and the last-hit check beat `*args` and a loop
        # over the signatures by ~0.2 us per call)
        if type(x) is _TENSOR and not args and not kwargs:
            spec = x.spec
            last = self._last  # one (spec, runner) pair, read once: threads never mix two
            if spec == last[0]:
                return last[1](x)
            for last in self._fast1:
                if last[0] == spec:
                    self._last = last
                    return last[1](x)
        if x is not _NO_ARG:
            args = (x, *args)
        if not kwargs:
            # positional call: a cheap key, straight to the code that runs
            key = _fast_key(args, _TENSOR)
            if key is not None:
                for known, run in self._fast:
                    if known == key:
                        return run(*args)
            fused = self.for_inputs(*args)
            run = self._runner(fused)
            if key is not None:
                self._fast.append((key, run))
                if len(args) == 1 and type(args[0]) is _TENSOR:
                    self._last = (key[0], run)
                    self._fast1.append(self._last)
            return run(*args)
        return self.for_inputs(*args, **kwargs)(*args, **kwargs)

    def _runner(self, fused):
        """What a positional call with this signature runs: the graph's direct-call forward when
        the arguments are its inputs one for one, else the FusedModel. The traced graph runs
        whether or not anything was rewritten, so every signature behaves alike (see README,
        "Trace-time use")."""
        fast = fused._fast_positions
        if fast is not None and not fast[2] and fast[1] == list(range(fast[0])):
            return fused.direct_forward()
        return fused

    @property
    def reports(self) -> list:
        return [f.report for f in self.fused.values()]

    @property
    def report(self):
        """The report of the one traced signature (decode and prefill shapes give one each: see
        `reports`). Before the first call nothing is traced, so there is no report yet."""
        if not self.fused:
            raise AttributeError(f"{self._name} has not been called yet: a lazy fused model traces (and reports) "
                                 f"on its first call")
        if len(self.fused) > 1:
            raise AttributeError(f"{self._name} was traced for {len(self.fused)} input signatures: read `.reports` "
                                 f"(one report each, in the order they were first called)")
        return next(iter(self.fused.values())).report

    def __repr__(self) -> str:
        return f"LazyFused({self._name}, {len(self.fused)} traced signatures)"
