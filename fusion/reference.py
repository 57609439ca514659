"""Reference semantics: run a traced graph on the CPU with ttnn's golden functions.

Each ttnn op runs as `ttnn.get_golden_function(op)` on torch tensors; a micro-op entry runs
its own `golden`. Goldens compute in float64 (float32 for large cases of 16-bit floats:
`compute_dtype`). Two semantics:

* rounded (the default): after every op the result is rounded to the dtype in the node's spec,
  as ttnn would store it (bfloat16, float32, bfloat8_b through ttnn's own host conversion);
* exact: nothing is rounded but what an op defines as a rounding (a typecast's result, values
  of integer dtype); the reference the verifier measures errors against (fusion/numerics.py).

Writes are data flow: the tracer records an in-place op or an `output_tensor=` write as a node
whose value is the buffer's new version, and later readers read that node. Here a write's
value is its op's result (stored in the written buffer's dtype); `ttnn.copy(a, b)` is a cast to
b's dtype.
"""
from __future__ import annotations

import builtins
import functools
import inspect
import math
import operator
import threading
from contextlib import contextmanager
from typing import Any, Callable

import torch
import torch.fx
import ttnn

from . import ttnn_ops
from ttnn.operations.activations import get_golden_function_for_activation
from ttnn.operations.golden_common import golden_to_output_dtype

from .effects import OUTPUT_KEYWORDS, buffer_of
from .errors import InputError
from .host_values import UnknownValue, device_values_readable, host_value
from .numerics import INTEGER_DTYPES
from .specs import TensorSpec


class NoReference(Exception):
    """An op in the graph has no golden function."""


class UseAfterFree(InputError):
    """The program reads a tensor after deallocate or reallocate freed it."""


# ---------------------------------------------------------------------------
# Matmul products shared within one verification trial
# ---------------------------------------------------------------------------
# A rewrite of `linear -> activation` into `linear(activation=)` multiplies the same operands
# in the original, in the exact reference and in the replacement; with a 7168x18432 weight each
# product costs a third of a second here. Inside `shared_products()` each distinct product is
# computed once (operands compared by identity, kept alive by the memo).

_PRODUCTS = threading.local()


@contextmanager
def shared_products():
    _PRODUCTS.memo = {}
    try:
        yield
    finally:
        _PRODUCTS.memo = None


def _product(a, b, transpose_a: bool, transpose_b: bool):
    memo = getattr(_PRODUCTS, "memo", None)
    key = (id(a), id(b), bool(transpose_a), bool(transpose_b))
    if memo is not None and key in memo:
        return memo[key][2]
    x = a.transpose(-1, -2) if transpose_a else a
    y = b.transpose(-1, -2) if transpose_b else b
    out = x @ y.to(x.dtype)
    if memo is not None:
        memo[key] = (a, b, out)
    return out


def _matmul_reference(input_tensor_a, input_tensor_b, transpose_a=False, transpose_b=False, *, bias=None,
                      program_config=None, activation=None, dtype=None, _linear=False, **_):
    """ttnn.matmul / ttnn.linear as their goldens define them (tests/test_reference.py compares
    the two on every option): the product, linear's bias, the program config's fused
    activation or else `activation`, the output dtype; the product from `_product`."""
    out = _product(input_tensor_a, input_tensor_b, transpose_a, transpose_b)
    if _linear and bias is not None:
        if len(bias) == 2:
            if bias.shape[0] != 1:
                raise RuntimeError("bias must be a 1D tensor")
            bias = bias[0]
        out = out + bias
    fused = getattr(program_config, "fused_activation", None) if program_config is not None else None
    act = fused.op_type if fused else activation
    if act is not None:
        out = get_golden_function_for_activation(act)(out)
    while out.dim() > input_tensor_a.dim():
        out = out.squeeze(0)
    return golden_to_output_dtype(out, dtype)


_OWN_REFERENCES = {
    id(ttnn.matmul): _matmul_reference,
    id(ttnn.linear): functools.partial(_matmul_reference, _linear=True),
}


@functools.lru_cache(maxsize=None)
def _golden(target) -> Callable:
    own = getattr(target, "golden", None)
    if callable(own):
        return own
    if id(target) in _OWN_REFERENCES:
        return _OWN_REFERENCES[id(target)]
    if ttnn_ops.is_ttnn_op(target):
        from .goldens import GOLDENS

        own = GOLDENS.get(ttnn_ops.op_name(target))
        if own is not None:
            return own
        try:
            return ttnn.get_golden_function(target)
        except Exception as e:
            raise NoReference(f"{ttnn_ops.op_name(target)} has no golden function") from e
    return target  # plain Python (operator.getitem, getattr, ...)


_TORCH_DTYPES = {
    ttnn.bfloat16: torch.bfloat16,
    ttnn.float32: torch.float32,
    ttnn.uint32: torch.int64,
    ttnn.int32: torch.int32,
    ttnn.uint16: torch.int64,
    ttnn.uint8: torch.uint8,
}


def round_to(t: Any, dtype) -> Any:
    """`t` as ttnn would store it in `dtype`."""
    if not isinstance(t, torch.Tensor):
        return t
    if dtype in (ttnn.bfloat8_b, ttnn.bfloat4_b):
        # block floats share an exponent per 16 values; use ttnn's own host packer
        x = t.to(torch.float32)
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]) if x.dim() != 2 else x
        packed = ttnn.from_torch(x2, dtype=dtype, layout=ttnn.TILE_LAYOUT)
        return ttnn.to_torch(packed).to(torch.bfloat16).reshape(shape)
    td = _TORCH_DTYPES.get(dtype)
    if td is None:
        return t
    if not td.is_floating_point:
        return t.round().to(td) if t.is_floating_point() else t.to(td)
    return t.to(td)


def _compute_form(value: Any, compute=torch.float64) -> Any:
    # goldens run on float64 copies (float32 where every value is a 16-bit float: see
    # compute_dtype), so the only rounding is the one applied to each result (none in exact
    # mode), not the golden's own
    if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype is not compute:
        return value.to(compute)
    if isinstance(value, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in value):
        return type(value)(_compute_form(v, compute) for v in value)
    return value


# a case with more input values than this (a large weight) computes in float32 when it can
FLOAT32_COMPUTE_VALUES = 1 << 22


def compute_dtype(dtypes, values: int = 0) -> torch.dtype:
    """What goldens compute in for a case with values of these ttnn dtypes, `values` input values
    in all: float64; float32 for a large case where every float has at most bfloat16's
    precision (2^16 times finer than their ulp; it halves the cost of large matmuls)."""
    if values > FLOAT32_COMPUTE_VALUES and not any(d == ttnn.float32 for d in dtypes):
        return torch.float32
    return torch.float64


def to_torch_value(value: Any, name: str = "", shard: int = 0) -> Any:
    """A ttnn tensor's values as torch (`shard`: that device's, of a mesh tensor): read back, or
    (a device without readable memory, the mock device) the host value captured when it was
    made; else UnknownValue naming it."""
    if not isinstance(value, ttnn.Tensor):
        return value
    on_device = value.storage_type() == ttnn.StorageType.DEVICE
    if on_device and not device_values_readable():
        # only on the mock device: a real device is read back, so later writes are seen
        known = host_value(value, shard)
        if known is not None:
            return known
        what = f"{name} " if name else ""
        raise UnknownValue(
            f"the values of device tensor {what}({list(value.shape)} {str(value.dtype).split('.')[-1]}) cannot be "
            f"read back: the device is tt-metal's mock device. Make the model's tensors inside "
            f"`with fusion.capture_host_values():` or give each its value with fusion.remember_host_value(tensor, "
            f"torch_value)")
    if on_device or _is_multi_shard(value):
        shards = ttnn.get_device_tensors(value.cpu() if on_device else value)
        return ttnn.to_torch(shards[shard])
    return ttnn.to_torch(value)


def _is_multi_shard(value) -> bool:
    try:
        return len(ttnn.get_device_tensors(value)) > 1
    except Exception:
        return False


def map_args(value, fn):
    """`value` with every Node in it (nested in tuples, lists, dicts) replaced by fn(node)."""
    if isinstance(value, torch.fx.Node):
        return fn(value)
    if isinstance(value, tuple):
        return tuple(map_args(v, fn) for v in value)
    if isinstance(value, list):
        return [map_args(v, fn) for v in value]
    if isinstance(value, dict):
        return {k: map_args(v, fn) for k, v in value.items()}
    return value


# ops whose result is defined as a rounding (kept in exact semantics)
_CONVERSIONS = frozenset(id(op) for op in (getattr(ttnn, n, None) for n in ("typecast", "to_dtype")) if op is not None)


def evaluate(node: torch.fx.Node, lookup: Callable[[torch.fx.Node], Any], compute=torch.float64) -> Any:
    """A call node's golden result on its argument values, before any rounding."""
    target = node.target
    if ttnn_ops.is_deallocate(target):
        return None
    args = map_args(node.args, lambda n: _compute_form(lookup(n), compute))
    kwargs = map_args(node.kwargs, lambda n: _compute_form(lookup(n), compute))
    if target is builtins.getattr and isinstance(args[0], torch.Tensor) and args[1] in ("shape", "padded_shape"):
        return tuple(args[0].shape)
    for k in OUTPUT_KEYWORDS:  # where, not what, an op computes
        kwargs.pop(k, None)
    if "dtype" in kwargs and id(target) not in _CONVERSIONS and isinstance(node.meta.get("spec"), TensorSpec):
        # the format the result is stored in: ReferenceRunner.finish rounds each result to its
        # node's dtype (ttnn's goldens pack block floats from float64 values inexactly, and in
        # exact semantics a storage format is no rounding the op defines)
        kwargs.pop("dtype")
    return call_golden(target, _golden(target), args, kwargs)


def call_golden(target, golden: Callable, args: tuple, kwargs: dict) -> Any:
    """golden(*args, **kwargs), with the call rebound when the golden names a parameter
    differently from ttnn (`repeat(x, repeat_dims=...)` vs the golden's `shape`): ttnn's
    positional parameters are passed by position."""
    try:
        inspect.signature(golden).bind(*args, **kwargs)
    except TypeError:
        pass
    except ValueError:  # no signature (a builtin): call as written
        return golden(*args, **kwargs)
    else:
        return golden(*args, **kwargs)
    overload = ttnn_ops._overload_for(target, len(args), tuple(kwargs))
    if overload is None:
        return golden(*args, **kwargs)
    positional = list(args)
    rest = dict(kwargs)
    for name in overload.positional[len(args):]:
        if name not in rest:
            break
        positional.append(rest.pop(name))
    return golden(*positional, **rest)


def _constant_name(node: torch.fx.Node) -> str:
    """A constant as the user knows it: the first op reading it, and where."""
    for user in node.users:
        if user.op == "call_function":
            return f"{node.target} (read by {ttnn_ops.op_name(user.target)} at {user.meta.get('location', '?')})"
    return str(node.target)


class ReferenceRunner:
    """Evaluates nodes of one GraphModule; constant weights are converted to torch once.
    exact=True: exact semantics (see the module text), else rounded."""

    def __init__(self, gm: torch.fx.GraphModule | None, exact: bool = False, compute: torch.dtype | None = None):
        self.gm = gm
        self.exact = exact
        if compute is None and gm is not None:  # by the graph's dtypes and input sizes, as the verifier chooses
            specs = [n.meta.get("spec") for n in gm.graph.nodes]
            specs = [sp for sp in specs if isinstance(sp, TensorSpec)]
            values = sum(n.meta["spec"].numel for n in gm.graph.nodes
                         if n.op == "placeholder" and isinstance(n.meta.get("spec"), TensorSpec))
            compute = compute_dtype([sp.dtype for sp in specs], values)
        self.compute = compute if compute is not None else torch.float64
        self._consts: dict = {}

    def constant(self, node: torch.fx.Node, owner=None, shard: int | None = None) -> Any:
        """A constant's value; `shard`: that device's shard of a mesh tensor (None: the first)."""
        if "literal" in node.meta:
            return node.meta["literal"]
        key = node if shard is None else (node, shard)
        if key not in self._consts:
            holder = owner if owner is not None else self.gm
            value = node.meta.get("value")
            if value is None:
                value = getattr(holder, node.target)
            self._consts[key] = to_torch_value(value, _constant_name(node), shard or 0)
        return self._consts[key]

    def call(self, node: torch.fx.Node, lookup: Callable[[torch.fx.Node], Any]) -> Any:
        return self.finish(node, evaluate(node, lookup, self.compute))

    def finish(self, node: torch.fx.Node, out: Any) -> Any:
        """A node's golden result as this runner's semantics store it (rounded, or exact)."""
        spec = node.meta.get("spec")
        if self.exact and not (id(node.target) in _CONVERSIONS
                               or (isinstance(spec, TensorSpec) and spec.dtype in INTEGER_DTYPES)):
            return out
        if isinstance(spec, TensorSpec):
            out = round_to(out, spec.dtype)
        elif isinstance(spec, tuple) and isinstance(out, (tuple, list)):
            out = type(out)(round_to(o, s.dtype) if isinstance(s, TensorSpec) else o for o, s in zip(out, spec))
        return out

    @property
    def devices(self) -> int:
        """How many devices the graph runs on (the mesh it was traced on; 1 without one)."""
        return math.prod(self.gm.meta.get("mesh_shape") or (1,))

    def run_values(self, values: list, names: list | None = None) -> Any:
        """run() on the graph's tensor inputs as the caller has them (torch, or ttnn tensors read
        back or from their captured host values; `names` label them in errors). On a mesh of
        several devices every device runs on its shard of each input: one output per device."""
        names = names or ["an input"] * len(values)
        if self.devices == 1:
            return self.run([to_torch_value(v, name) for v, name in zip(values, names)])
        mesh = self.gm.meta["mesh_shape"]
        if any(isinstance(v, torch.Tensor) for v in values):
            raise InputError(f"the model runs on a {'x'.join(map(str, mesh))} mesh: give its tensor inputs as ttnn mesh "
                             f"tensors (each device takes its own shard), not torch tensors")
        per_device = [[to_torch_value(v, name, shard=d) for v, name in zip(values, names)] for d in range(self.devices)]
        return self.run_mesh(per_device, mesh)

    def run(self, inputs: list) -> Any:
        """The graph's outputs on these inputs, with buffers as a device holds them: a node read
        after a later write to its buffer reads what was written (a fused op spliced past a write
        would see it), and a read of a freed buffer is an error (a use after free)."""
        return self.run_mesh([inputs])[0]

    def run_mesh(self, per_device: list[list], mesh_shape: tuple | None = None) -> list:
        """run() on every device of a mesh in lockstep: each device runs the graph on its own
        inputs and its shard of each constant; a collective op (fusion/ccl.py) reads every
        device's operand. One list of inputs is one device (collectives are the identity)."""
        from . import ccl

        n = len(per_device)
        mesh_shape = tuple(mesh_shape) if mesh_shape is not None else (1, n)
        envs: list[dict] = [{} for _ in range(n)]
        its = [iter(inputs) for inputs in per_device]
        written: dict = {}  # buffer node -> its newest write node
        freed: dict = {}  # buffer node -> the call that freed it

        def lookup_in(env):
            def lookup(n):
                buffer = buffer_of(n)
                if buffer in freed:
                    f = freed[buffer]
                    raise UseAfterFree(f"{n.name} is read after {ttnn_ops.op_name(f.target)} "
                                       f"({f.meta.get('location', '?')}) freed its buffer")
                newest = written.get(buffer)
                if newest is not None and n < newest:  # an older version: the buffer holds the newer
                    value = env[newest]
                    if getattr(value, "shape", None) != getattr(env[n], "shape", None):
                        raise NoReference(f"{n.name} is a view of a buffer written in place by {newest.name}: "
                                          f"its value depends on whether ttnn made a view")
                    return value
                return env[n]

            return lookup

        lookups = [lookup_in(env) for env in envs]
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                spec = node.meta.get("spec")
                for env, it in zip(envs, its):
                    v = next(it)
                    if isinstance(v, torch.Tensor) and isinstance(spec, TensorSpec):
                        v = round_to(v, spec.dtype)
                    env[node] = v
            elif node.op == "get_attr":
                for d, env in enumerate(envs):
                    env[node] = self.constant(node, shard=d if n > 1 else None)
            elif node.op == "call_function":
                if ccl.is_collective(node.target):
                    outs = ccl.evaluate(node, lookups, mesh_shape, lambda v: _compute_form(v, self.compute))
                    for env, out in zip(envs, outs):
                        env[node] = self.finish(node, out)
                else:
                    for env, lookup in zip(envs, lookups):
                        env[node] = self.call(node, lookup)
                meta = node.meta
                if "writes" in meta:
                    written[buffer_of(node)] = node
                if "frees" in meta:
                    freed[buffer_of(meta["frees"])] = node
            elif node.op == "output":
                return [map_args(node.args[0], lookup) for lookup in lookups]
            else:
                raise NoReference(f"cannot evaluate {node.op} node {node.name}")
        return [None] * n


def run_reference(model_or_fused, *inputs, **kwargs):
    """Run a model (or a fused model) on the CPU with ttnn golden semantics.

    Tensor inputs are torch tensors or ttnn tensors (a device tensor's values are read back, or
    taken from its captured host value on a mock device); non-tensor arguments pass through as
    the model's constants. Returns torch tensors shaped like the model's outputs. A model traced
    on a mesh of several devices runs on every device in lockstep (collectives read every
    device's operand): its inputs must then be ttnn mesh tensors (each device takes its shard),
    and the result is one output per device, in device order.
    """
    from .api import FusedModel
    from .trace import trace

    if isinstance(model_or_fused, FusedModel):
        fused = model_or_fused
        values = fused.tensor_arguments(inputs, kwargs)
        runner = fused.reference_runner()
    else:
        if kwargs:
            raise InputError("run_reference of an unfused model takes positional inputs only")
        traced = trace(model_or_fused, list(inputs))
        values = []
        for v in inputs:
            if _is_tensor(v):
                values.append(v)
            elif isinstance(v, (list, tuple)) and v and all(_is_tensor(x) for x in v):
                values.extend(v)
        runner = ReferenceRunner(traced.graph_module)
    return runner.run_values(values)


def _is_tensor(v) -> bool:
    return isinstance(v, (torch.Tensor, ttnn.Tensor))
