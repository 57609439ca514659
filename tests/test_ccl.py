"""Per-device semantics of the collective ops (fusion/ccl.py), on small hand-checkable cases.

Pure torch: each collective takes every device's bound arguments and the mesh shape and returns
each device's output; devices are numbered row-major.
"""
import pytest
import torch

from fusion import ccl

DISPATCH = ccl._SEMANTICS["ttnn.all_to_all_dispatch"]
COMBINE = ccl._SEMANTICS["ttnn.all_to_all_combine"]


def mapping(experts: int, devices: int) -> torch.Tensor:
    """[1, 1, E, D] one-hot: expert e on device e // (E / D)."""
    per = experts // devices
    return torch.eye(devices, dtype=torch.int64).repeat_interleave(per, dim=0).reshape(1, 1, experts, devices)


def tokens(device: int, B: int, S: int, H: int) -> torch.Tensor:
    """[B, 1, S, H]; token t of device d is the row full of 100*d + t + 1."""
    t = torch.arange(B * S, dtype=torch.float64) + 100 * device + 1
    return t.reshape(B, 1, S, 1).expand(B, 1, S, H).clone()


def dispatch_args(xs, idxs, mp, **kw):
    return [dict(input_tensor=x, expert_indices_tensor=i, expert_mapping_tensor=mp, **kw) for x, i in zip(xs, idxs)]


# ------------------------------------------------------------------------------------ lines
def test_lines():
    assert ccl.lines((2, 4), 0) == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert ccl.lines((2, 4), 1) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert ccl.lines((2, 4), None) == [list(range(8))]


def test_all_gather_reduce_scatter_all_reduce_on_lines():
    xs = [torch.full((1, 1, 2, 2), float(d)) for d in range(8)]
    per = [dict(input_tensor=x, dim=3, cluster_axis=0) for x in xs]
    g = ccl._SEMANTICS["ttnn.all_gather"](per, (2, 4))
    assert g[1].shape == (1, 1, 2, 4)
    assert torch.equal(g[5], torch.cat([xs[1], xs[5]], dim=3)) and torch.equal(g[1], g[5])

    per = [dict(input_tensor=torch.arange(8.0).reshape(1, 1, 1, 8) + d, dim=3, cluster_axis=1) for d in range(8)]
    for name in ("ttnn.reduce_scatter", "ttnn.experimental.reduce_scatter_minimal_async"):
        r = ccl._SEMANTICS[name](per, (2, 4))
        assert all(o.shape == (1, 1, 1, 2) for o in r)
        row1 = sum(torch.arange(8.0) + d for d in (4, 5, 6, 7))
        assert torch.equal(r[5].flatten(), row1[2:4])  # position 1 in its row: the second chunk

    per = [dict(input_tensor=x, cluster_axis=1) for x in xs]
    a = ccl._SEMANTICS["ttnn.all_reduce"](per, (2, 4))
    assert torch.equal(a[2], torch.full((1, 1, 2, 2), 0.0 + 1 + 2 + 3))
    assert torch.equal(a[7], torch.full((1, 1, 2, 2), 4.0 + 5 + 6 + 7))


# ---------------------------------------------------------------------------------- dispatch
def test_dispatch_token_reaches_exactly_its_experts_devices():
    # 1x4 mesh, whole mesh one line; 8 experts, 2 per device; B=1, S=2 tokens per device, K=2
    mp = mapping(8, 4)
    H = 3
    xs = [tokens(d, 1, 2, H) for d in range(4)]
    idxs = [torch.tensor([[0, 1], [0, 1]]).reshape(1, 1, 2, 2) for _ in range(4)]
    idxs[2] = torch.tensor([[2, 6], [0, 1]]).reshape(1, 1, 2, 2)  # device 2's token 0 -> experts 2, 6 -> devices 1, 3
    out = DISPATCH(dispatch_args(xs, idxs, mp, cluster_axis=1, output_concat_dim=2), (1, 4))
    T = 2
    row = 2 * T + 0  # line position 2, token 0
    for d in range(4):
        toks, meta = out[d]
        assert toks.shape == (1, 1, 4 * T, H) and meta.shape == (1, 1, 4 * T, 2)
        expect = xs[2][0, 0, 0] if d in (1, 3) else torch.zeros(H, dtype=torch.float64)
        assert torch.equal(toks[0, 0, row], expect), d
        # metadata: the line's indices all-gathered, in line order
        assert torch.equal(meta.reshape(4 * T, 2), torch.cat([i.reshape(T, 2) for i in idxs]))
    # every other token chose experts 0, 1 (device 0): device 0 holds all of them, in order
    toks0 = out[0][0].reshape(4 * T, H)
    for p in range(4):
        for t in range(T):
            if (p, t) != (2, 0):
                assert torch.equal(toks0[p * T + t], xs[p].reshape(T, H)[t])
    # device 2 receives nothing: unreceived rows are zeros
    assert not out[2][0].any()


def test_dispatch_concat_dim_1_shape_and_rows():
    mp = mapping(8, 4)
    xs = [tokens(d, 2, 1, 4) for d in range(4)]           # B=2, S=1: [2, 1, 1, 4]
    idxs = [torch.tensor([[6, 7], [6, 7]]).reshape(2, 1, 1, 2) for _ in range(4)]  # all to device 3
    out = DISPATCH(dispatch_args(xs, idxs, mp, cluster_axis=1), (1, 4))
    toks, meta = out[3]
    assert toks.shape == (1, 8, 1, 4) and meta.shape == (1, 8, 1, 2)
    assert torch.equal(toks[0, :, 0], torch.cat([x.reshape(2, 4) for x in xs]))
    assert not out[0][0].any() and out[0][1].shape == (1, 8, 1, 2)


def test_dispatch_along_columns_skips_experts_off_the_line():
    # 2x4 mesh, cluster_axis 0: lines are columns {c, 4 + c}; 16 experts, 2 per device
    mp = mapping(16, 8)
    xs = [tokens(d, 1, 1, 2) for d in range(8)]
    # every token picks expert 2 (device 1, column 1) and expert 11 (device 5, column 1)
    idxs = [torch.tensor([2, 11]).reshape(1, 1, 1, 2) for _ in range(8)]
    out = DISPATCH(dispatch_args(xs, idxs, mp, cluster_axis=0, output_concat_dim=2), (2, 4))
    for d in range(8):
        toks, meta = out[d]
        assert toks.shape == (1, 1, 2, 2)
        if d in (1, 5):  # column 1 holds both experts: it gets its line's tokens from rows 0 and 1
            assert torch.equal(toks[0, 0], torch.cat([xs[1], xs[5]]).reshape(2, 2))
        else:  # other columns' experts are off their line: nothing arrives
            assert not toks.any()


def test_dispatch_single_device():
    mp = mapping(4, 1)
    x = tokens(0, 1, 3, 2)
    idx = torch.tensor([[0, 1], [1, 2], [3, 0]]).reshape(1, 1, 3, 2)
    toks, meta = DISPATCH.single(dispatch_args([x], [idx], mp)[0])
    assert torch.equal(toks, x.reshape(1, 1, 3, 2)) and torch.equal(meta, idx.reshape(1, 1, 3, 2))


def test_dispatch_rejects_out_of_range_expert():
    mp = mapping(8, 4)
    xs = [tokens(d, 1, 1, 2) for d in range(4)]
    idxs = [torch.tensor([0, 8]).reshape(1, 1, 1, 2) for _ in range(4)]
    with pytest.raises(ValueError):
        DISPATCH(dispatch_args(xs, idxs, mp, cluster_axis=1), (1, 4))


# ----------------------------------------------------------------------------------- combine
def fake_experts(dispatched, mp, device, scale=True):
    """Device `device`'s expert outputs [E_local, 1, N, H]: local expert e maps x to (e + 1) * x
    (identity when scale is False)."""
    local = torch.nonzero(mp.reshape(-1, mp.shape[-1])[:, device]).flatten().tolist()
    toks = dispatched.reshape(1, 1, -1, dispatched.shape[-1])
    return torch.cat([toks * ((e + 1) if scale else 1) for e in local], dim=0)


def run_moe(xs, idxs, mp, mesh, axis, scale=True, local_reduce=False, concat_dim=2):
    n = len(xs)
    disp = DISPATCH(dispatch_args(xs, idxs, mp, cluster_axis=axis, output_concat_dim=concat_dim), mesh)
    per = []
    for d in range(n):
        toks, meta = disp[d]
        inp = fake_experts(toks, mp, d, scale)
        if local_reduce:
            inp = inp.sum(0, keepdim=True)
        per.append(dict(input_tensor=inp.reshape(inp.shape[0], *toks.shape[1:3], -1), expert_metadata_tensor=meta,
                        expert_mapping_tensor=mp, cluster_axis=axis, output_shard_dim=concat_dim,
                        local_reduce=local_reduce))
    return COMBINE(per, mesh)


def test_combine_returns_expert_outputs_in_topk_slot_order():
    mp = mapping(8, 4)
    H, T, K = 2, 3, 3
    xs = [tokens(d, 1, T, H) for d in range(4)]
    gen = torch.Generator().manual_seed(0)
    idxs = [torch.stack([torch.randperm(8, generator=gen)[:K] for _ in range(T)]).reshape(1, 1, T, K) for _ in range(4)]
    outs = run_moe(xs, idxs, mp, (1, 4), 1)
    for d in range(4):
        assert outs[d].shape == (K, 1, T, H)
        for t in range(T):
            for k in range(K):
                e = int(idxs[d][0, 0, t, k])
                assert torch.equal(outs[d][k, 0, t], xs[d][0, 0, t] * (e + 1)), (d, t, k)


def test_combine_round_trip_identity_experts():
    mp = mapping(8, 4)
    H, B, K = 4, 2, 2
    xs = [tokens(d, B, 1, H) for d in range(4)]
    idxs = [torch.tensor([[1, 7], [4, 2]]).reshape(B, 1, 1, K) for _ in range(4)]
    outs = run_moe(xs, idxs, mp, (1, 4), 1, scale=False, concat_dim=1)
    for d in range(4):
        assert outs[d].shape == (K, B, 1, H)
        for k in range(K):
            assert torch.equal(outs[d][k], xs[d].reshape(B, 1, H))


def test_combine_along_columns_then_all_reduce_is_the_dense_moe():
    # the gpt-oss throughput decode layout: 2x4 mesh, rows hold different tokens (replicated along
    # the row), dispatch/combine along columns, weighted sum over k, all_reduce over the row
    mp = mapping(16, 8)
    H, T, K = 3, 4, 4
    gen = torch.Generator().manual_seed(1)
    row_x = [torch.randn(1, 1, T, H, generator=gen, dtype=torch.float64) for _ in range(2)]
    row_idx = [torch.stack([torch.randperm(16, generator=gen)[:K] for _ in range(T)]).reshape(1, 1, T, K)
               for _ in range(2)]
    row_w = [torch.rand(T, K, generator=gen, dtype=torch.float64) for _ in range(2)]
    xs = [row_x[d // 4] for d in range(8)]
    idxs = [row_idx[d // 4] for d in range(8)]
    combined = run_moe(xs, idxs, mp, (2, 4), 0)
    assert all(c.shape == (K, 1, T, H) for c in combined)
    partial = []
    for d in range(8):
        w = row_w[d // 4].T.reshape(K, 1, T, 1)
        partial.append(dict(input_tensor=(combined[d] * w).sum(0, keepdim=True), cluster_axis=1))
    reduced = ccl._SEMANTICS["ttnn.all_reduce"](partial, (2, 4))
    for d in range(8):
        r = d // 4
        dense = torch.zeros(T, H, dtype=torch.float64)
        for t in range(T):
            for k in range(K):
                e = int(row_idx[r][0, 0, t, k])
                dense[t] += row_w[r][t, k] * (e + 1) * row_x[r][0, 0, t]
        torch.testing.assert_close(reduced[d].reshape(T, H), dense)


def test_deepseek_decode_call_form_shapes_and_dense_result():
    # deepseek_v3 MoE decode on 2x4: per device x [16, 1, 1, H], indices [16, 1, 1, 8], 256 experts
    # (32 per device), dispatch/combine along axis 0 with the default concat/shard dim 1. The shapes
    # are those ttnn 0.81.1 gives on the mock T3K: dispatch [1, 32, 1, H] / [1, 32, 1, 8],
    # experts' output [32, 32, 1, H], combine [8, 16, 1, H].
    mp = mapping(256, 8)
    H, B, K = 2, 16, 8
    gen = torch.Generator().manual_seed(2)
    row_x = [torch.randn(B, 1, 1, H, generator=gen, dtype=torch.float64) for _ in range(2)]
    row_idx = [torch.stack([torch.randperm(256, generator=gen)[:K] for _ in range(B)]).reshape(B, 1, 1, K)
               for _ in range(2)]
    xs = [row_x[d // 4] for d in range(8)]
    idxs = [row_idx[d // 4] for d in range(8)]
    disp = DISPATCH(dispatch_args(xs, idxs, mp, cluster_axis=0), (2, 4))
    assert all(t.shape == (1, 32, 1, H) and m.shape == (1, 32, 1, K) for t, m in disp)
    assert fake_experts(disp[0][0], mp, 0).reshape(32, 32, 1, H).shape == (32, 32, 1, H)
    combined = run_moe(xs, idxs, mp, (2, 4), 0, concat_dim=1)
    assert all(c.shape == (K, B, 1, H) for c in combined)
    for r in range(2):
        total = sum(combined[r * 4 + c] for c in range(4))  # the columns' partial slots
        for b in range(B):
            for k in range(K):
                e = int(row_idx[r][b, 0, 0, k])
                assert torch.equal(total[k, b, 0], row_x[r][b, 0, 0] * (e + 1))


def test_combine_off_line_slots_are_zero():
    mp = mapping(16, 8)
    xs = [tokens(d, 1, 1, 2) for d in range(8)]
    idxs = [torch.tensor([2, 6]).reshape(1, 1, 1, 2) for _ in range(8)]  # devices 1 and 3: columns 1, 3
    outs = run_moe(xs, idxs, mp, (2, 4), 0)
    for d in range(8):
        col = d % 4
        assert torch.equal(outs[d][0, 0, 0], xs[d][0, 0, 0] * 3 if col == 1 else torch.zeros(2, dtype=torch.float64))
        assert torch.equal(outs[d][1, 0, 0], xs[d][0, 0, 0] * 7 if col == 3 else torch.zeros(2, dtype=torch.float64))


def test_combine_local_reduce_writes_first_local_expert_slot():
    mp = mapping(8, 4)
    xs = [tokens(d, 1, 2, 2) for d in range(4)]
    # token 0: experts 3 and 2 (both device 1) -> slot of expert 2 (first local expert in expert order): 1
    # token 1: experts 0 and 6 (devices 0, 3)
    idxs = [torch.tensor([[3, 2], [0, 6]]).reshape(1, 1, 2, 2) for _ in range(4)]
    outs = run_moe(xs, idxs, mp, (1, 4), 1, local_reduce=True)
    for d in range(4):
        x0, x1 = xs[d][0, 0, 0], xs[d][0, 0, 1]
        # the device's locally summed row (fake_experts applies every local expert to every token)
        assert torch.equal(outs[d][1, 0, 0], x0 * (3 + 4))
        assert not outs[d][0, 0, 0].any()
        assert torch.equal(outs[d][0, 0, 1], x1 * (1 + 2)) and torch.equal(outs[d][1, 0, 1], x1 * (7 + 8))


def test_combine_single_device():
    mp = mapping(2, 1)
    x = tokens(0, 1, 2, 2)
    idx = torch.tensor([[1, 0], [0, 1]]).reshape(1, 1, 2, 2)
    toks, meta = DISPATCH.single(dispatch_args([x], [idx], mp)[0])
    inp = fake_experts(toks, mp, 0)
    out = COMBINE.single(dict(input_tensor=inp, expert_metadata_tensor=meta, expert_mapping_tensor=mp,
                              cluster_axis=0, output_shard_dim=2, local_reduce=False))
    assert out.shape == (2, 1, 2, 2)
    assert torch.equal(out[0, 0, 0], x[0, 0, 0] * 2) and torch.equal(out[1, 0, 0], x[0, 0, 0] * 1)


# ------------------------------------------------------------------------------ point_to_point
class Coord:  # stands in for ttnn.MeshCoordinate (indexable, dims())
    def __init__(self, *c):
        self.c = c

    def dims(self):
        return len(self.c)

    def __getitem__(self, i):
        return self.c[i]


def test_point_to_point():
    p2p = ccl._SEMANTICS["ttnn.point_to_point"]
    xs = [torch.full((1, 2), float(d)) for d in range(8)]
    per = [dict(input_tensor=x, sender_coord=Coord(0, 2), receiver_coord=Coord(1, 2)) for x in xs]
    out = p2p(per, (2, 4))
    assert torch.equal(out[6], xs[2])
    assert all(not out[d].any() for d in range(8) if d != 6)  # fresh output: unwritten shards are zeros
    for b, x in zip(per, xs):  # output_tensor=input (mesh_scatter): the others keep their input
        b["_outputs"] = {"output_tensor": x}
    out = p2p(per, (2, 4))
    assert torch.equal(out[6], xs[2]) and all(torch.equal(out[d], xs[d]) for d in range(8) if d != 6)


def test_mesh_partition_keeps_each_devices_chunk_of_its_line():
    import torch

    from fusion import ccl

    x = torch.arange(8.0).reshape(1, 1, 1, 8)
    out = ccl._SEMANTICS["ttnn.mesh_partition"]([{"input_tensor": x, "dim": -1, "cluster_axis": 1}] * 4, (1, 4))
    assert [o.flatten().tolist() for o in out] == [[0, 1], [2, 3], [4, 5], [6, 7]]


def test_all_to_all_async_generic_sends_chunk_j_to_device_j():
    import torch

    from fusion import ccl

    xs = [torch.full((1, 2, 1, 3), float(d)) for d in range(2)]
    out = ccl._SEMANTICS["ttnn.experimental.all_to_all_async_generic"](
        [{"input_tensor": x, "in_dim": 2, "out_dim": 1, "cluster_axis": 1} for x in xs], (1, 2))
    # device j receives chunk j of every device, joined along in_dim in sender order
    assert out[0].shape == (1, 1, 2, 3) and out[0][0, 0, :, 0].tolist() == [0.0, 1.0]


def test_a_mesh_traced_graph_runs_every_device_and_refuses_torch_inputs():
    import pytest
    import torch
    import ttnn

    import fusion
    from fusion.reference import ReferenceRunner
    from fusion.trace import trace

    def model(x):
        return ttnn.all_reduce(ttnn.multiply(x, x), cluster_axis=1)

    traced = trace(model, [fusion.TensorSpec((1, 1, 32, 32))], specs="rules")
    runner = ReferenceRunner(traced.graph_module)
    traced.graph_module.meta["mesh_shape"] = (1, 2)  # as trace() records it on a 1x2 mesh
    assert runner.devices == 2
    with pytest.raises(fusion.InputError, match="1x2 mesh"):
        runner.run_values([torch.ones(1, 1, 32, 32)])
    ones, twos = torch.ones(1, 1, 32, 32), torch.full((1, 1, 32, 32), 2.0)
    out = runner.run_mesh([[ones], [twos]], (1, 2))
    assert float(out[0].max()) == float(out[1].min()) == 5.0  # 1*1 + 2*2 on both devices
