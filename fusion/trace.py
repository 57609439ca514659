"""Trace ttnn model code into a torch.fx graph.

Every `ttnn.*` op called on a traced tensor becomes a `call_function` node whose target is the
real ttnn op. Non-tensor ttnn values (Shape, MemoryConfig, program configs, ...) and constant
tensors (weights) are kept exactly, as `get_attr` constants of the GraphModule. Specs are
computed as nodes are created, so `x.shape` is a concrete `ttnn.Shape` during tracing and
Python control flow on shapes and other non-tensor values just runs. Branching on a tensor's
value cannot be traced and raises `TraceError` at the user's line.
"""
from __future__ import annotations

import builtins
import copy
import functools
import inspect
import operator
import os
import sys
import threading
import types
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.fx
from torch.fx._lazy_graph_module import _LazyGraphModule
from torch.fx.proxy import Proxy, Scope, TracerBase

import ttnn

from . import effects
from . import specs as specs_mod
from . import ttnn_ops
from . import ttnn_specs
from .errors import InputError, TraceError
from .specs import TensorSpec, UnknownSpec

_OWN_DIRS = tuple(
    os.path.dirname(os.path.abspath(m.__file__)) + os.sep
    for m in (sys.modules[__name__.rsplit(".", 1)[0]], ttnn, torch)
)


def user_location(skip: int = 1) -> tuple[str, str]:
    """("file:line", function) of the innermost frame outside ttfuse, ttnn and torch."""
    frame = sys._getframe(skip)
    while frame is not None:
        fname = frame.f_code.co_filename
        if not fname.startswith(_OWN_DIRS) and not fname.startswith("<frozen"):
            return f"{fname}:{frame.f_lineno}", frame.f_code.co_name
        frame = frame.f_back
    return "<unknown>:0", "<unknown>"


def short_location(loc: str) -> str:
    """A location relative to the working directory when it is below it."""
    path, _, line = loc.rpartition(":")
    try:
        rel = os.path.relpath(path)
        if not rel.startswith(".."):
            path = rel
    except ValueError:
        pass
    return f"{path}:{line}"


# ---------------------------------------------------------------------------
# Proxy with specs
# ---------------------------------------------------------------------------

_BINARY_DUNDERS = {
    "add": ttnn.add,
    "sub": ttnn.subtract,
    "mul": ttnn.multiply,
    "truediv": ttnn.divide,
    "matmul": ttnn.matmul,
    "pow": ttnn.pow,
}


class TTProxy(Proxy):
    """A traced ttnn tensor. Metadata (shape, dtype, layout, memory config) is concrete."""

    def _spec(self, what: str):
        spec = self.node.meta.get("spec")
        return spec if isinstance(spec, TensorSpec) else None

    @property
    def spec(self):
        return self.node.meta.get("spec")

    @property
    def shape(self):
        spec = self._spec("shape")
        if spec is None:  # unknown: stays symbolic, a graph value computed at run time
            return self.tracer.create_proxy("call_function", builtins.getattr, (self, "shape"), {})
        return ttnn.Shape(spec.shape)

    @property
    def padded_shape(self):
        spec = self._spec("padded_shape")
        if spec is None:
            return self.tracer.create_proxy("call_function", builtins.getattr, (self, "padded_shape"), {})
        return ttnn.Shape(spec.padded_shape)

    def _need(self, what: str) -> TensorSpec:
        spec = self._spec(what)
        if spec is None:
            loc, _ = user_location(3)
            why = self.node.meta.get("spec")
            reason = why.reason() if isinstance(why, UnknownSpec) else "no spec"
            raise TraceError(f"`{what}` of this tensor is needed while tracing, but it is unknown ({reason})", loc)
        return spec

    @property
    def dtype(self):
        return self._need("dtype").dtype

    @property
    def layout(self):
        return self._need("layout").layout

    def get_dtype(self):
        return self._need("get_dtype()").dtype

    def get_layout(self):
        return self._need("get_layout()").layout

    def memory_config(self):
        mc = self._need("memory_config()").memory_config
        if mc is None:
            loc, _ = user_location(2)
            raise TraceError("memory_config() of this tensor is unknown at trace time (sharded input reshaped)", loc)
        return mc

    def is_sharded(self):
        return self.memory_config().is_sharded()

    def device(self):
        # the device the trace runs on (model code asks it for its worker grid)
        engine = self.tracer.spec_engine
        if engine is None:
            loc, _ = user_location(2)
            raise TraceError("`tensor.device()` is read while tracing, but no device is known: give example "
                             "inputs on a device (or fuse(..., device=...))", loc)
        return engine.device

    def storage_type(self):
        return ttnn.StorageType.HOST if self.node.meta.get("host") else ttnn.StorageType.DEVICE

    def deallocate(self, force: bool = True):
        return self.tracer.create_proxy("call_function", ttnn.deallocate, (self, force), {})

    def _host_read(self, what: str):
        loc, _ = user_location(3)
        raise TraceError(
            f"`{what}` reads a tensor's values on the host; a traced model cannot depend on tensor values. "
            "Move the read out of the model or pass the value in as a Python argument",
            loc,
        )

    def item(self):
        self._host_read(".item()")

    def tolist(self):
        self._host_read(".tolist()")

    def to_torch(self):
        self._host_read(".to_torch()")

    def __int__(self):
        self._host_read("int(tensor)")

    def __float__(self):
        self._host_read("float(tensor)")

    def __index__(self):
        self._host_read("using a tensor as an index")

    def __len__(self):
        return int(self._need("len()").shape[0])

    def __iter__(self):
        # a multi-output op (topk, ...) has a tuple spec: unpack by its arity instead of FX's
        # bytecode inspection of the caller, which disassembles the whole function per call
        spec = self.node.meta.get("spec")
        if isinstance(spec, tuple):
            return iter([self[i] for i in range(len(spec))])
        if self.node.op == "call_function" and not isinstance(spec, TensorSpec):
            # an op whose outputs are not known (no spec): unpacking `a, b = op(...)` says how many
            n = _unpack_count(sys._getframe(1))
            if n is not None:
                return iter([self[i] for i in range(n)])
            loc, _ = user_location(2)
            if self.node.meta.get("python_value"):
                raise TraceError("a shape (or other value) of a tensor whose spec is unknown is iterated; the "
                                 f"unknown spec starts at {_unknown_origin(self.node)}", loc)
            raise TraceError(
                f"the result of {ttnn_ops.op_name(self.node.target)} is iterated, but its outputs are unknown "
                f"({spec.reason() if isinstance(spec, UnknownSpec) else 'no spec'}); unpack it into names "
                f"(`a, b = ...`) or index it (`out[0]`)", loc)
        loc, _ = user_location(2)
        raise TraceError(
            "iterating over a tensor's values cannot be traced (a Python loop over tensor elements); "
            "loop over a Python range or a shape instead", loc)

    def __neg__(self):
        return self.tracer.create_proxy("call_function", operator.neg if _python_value(self) else ttnn.neg, (self,), {})


def _unknown_origin(node) -> str:
    """The op (and its place) whose unknown spec a Python value read at run time stems from."""
    seen = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        spec = n.meta.get("spec")
        if isinstance(spec, UnknownSpec):
            return f"{short_location(n.meta.get('location', '?'))} ({spec.reason()})"
        stack.extend(n.all_input_nodes)
    return "an input"


def _unpack_count(frame) -> int | None:
    """n when the instruction running in `frame` is `a, b, ... = value` (UNPACK_SEQUENCE n)."""
    import dis

    for inst in dis.get_instructions(frame.f_code):
        if inst.offset == frame.f_lasti:
            return inst.argval if inst.opname == "UNPACK_SEQUENCE" else None
    return None


def _python_value(v) -> bool:
    """A traced Python value (a shape read at run time, arithmetic on it), not a tensor."""
    return isinstance(v, Proxy) and bool(v.node.meta.get("python_value"))


def _tensor_proxy(v) -> bool:
    return isinstance(v, Proxy) and not v.node.meta.get("python_value")


_AS_TTNN_REFLECTS = {"add": ttnn.add, "mul": ttnn.multiply, **({"truediv": ttnn.rdiv} if hasattr(ttnn, "rdiv") else {})}


def _make_dunder(name: str, op, reflected: bool):
    python_op = getattr(operator, name)

    def method(self, other):
        args = (other, self) if reflected else (self, other)
        # `shape[-1] * shape[-2]` stays Python arithmetic; anything with a tensor is a ttnn op
        tensor = _tensor_proxy(self) or _tensor_proxy(other)
        target = op if tensor else python_op
        if tensor and reflected and name in _AS_TTNN_REFLECTS:
            # what ttnn.Tensor's reflected operators call: `2 * x` is multiply(x, 2), `2 / x` is rdiv(x, 2)
            target, args = _AS_TTNN_REFLECTS[name], (self, other)
        if target is None:
            loc, _ = user_location(2)
            raise TraceError(f"`{name}` of a ttnn tensor is not a ttnn op", loc)
        return self.tracer.create_proxy("call_function", target, args, {})

    return method


for _name, _op in _BINARY_DUNDERS.items():
    setattr(TTProxy, f"__{_name}__", _make_dunder(_name, _op, False))
    setattr(TTProxy, f"__r{_name}__", _make_dunder(_name, _op, True))
for _name in ("floordiv", "mod"):
    setattr(TTProxy, f"__{_name}__", _make_dunder(_name, None, False))
    setattr(TTProxy, f"__r{_name}__", _make_dunder(_name, None, True))


# ---------------------------------------------------------------------------
# Tracer
# ---------------------------------------------------------------------------


class TTTracer(TracerBase):
    def __init__(self, root: torch.nn.Module | None = None):
        super().__init__()
        self.root = root if root is not None else torch.nn.Module()
        self.graph = torch.fx.Graph()
        self.scope = Scope("", None)
        self.module_stack = OrderedDict()
        self.node_name_to_scope = {}
        self._consts: dict = {}
        # call_hook(op, args, kwargs) -> (op, args, kwargs): lets the fuzzer alter calls as they
        # are recorded (near-misses); None in normal tracing
        self.call_hook = None
        self._proxies: dict = {}  # node -> the proxies standing for it (rebound when it is written)
        self._latest: dict = {}  # buffer node -> its newest version (a write node)
        # specs from ttnn itself (fusion/ttnn_specs.py) once a device is known; "rules": hand rules only
        self.spec_engine = None
        self.specs_from = "rules"

    # values -------------------------------------------------------------
    def proxy(self, node):
        p = TTProxy(node, self)
        self._proxies.setdefault(node, []).append(p)
        return p

    def create_proxy(self, kind, target, args, kwargs, *rest, **kw):
        proxy = super().create_proxy(kind, target, args, kwargs, *rest, **kw)
        if kind == "call_function":
            self._record_effects(proxy, args, kwargs)
        return proxy

    def _version_of(self, value) -> torch.fx.Node | None:
        """The node holding the current version of a written or freed argument."""
        if isinstance(value, Proxy):
            return value.node
        if isinstance(value, (ttnn.Tensor, torch.Tensor)):
            return self._consts.get(("tensor", id(value)))
        return None

    def _record_effects(self, proxy, args, kwargs) -> None:
        """Writes become data flow: the written buffer's proxies (and a written constant) now
        stand for this call's node, so later readers read the new version (fusion/effects.py)."""
        node = proxy.node
        target = node.target
        for value in effects.freed(target, args, kwargs):
            old = self._version_of(value)
            if old is not None:
                node.meta["frees"] = old
                effects.mark(self.graph)
        dests = [(v, self._version_of(v)) for v in effects.written(target, args, kwargs)]
        dests = [(v, old) for v, old in dests if old is not None]
        if not dests:
            return
        effects.mark(self.graph)
        for i, (value, old) in enumerate(dests):
            new = node
            if len(dests) > 1:  # one call writing several buffers: one version node each
                new = self.create_proxy("call_function", operator.getitem, (proxy, i), {}).node
            new.meta["writes"] = old
            buffer = effects.buffer_of(old)
            new.meta["buffer"] = buffer
            if isinstance(old.meta.get("spec"), TensorSpec):
                new.meta["spec"] = old.meta["spec"]  # the result is stored in the written buffer
            self._latest[buffer] = new
            for p in self._proxies.pop(old, ()):
                p.node = new
                self._proxies.setdefault(new, []).append(p)
            if old.meta.get("tensor_constant"):
                for key, n in list(self._consts.items()):
                    if n is old:
                        self._consts[key] = new

    def create_arg(self, a: Any):
        if isinstance(a, Proxy):
            return a.node
        if isinstance(a, (set, frozenset)) and not has_proxy(list(a)):
            # a set of ttnn values (mesh coordinates): a constant, kept as the model gave it
            key = ("literal-set", type(a), tuple(sorted(repr(x) for x in a)))
            return self._constant(type(a)(a), key, tensor=False)
        if isinstance(a, (ttnn.Tensor, torch.Tensor)):
            return self._constant(a, ("tensor", id(a)), tensor=True)
        if ttnn_ops.is_literal_value(a):
            try:
                key = ("literal", type(a), hash(a), repr(a))
            except TypeError:
                key = ("literal", id(a))
            return self._constant(a, key, tensor=False)
        return super().create_arg(a)

    def _constant(self, value, key, tensor: bool):
        node = self._consts.get(key)
        if node is not None:
            return node
        prefix = "_w" if tensor else "_lit"
        name = f"{prefix}{len(self._consts)}"
        setattr(self.root, name, value)
        node = self.graph.create_node("get_attr", name)
        if tensor:
            spec = specs_mod.spec_from_value(value)
            node.meta["spec"] = spec
            node.meta["tensor_constant"] = True
            _note_tile(node, value)
            if is_host_tensor(value):
                node.meta["host"] = True
            elif self.spec_engine is None and self.specs_from == "auto":
                self.use_device(ttnn_specs.find_device([value]))
            self._consts[key] = node
            # keep the object alive: the key uses its id
            node.meta["value"] = value
        else:
            node.meta["literal"] = value
            self._consts[key] = node
        return node

    # nodes --------------------------------------------------------------
    def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):
        node = super().create_node(kind, target, args, kwargs, name, type_expr)
        loc, fn = user_location(2)
        node.meta["location"] = loc
        node.meta["source_fn"] = fn
        if kind == "call_function" and (target is builtins.getattr or (
                not ttnn_ops.is_ttnn_op(target) and any(n.meta.get("python_value") for n in node.all_input_nodes))):
            node.meta["python_value"] = True  # x.shape of an unknown spec, and arithmetic on it
            node.meta["spec"] = None
        elif kind == "call_function":
            node.meta["spec"] = self.infer_spec(target, node.args, node.kwargs)
            src = effects.view_source(node)
            if src is not None:
                node.meta["buffer"] = effects.buffer_of(src)
            if self._latest:
                for a in node.all_input_nodes:
                    newest = self._latest.get(effects.buffer_of(a))
                    if newest is not None and a is not newest and a < newest:
                        # an alias (a view) of a buffer written since it was made
                        node.meta["stale_read"] = (a, newest)
        return node

    def use_device(self, device) -> None:
        """Ask ttnn for specs on this device from now on."""
        if device is not None and self.spec_engine is None:
            self.spec_engine = _engine_for(device)

    def infer_spec(self, target, args, kwargs):
        engine = self.spec_engine
        if engine is not None and engine.handles(target):
            spec = engine.infer(target, args, kwargs, spec_of)
            if not isinstance(spec, UnknownSpec) or isinstance(spec, ttnn_specs.Rejected):
                return spec
            # an input ttnn cannot be given (unknown spec, an argument it cannot reproduce):
            # the hand rules may still know
            ruled = specs_mod.infer(target, args, kwargs, spec_of)
            return ruled if not isinstance(ruled, UnknownSpec) else spec
        return specs_mod.infer(target, args, kwargs, spec_of)

    def to_bool(self, obj):
        loc, _ = user_location(2)
        raise TraceError(
            "Python control flow depends on a tensor (`if tensor:`, `while tensor`, `and`/`or` on a tensor); "
            "a traced ttnn model must take the same path for every input. Compute both branches with ttnn ops "
            "(e.g. ttnn.where) or decide from a Python argument",
            loc,
        )

    def iter(self, obj):
        loc, _ = user_location(2)
        raise TraceError(
            "iterating over a tensor's values cannot be traced (a Python loop over tensor elements); "
            "loop over a Python range or a shape instead",
            loc,
        )

    def keys(self, obj):
        loc, _ = user_location(2)
        raise TraceError("a tensor was used as a mapping (`**tensor`); this cannot be traced", loc)


_ENGINES: dict = {}


def _engine_for(device):
    """One spec engine per device for the process: its memo outlives a trace (each verification
    and each fuse() traces again)."""
    engine = _ENGINES.get(id(device))
    if engine is None or engine.device is not device:
        engine = _ENGINES[id(device)] = ttnn_specs.DeviceSpecs(device, ttnn_specs.SpecStore.for_device(device))
    return engine


def _note_tile(node, value) -> None:
    """A tensor in other than 32x32 tiles: TensorSpec does not carry the tile, the spec engine
    must not stand 32x32 tiles in for it."""
    try:
        shape = tuple(value.tile.tile_shape) if isinstance(value, ttnn.Tensor) and value.layout == ttnn.TILE_LAYOUT else None
    except Exception:
        shape = None
    if shape is not None and shape != (32, 32):
        node.meta["tile"] = shape


def is_host_tensor(value) -> bool:
    """A ttnn tensor in host memory (a torch tensor stands for a device tensor with its values)."""
    try:
        return isinstance(value, ttnn.Tensor) and value.storage_type() != ttnn.StorageType.DEVICE
    except Exception:
        return False


def spec_of(node) -> Any:
    """Spec of an argument node; literal constants resolve to their value."""
    if "literal" in node.meta:
        return node.meta["literal"]
    spec = node.meta.get("spec")
    if spec is None:
        return UnknownSpec(ttnn_ops.op_name(node.target) if node.op == "call_function" else node.op, "no spec")
    return spec


# ---------------------------------------------------------------------------
# Patching the ttnn namespace while tracing
# ---------------------------------------------------------------------------


def _contains(obj, kinds) -> bool:
    """An instance of `kinds` is in obj, or nested in its lists, tuples and dicts."""
    if isinstance(obj, kinds):
        return True
    if isinstance(obj, (list, tuple)):
        return any(_contains(o, kinds) for o in obj)
    if isinstance(obj, dict):
        return any(_contains(o, kinds) for o in obj.values())
    return False


def has_proxy(obj) -> bool:
    """A traced value is among the arguments."""
    return _contains(obj, Proxy)


_TRACED = (Proxy, ttnn.Tensor)


def _has_traced(obj) -> bool:
    """A traced value or a concrete ttnn tensor (a constant of the model) is among the arguments."""
    return _contains(obj, _TRACED)


class _Depth(threading.local):
    depth = 0


_in_real_op = _Depth()


@contextmanager
def running_real_op():
    """ttnn calls in this block run as they are, even while a trace records (the spec engine's)."""
    _in_real_op.depth += 1
    try:
        yield
    finally:
        _in_real_op.depth -= 1


class _Active(threading.local):
    tracer = None


_active = _Active()


def active_tracer():
    """The tracer recording on this thread, or None (fused-op entries record themselves through it)."""
    return _active.tracer


def _namespaces() -> list[types.ModuleType]:
    out = []
    for name in ttnn_ops.TRACED_NAMESPACES:
        mod = sys.modules.get(name)
        if mod is None:
            parts = name.split(".")
            mod = ttnn
            for p in parts[1:]:
                mod = getattr(mod, p, None)
                if mod is None:
                    break
        if isinstance(mod, types.ModuleType):
            out.append(mod)
    return out


_OP_TABLE: tuple[list, list[tuple[Any, str, Any]]] | None = None


def _op_table() -> tuple[list, list[tuple[Any, str, Any]]]:
    """The classes of the ttnn ops, and (namespace, attribute, value) for every value
    constructor in ttnn's namespaces. Built once: every trace (each verification traces a
    replacement) patches these."""
    global _OP_TABLE
    if _OP_TABLE is None:
        classes, constructors = {}, []
        for ns in _namespaces():
            for attr, val in list(vars(ns).items()):
                if ttnn_ops.is_ttnn_op(val):
                    classes[type(val)] = None
                elif any(val is c for c in ttnn_ops.VALUE_CONSTRUCTORS):
                    constructors.append((ns, attr, val))
        _OP_TABLE = list(classes), constructors
    return _OP_TABLE


class _ConstructorMeta(type):
    # stands in for a ttnn class while tracing: isinstance still works, and a call with a
    # traced value becomes a node
    def __instancecheck__(cls, obj):
        return isinstance(obj, cls._real)

    def __call__(cls, *args, **kwargs):
        if has_proxy(args) or has_proxy(kwargs):
            return cls._tracer.create_proxy("call_function", cls._real, args, kwargs)
        return cls._real(*args, **kwargs)


def _recording(op, tracer: TTTracer):
    if isinstance(op, type):
        return _ConstructorMeta(op.__name__, (), {"_real": op, "_tracer": tracer})

    def call(*args, **kwargs):
        if has_proxy(args) or has_proxy(kwargs):
            target = op
            if tracer.call_hook is not None:
                target, args, kwargs = tracer.call_hook(target, args, kwargs)
            return tracer.create_proxy("call_function", target, args, kwargs)
        return op(*args, **kwargs)

    call.__wrapped__ = op
    return call


_extra_targets: list[Any] = []


def register_traceable(fn: Callable) -> Callable:
    """Record calls of a non-ttnn function (e.g. a micro-op entry) as graph nodes when traced."""
    if fn not in _extra_targets:
        _extra_targets.append(fn)
    return fn


@contextmanager
def recording_ttnn(tracer: TTTracer, extra_globals: list[dict] = ()):
    """Record ttnn calls on traced values as nodes.

    The op classes' __call__ is patched (not the ttnn namespace), so every reference to an op
    records: `ttnn.reshape`, `from ttnn import reshape`, an op held in a closure or a dict.
    Value constructors and registered fused-op entries are patched where they are named.
    """
    with _TRACING:
        yield from _recording_ttnn(tracer, extra_globals)


# one trace at a time per process: patching and restoring ttnn's op classes from two threads at
# once would leave one thread's patch in place (re-entrant: a lazy model called inside a trace)
_TRACING = threading.RLock()


def _recording_ttnn(tracer: TTTracer, extra_globals: list[dict]):
    saved = []
    op_classes, constructors = _op_table()
    owner = threading.get_ident()  # other threads' ttnn calls run as they are
    outer, _active.tracer = _active.tracer, tracer
    try:
        for cls in op_classes:
            original = cls.__call__

            def call(self, *args, __original=original, **kwargs):
                # an op on traced values, or on the model's own tensors (weights held in a
                # closure), is recorded, never run at trace time; ops that ttnn's own Python
                # code calls inside a real op run as they are
                if (not _in_real_op.depth and threading.get_ident() == owner
                        and (_has_traced(args) or _has_traced(kwargs))):
                    op = self
                    if tracer.call_hook is not None:
                        op, args, kwargs = tracer.call_hook(op, args, kwargs)
                    return tracer.create_proxy("call_function", op, args, kwargs)
                _in_real_op.depth += 1
                try:
                    return __original(self, *args, **kwargs)
                finally:
                    _in_real_op.depth -= 1

            saved.append((cls, "__call__", original))
            cls.__call__ = call
        for ns, attr, op in constructors:
            saved.append((ns, attr, op))
            setattr(ns, attr, _recording(op, tracer))
        targets = {id(c): c for c in ttnn_ops.VALUE_CONSTRUCTORS}
        targets.update({id(fn): fn for fn in _extra_targets})
        for g in extra_globals:
            for k, v in list(g.items()):
                if id(v) in targets:
                    saved.append((g, k, v))
                    g[k] = _recording(v, tracer)
        for fn in _extra_targets:
            mod = sys.modules.get(getattr(fn, "__module__", ""), None)
            name = getattr(fn, "__name__", None)
            if mod is not None and name and getattr(mod, name, None) is fn:
                saved.append((mod, name, fn))
                setattr(mod, name, _recording(fn, tracer))
        yield
    finally:
        _active.tracer = outer
        for holder, key, val in reversed(saved):
            if isinstance(holder, dict):
                holder[key] = val
            else:
                setattr(holder, key, val)


# ---------------------------------------------------------------------------
# Entry
# ---------------------------------------------------------------------------


@dataclass
class Traced:
    graph_module: torch.fx.GraphModule
    input_names: list  # parameter names (or (name, index/key) for items of lists, *args, **kwargs) fed from placeholders, in order
    constants: dict  # the same keys -> the model's non-tensor arguments (copies), baked into the graph
    signature: inspect.Signature
    model_name: str
    variadic: dict = field(default_factory=dict)  # *args name -> count, **kwargs name -> sorted names, as traced


def model_callable(model) -> tuple[Callable, str]:
    if isinstance(model, functools.partial):
        return model, _partial_target(model).__qualname__
    if isinstance(model, torch.fx.GraphModule):
        return model.forward, type(model).__name__
    if isinstance(model, torch.nn.Module):
        return model.forward, type(model).__name__
    if inspect.isfunction(model) or inspect.ismethod(model):
        return model, model.__qualname__
    if callable(model):
        return model.__call__, type(model).__name__
    raise InputError(f"model must be a function, a torch.nn.Module or an object with __call__, got {type(model).__name__}")


def _partial_target(fn):
    while isinstance(fn, functools.partial):
        fn = fn.func
    return fn


def _globals_of(fn) -> dict:
    return getattr(inspect.unwrap(_partial_target(fn)), "__globals__", {})


def _spec_of_example(value, name: str) -> TensorSpec | None:
    if isinstance(value, TensorSpec):
        return value
    return specs_mod.spec_from_value(value)


def snapshot(value):
    """A constant argument as it is now: containers are copied, and so is any object that
    compares by value (a dataclass config, a numpy array), so a caller mutating it after fuse()
    cannot change what the fused graph was traced with. ttnn values and objects that compare by
    identity are kept as they are (a copy could never compare equal)."""
    if isinstance(value, list):
        return [snapshot(v) for v in value]
    if isinstance(value, tuple):
        return type(value)(*map(snapshot, value)) if hasattr(value, "_fields") else tuple(snapshot(v) for v in value)
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    if isinstance(value, (set, bytearray)):
        return type(value)(value)
    kind = type(value)
    if (value is None or kind in (int, float, bool, str, bytes, complex) or (kind.__module__ or "").startswith("ttnn")
            or kind.__eq__ is object.__eq__ or isinstance(value, (torch.Tensor, types.ModuleType, type))
            or callable(value)):
        return value
    try:
        return copy.deepcopy(value)
    except Exception:  # not copyable: kept (and compared) as it is
        return value


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _bind_inputs(fn, sig: inspect.Signature, example_inputs, model_name: str) -> list[tuple[str, Any, Any]]:
    """(parameter name, example value, parameter) for every parameter the model is called with.

    example_inputs is a list (positional parameters in order, then *args) or a dict by parameter
    name (also for keyword-only parameters; *args as a list, **kwargs as a dict). Parameters
    left out take their defaults."""
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in _POSITIONAL]
    var_pos = next((p for p in params if p.kind is p.VAR_POSITIONAL), None)
    var_kw = next((p for p in params if p.kind is p.VAR_KEYWORD), None)
    names = ", ".join(p.name for p in params)
    if isinstance(example_inputs, dict):
        given = dict(example_inputs)
        unknown = [k for k in given if k not in sig.parameters]
        if unknown:
            raise InputError(f"{model_name}({names}) has no parameter {unknown[0]!r} (example_inputs names it)")
    elif isinstance(example_inputs, (list, tuple)):
        items = list(example_inputs)
        if len(items) > len(positional) and var_pos is None:
            raise InputError(f"{model_name}({names}) takes at most {len(positional)} positional arguments "
                             f"but example_inputs has {len(items)} items")
        given = dict(zip((p.name for p in positional), items))
        if var_pos is not None:
            given[var_pos.name] = items[len(positional):]
    else:
        raise InputError(f"example_inputs must be a list (one item per model argument) or a dict by parameter name, "
                         f"got {type(example_inputs).__name__}")
    bound = []
    for p in params:
        if p.name in given:
            value = given[p.name]
            if p.kind is p.VAR_POSITIONAL and not isinstance(value, (list, tuple)):
                raise InputError(f"{model_name}: example input for *{p.name} must be a list, got {type(value).__name__}")
            if p.kind is p.VAR_KEYWORD and not isinstance(value, dict):
                raise InputError(f"{model_name}: example input for **{p.name} must be a dict, got {type(value).__name__}")
            if value is None and p.default is not None:
                raise InputError(
                    f"{model_name}: example input for {p.name} is None; give a fusion.TensorSpec, a tensor or a constant "
                    f"(a parameter that accepts None should default to None, then None may be given or left out)")
            items = (list(enumerate(value)) if isinstance(value, (list, tuple)) else
                     list(value.items()) if isinstance(value, dict) and p.kind is p.VAR_KEYWORD else [])
            variadic = p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            if any(v is None for _k, v in items) and (variadic or any(_spec_of_example(v, "") is not None for _k, v in items)):
                k = next(k for k, v in items if v is None)
                raise InputError(f"{model_name}: example input {p.name}[{k!r}] is None among tensors; give a "
                                 f"fusion.TensorSpec or a tensor for it")
        elif p.kind is p.VAR_POSITIONAL:
            value = []
        elif p.kind is p.VAR_KEYWORD:
            value = {}
        elif p.default is not p.empty:
            value = p.default
        else:
            required = [q.name for q in params if q.default is q.empty and q.kind not in (q.VAR_POSITIONAL, q.VAR_KEYWORD)]
            have = (f"has {len(example_inputs)} items" if isinstance(example_inputs, (list, tuple))
                    else f"names {', '.join(example_inputs) or 'nothing'}")
            raise InputError(f"{model_name}({names}) needs {', '.join(required)} but example_inputs {have} (no {p.name})")
        bound.append((p.name, value, p))
    return bound


_TTNN_DIR = os.path.dirname(os.path.abspath(ttnn.__file__)) + os.sep


def _ttnn_function_called(tb) -> tuple[str, str] | None:
    """(ttnn.<function>, user's file:line) when the failure happened inside a plain Python
    function of ttnn the user's code called (ops are recorded, never run, so it is not an op)."""
    user_loc = None
    while tb is not None:
        code = tb.tb_frame.f_code
        fname = code.co_filename
        if fname.startswith(_TTNN_DIR):
            # only when the function was handed a traced value: a ttnn helper failing on the
            # user's own ints (a shape that does not fit) is the model's error, reported as such
            if user_loc is not None and has_proxy(list(tb.tb_frame.f_locals.values())):
                module = tb.tb_frame.f_globals.get("__name__", "ttnn")
                public = "ttnn" if module.startswith("ttnn") else module
                return f"{public}.{code.co_name}", user_loc
            return None
        if not fname.startswith(_OWN_DIRS) and not fname.startswith("<frozen"):
            user_loc = f"{fname}:{tb.tb_lineno}"
        tb = tb.tb_next
    return None


def _innermost_user_frame(tb) -> str:
    loc = "<unknown>:0"
    while tb is not None:
        fname = tb.tb_frame.f_code.co_filename
        if not fname.startswith(_OWN_DIRS) and not fname.startswith("<frozen"):
            loc = f"{fname}:{tb.tb_lineno}"
        tb = tb.tb_next
    return loc


def _describe_example(v) -> str:
    spec = _spec_of_example(v, "")
    if spec is not None:
        return spec.short()
    if isinstance(v, (list, tuple)) and v and all(_spec_of_example(x, "") is not None for x in v):
        return f"[{len(v)} tensors]"
    return repr(v)[:40]


SPEC_SOURCES = ("auto", "ttnn", "rules")


def trace(model, example_inputs, *, specs: str = "auto", device=None) -> Traced:
    """Trace `model(*example_inputs)`.

    specs: "auto" asks ttnn for every op's spec on the device of the first device tensor the
    model is given or holds (its own validation included: a call ttnn would reject gets a
    `Rejected` spec), and uses the hand rules in `fusion/specs.py` without one (host-only
    runs); "ttnn" requires a device (`device=` or a device tensor among the example inputs);
    "rules" uses the hand rules only.
    """
    if specs not in SPEC_SOURCES:
        raise InputError(f"specs must be one of {', '.join(SPEC_SOURCES)}, got {specs!r}")
    fn, model_name = model_callable(model)
    sig = inspect.signature(fn)
    bound = _bind_inputs(fn, sig, example_inputs, model_name)
    tracer = TTTracer()
    tracer.specs_from = specs
    if specs != "rules":
        tracer.use_device(device if device is not None else ttnn_specs.find_device([v for _n, v, _p in bound]))
        if specs == "ttnn" and tracer.spec_engine is None:
            raise InputError("specs='ttnn' needs a device: pass device= or a device tensor among example_inputs")
    args, kwargs, input_names, constants = [], {}, [], {}

    def traced_value(name, key, value):
        """A placeholder for a tensor example, None otherwise."""
        spec = _spec_of_example(value, name)
        if spec is None:
            return None
        proxy = tracer.create_proxy("placeholder", name if key is None else f"{name}_{key}", (), {})
        proxy.node.meta["spec"] = spec
        if is_host_tensor(value):
            proxy.node.meta["host"] = True
        _note_tile(proxy.node, value)
        input_names.append(name if key is None else (name, key))
        return proxy

    def element(name, key, value):
        proxy = traced_value(name, key, value)
        if proxy is not None:
            return proxy
        constants[(name, key)] = snapshot(value)
        return constants[(name, key)]

    variadic = {}  # *args' length and **kwargs' names as traced: a call must have the same
    for name, value, param in bound:
        if param.kind is param.VAR_POSITIONAL:  # *args: each item on its own
            args.extend(element(name, i, v) for i, v in enumerate(value))
            variadic[name] = len(value)
            continue
        if param.kind is param.VAR_KEYWORD:  # **kwargs: each item on its own
            kwargs.update({k: element(name, k, v) for k, v in value.items()})
            variadic[name] = tuple(sorted(value))
            continue
        arg = traced_value(name, None, value)
        if arg is None and isinstance(value, (list, tuple)) and value and all(
                _spec_of_example(v, name) is not None for v in value):
            # a list of tensors (e.g. per-layer weights): one placeholder per element
            arg = type(value)([traced_value(name, i, v) for i, v in enumerate(value)])
        if arg is None:
            arg = constants[name] = snapshot(value)
        if param.kind is param.KEYWORD_ONLY:
            kwargs[name] = arg
        else:
            args.append(arg)
    with recording_ttnn(tracer, [_globals_of(fn)]):
        try:
            result = fn(*args, **kwargs)
        except TraceError:
            raise
        except torch.fx.proxy.TraceError as e:  # FX's own, e.g. len() of a proxy
            loc, _ = user_location(1)
            raise TraceError(str(e), loc) from None
        except Exception as e:
            called = _ttnn_function_called(e.__traceback__)
            if called is None and isinstance(e, TypeError) and "TTProxy" in str(e):
                # a C++ function of ttnn (not an op) handed a traced tensor: nanobind names it
                called = f"ttnn.{str(e).split('(', 1)[0].strip()}", _innermost_user_frame(e.__traceback__)
            if called is not None:
                fn_name, loc = called
                raise TraceError(
                    f"{fn_name} cannot be traced: it is a ttnn function, not a ttnn op, and it failed on a traced "
                    f"tensor ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}). Call it outside "
                    f"the traced forward, or wrap the call in a function declared with @fusion.fused_op (golden, "
                    f"output_spec): it then traces as one node", loc) from e
            # the model's own code failed on these inputs (a rank or dtype it did not expect, ...)
            loc = _innermost_user_frame(e.__traceback__)
            given = ", ".join(f"{n}={_describe_example(v)}" for n, v, _p in bound)
            raise InputError(
                f"{model_name} failed while tracing with example inputs ({given}) at {loc}: "
                f"{type(e).__name__}: {e}. Check that each example input has the shape, rank and dtype "
                f"the model expects") from e
    tracer.create_node("output", "output", (tracer.create_arg(result),), {})
    engine = tracer.spec_engine
    if engine is not None and engine.store is not None:
        engine.store.flush()
    # lazy: Python code for the graph is generated on first call or `.code`, not per rewrite round
    gm = _LazyGraphModule(tracer.root, tracer.graph, class_name=f"Traced{model_name.replace('.', '_')}")
    if engine is not None:
        gm.meta["mesh_shape"] = tuple(engine.device.shape)  # reference semantics run every device of it
    return Traced(gm, input_names, constants, sig, model_name, variadic)


def trace_function(fn: Callable, tensor_params: dict[str, Any], scalar_params: dict[str, Any], *, call_hook=None):
    """Trace `fn(**params)` for pattern and replacement graphs.

    tensor_params map to placeholders carrying the given spec (or None); scalar_params are
    placeholders too when their value is `SYMBOLIC`, else passed through as constants.
    call_hook(op, args, kwargs) -> (op, args, kwargs) may alter each call as it is recorded
    (the mutation fuzzer's mutants).
    """
    tracer = TTTracer()
    tracer.call_hook = call_hook
    kwargs = {}
    for name, spec in tensor_params.items():
        p = tracer.create_proxy("placeholder", name, (), {})
        p.node.meta["spec"] = spec
        p.node.meta["role"] = "tensor"
        kwargs[name] = p
    for name, value in scalar_params.items():
        if value is SYMBOLIC:
            p = tracer.create_proxy("placeholder", name, (), {})
            p.node.meta["role"] = "capture"
            kwargs[name] = p
        else:
            kwargs[name] = value
    with recording_ttnn(tracer, [_globals_of(fn)]):
        result = fn(**kwargs)
    tracer.create_node("output", "output", (tracer.create_arg(result),), {})
    return tracer.graph, tracer.root


class _Symbolic:
    def __repr__(self):
        return "SYMBOLIC"


SYMBOLIC = _Symbolic()
