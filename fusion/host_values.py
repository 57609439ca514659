"""Host values of device tensors, for reference semantics on a device whose memory cannot be read.

`run_reference` reads a model's weights back from the device. A mock device holds no data (it
reads back zeros), so there a weight's value must come from the host: the torch tensor it was
made from, converted exactly as `ttnn.from_torch` / `ttnn.as_tensor` converted it (dtype, layout,
tile, and for a mesh tensor the first device's shard of its mesh mapper). Inside
`capture_host_values()` every tensor those two functions place on a device is remembered; a
user may also `remember` one. A device tensor whose value is neither readable nor remembered is
an `UnknownValue` error naming it: never zeros standing in for a weight.

Remembering keeps the tensor and its source alive (ttnn tensors take neither weak references
nor attributes); `forget_host_values()` releases them. A captured value is the value at capture:
a tensor the model later writes eagerly (`copy_host_to_device_tensor`, an eager KV-cache update)
still reads as captured on the mock device; a real device is always read back.
"""
from __future__ import annotations

import contextlib
import functools
import os
import threading
from typing import Any, Iterator

import ttnn

from .errors import FusionError


class UnknownValue(FusionError):
    """A device tensor's values are needed but cannot be read (mock device) and were not captured."""


_LOCK = threading.Lock()
_VALUES: dict[int, tuple[Any, Any, dict]] = {}  # id(device tensor) -> (tensor, torch source, conversion kwargs)
_CONVERSION_KEYS = ("dtype", "layout", "tile", "mesh_mapper")


def remember(tensor: Any, value: Any, **conversion: Any) -> None:
    """`tensor` (on a device) holds `value` (a torch tensor), converted with `conversion`
    (from_torch's dtype / layout / tile / mesh_mapper; by default the tensor's own dtype and
    layout)."""
    conversion.setdefault("dtype", tensor.dtype)
    conversion.setdefault("layout", tensor.layout)
    with _LOCK:
        _VALUES[id(tensor)] = (tensor, value, conversion)


def forget_host_values() -> None:
    with _LOCK:
        _VALUES.clear()
        _CONVERTED.clear()


def captured(tensor: Any) -> bool:
    entry = _VALUES.get(id(tensor))
    return entry is not None and entry[0] is tensor


def host_value(tensor: Any, shard: int = 0) -> Any:
    """The torch value of a remembered device tensor as the device holds it (rounded to its
    dtype; of a mesh tensor, device `shard`'s part by its mesh mapper), or None."""
    entry = _VALUES.get(id(tensor))
    if entry is None or entry[0] is not tensor:
        return None
    _tensor, source, conversion = entry
    shards = source if conversion.get("shards") else _converted(id(tensor), source, conversion)
    return shards[shard if len(shards) > 1 else 0]


_CONVERTED: dict = {}


def _converted(key: int, source, conversion) -> list:
    # one host conversion per tensor, all its shards at once (a mesh tensor is read per device)
    found = _CONVERTED.get(key)
    if found is not None and found[0] is source:
        return found[1]
    host = ttnn.from_torch(source, **{k: v for k, v in conversion.items() if v is not None})
    shards = ttnn.get_device_tensors(host) if conversion.get("mesh_mapper") is not None else [host]
    out = [ttnn.to_torch(s) for s in shards]
    _CONVERTED.clear()  # keep one: a weight's values are needed once per runner
    _CONVERTED[key] = (source, out)
    return out


def device_values_readable() -> bool:
    """False on the mock device (tt-metal's mock cluster: no memory behind the device)."""
    from .host import MOCK_ENV, has_tenstorrent_device

    return not (os.environ.get(MOCK_ENV) and not has_tenstorrent_device())


def _remembering_to_device(fn):
    @functools.wraps(fn)
    def call(*args, **kwargs):
        out = fn(*args, **kwargs)
        source = args[0] if args else kwargs.get("tensor")
        if isinstance(source, ttnn.Tensor) and isinstance(out, ttnn.Tensor) and not captured(out):
            remember_host_tensor(out, source)
        return out

    return call


def remember_host_tensor(tensor: Any, host: Any) -> None:
    """`tensor` (on a device) was made from the ttnn host tensor `host` (its shards, one per
    device, for a mesh tensor from `ttnn.from_host_shards`)."""
    try:
        shards = ttnn.get_device_tensors(host)
    except Exception:
        shards = [host]
    values = [ttnn.to_torch(s) for s in (shards or [host])]
    with _LOCK:
        _VALUES[id(tensor)] = (tensor, values, {"shards": True})


def _remembering(fn, source_arg: str):
    @functools.wraps(fn)
    def call(*args, **kwargs):
        out = fn(*args, **kwargs)
        if captured(out):  # as_tensor calls from_torch: the inner call saw the preprocessed source
            return out
        source = args[0] if args else kwargs.get(source_arg)
        try:
            on_device = isinstance(out, ttnn.Tensor) and out.storage_type() == ttnn.StorageType.DEVICE
        except Exception:
            on_device = False
        if on_device and source is not None and hasattr(source, "shape"):
            preprocess = kwargs.get("preprocess")
            if callable(preprocess):  # as_tensor converts preprocess(source), cached file or not
                source = preprocess(source)
            rest = dict(zip(("dtype",), args[1:2]))
            rest.update({k: kwargs[k] for k in _CONVERSION_KEYS if k in kwargs})
            remember(out, source, **rest)
        return out

    return call


@contextlib.contextmanager
def capture_host_values() -> Iterator[None]:
    """Remember the host value of every tensor `ttnn.from_torch` / `ttnn.as_tensor` /
    `ttnn.to_device` puts on a device in this block (build the model's weights inside it)."""
    saved = [(name, getattr(ttnn, name)) for name in ("from_torch", "as_tensor", "to_device") if hasattr(ttnn, name)]
    for name, fn in saved:
        setattr(ttnn, name, _remembering_to_device(fn) if name == "to_device" else _remembering(fn, "tensor"))
    try:
        yield
    finally:
        for name, fn in saved:
            setattr(ttnn, name, fn)
