"""Trace-time fusing: `fuse(model)` without example inputs fuses on first call, once per
distinct input-spec signature (decode and prefill shapes of one model give two graphs)."""
from __future__ import annotations

import inspect
from typing import Any

from .errors import InputError
from .specs import spec_from_value
from .trace import model_callable


def _fast_key(args: tuple):
    """A per-call key that is cheap to build; None when an argument has no cheap form."""
    import ttnn

    key = []
    for v in args:
        if isinstance(v, ttnn.Tensor):
            storage = v.storage_type()
            mc = v.memory_config() if storage == ttnn.StorageType.DEVICE else None
            key.append((tuple(v.shape), v.dtype, v.layout, storage, mc))
        elif v is None or isinstance(v, (int, float, str, bool)):
            key.append((type(v), v))
        else:
            return None
    return tuple(key)


class LazyFused:
    def __init__(self, model, *, patterns=None, pcc=0.9999, strict=False, verifier=None):
        self._model = model
        self._options = dict(patterns=patterns, pcc=pcc, strict=strict, verifier=verifier)
        fn, self._name = model_callable(model)
        self._signature = inspect.signature(fn)
        self.fused: dict = {}  # signature key -> FusedModel
        self._fast: dict = {}  # cheap per-call key -> FusedModel

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
            # hot path: positional call, cheap key (no signature binding, no TensorSpec)
            key = _fast_key(args)
            fused = self._fast.get(key) if key is not None else None
            if fused is None:
                fused = self.for_inputs(*args)
                if key is not None:
                    self._fast[key] = fused
            return fused(*args)
        return self.for_inputs(*args, **kwargs)(*args, **kwargs)

    @property
    def reports(self) -> list:
        return [f.report for f in self.fused.values()]

    def __repr__(self) -> str:
        return f"LazyFused({self._name}, {len(self.fused)} traced signatures)"
