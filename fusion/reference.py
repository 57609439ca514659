"""Reference semantics: run a traced graph on the CPU with ttnn's golden functions.

Each ttnn op runs as `ttnn.get_golden_function(op)` on torch tensors; a micro-op entry runs
its own `golden`. Goldens compute in float64. Two semantics:

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
import operator
from typing import Any, Callable

import torch
import torch.fx
import ttnn

from . import ttnn_ops
from .errors import InputError
from .numerics import INTEGER_DTYPES
from .specs import TensorSpec


class NoReference(Exception):
    """An op in the graph has no golden function."""


@functools.lru_cache(maxsize=None)
def _golden(target) -> Callable:
    own = getattr(target, "golden", None)
    if callable(own):
        return own
    if ttnn_ops.is_ttnn_op(target):
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


def _compute_form(value: Any) -> Any:
    # goldens run on float64 copies: every bf16/bf8/fp32 value is exact in it, so the only
    # rounding is the one applied to each result (none in exact mode), not the golden's own
    if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype is not torch.float64:
        return value.double()
    if isinstance(value, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in value):
        return type(value)(_compute_form(v) for v in value)
    return value


def to_torch_value(value: Any) -> Any:
    if isinstance(value, ttnn.Tensor):
        return ttnn.to_torch(value)
    return value


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
# keywords naming the buffer an op writes its result into: where, not what, it computes
_OUTPUT_BUFFER_KEYWORDS = ("output_tensor", "optional_output_tensor", "output_tensors", "optional_output_tensors")


class ReferenceRunner:
    """Evaluates nodes of one GraphModule; constant weights are converted to torch once.
    exact=True: exact semantics (see the module text), else rounded."""

    def __init__(self, gm: torch.fx.GraphModule | None, exact: bool = False):
        self.gm = gm
        self.exact = exact
        self._consts: dict = {}

    def constant(self, node: torch.fx.Node, owner=None) -> Any:
        if "literal" in node.meta:
            return node.meta["literal"]
        if node not in self._consts:
            holder = owner if owner is not None else self.gm
            value = node.meta.get("value")
            if value is None:
                value = getattr(holder, node.target)
            self._consts[node] = to_torch_value(value)
        return self._consts[node]

    def call(self, node: torch.fx.Node, lookup: Callable[[torch.fx.Node], Any]) -> Any:
        target = node.target
        if ttnn_ops.is_deallocate(target):
            return None
        args = map_args(node.args, lambda n: _compute_form(lookup(n)))
        kwargs = map_args(node.kwargs, lambda n: _compute_form(lookup(n)))
        if target is builtins.getattr and isinstance(args[0], torch.Tensor) and args[1] in ("shape", "padded_shape"):
            return tuple(args[0].shape)
        for k in _OUTPUT_BUFFER_KEYWORDS:
            kwargs.pop(k, None)
        fn = _golden(target)
        out = fn(*args, **kwargs)
        spec = node.meta.get("spec")
        if self.exact and not (id(target) in _CONVERSIONS or (isinstance(spec, TensorSpec) and spec.dtype in INTEGER_DTYPES)):
            return out
        if isinstance(spec, TensorSpec):
            out = round_to(out, spec.dtype)
        elif isinstance(spec, tuple) and isinstance(out, (tuple, list)):
            out = type(out)(round_to(o, s.dtype) if isinstance(s, TensorSpec) else o for o, s in zip(out, spec))
        return out

    def run(self, inputs: list) -> Any:
        env: dict = {}
        it = iter(inputs)
        lookup = env.__getitem__
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                v = next(it)
                spec = node.meta.get("spec")
                if isinstance(v, torch.Tensor) and isinstance(spec, TensorSpec):
                    v = round_to(v, spec.dtype)
                env[node] = v
            elif node.op == "get_attr":
                env[node] = self.constant(node)
            elif node.op == "call_function":
                env[node] = self.call(node, lookup)
            elif node.op == "output":
                return map_args(node.args[0], lookup)
            else:
                raise NoReference(f"cannot evaluate {node.op} node {node.name}")
        return None


def run_reference(model_or_fused, *inputs, **kwargs):
    """Run a model (or a fused model) on the CPU with ttnn golden semantics.

    Tensor inputs are torch tensors (or ttnn host tensors); non-tensor arguments pass through
    as the model's constants. Returns torch tensors shaped like the model's outputs.
    """
    from .api import FusedModel
    from .trace import trace

    if isinstance(model_or_fused, FusedModel):
        fused = model_or_fused
        tensors = fused.tensor_arguments(inputs, kwargs)
        return fused.reference_runner().run(tensors)
    if kwargs:
        raise InputError("run_reference of an unfused model takes positional inputs only")
    traced = trace(model_or_fused, list(inputs))
    tensors = []
    for v in inputs:
        if _is_tensor(v):
            tensors.append(to_torch_value(v))
        elif isinstance(v, (list, tuple)) and v and all(_is_tensor(x) for x in v):
            tensors.extend(to_torch_value(x) for x in v)
    return ReferenceRunner(traced.graph_module).run(tensors)


def _is_tensor(v) -> bool:
    return isinstance(v, (torch.Tensor, ttnn.Tensor))
