"""Memory effects: which buffers a ttnn call writes or frees, and which rewrites they forbid.

The tracer turns every write into data flow (fusion/trace.py): an in-place op (`ttnn.add_`),
an `output_tensor=` / `optional_output_tensor=` write and `ttnn.copy(src, dst)` record a node
whose value is the written buffer's new version, and every later reader in the model reads that
node. Each tensor node also carries the buffer it lives in (`meta["buffer"]`): its own for a
fresh result, its source's for a result ttnn may return as a view or as the input itself
(reshape, squeeze, a to_layout to the layout it already has, ...), the destination's for a write.

What that leaves for the rewriter: a replacement is spliced at one place and reads its inputs
there. `check` refuses a match that would move a read of a buffer across a write or free of it
(or places the replacement before the first matched call, where every input still holds the
value the original read), and a match that itself writes a buffer it does not own.
"""
from __future__ import annotations

from typing import Any

import torch.fx
import ttnn

from . import ttnn_ops
from .specs import TensorSpec

# parameters that name a buffer an op writes its result into, whatever the op
OUTPUT_KEYWORDS = ("output_tensor", "optional_output_tensor", "output_tensors", "optional_output_tensors",
                   "persistent_output_buffer", "persistent_output_buffers", "persistent_output_tensor",
                   "persistent_intermediate_buffer", "out", "param_out", "output",
                   # backward ops' optional gradient outputs
                   "input_grad", "other_grad", "weight_grad", "bias_grad", "input_a_grad", "input_b_grad")

# ops that write some of their inputs in place (by ttnn's parameter names), beyond the `*_` ops
# (which write their first argument) and the output-buffer parameters above
_WRITES_INPUTS = {
    "ttnn.copy": ("input_b",),
    "ttnn.assign": ("input_b",),
    "ttnn.copy_host_to_device_tensor": ("device_tensor",),
    "ttnn.copy_device_to_host_tensor": ("host_tensor",),
    "ttnn.update_cache": ("cache",),
    "ttnn.fill_cache": ("cache_tensor",),
    "ttnn.experimental.paged_update_cache": ("cache_tensor",),
    "ttnn.experimental.paged_fill_cache": ("cache_tensor",),
    "ttnn.experimental.paged_fused_update_cache": ("cache_tensor1", "cache_tensor2"),
    "ttnn.experimental.indexed_fused_update_cache": ("cache_tensor1", "cache_tensor2"),
    # writes its slice into the preallocated interleaved tensor (found by the corpus's dead-call check)
    "ttnn.sharded_to_interleaved_partial": ("cache_tensor",),
}

# ops that write inputs only when a flag says so: op name -> (flag parameter, written parameters)
_WRITES_INPUTS_IF = {
    "ttnn.batch_norm": ("training", ("running_mean", "running_var")),  # running statistics, in place
}

_REALLOCATE = getattr(ttnn, "reallocate", None)
_MOVE = getattr(ttnn, "move", None)  # like reallocate: the input's buffer is given up
_DEALLOCATE = ttnn.deallocate

# results that may be a view of (or be) their first input: ttnn decides at run time
_MAY_VIEW = frozenset(id(op) for op in (getattr(ttnn, n, None) for n in ("reshape", "view", "squeeze", "unsqueeze"))
                      if op is not None)
# results that are their input itself when nothing changes (same layout / memory config / dtype)
_SAME_WHEN_UNCHANGED = frozenset(
    id(op) for op in (getattr(ttnn, n, None) for n in ("to_layout", "to_memory_config", "typecast", "to_dtype"))
    if op is not None)


def _is_inplace(target: Any) -> bool:
    """ttnn's in-place ops (`add_`, `multiply_`, `attention_softmax_`, ...) write their first tensor argument."""
    name = getattr(target, "python_fully_qualified_name", "") or ""
    return ttnn_ops.is_ttnn_op(target) and name.endswith("_") and not name.endswith("__")


def _first_arg(target, args: tuple, kwargs: dict):
    if args:
        return args[0]
    bound = ttnn_ops.bind(target, args, kwargs)
    if bound:
        return next(iter(bound.values()))
    return None


def _flat(value) -> list:
    if isinstance(value, (list, tuple)):
        return [v for x in value for v in _flat(x)]
    return [] if value is None else [value]


def written(target, args: tuple, kwargs: dict) -> list:
    """The argument values (proxies, nodes or tensors) a call writes in place."""
    out = []
    op = getattr(target, "python_fully_qualified_name", None)
    names = _WRITES_INPUTS.get(op, ())
    conditional = _WRITES_INPUTS_IF.get(op)
    # bound by ttnn's parameter names when a written parameter may be among the arguments (an
    # output buffer is a keyword, or given positionally after the first two operands)
    if names or conditional or len(args) > 2 or any(k in kwargs for k in OUTPUT_KEYWORDS):
        bound = ttnn_ops.bind(target, args, kwargs) or kwargs
        if conditional and bound.get(conditional[0]):
            names = (*names, *conditional[1])
        for k in (*names, *OUTPUT_KEYWORDS):
            if k in bound:
                out += _flat(bound[k])
    if _is_inplace(target):
        out += _flat(_first_arg(target, args, kwargs))
    return out


def freed(target, args: tuple, kwargs: dict) -> list:
    """The argument values a call frees (deallocate; reallocate moves its input and frees it)."""
    if target is _DEALLOCATE or (target is not None and (target is _REALLOCATE or target is _MOVE)):
        return _flat(_first_arg(target, args, kwargs))
    return []


def view_source(node: torch.fx.Node) -> torch.fx.Node | None:
    """The input whose buffer `node`'s result may share (a view, or the input itself), if any."""
    tid = id(node.target)
    if tid not in _MAY_VIEW and tid not in _SAME_WHEN_UNCHANGED:
        return None
    src = node.args[0] if node.args else None
    if not isinstance(src, torch.fx.Node):
        return None
    if tid in _SAME_WHEN_UNCHANGED:
        a, b = src.meta.get("spec"), node.meta.get("spec")
        if isinstance(a, TensorSpec) and isinstance(b, TensorSpec) and a != b:
            return None  # converted: a new buffer
    return src


def buffer_of(node: torch.fx.Node) -> torch.fx.Node:
    """The node that stands for the buffer `node`'s value lives in."""
    return node.meta.get("buffer", node)


def mark(graph: torch.fx.Graph) -> None:
    """Record on the graph that it holds writes or frees (rewrite rounds then index them)."""
    graph._ttfuse_effects = True


def has_effects(graph: torch.fx.Graph) -> bool:
    return getattr(graph, "_ttfuse_effects", False)


class Index:
    """Writes and frees of each buffer in one graph (built once per rewrite round)."""

    def __init__(self, graph: torch.fx.Graph):
        self.killers: dict = {}  # buffer node -> write, reallocate and deallocate nodes, graph order
        self.stale: set = set()  # nodes that read a buffer version another write already replaced
        for n in graph.nodes:
            meta = n.meta
            dest = meta.get("writes", meta.get("frees"))
            if dest is not None:
                self.killers.setdefault(buffer_of(dest), []).append(n)
            if "stale_read" in meta:
                self.stale.add(n)


def check(c, index: Index) -> str | None:
    """Why candidate `c` may not be spliced at its last matched call, or None. Sets
    `c.placement = "first"` when splicing before its first matched call keeps every read."""
    matched = set(c.nodes)
    owned = {n for n in c.nodes if buffer_of(n) is n}  # buffers the match allocates
    for n in c.nodes:
        if n in index.stale:
            src, writer = n.meta["stale_read"]
            return (f"{ttnn_ops.op_name(n.target)} at {n.meta.get('location', '?')} reads {src.name}, a view of a buffer "
                    f"written in place at {writer.meta.get('location', '?')}: its value depends on whether ttnn made a view")
        for what in ("writes", "frees"):
            dest = n.meta.get(what)
            if dest is not None and buffer_of(dest) not in owned:
                return (f"{ttnn_ops.op_name(n.target)} at {n.meta.get('location', '?')} {what} {dest.name}, a buffer "
                        f"from outside the match: the replacement would not")
    crossing = []
    for name, g in c.inputs.items():
        for k in index.killers.get(buffer_of(g), ()):
            if k in matched or not c.first < k < c.last:
                continue
            if k.target is _DEALLOCATE and k.meta.get("frees") is g:
                continue  # the input's own deallocate: the splicer moves it after the fused op
            crossing.append((name, k))
    if not crossing:
        return None
    if all(g < c.first for g in c.inputs.values()):
        c.placement = "first"  # every input is defined before the match: read them there
        return None
    name, k = crossing[0]
    what = "frees" if k.meta.get("writes") is None else "writes"
    return (f"{ttnn_ops.op_name(k.target)} at {k.meta.get('location', '?')} {what} input {name} between the matched calls "
            f"(and an input is computed after the first of them): the fused op would read the new value")


def replacement_problem(graph: torch.fx.Graph) -> str | None:
    """Why a replacement graph may not stand in for a match: it writes or frees a buffer it did
    not allocate (an input's, which the original left alone), or None."""
    owned = {n for n in graph.nodes if n.op == "call_function" and buffer_of(n) is n}
    for n in graph.nodes:
        for what in ("writes", "frees"):
            dest = n.meta.get(what)
            if dest is not None and buffer_of(dest) not in owned:
                src = buffer_of(dest)
                name = src.target if src.op == "placeholder" else src.name
                return f"the replacement {what} {name} ({ttnn_ops.op_name(n.target)}), which the original leaves alone"
    return None


def identity_problem(c, r_outputs: list, index: "Index | None", graph_outputs: set) -> tuple[str | None, list]:
    """(why not, deallocates to drop) for a replacement that returns its input itself (a chain
    removed). The chain gave its output a buffer of its own; without it, input and output are one
    buffer, so a later write or free of either would reach both, and returning it (or the input)
    from the program would hand the caller one buffer twice. One case is a hand-over, not a hazard:
    the input is read by the chain alone and freed right after (`y = to_layout(x); deallocate(x)`, as
    real code writes it); the output then keeps the input's buffer, and that deallocate goes.
    `graph_outputs`: the buffers the program returns."""
    drop: list = []
    for out, rout in zip(c.outputs, r_outputs):
        if getattr(rout, "op", None) != "placeholder":
            continue
        src = c.inputs[rout.target]
        src_buf, out_buf = buffer_of(src), buffer_of(out)
        if src_buf is out_buf:
            continue  # the chain's result may already be a view of its input (a reshape): one buffer as before
        src_killers = [k for k in index.killers.get(src_buf, ()) if k > c.first] if index is not None else []
        out_killers = [k for k in index.killers.get(out_buf, ()) if k > c.first] if index is not None else []
        handed_over = (src_buf is src and len(src_killers) == 1 and src_killers[0].target is _DEALLOCATE
                       and src_killers[0] > c.last and src_killers[0].meta.get("frees") is src
                       and src_buf not in graph_outputs
                       and all(u is src_killers[0] or u in c.nodes for u in src.users))
        if handed_over:
            drop.append(src_killers[0])  # the buffer is the output's from here on
            continue
        later = src_killers + out_killers
        if later:
            k = min(later)
            what = "frees" if k.meta.get("writes") is None else "writes"
            whose = "input" if k in src_killers else "output"
            return (f"{ttnn_ops.op_name(k.target)} at {k.meta.get('location', '?')} {what} the chain's {whose}: "
                    f"without the chain its input and output would be one buffer"), []
        if out_buf in graph_outputs and (src.op == "placeholder" or src_buf in graph_outputs):
            return ("the chain's result is returned and its input is the caller's tensor or returned too: without "
                    "the chain the caller would get one buffer twice"), []
    return None, drop


def returned_buffers(graph: torch.fx.Graph) -> set:
    """The buffers of the values a graph returns."""
    out = next((n for n in reversed(graph.nodes) if n.op == "output"), None)
    return {buffer_of(n) for n in (out.all_input_nodes if out is not None else ())}
