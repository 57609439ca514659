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
        if getattr(fn, "reads_outputs", False):  # an op that writes only some devices' shard of its output
            b["_outputs"] = {k: map_args(v, lambda n: compute_form(lookup(n))) for k, v in bound.items()
                             if k in OUTPUT_KEYWORDS and v is not None}
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


# ---------------------------------------------------------------------------------------------
# MoE all-to-all: dispatch tokens to the devices holding their experts, combine the experts'
# outputs back to the tokens' home devices.
#
# Sources: the ops' docstrings (ttnn 0.81.1), their whole-mesh goldens
# (ttnn.get_golden_function), and tt-metal's kernels
# (ttnn/cpp/ttnn/operations/ccl/all_to_all_dispatch/device/kernels/dataflow/writer_all_to_all_dispatch.cpp,
# all_to_all_combine/device/kernels/dataflow/{reader,writer}_all_to_all_combine.cpp) and tests
# (tests/ttnn/unit_tests/operations/ccl/test_all_to_all_{dispatch,combine}_t3000.py). The kernels
# work on pages (rows of H values) indexed by a flat token index: a device's T = B*S local tokens
# are rows p*T .. p*T+T-1 of the line's gathered token list, p its position in the line. Output
# shapes are those ttnn 0.81.1 gives (checked on the mock T3K).
#
# The expert mapping is [1, 1, E, D], one-hot over the mesh's D devices (row-major global index);
# a device sends only to devices of its own line (`cluster_axis`), so an expert held off the line
# gets no tokens from it and contributes nothing to its tokens' combine (the other lines handle
# it: gpt-oss sums the lines' partial outputs with an all_reduce over the other axis).
#
# Rows a device never receives hold whatever the buffer held before (the docstrings' "placeholder
# rows populated with garbage"); here they are zeros.
# ---------------------------------------------------------------------------------------------


def _mapping(b: dict, n_devices: int) -> torch.Tensor:
    """The one-hot expert -> device table, [E, D], bool."""
    m = b["expert_mapping_tensor"]
    m = m.reshape(-1, m.shape[-1])
    if m.shape[-1] != n_devices:
        raise ValueError(f"expert mapping has {m.shape[-1]} device columns; the mesh has {n_devices} devices")
    return m != 0


def _expert_ids(idx: torch.Tensor, n_experts: int) -> torch.Tensor:
    ids = idx.to(torch.int64)
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n_experts):
        raise ValueError(f"expert index out of range [0, {n_experts}) of the expert mapping: "
                         f"{int(ids.min())}..{int(ids.max())}")
    return ids


@collective("ttnn.all_to_all_dispatch")
def _all_to_all_dispatch(per_device: list[dict], mesh_shape: tuple) -> list:
    """Per device (tokens [1, B*D[A], S, H] (output_concat_dim 1) or [1, B, S*D[A], H] (2),
    metadata of the same form with K for H). Input [B, 1, S, H] and indices [B, 1, S, K] per
    device (ttnn's output shape reads B from dim 0 and S from dim 2). Every device of a line gets
    the line's indices all-gathered (metadata, line order); a token t of the device at line
    position p lands at flat row p*T + t (T = B*S) of each line device holding one of its top-k
    experts (writer_all_to_all_dispatch.cpp: global_token = local_token + tokens_per_device *
    dispatch_index), whatever the concat dim (it only shapes the output)."""
    n = len(per_device)
    out: list = [None] * n
    b0 = per_device[0]
    axis = b0.get("cluster_axis")
    concat_dim = b0.get("output_concat_dim", 1)
    if concat_dim not in (1, 2):
        raise ValueError(f"all_to_all_dispatch: output_concat_dim must be 1 or 2, got {concat_dim}")
    for line in lines(mesh_shape, axis):
        na = len(line)
        toks, ids, maps = [], [], []
        for d in line:
            b = per_device[d]
            x, idx = b["input_tensor"], b["expert_indices_tensor"]
            if x.dim() != 4 or idx.dim() != 4:
                raise ValueError("all_to_all_dispatch: input and indices must be rank 4")
            if x.shape[1] != 1:
                raise NotImplementedError(f"all_to_all_dispatch of input {list(x.shape)}: dim 1 must be 1 "
                                          f"(ttnn's output shape [1, B*D, S, H] reads B, S from dims 0, 2)")
            if tuple(x.shape[:-1]) != tuple(idx.shape[:-1]):
                raise ValueError(f"all_to_all_dispatch: input {list(x.shape)} and indices {list(idx.shape)} "
                                 f"differ before the last dim")
            mapping = _mapping(b, n)
            toks.append(x.reshape(-1, x.shape[-1]))
            ids.append(_expert_ids(idx.reshape(-1, idx.shape[-1]), mapping.shape[0]))
            maps.append(mapping)
        B, _, S, H = per_device[line[0]]["input_tensor"].shape
        K = ids[0].shape[-1]
        T = B * S
        metadata = torch.cat(ids, dim=0)  # [na*T, K]: the indices all-gathered along the line
        # per source: [T, D] whether a token selects an expert held by each device (sender's mapping)
        targets = [maps[p][ids[p]].any(dim=1) for p in range(na)]
        shape = (1, B * na, S) if concat_dim == 1 else (1, B, S * na)
        for d in line:
            tokens = torch.zeros((na * T, H), dtype=toks[0].dtype)  # never-received rows: zeros (garbage on hw)
            for p in range(na):
                sel = targets[p][:, d]
                rows = tokens[p * T:(p + 1) * T]
                rows[sel] = toks[p][sel]
            meta = metadata.to(per_device[d]["expert_indices_tensor"].dtype)
            out[d] = (tokens.reshape(*shape, H), meta.reshape(*shape, K).clone())
    return out


_all_to_all_dispatch.single = lambda b: _all_to_all_dispatch([b], (1, 1))[0]


@collective("ttnn.all_to_all_combine")
def _all_to_all_combine(per_device: list[dict], mesh_shape: tuple) -> list:
    """Per device [K, N/D[A] ...] the expert outputs of its own tokens, in top-k slot order.

    Each device d of a line reads its metadata ([1, B, S, K]: the line's N = B*S tokens, as
    dispatch made it) and input ([E_local, B, S, H]: each local expert's output for every one of
    the N tokens; [1, B, S, H] with local_reduce), its local experts being the mapping rows with a
    1 in its column, in expert order (reader_all_to_all_combine.cpp). For each token t and each
    local expert e (in that order) that t selected, the first top-k slot k holding e gets row
    (e's position, t) of d's input (with local_reduce: the first such expert only, row t), written
    to the line device at position t // T_local, at row k*T_local + t % T_local of its
    [K, T_local, H] output (writer_all_to_all_combine.cpp), T_local = N / D[A]. Output shape
    [K, B/D[A], S, H] (output_shard_dim 1) or [K, B, S/D[A], H] (2). Slots no device writes (an
    expert held off the line, a repeated expert's later slot) are zeros (garbage on hardware). An
    expert held by two devices of a line writes its slot twice (a race on hardware): here the
    later device in line order wins."""
    n = len(per_device)
    out: list = [None] * n
    b0 = per_device[0]
    axis = b0.get("cluster_axis")
    shard_dim = b0.get("output_shard_dim", 1)
    if shard_dim not in (1, 2):
        raise ValueError(f"all_to_all_combine: output_shard_dim must be 1 or 2, got {shard_dim}")
    local_reduce = bool(b0.get("local_reduce", False))
    for line in lines(mesh_shape, axis):
        na = len(line)
        meta0 = per_device[line[0]]["expert_metadata_tensor"]
        if meta0.dim() != 4:
            raise ValueError("all_to_all_combine: metadata must be rank 4")
        _, B, S, K = meta0.shape
        N = B * S
        if (B if shard_dim == 1 else S) % na:
            raise ValueError(f"all_to_all_combine: metadata dim {shard_dim} ({meta0.shape[shard_dim]}) is not "
                             f"divisible by the {na} devices of the line")
        T = N // na
        H = per_device[line[0]]["input_tensor"].shape[-1]
        results = {d: torch.zeros((K, T, H), dtype=per_device[line[0]]["input_tensor"].dtype) for d in line}
        for d in line:
            b = per_device[d]
            mapping = _mapping(b, n)
            local = torch.nonzero(mapping[:, d], as_tuple=False).flatten().tolist()
            x = b["input_tensor"]
            if x.numel() % (N * H):
                raise ValueError(f"all_to_all_combine: input {list(x.shape)} is not [E_local, {B}, {S}, {H}]")
            x = x.reshape(-1, N, H)
            if x.shape[0] != (1 if local_reduce else len(local)):
                raise ValueError(f"all_to_all_combine: input {list(b['input_tensor'].shape)} has {x.shape[0]} "
                                 f"expert rows; device {d} holds {len(local)} experts")
            meta = _expert_ids(b["expert_metadata_tensor"].reshape(N, K), mapping.shape[0])
            for t in range(N):
                home = results[line[t // T]]
                chosen = meta[t].tolist()
                for j, e in enumerate(local):
                    if e not in chosen:
                        continue
                    k = chosen.index(e)  # the first slot holding e
                    home[k, t % T] = x[0 if local_reduce else j, t]
                    if local_reduce:
                        break
        shape = (K, B // na, S) if shard_dim == 1 else (K, B, S // na)
        for d in line:
            out[d] = results[d].reshape(*shape, H)
    return out


_all_to_all_combine.single = lambda b: _all_to_all_combine([b], (1, 1))[0]


def _mesh_index(coord, mesh_shape: tuple) -> int:
    rows, cols = (tuple(mesh_shape) + (1,))[:2] if len(mesh_shape) == 1 else tuple(mesh_shape)[-2:]
    if hasattr(coord, "dims"):
        coord = tuple(coord[i] for i in range(coord.dims()))
    r, c = (0, coord[0]) if len(coord) == 1 else coord[-2:]
    if not (0 <= r < rows and 0 <= c < cols):
        raise ValueError(f"mesh coordinate {tuple(coord)} outside a {rows}x{cols} mesh")
    return r * cols + c


@collective("ttnn.point_to_point")
def _point_to_point(per_device: list[dict], mesh_shape: tuple) -> list:
    """The receiver's shard of the output is the sender's input shard (docstring; the golden
    `_golden_function_point_to_point`). Every other device's shard: with `output_tensor`, what
    that buffer held (the op writes only the receiver's shard; mesh_scatter passes the input as
    its own output, so the other devices keep their input); without, a fresh tensor whose other
    shards are never written: zeros (garbage on hardware)."""
    b0 = per_device[0]
    sender = _mesh_index(b0["sender_coord"], mesh_shape)
    receiver = _mesh_index(b0["receiver_coord"], mesh_shape)
    out = []
    for d, b in enumerate(per_device):
        if d == receiver:
            out.append(per_device[sender]["input_tensor"].clone())
            continue
        prior = b.get("_outputs", {}).get("output_tensor")
        out.append(prior.clone() if isinstance(prior, torch.Tensor) else torch.zeros_like(b["input_tensor"]))
    return out


_point_to_point.reads_outputs = True


@collective("ttnn.mesh_partition")
def _mesh_partition(per_device, mesh_shape):
    """Inverse of all_gather: the device at position p of its line keeps chunk p of its own input
    along dim (cluster_axis None: the whole mesh, row-major, is one line)."""
    out = [None] * len(per_device)
    for line in lines(mesh_shape, per_device[0].get("cluster_axis")):
        for p, d in enumerate(line):
            x = _input(per_device[d])
            out[d] = torch.chunk(x, len(line), dim=_dim(per_device[d], x))[p]
    return out


@collective("ttnn.experimental.all_to_all_async_generic")
def _all_to_all_async_generic(per_device, mesh_shape):
    """Each device of a line splits its input along out_dim into one chunk per line device, sends
    chunk j to device j; device j concatenates what it receives along in_dim in sender order
    (tt-metal's DeepSeek-V3 test reference, test_ds_mla_all_to_all_before_flash_mla.py; output
    shapes as ttnn 0.81.1 gives them: [1, 32, 16, 576] in_dim 2, out_dim 1 -> [1, 4, 128, 576])."""
    out = [None] * len(per_device)
    for line in lines(mesh_shape, per_device[0].get("cluster_axis")):
        b = per_device[line[0]]
        x0 = _input(b)
        in_dim, out_dim = int(b["in_dim"]) % x0.dim(), int(b["out_dim"]) % x0.dim()
        chunks = [torch.chunk(_input(per_device[d]), len(line), dim=out_dim) for d in line]
        for j, d in enumerate(line):
            out[d] = torch.cat([chunks[i][j] for i in range(len(line))], dim=in_dim)
    return out
