"""Tensor specs: shape, dtype, layout and memory config of every value in a traced graph.

A spec rule maps a node's bound arguments (tensors replaced by their specs) to the spec of
its result. Ops without a rule get `UnknownSpec`, which names the op so that a pattern that
needs it is refused with "unknown spec for ttnn.X".
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import ttnn

from . import ttnn_ops

TILE = 32


_DTYPE_BYTES = {
    ttnn.bfloat16: 2.0,
    ttnn.float32: 4.0,
    ttnn.uint32: 4.0,
    ttnn.int32: 4.0,
    ttnn.uint16: 2.0,
    ttnn.uint8: 1.0,
    ttnn.bfloat8_b: 1088 / 1024,  # 1 KiB of mantissas + 64 B of shared exponents per tile
    ttnn.bfloat4_b: 576 / 1024,
}


def _dtype_bytes(dtype) -> float:
    return _DTYPE_BYTES.get(dtype, 2.0)


def _mem_key(mc) -> Any:
    # ttnn's JSON form: canonical where the printed form is not (a tensor's config prints the
    # ND shard spec ttnn derives, the same config built by hand prints none)
    return None if mc is None else mc.to_json()


def same_memory_config(a, b) -> bool:
    """Whether two memory configs are the same placement (however each was made)."""
    return _mem_key(a) == _mem_key(b)


# Interned spec keys: equal specs share one key object, so hot paths (the verifier's cache
# lookup) confirm equality by identity without touching the keys' contents. Bounded by the
# distinct specs a process sees; cleared past a limit (identity then only misses: the full
# comparison still decides)
_KEYS: dict = {}
_KEYS_LIMIT = 1 << 20


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """What ttfuse knows of a tensor without its values.

    TensorSpec(shape, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, memory_config=ttnn.DRAM_MEMORY_CONFIG)
    """

    shape: tuple
    dtype: Any = ttnn.bfloat16
    layout: Any = ttnn.TILE_LAYOUT
    memory_config: Any = field(default=ttnn.DRAM_MEMORY_CONFIG, compare=False, hash=False)
    # derived in __post_init__: slots, so reading them on hot paths is no dict lookup
    _key: tuple = field(init=False, repr=False, compare=False, hash=False)
    _hash: int = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):
        shape = self.shape
        if isinstance(shape, ttnn.Shape):
            shape = tuple(shape)
        if not isinstance(shape, (tuple, list)) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise ValueError(f"TensorSpec shape must be a tuple of non-negative ints, got {self.shape!r}")
        object.__setattr__(self, "shape", tuple(int(d) for d in shape))
        if not isinstance(self.dtype, type(ttnn.bfloat16)):
            raise ValueError(f"TensorSpec dtype must be a ttnn.DataType (e.g. ttnn.bfloat16), got {self.dtype!r}")
        if not isinstance(self.layout, type(ttnn.TILE_LAYOUT)):
            raise ValueError(f"TensorSpec layout must be a ttnn.Layout, got {self.layout!r}")
        if self.memory_config is not None and not isinstance(self.memory_config, ttnn.MemoryConfig):
            raise ValueError(f"TensorSpec memory_config must be a ttnn.MemoryConfig, got {self.memory_config!r}")
        # memory configs compare through their text form (equal configs print equal); computed once
        key = (self.shape, self.dtype, self.layout, _mem_key(self.memory_config))
        if len(_KEYS) > _KEYS_LIMIT:
            _KEYS.clear()
        key = _KEYS.setdefault(key, key)
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_hash", hash(key))  # specs key the verifier's cache: hash once

    def __eq__(self, other):
        if other is self:
            return True
        if not isinstance(other, TensorSpec):
            return NotImplemented
        return self._hash == other._hash and self._key == other._key

    def __hash__(self):
        return self._hash

    def __reduce__(self):
        # rebuilt, not restored: string hashes differ between processes
        return (TensorSpec, (self.shape, self.dtype, self.layout, self.memory_config))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def padded_shape(self) -> tuple:
        if self.layout != ttnn.TILE_LAYOUT or not self.shape:
            return self.shape
        s = list(self.shape)
        s[-1] = math.ceil(s[-1] / TILE) * TILE if s[-1] else 0
        if len(s) >= 2:
            s[-2] = math.ceil(s[-2] / TILE) * TILE if s[-2] else 0
        return tuple(s)

    @property
    def nbytes(self) -> int:
        return int(math.prod(self.padded_shape) * _dtype_bytes(self.dtype))

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def with_(self, **changes) -> "TensorSpec":
        d = dict(shape=self.shape, dtype=self.dtype, layout=self.layout, memory_config=self.memory_config)
        d.update(changes)
        return TensorSpec(**d)

    def short(self) -> str:
        dt = str(self.dtype).split(".")[-1]
        lay = "TILE" if self.layout == ttnn.TILE_LAYOUT else "RM"
        mc = self.memory_config
        if mc is None:
            mem = "?"
        else:
            mem = f"{str(mc.buffer_type).split('.')[-1]}/{str(mc.memory_layout).split('.')[-1]}"
        return f"[{','.join(map(str, self.shape))}] {dt} {lay} {mem}"

    def __repr__(self) -> str:
        return f"TensorSpec({self.short()})"


@dataclass(frozen=True)
class UnknownSpec:
    """The spec of a value no rule could compute; `op` names where knowledge stopped."""

    op: str
    why: str = ""

    def reason(self) -> str:
        return f"unknown spec for {self.op}" + (f" ({self.why})" if self.why else "")


def spec_from_value(value: Any) -> TensorSpec | None:
    """Spec of a concrete ttnn or torch tensor (torch: bfloat16, TILE, DRAM interleaved)."""
    if isinstance(value, ttnn.Tensor):
        try:
            mc = value.memory_config() if value.storage_type() == ttnn.StorageType.DEVICE else ttnn.DRAM_MEMORY_CONFIG
        except Exception:  # host tensors have no memory config of their own
            mc = ttnn.DRAM_MEMORY_CONFIG
        return TensorSpec(tuple(value.shape), value.dtype, value.layout, mc)
    if isinstance(value, torch.Tensor):
        return TensorSpec(tuple(value.shape), ttnn.bfloat16, ttnn.TILE_LAYOUT, ttnn.DRAM_MEMORY_CONFIG)
    return None


# ---------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------

SpecRule = Callable[[dict], Any]
_RULES: dict[Any, SpecRule] = {}


def rule(*targets):
    def register(fn):
        for t in targets:
            if t is not None:
                _RULES[t] = fn
        return fn

    return register


def register_rule(target: Any, fn: SpecRule) -> None:
    """Teach specs a new op: fn(bound_args_with_specs) -> TensorSpec | tuple | UnknownSpec."""
    _RULES[target] = fn


def _out_memory(a: TensorSpec, b: dict, shape_changed: bool) -> Any:
    mc = b.get("memory_config")
    if mc is not None:
        return mc
    if a.memory_config is not None and a.memory_config.is_sharded() and shape_changed:
        return None  # ttnn re-derives shard specs per op; don't guess
    return a.memory_config


def _first_tensor(b: dict) -> TensorSpec:
    for v in b.values():
        if isinstance(v, TensorSpec):
            return v
    raise _Unknown("no tensor input")


class _Unknown(Exception):
    pass


def _same(b: dict, shape=None, layout=None, dtype=None) -> TensorSpec:
    a = _first_tensor(b)
    shape = a.shape if shape is None else tuple(shape)
    return TensorSpec(
        shape,
        dtype or b.get("dtype") or a.dtype,
        layout or a.layout,
        _out_memory(a, b, shape != a.shape),
    )


@rule(ttnn.reshape)
def _reshape(b):
    a = b["input_tensor"]
    shape = list(ttnn_ops.normalize_literal(b["shape"]))
    if shape.count(-1) > 1:
        raise _Unknown("more than one -1 in shape")
    if -1 in shape:
        rest = math.prod(d for d in shape if d != -1)
        if rest == 0 or a.numel % rest:
            raise _Unknown(f"cannot reshape {a.shape} to {tuple(shape)}")
        shape[shape.index(-1)] = a.numel // rest
    if math.prod(shape) != a.numel:
        raise _Unknown(f"cannot reshape {a.shape} to {tuple(shape)}")
    return _same(b, shape=shape)


@rule(ttnn.to_layout)
def _to_layout(b):
    a = b["tensor"]
    return TensorSpec(a.shape, b.get("dtype") or a.dtype, b["layout"], b.get("memory_config") or a.memory_config)


@rule(ttnn.to_memory_config)
def _to_memory_config(b):
    a = b["tensor"]
    return TensorSpec(a.shape, b.get("dtype") or a.dtype, a.layout, b["memory_config"])


@rule(ttnn.typecast)
def _typecast(b):
    dtype = b.get("dtype") or b.get("output_dtype")
    return _same(b, dtype=dtype)


@rule(ttnn.repeat)
def _repeat(b):
    a = b["input_tensor"]
    reps = ttnn_ops.normalize_literal(b["repeat_dims"])
    if len(reps) != a.rank or not all(isinstance(r, int) and r >= 1 for r in reps):
        raise _Unknown(f"repeat {reps} does not fit rank {a.rank}")
    return _same(b, shape=[d * r for d, r in zip(a.shape, reps)])


def _norm_dims(dims, rank):
    dims = ttnn_ops.normalize_literal(dims)
    out = tuple(d + rank if isinstance(d, int) and d < 0 else d for d in dims)
    if sorted(out) != list(range(rank)):
        raise _Unknown(f"{dims} is not a permutation of rank {rank}")
    return out


@rule(ttnn.permute)
def _permute(b):
    a = b["input_tensor"]
    dims = _norm_dims(b["dims"], a.rank)
    return _same(b, shape=[a.shape[d] for d in dims])


@rule(getattr(ttnn, "transpose", None))
def _transpose(b):
    a = _first_tensor(b)
    vals = [v for k, v in b.items() if k.startswith("dim")]
    if len(vals) != 2:
        raise _Unknown("transpose dims")
    d0, d1 = (v + a.rank if v < 0 else v for v in vals)
    s = list(a.shape)
    s[d0], s[d1] = s[d1], s[d0]
    return _same(b, shape=s)


def _broadcast(x: tuple, y: tuple) -> tuple:
    out = []
    for i in range(1, max(len(x), len(y)) + 1):
        a = x[-i] if i <= len(x) else 1
        b = y[-i] if i <= len(y) else 1
        if a != b and 1 not in (a, b):
            raise _Unknown(f"shapes {list(x)} and {list(y)} do not broadcast")
        out.append(b if a == 1 else a)
    return tuple(reversed(out))


_BINARY = [getattr(ttnn, n, None) for n in (
    "add", "subtract", "multiply", "divide", "maximum", "minimum", "pow", "eq", "ne", "gt", "lt", "ge", "le",
    "squared_difference", "addalpha", "rdiv",
    # in place: the result is stored in (and shaped like) the first operand; the tracer gives the
    # write node the written buffer's spec
    "add_", "subtract_", "sub_", "multiply_", "mul_", "divide_", "div_")]


@rule(*_BINARY)
def _binary(b):
    a = b.get("input_tensor_a", b.get("input_tensor", b.get("input_a")))
    c = b.get("input_tensor_b", b.get("exponent", b.get("input_b")))
    tensors = [t for t in (a, c) if isinstance(t, TensorSpec)]
    if not tensors:
        raise _Unknown("no tensor operand")
    shape = tensors[0].shape
    for t in tensors[1:]:
        shape = _broadcast(shape, t.shape)
    base = tensors[0]
    return TensorSpec(shape, b.get("dtype") or base.dtype, base.layout, b.get("memory_config") or base.memory_config)


_UNARY = [getattr(ttnn, n, None) for n in (
    "silu", "gelu", "relu", "sigmoid", "exp", "log", "rsqrt", "sqrt", "tanh", "neg", "abs", "square",
    "reciprocal", "softmax", "clone", "sin", "cos", "recip", "clamp", "clip", "hardtanh", "reallocate")]


@rule(*_UNARY)
def _unary(b):
    return _same(b)


@rule(getattr(ttnn, "copy", None))
def _copy(b):
    # copy(a, b) writes a's values into b: the result is b's buffer
    dst = b.get("input_b")
    if not isinstance(dst, TensorSpec):
        raise _Unknown("copy destination is not a tensor")
    return dst


@rule(ttnn.rms_norm, getattr(ttnn, "layer_norm", None))
def _norm(b):
    return _same(b)


def _matmul_shape(a: tuple, w: tuple, ta: bool, tb: bool) -> tuple:
    if len(a) < 2 or len(w) < 2:
        raise _Unknown("matmul operands need rank >= 2")
    m, k = (a[-1], a[-2]) if ta else (a[-2], a[-1])
    k2, n = (w[-1], w[-2]) if tb else (w[-2], w[-1])
    if k != k2:
        raise _Unknown(f"inner dims differ: {a} @ {w}")
    batch = _broadcast(tuple(a[:-2]), tuple(w[:-2]))
    return batch + (m, n)


@rule(ttnn.matmul, ttnn.linear)
def _matmul(b):
    a, w = b["input_tensor_a"], b["input_tensor_b"]
    shape = _matmul_shape(a.shape, w.shape, bool(b.get("transpose_a")), bool(b.get("transpose_b")))
    mc = b.get("memory_config") or (a.memory_config if a.memory_config is not None and not a.memory_config.is_sharded() else ttnn.DRAM_MEMORY_CONFIG)
    return TensorSpec(shape, b.get("dtype") or a.dtype, ttnn.TILE_LAYOUT, mc)


def _reduce(b, keep_default=False):
    a = b["input_tensor"]
    dim = b.get("dim")
    keep = bool(b.get("keepdim", keep_default))
    dims = range(a.rank) if dim is None else ([dim] if isinstance(dim, int) else list(dim))
    dims = {d + a.rank if d < 0 else d for d in dims}
    shape = [1 if i in dims else s for i, s in enumerate(a.shape)] if keep else [s for i, s in enumerate(a.shape) if i not in dims]
    return _same(b, shape=shape)


@rule(ttnn.sum, getattr(ttnn, "mean", None), getattr(ttnn, "max", None))
def _reduce_rule(b):
    return _reduce(b)


@rule(ttnn.topk)
def _topk(b):
    a = b["input_tensor"]
    dim = b.get("dim", -1)
    dim = dim + a.rank if dim < 0 else dim
    s = list(a.shape)
    s[dim] = b.get("k", 32)
    vals = _same(b, shape=s)
    return (vals, vals.with_(dtype=ttnn.uint16))


@rule(ttnn.slice)
def _slice(b):
    a = _first_tensor(b)
    starts = ttnn_ops.normalize_literal(b.get("starts", b.get("slice_start")))
    ends = ttnn_ops.normalize_literal(b.get("ends", b.get("slice_end")))
    steps = b.get("steps", b.get("slice_step"))
    steps = ttnn_ops.normalize_literal(steps) if steps is not None else (1,) * a.rank
    if not (len(starts) == len(ends) == len(steps) == a.rank):
        raise _Unknown("slice bounds do not fit the rank")
    shape = []
    for d, s0, e0, st in zip(a.shape, starts, ends, steps):
        s0, e0 = max(0, s0 + d if s0 < 0 else s0), min(d, e0 + d if e0 < 0 else e0)
        shape.append(max(0, -(-(e0 - s0) // st)))
    return _same(b, shape=shape)


@rule(ttnn.concat)
def _concat(b):
    ts = b["tensors"]
    if not ts or not all(isinstance(t, TensorSpec) for t in ts):
        raise _Unknown("concat of unknown tensors")
    dim = b["dim"] + ts[0].rank if b["dim"] < 0 else b["dim"]
    shape = list(ts[0].shape)
    shape[dim] = sum(t.shape[dim] for t in ts)
    return TensorSpec(tuple(shape), ts[0].dtype, ts[0].layout, b.get("memory_config") or ts[0].memory_config)


@rule(operator.getitem)
def _getitem(b):
    seq, idx = b["a"], b["b"]
    if isinstance(seq, tuple) and isinstance(idx, int):
        return seq[idx]
    raise _Unknown("indexing a tensor")


@rule(ttnn.deallocate)
def _deallocate(b):
    return None


_GETITEM_SIGNATURE = ("a", "b")


def infer(target: Any, args: tuple, kwargs: dict, spec_of: Callable[[Any], Any]) -> Any:
    """Spec of `target(*args, **kwargs)` where `spec_of(node)` gives an argument node's spec."""
    name = ttnn_ops.op_name(target)
    fn = _RULES.get(target)
    if fn is None:
        out_rule = getattr(target, "output_spec", None)
        if callable(out_rule):
            fn = out_rule
    if fn is None:
        return UnknownSpec(name, "no spec rule")
    if target is operator.getitem:
        bound = dict(zip(_GETITEM_SIGNATURE, args))
    else:
        bound = ttnn_ops.bind(target, args, kwargs)
        if bound is None:
            return UnknownSpec(name, "arguments do not fit its signature")
    resolved = {}
    for k, v in bound.items():
        r = _resolve(v, spec_of)
        if isinstance(r, UnknownSpec):
            return r
        resolved[k] = r
    try:
        return fn(resolved)
    except _Unknown as e:
        return UnknownSpec(name, str(e))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        return UnknownSpec(name, f"rule failed: {e}")


def _resolve(v, spec_of):
    from torch.fx import Node

    if isinstance(v, Node):
        return spec_of(v)
    if isinstance(v, (list, tuple)):
        items = [_resolve(x, spec_of) for x in v]
        for x in items:
            if isinstance(x, UnknownSpec):
                return x
        return type(v)(items) if isinstance(v, tuple) else items
    return v
