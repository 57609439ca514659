"""Specs from ttnn itself: run each op once on the device, on empty tensors of the input specs.

ttnn's device operations validate their arguments and compute their own output specs (shape,
dtype, layout, memory config, sharded outputs included). Asking them is the only way to know
every op's spec, and the only way to learn that ttnn rejects a call (a program config that does
not fit, a shard spec on missing cores) before the model runs. On the mock device nothing
executes; on a real device the op runs on freshly allocated tensors, never on the model's own
(a KV-cache update must not write the model's cache while tracing).

Calls are remembered by what decides their result (the op, the input specs, every other
argument): 61 layers of one decoder ask ttnn once per distinct call.
"""
from __future__ import annotations

import enum
import operator
import re
from dataclasses import dataclass
from typing import Any

import torch.fx
import ttnn

from . import ttnn_ops
from .specs import TensorSpec, UnknownSpec, spec_from_value


@dataclass(frozen=True)
class Rejected(UnknownSpec):
    """ttnn refused the call: running it on a device would fail the same way."""

    def reason(self) -> str:
        return f"ttnn rejects this {self.op} call: {self.why}"


# ops the engine leaves to the hand rules: they free, or leave the device
_NOT_ASKED = {ttnn.deallocate, getattr(ttnn, "to_torch", None), getattr(ttnn, "from_device", None),
              getattr(ttnn, "dump_tensor", None)}


class _NoKey(Exception):
    """An argument whose effect on the result cannot be keyed (an arbitrary object)."""


def literal_key(value: Any) -> Any:
    """A hashable stand-in for a non-tensor argument, equal for arguments ttnn treats alike.
    ttnn objects print their fields (memory configs, program configs); those that print only an
    address (compute-kernel configs) are keyed by their public attributes."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return (type(value).__name__, value)
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(literal_key(v) for v in value))
    if isinstance(value, (set, frozenset)):  # in a stable order: the key is also a file key
        return ("set", tuple(sorted((literal_key(v) for v in value), key=repr)))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((str(k), literal_key(v)) for k, v in value.items())))
    if isinstance(value, enum.Enum):
        return (type(value).__name__, value.name)
    if isinstance(value, type):
        return ("type", f"{value.__module__}.{value.__qualname__}")
    if callable(value):
        op = getattr(value, "python_fully_qualified_name", None)
        if op:
            return ("op", op)
        # a Python function prints its address, reused after it is collected: never a key
        raise _NoKey(type(value).__name__)
    if isinstance(value, ttnn.Tile):
        return ("Tile", tuple(value.tile_shape), bool(value.transpose_of_faces), bool(value.transpose_within_face))
    text = repr(value)
    if " object at 0x" not in text:
        return (type(value).__name__, text)
    fields = []
    for attr in dir(value):
        if attr.startswith("_"):
            continue
        try:
            v = getattr(value, attr)
        except Exception:  # a property that needs a device, ...
            continue
        if callable(v):
            continue
        fields.append((attr, literal_key(v)))
    if not fields:
        if (type(value).__module__ or "").startswith("ttnn"):
            # a ttnn handle without fields (a global semaphore, a sub-device id): which one it is
            # decides where the op synchronizes, never the shape of what it returns
            return (type(value).__name__, "handle")
        raise _NoKey(type(value).__name__)
    return (type(value).__name__, tuple(fields))


_FATAL = re.compile(r"TT_(?:FATAL|THROW)[^\n]*\n(?:info:\n)?([^\n]+)")


def _message(e: BaseException) -> str:
    text = str(e)
    m = _FATAL.search(text)
    line = m.group(1) if m else next((ln for ln in text.splitlines() if ln.strip()), type(e).__name__)
    return line.strip()[:300]


class DeviceSpecs:
    """Output specs of ttnn calls, computed by ttnn on `device` (a MeshDevice)."""

    def __init__(self, device: Any, store: "SpecStore | None" = None):
        self.device = device
        self._memo: dict = {}
        self.store = store
        from .host_values import device_values_readable

        self.mock = not device_values_readable()
        self.asked = 0  # calls ttnn ran (cache misses)
        self.answered = 0  # calls answered (hits included)

    def _touches_model_state(self, args, kwargs) -> bool:
        """On a real device, an op given the model's semaphores (async CCL ops) would move their
        state if run while tracing; the mock device has none to move."""
        if self.mock:
            return False
        stack = [*args, *kwargs.values()]
        while stack:
            v = stack.pop()
            if isinstance(v, (list, tuple)):
                stack.extend(v)
            elif "Semaphore" in type(v).__name__:
                return True
        return False

    def handles(self, target: Any) -> bool:
        # `tensor[..., :n]` too: ttnn slices (and places the result) itself
        return (ttnn_ops.is_ttnn_op(target) and target not in _NOT_ASKED) or target is operator.getitem

    def infer(self, target: Any, args: tuple, kwargs: dict, spec_of) -> Any:
        """The spec of target(*args, **kwargs) as ttnn computes it; UnknownSpec when an input is
        unknown or an argument cannot be reproduced; Rejected when ttnn refuses the call."""
        name = ttnn_ops.op_name(target)
        if target is operator.getitem and not isinstance(spec_of(args[0]), TensorSpec):
            return UnknownSpec(name, "not a tensor")  # an item of an op's outputs: the hand rule
        if self._touches_model_state(args, kwargs):
            return UnknownSpec(name, "not run while tracing on a device: it synchronizes through the model's semaphores")
        try:
            key = (target, self._key(args, spec_of), self._key(kwargs, spec_of))
        except _Unknown as e:
            return e.args[0]
        except _NoKey as e:
            return UnknownSpec(name, f"an argument ({e}) cannot be reproduced to ask ttnn")
        self.answered += 1
        found = self._memo.get(key)
        if found is not None:
            return found
        stored = self.store.get(name, key) if self.store is not None else None
        if stored is not None:
            self._memo[key] = stored
            return stored
        result = self._ask(target, name, args, kwargs, spec_of)
        if isinstance(result, UnknownSpec) and not isinstance(result, Rejected):
            return result  # not an answer: ask again next time (memory may be free then)
        self._memo[key] = result
        if self.store is not None:
            self.store.put(name, key, result)
        return result

    # -- keys ----------------------------------------------------------------------------------
    def _key(self, value: Any, spec_of) -> Any:
        if isinstance(value, torch.fx.Node):
            spec = spec_of(value)
            if isinstance(spec, UnknownSpec):
                raise _Unknown(_inherited(spec))
            if isinstance(spec, tuple) and any(isinstance(s, UnknownSpec) for s in spec):
                raise _Unknown(_inherited(next(s for s in spec if isinstance(s, UnknownSpec))))
            if value.meta.get("tile") is not None:
                # TensorSpec has no tile shape: an input in tiny tiles is not asked with 32x32 ones
                raise _Unknown(UnknownSpec("ttnn", f"an input in {value.meta['tile']} tiles (not modelled)"))
            if isinstance(spec, TensorSpec):
                return ("tensor", spec._key, _host(value))  # _key: every field, the memory config's full text
            if isinstance(spec, tuple) and all(isinstance(s, TensorSpec) for s in spec):
                return ("tensors", tuple(s._key for s in spec), _host(value))
            return literal_key(spec)
        if isinstance(value, (list, tuple)):
            return (type(value).__name__, tuple(self._key(v, spec_of) for v in value))
        if isinstance(value, dict):
            return ("dict", tuple(sorted((str(k), self._key(v, spec_of)) for k, v in value.items())))
        return literal_key(value)

    # -- asking ttnn ---------------------------------------------------------------------------
    def _ask(self, target, name, args, kwargs, spec_of) -> Any:
        from .trace import running_real_op  # the tracer records ttnn calls; this one must run

        held: list = []
        try:
            real_args = self._materialize(args, spec_of, held)
            real_kwargs = self._materialize(kwargs, spec_of, held)
        except _Unknown as e:
            return e.args[0]
        except Exception as e:  # an input spec ttnn cannot allocate (e.g. a shard that does not fit)
            return UnknownSpec(name, f"its input cannot be allocated: {_message(e)}")
        self.asked += 1
        try:
            with running_real_op():
                out = target(*real_args, **real_kwargs)
        except (RuntimeError, TypeError, ValueError) as e:
            text = str(e)
            if any(marker in text for marker in _NOT_A_VERDICT):
                return UnknownSpec(name, f"ttnn could not be asked: {_message(e)}")
            return Rejected(name, _message(e))
        try:
            return _spec_of_result(out, name)
        finally:
            del held, out

    def _materialize(self, value, spec_of, held):
        if isinstance(value, torch.fx.Node):
            spec = spec_of(value)
            if isinstance(spec, UnknownSpec):
                raise _Unknown(spec)
            if isinstance(spec, tuple) and all(isinstance(s, TensorSpec) for s in spec):
                # a multi-output op's result passed whole (concat(split(x))): a list of tensors
                tensors = [self._empty(s, _host(value)) for s in spec]
                held.extend(tensors)
                return tensors
            if not isinstance(spec, TensorSpec):
                return spec  # a literal
            tensor = self._empty(spec, _host(value))
            held.append(tensor)
            return tensor
        if isinstance(value, list):
            return [self._materialize(v, spec_of, held) for v in value]
        if isinstance(value, tuple):
            return tuple(self._materialize(v, spec_of, held) for v in value)
        if isinstance(value, dict):
            return {k: self._materialize(v, spec_of, held) for k, v in value.items()}
        return value

    def _empty(self, spec: TensorSpec, host: bool):
        if host:
            import torch

            from .reference import _TORCH_DTYPES

            data = torch.zeros(spec.shape, dtype=_TORCH_DTYPES.get(spec.dtype, torch.float32))
            return ttnn.from_torch(data, dtype=spec.dtype, layout=spec.layout)
        return ttnn.allocate_tensor_on_device(ttnn.Shape(spec.shape), spec.dtype, spec.layout, self.device,
                                              spec.memory_config)


class _Unknown(Exception):
    """An input's spec is unknown: args[0] is that UnknownSpec."""


def _inherited(spec: UnknownSpec) -> UnknownSpec:
    # a user of a rejected call is not itself rejected: its input is unknown
    if isinstance(spec, Rejected):
        return UnknownSpec(spec.op, f"its input is a call ttnn rejects ({spec.why})")
    return spec


# failures of the moment (the model's own tensors fill L1), or of how the engine called the op:
# never ttnn's verdict on the call, so neither remembered nor reported as a rejection
_NOT_A_VERDICT = ("Out of Memory", "Not enough space", "out of memory", "clash with", "incompatible function arguments",
                  "Statically allocated circular buffers")


def _host(node: torch.fx.Node) -> bool:
    return bool(node.meta.get("host"))


def _spec_of_result(out: Any, name: str) -> Any:
    if out is None:
        return None
    if isinstance(out, ttnn.Tensor):
        try:
            tile = tuple(out.tile.tile_shape) if out.layout == ttnn.TILE_LAYOUT else (32, 32)
        except Exception:
            tile = (32, 32)
        if tile != (32, 32):  # TensorSpec has no tile shape: say so rather than drop it
            return UnknownSpec(name, f"its output is in {tile} tiles (not modelled)")
        return spec_from_value(out)
    if isinstance(out, (list, tuple)):
        items = tuple(_spec_of_result(o, name) for o in out)
        return items
    return UnknownSpec(name, f"returns a {type(out).__name__}")


def find_device(values) -> Any:
    """The device of the first device tensor among `values` (nested in lists, tuples, dicts)."""
    stack = list(values)
    while stack:
        v = stack.pop(0)
        if isinstance(v, ttnn.Tensor):
            try:
                if v.storage_type() == ttnn.StorageType.DEVICE:
                    return v.device()
            except Exception:
                continue
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.values())
    return None


# --- answers kept across processes ------------------------------------------------------------
#
# ttnn's answer to a call depends on the call (op, input specs, arguments), the device (arch,
# worker grid, mesh) and ttnn itself; the store is keyed by all of them, so a cold process
# (whose first call of each op would JIT-build its kernels on the mock device) answers from
# disk what an earlier process asked. Rejections are kept too; unknowns are not.


def _spec_to_json(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, Rejected):
        return {"rejected": value.why, "op": value.op}
    if isinstance(value, TensorSpec):
        return {"shape": list(value.shape), "dtype": value.dtype.name, "layout": value.layout.name,
                "memory_config": value.memory_config.to_json() if value.memory_config is not None else None}
    if isinstance(value, tuple):
        return {"tuple": [_spec_to_json(v) for v in value]}
    raise TypeError(type(value).__name__)


def _spec_from_json(data: Any) -> Any:
    if data is None:
        return None
    if "rejected" in data:
        return Rejected(data["op"], data["rejected"])
    if "tuple" in data:
        return tuple(_spec_from_json(v) for v in data["tuple"])
    mc = data["memory_config"]
    return TensorSpec(tuple(data["shape"]), getattr(ttnn.DataType, data["dtype"]), getattr(ttnn.Layout, data["layout"]),
                      ttnn.MemoryConfig.from_json(mc) if mc is not None else None)


def device_key(device: Any) -> str:
    """What of a device decides specs: architecture, worker grid, mesh shape."""
    grid = device.compute_with_storage_grid_size()
    arch = device.arch() if hasattr(device, "arch") else "?"
    try:
        mesh = tuple(device.shape)
    except Exception:
        mesh = (device.get_num_devices(),)
    try:
        fabric = str(ttnn.get_fabric_config())
    except Exception:
        fabric = "?"
    return f"{arch}|{grid.x}x{grid.y}|{mesh}|{fabric}"


class SpecStore:
    """ttnn's answers on disk, one JSON file per (ttnn build, device kind)."""

    def __init__(self, path: str):
        self.path = path
        self._data: dict | None = None
        self._new: dict = {}

    @classmethod
    def for_device(cls, device: Any) -> "SpecStore | None":
        import hashlib
        import os

        folder = os.environ.get("TTFUSE_SPEC_CACHE")
        if folder == "off":
            return None
        if not folder:
            from .host import cache_dir

            folder = cache_dir()
        lib = ttnn._ttnn.__file__
        st = os.stat(lib)
        build = f"{lib}|{st.st_size}|{int(st.st_mtime)}"
        tag = hashlib.sha1(f"{build}|{device_key(device)}".encode()).hexdigest()[:16]
        return cls(os.path.join(folder, f"ttnn-specs-{tag}.json"))

    def _load(self) -> dict:
        if self._data is None:
            import json

            try:
                with open(self.path) as f:
                    self._data = json.load(f)
            except (OSError, ValueError):
                self._data = {}
        return self._data

    @staticmethod
    def _text(name: str, key: Any) -> str:
        # the op by name: its object prints an address that differs per process
        return repr((name, key[1:]))

    def get(self, name: str, key: Any) -> Any:
        data = self._load().get(self._text(name, key))
        if data is None:
            return None
        try:
            return _spec_from_json(data)
        except Exception:  # written by another ttnn, or damaged: ask again
            return None

    def put(self, name: str, key: Any, value: Any) -> None:
        try:
            self._new[self._text(name, key)] = _spec_to_json(value)
        except (TypeError, AttributeError):
            pass

    def flush(self) -> None:
        """Merge this process's new answers into the file (under a lock: processes share it)."""
        if not self._new:
            return
        import fcntl
        import json
        import os

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(self.path + ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._data = None
            data = self._load()
            data.update(self._new)
            tmp = f"{self.path}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                json.dump(data, f)
            os.replace(tmp, self.path)
        self._new = {}


__all__ = ["DeviceSpecs", "Rejected", "SpecStore", "find_device", "literal_key"]
