"""Collective (CCL) ops in reference semantics: what each device of a mesh holds after the op.

A traced mesh graph is one program every device runs on its own shards (SPMD). Every other op
is evaluated per device; a collective reads every device's operand, so the reference runner
(`ReferenceRunner.run_mesh`) evaluates the graph on all devices in lockstep and calls these at
collective nodes. Devices are numbered row-major over the mesh shape, as ttnn numbers them;
`cluster_axis` selects the line of devices an op works along (0: a column, the devices that
share a column index; 1: a row); without it the whole mesh is one line. On a one-device mesh
each collective is the identity (its single-device meaning).
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from . import ttnn_ops

_SEMANTICS: dict[str, Callable] = {}


def collective(*names: str):
    def register(fn: Callable) -> Callable:
        for n in names:
            _SEMANTICS[n] = fn
        return fn

    return register


def is_collective(target: Any) -> bool:
    return ttnn_ops.op_name(target) in _SEMANTICS


def lines(mesh_shape: tuple, cluster_axis: int | None) -> list[list[int]]:
    """The groups of device indices an op on `cluster_axis` works within."""
    rows, cols = (mesh_shape + (1,))[:2] if len(mesh_shape) == 1 else mesh_shape[-2:]
    if cluster_axis is None:
        return [list(range(rows * cols))]
    if cluster_axis == 0:
        return [[r * cols + c for r in range(rows)] for c in range(cols)]
    if cluster_axis == 1:
        return [[r * cols + c for c in range(cols)] for r in range(rows)]
    raise ValueError(f"cluster_axis {cluster_axis} on a {rows}x{cols} mesh")


def evaluate(node, lookups: list, mesh_shape: tuple, compute_form: Callable) -> list:
    """Per device, the collective's result (before rounding)."""
    from .reference import OUTPUT_KEYWORDS, map_args

    fn = _SEMANTICS[ttnn_ops.op_name(node.target)]
    bound = ttnn_ops.bind(node.target, node.args, node.kwargs) or dict(node.kwargs)
    per_device = []
    for lookup in lookups:
        b = {k: map_args(v, lambda n: compute_form(lookup(n))) for k, v in bound.items() if k not in OUTPUT_KEYWORDS}
        per_device.append(b)
    if len(lookups) == 1:
        return [fn.single(per_device[0]) if hasattr(fn, "single") else _first_tensor(per_device[0])]
    return fn(per_device, mesh_shape)


def _first_tensor(b: dict) -> Any:
    for v in b.values():
        if isinstance(v, torch.Tensor):
            return v
    raise ValueError("no tensor operand")


def _input(b: dict) -> torch.Tensor:
    return b.get("input_tensor", _first_tensor(b))


def _dim(b: dict, x: torch.Tensor) -> int:
    d = b["dim"]
    return d + x.dim() if d < 0 else d


@collective("ttnn.all_gather", "ttnn.experimental.all_gather_async")
def _all_gather(per_device: list[dict], mesh_shape: tuple) -> list:
    out = [None] * len(per_device)
    for line in lines(mesh_shape, per_device[0].get("cluster_axis")):
        xs = [_input(per_device[d]) for d in line]
        gathered = torch.cat(xs, dim=_dim(per_device[line[0]], xs[0]))
        for d in line:
            out[d] = gathered
    return out


@collective("ttnn.reduce_scatter", "ttnn.experimental.reduce_scatter_minimal_async")
def _reduce_scatter(per_device: list[dict], mesh_shape: tuple) -> list:
    out = [None] * len(per_device)
    for line in lines(mesh_shape, per_device[0].get("cluster_axis")):
        xs = [_input(per_device[d]) for d in line]
        total = torch.stack(xs).sum(0)
        parts = torch.chunk(total, len(line), dim=_dim(per_device[line[0]], xs[0]))
        for i, d in enumerate(line):
            out[d] = parts[i]
    return out


@collective("ttnn.all_reduce", "ttnn.experimental.all_reduce_async")
def _all_reduce(per_device: list[dict], mesh_shape: tuple) -> list:
    out = [None] * len(per_device)
    for line in lines(mesh_shape, per_device[0].get("cluster_axis")):
        total = torch.stack([_input(per_device[d]) for d in line]).sum(0)
        for d in line:
            out[d] = total
    return out
