"""Trace-time fusing: `fuse(model)` without example inputs fuses on first call, once per
distinct input-spec signature (decode and prefill shapes of one model give two graphs)."""
from __future__ import annotations

import inspect
from typing import Any

from .errors import InputError
from .specs import spec_from_value
from .trace import model_callable


_PLAIN = (int, float, str, bool, type(None))


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


class LazyFused:
    def __init__(self, model, *, patterns=None, pcc=0.9999, strict=False, verifier=None):
        self._model = model
        self._options = dict(patterns=patterns, pcc=pcc, strict=strict, verifier=verifier)
        import ttnn

        fn, self._name = model_callable(model)
        self._fn = fn
        self._signature = inspect.signature(fn)
        self._tensor_type = ttnn.Tensor
        self.fused: dict = {}  # signature key -> FusedModel
        self._fast: list = []  # (cheap per-call key, what runs (see _runner)), one per signature

    def _key(self, values: list) -> tuple:
        key = []
        for v in values:
            spec = spec_from_value(v)
            if spec is not None:
                key.append(("t", spec))
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
        return list(bound.arguments.values())

    def for_inputs(self, *args, **kwargs):
        """The FusedModel for these inputs' specs (traced and fused on first sight)."""
        from .api import fuse

        values = self._values(args, kwargs)
        key = self._key(values)
        fused = self.fused.get(key)
        if fused is None:
            fused = fuse(self._model, values, **self._options)
            self.fused[key] = fused
        return fused

    def __call__(self, *args, **kwargs):
        if not kwargs:
            # hot path: positional call, cheap key, straight to the code that runs
            if len(args) == 1 and type(args[0]) is self._tensor_type:  # one activation: the common call
                key = (args[0].spec,)
            else:
                key = _fast_key(args, self._tensor_type)
            if key is not None:
                for known, run in self._fast:
                    if known == key:
                        return run(*args)
            fused = self.for_inputs(*args)
            run = self._runner(fused)
            if key is not None:
                self._fast.append((key, run))
            return run(*args)
        return self.for_inputs(*args, **kwargs)(*args, **kwargs)

    def _runner(self, fused):
        """What a positional call with this signature runs: the model itself when nothing was
        rewritten (the graph would compute exactly what it does), the graph's forward when the
        arguments are its inputs one for one, else the FusedModel."""
        if not fused.report.rewrites:
            return self._fn
        fast = fused._fast_positions
        if fast is not None and not fast[2] and fast[1] == list(range(fast[0])):
            gm = fused.graph_module

            def run(*args):
                # looked up per call: the generated forward once compiled, and the current one if
                # the graph module is edited and recompiled later
                return gm.forward(*args)

            return run
        return fused

    @property
    def reports(self) -> list:
        return [f.report for f in self.fused.values()]

    def __repr__(self) -> str:
        return f"LazyFused({self._name}, {len(self.fused)} traced signatures)"
