"""What each keyword of a ttnn op means to a fusion: one table for every pattern.

A pattern is the unfused code as its author wrote it; real model code passes more keywords
than any pattern spells (`memory_config=skip_cfg`, `compute_kernel_config=hifi2`,
`program_config=pc`). Each keyword is one of:

* MEANING: it changes what is computed (epsilon, activation, transpose, dims, ...). The graph's
  value must equal the pattern's literal or be a capture with its constraint; a different value is
  a near miss, reported with both values.
* PLACEMENT: it says where or how the same values are computed (memory_config, program_config,
  compute_kernel_config, dtype, core_grid, queue or sub-device, CCL links). A pattern that leaves
  it at its default matches any value; the matched value is passed through to the replacement call
  that produces the same value (fusion/placement_pass.py), or the rewrite is refused, naming the
  keyword and value, when no replacement call can honour it.
* TENSOR: an operand (a tensor or an optional tensor input); compared structurally.
* OUTPUT: a buffer the op writes (`output_tensor=`): data flow, never passed through silently.

Every keyword of every op the built-in catalog calls is classified here (a test enumerates them);
an op outside the table gets the classification by name below, MEANING when in doubt.
"""
from __future__ import annotations

from typing import Any

from . import ttnn_ops

MEANING, PLACEMENT, TENSOR, OUTPUT = "meaning", "placement", "tensor", "output"

# by name, for every op: these never change the values an op computes
_PLACEMENT_NAMES = frozenset({
    "memory_config", "program_config", "compute_kernel_config", "dtype", "output_dtype", "core_grid", "queue_id",
    "sub_core_grids", "sub_device_id", "subdevice_id", "num_links", "topology",
})
# program_config carries one meaning of its own: a matmul config's fused_activation
_TENSOR_NAMES = frozenset({
    "input_tensor", "input_tensor_a", "input_tensor_b", "input_b", "input_a", "input_c", "tensor", "weight", "bias",
    "residual_input_tensor", "recip_tensor", "other",
})
_OUTPUT_NAMES = frozenset({"output_tensor", "optional_output_tensor", "output_tensors", "optional_output_tensors"})

# per op, where the op's keyword means something else than the name says (or is not covered above)
_PER_OP: dict[str, dict[str, str]] = {
    # the dtype a typecast produces is its meaning, not a placement
    "ttnn.typecast": {"dtype": MEANING, "output_dtype": MEANING, "input_dtype": MEANING},
    "ttnn.to_dtype": {"dtype": MEANING},
    # to_layout and to_memory_config exist to change these: their dtype converts values
    "ttnn.to_layout": {"layout": MEANING, "dtype": MEANING, "pad_value": MEANING},
    "ttnn.to_memory_config": {"dtype": MEANING},
    # the value a reduction's output has in a layout other than TILE
    "ttnn.mean": {"output_layout": MEANING},
    "ttnn.sum": {"output_layout": MEANING},
}


def kind(target: Any, keyword: str) -> str:
    """MEANING, PLACEMENT, TENSOR or OUTPUT for `keyword` of `target`."""
    per = _PER_OP.get(ttnn_ops.op_name(target))
    if per and keyword in per:
        return per[keyword]
    if keyword in _OUTPUT_NAMES:
        return OUTPUT
    if keyword in _TENSOR_NAMES:
        return TENSOR
    if keyword in _PLACEMENT_NAMES:
        return PLACEMENT
    return MEANING


def carried(target: Any, keyword: str, carry_meaning: bool = False) -> bool:
    """Whether a keyword a pattern leaves at its default matches any constant (to be passed through
    to the replacement): placements always; meanings too in a pattern that re-emits the matched op
    with all its keywords (Pattern(carry=True): a reshard folded into its producer)."""
    k = kind(target, keyword)
    return k == PLACEMENT or (carry_meaning and k == MEANING)


def placement_means(target: Any, keyword: str, value: Any) -> str | None:
    """The meaning a placement value carries, or None: a matmul program config with a fused
    activation computes the activation too; a sharded norm config with inplace=True writes its
    input."""
    if keyword == "program_config" and getattr(value, "fused_activation", None) is not None:
        return f"its fused_activation ({value.fused_activation})"
    if getattr(value, "inplace", False):  # a norm config that writes its input: a memory effect
        return "inplace=True (the op overwrites its input)"
    return None


def table(targets) -> dict[str, dict[str, str]]:
    """{op name: {keyword: kind}} for these ops (the documented table, and what tests enumerate)."""
    out = {}
    for t in targets:
        names: list[str] = []
        for ov in ttnn_ops.overloads(t):
            names += [n for n in ov.names if n not in names]
        out[ttnn_ops.op_name(t)] = {k: kind(t, k) for k in names}
    return out


def describe(value: Any) -> str:
    """A placement value as an author reads it (a compute kernel config's fidelity, a memory
    config's layout and buffer), short enough for a refusal line."""
    fidelity = getattr(value, "math_fidelity", None)
    if fidelity is not None:
        parts = [str(fidelity).split(".")[-1]]
        for flag in ("fp32_dest_acc_en", "packer_l1_acc", "math_approx_mode"):
            if getattr(value, flag, False):
                parts.append(flag)
        return ", ".join(parts)
    layout = getattr(value, "memory_layout", None)
    if layout is not None:
        buf = str(getattr(value, "buffer_type", "")).split(".")[-1]
        return f"{str(layout).split('.')[-1]} {buf}".strip()
    text = repr(value)
    return text if len(text) <= 60 else type(value).__name__


# placements of a value the fused program no longer writes: nothing depends on where it lived
_DROPPABLE = frozenset({"memory_config", "program_config", "core_grid", "sub_core_grids", "queue_id", "sub_device_id",
                        "subdevice_id", "num_links", "topology"})


class PlacementRefused(Exception):
    """The replacement cannot honour a placement keyword the matched code passes."""


def accepts(target: Any, keyword: str) -> bool:
    return any(keyword in ov.names for ov in ttnn_ops.overloads(target))


def plan(spelling, placement: dict, calls: list, outputs: list, description: str) -> dict:
    """Where each matched placement keyword goes in the replacement: {(op name, n-th call of that
    op): {keyword: value}}. `calls` are the replacement's call nodes in order, `outputs` its output
    nodes. A keyword goes to the replacement call that produces the same output, else to the one
    replacement call of the same op; a placement of an intermediate the replacement no longer
    writes is dropped (dtype too: it only rounds, and verification measures the difference);
    anything else raises PlacementRefused with the keyword and value."""
    out: dict = {}
    def order(item):  # outputs last: where an intermediate and an output place one call, the output's value wins
        (ci, kw), _v = item
        return (spelling.calls[ci].node in spelling.outputs, ci, kw)

    for (ci, kw), value in sorted(placement.items(), key=order):
        pn = spelling.calls[ci].node
        op = ttnn_ops.op_name(pn.target)
        target = None
        if pn in spelling.outputs:
            produced = outputs[spelling.outputs.index(pn)]
            if getattr(produced, "op", None) == "call_function" and accepts(produced.target, kw):
                target = produced
        if target is None:
            same = [n for n in calls if n.target is pn.target]
            if len(same) == 1:
                target = same[0]
        placed = kind(pn.target, kw) == PLACEMENT
        intermediate = pn not in spelling.outputs
        if target is None:
            if intermediate and placed and (kw in _DROPPABLE or kw == "dtype"):
                continue
            raise PlacementRefused(f"{op} passes {kw}={describe(value)}, which the fused op ({description}) "
                                   f"cannot take")
        given = target.kwargs.get(kw)
        if given is not None and given is not value and repr(given) != repr(value):
            if intermediate and placed and kw in _DROPPABLE:
                continue  # the fused op places the value itself (a reshard folded into its producer)
            raise PlacementRefused(f"{op} passes {kw}={describe(value)}, but the fused op sets "
                                   f"{kw}={describe(given)}")
        nth = sum(1 for n in calls[:calls.index(target)] if n.target is target.target)
        out.setdefault((ttnn_ops.op_name(target.target), nth), {})[kw] = value
    return out


def hook(plan: dict, inner=None):
    """A trace call hook applying `plan` ({(op name, n-th call of it): keywords}) to the
    replacement's calls as they are recorded."""
    count: dict = {}

    def apply(op, args, kwargs):
        name = ttnn_ops.op_name(op)
        i = count[name] = count.get(name, -1) + 1
        extra = plan.get((name, i))
        if extra:
            kwargs = {**kwargs, **extra}
        return inner(op, args, kwargs) if inner is not None else (op, args, kwargs)

    return apply
