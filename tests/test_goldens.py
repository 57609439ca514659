"""Reference semantics of ttnn ops without a ttnn golden (fusion/goldens.py).

Two kinds of check per op: the golden's output shapes equal the shapes ttnn gives on the mock
device for the argument forms the corpus uses (nothing executes there), and small hand-checkable
cases of the values. The goldens run as the reference runner calls them: through
`fusion.reference.call_golden` with the op's positional arguments and keywords as written.
"""
from __future__ import annotations

import math

import pytest
import torch
import ttnn

from fusion.goldens import GOLDENS
from fusion.reference import _golden, call_golden

X = ttnn.experimental


def ref(op, *args, **kwargs):
    """The reference's result of op(*args, **kwargs) (torch arguments)."""
    return call_golden(op, _golden(op), args, kwargs)


def shapes(out):
    if isinstance(out, (tuple, list)):
        return [tuple(o.shape) for o in out]
    return tuple(out.shape)


def f64(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def trans_mat() -> torch.Tensor:
    """tt_transformers' rotation tile: (x @ M) maps each pair (x0, x1) to (-x1, x0)."""
    m = torch.zeros(32, 32, dtype=torch.float64)
    even, odd = torch.arange(0, 32, 2), torch.arange(1, 32, 2)
    m[even, odd] = 1
    m[odd, even] = -1
    return m.reshape(1, 1, 32, 32)


def rotate_pairs(x, cos, sin):
    """Meta-style RoPE on interleaved pairs: (x0, x1) -> (x0 c - x1 s, x1 c + x0 s)."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    c, s = cos[..., 0::2], sin[..., 0::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x1 * c + x0 * s
    return out


# ---------------------------------------------------------------------------
# registration
# ---------------------------------------------------------------------------

OPS = [
    "ttnn.experimental.minimal_matmul",
    "ttnn.experimental.nlp_create_qkv_heads_decode",
    "ttnn.experimental.nlp_create_qkv_heads",
    "ttnn.experimental.nlp_create_qkv_heads_falcon7b",
    "ttnn.experimental.nlp_concat_heads",
    "ttnn.experimental.nlp_concat_heads_decode",
    "ttnn.experimental.rotary_embedding_llama",
    "ttnn.experimental.rotary_embedding_llama_fused_qk",
    "ttnn.experimental.rotary_embedding",
    "ttnn.experimental.paged_fill_cache",
    "ttnn.experimental.paged_fused_update_cache",
    "ttnn.experimental.paged_update_cache",
    "ttnn.update_cache",
    "ttnn.fill_cache",
]


@pytest.mark.parametrize("name", OPS)
def test_reference_uses_our_golden(name):
    op = ttnn
    for part in name.split(".")[1:]:
        op = getattr(op, part)
    assert _golden(op) is GOLDENS[name]


# ---------------------------------------------------------------------------
# values: matmul
# ---------------------------------------------------------------------------

def test_minimal_matmul_values():
    a, w, b = f64(1, 1, 64, 96, seed=1), f64(1, 1, 96, 128, seed=2), f64(1, 1, 1, 128, seed=3)
    assert torch.allclose(ref(X.minimal_matmul, a, w), a @ w[0, 0])
    cfg = ttnn.MinimalMatmulConfig(M_block_size=8, K_block_size=8, N_block_size=8,
                                   compute_with_storage_grid_size=ttnn.CoreCoord(8, 8))
    out = ref(X.minimal_matmul, a, w, compute_kernel_config=None, config=cfg)
    assert torch.allclose(out, a @ w[0, 0])
    out = ref(X.minimal_matmul, a, w, bias_tensor=b, fused_activation=ttnn.UnaryWithParam(ttnn.UnaryOpType.RELU))
    assert torch.allclose(out, torch.relu(a @ w[0, 0] + b[0, 0, 0]))
    # 3-d activation, 2-d weight
    a3 = f64(2, 40, 96, seed=4)
    assert torch.allclose(ref(X.minimal_matmul, a3, w[0, 0]), a3 @ w[0, 0])


def test_minimal_matmul_swiglu_pairs_tiles():
    a, w = f64(1, 1, 32, 64, seed=5), f64(1, 1, 64, 128, seed=6)
    full = a @ w[0, 0]
    out = ref(X.minimal_matmul, a, w, fuse_swiglu=True)
    assert out.shape == (1, 1, 32, 64)
    # column tiles 0, 2 are gates; 1, 3 the matching ups
    gate = torch.cat([full[..., 0:32], full[..., 64:96]], -1)
    up = torch.cat([full[..., 32:64], full[..., 96:128]], -1)
    assert torch.allclose(out, torch.nn.functional.silu(gate) * up)


def test_minimal_matmul_fused_concat_seam_at_padded_k():
    prefix, suffix = f64(1, 1, 32, 40, seed=7), f64(1, 1, 32, 64, seed=8)
    w = f64(1, 1, 64 + 64, 32, seed=9)  # [W_prefix padded to 64 rows; W_suffix]
    out = ref(X.minimal_matmul, [prefix, suffix], w)
    want = prefix @ w[0, 0, :40] + suffix @ w[0, 0, 64:]
    assert torch.allclose(out, want)


# ---------------------------------------------------------------------------
# values: heads
# ---------------------------------------------------------------------------

def test_create_heads_then_concat_heads_is_identity():
    nq, nkv, hd, s = 4, 2, 64, 40
    x = f64(1, 1, s, (nq + 2 * nkv) * hd, seed=10)
    q, k, v = ref(X.nlp_create_qkv_heads, x, num_heads=nq, num_kv_heads=nkv, transpose_k_heads=False,
                  memory_config=ttnn.DRAM_MEMORY_CONFIG)
    assert shapes((q, k, v)) == [(1, nq, s, hd), (1, nkv, s, hd), (1, nkv, s, hd)]
    assert torch.equal(ref(X.nlp_concat_heads, q, memory_config=ttnn.DRAM_MEMORY_CONFIG), x[..., : nq * hd])
    assert torch.equal(ref(X.nlp_concat_heads, k), x[..., nq * hd: (nq + nkv) * hd])
    assert torch.equal(ref(X.nlp_concat_heads, v), x[..., (nq + nkv) * hd:])
    # head h of Q is columns h*hd..(h+1)*hd
    assert torch.equal(q[0, 3, 7], x[0, 0, 7, 3 * hd: 4 * hd])
    # the default transposes K
    _, kt, _ = ref(X.nlp_create_qkv_heads, x, num_heads=nq, num_kv_heads=nkv)
    assert torch.equal(kt, k.transpose(-1, -2))


def test_create_heads_separate_kv_and_tied_kv():
    nq, nkv, hd, s = 4, 2, 64, 32
    xq, xkv = f64(1, 1, s, nq * hd, seed=11), f64(1, 1, s, 2 * nkv * hd, seed=12)
    q, k, v = ref(X.nlp_create_qkv_heads, xq, xkv, num_heads=nq, num_kv_heads=nkv, transpose_k_heads=False)
    assert torch.equal(ref(X.nlp_concat_heads, q), xq)
    assert torch.equal(torch.cat([ref(X.nlp_concat_heads, k), ref(X.nlp_concat_heads, v)], -1), xkv)
    xt = f64(1, 1, s, (nq + 1) * hd, seed=13)
    q, k, v = ref(X.nlp_create_qkv_heads, xt, num_heads=nq, num_kv_heads=1, kv_tied=True, transpose_k_heads=False)
    assert torch.equal(k, v) and torch.equal(ref(X.nlp_concat_heads, k), xt[..., nq * hd:])


def test_create_heads_falcon7b():
    x = f64(2, 1, 32, 4672, seed=14)
    q, k, v = ref(X.nlp_create_qkv_heads_falcon7b, x, memory_config=ttnn.DRAM_MEMORY_CONFIG)
    assert shapes((q, k, v)) == [(2, 71, 32, 64), (2, 1, 32, 64), (2, 1, 32, 64)]
    assert torch.equal(ref(X.nlp_concat_heads, q), x[..., :4544])
    assert torch.equal(k[:, 0], x[:, 0, :, 4544:4608])
    assert torch.equal(v[:, 0], x[:, 0, :, 4608:])


def test_create_heads_decode_then_concat_heads_decode():
    nq, nkv, hd, b = 8, 2, 64, 32
    x = f64(1, 1, b, (nq + 2 * nkv) * hd, seed=15)
    q, k, v = ref(X.nlp_create_qkv_heads_decode, x, num_heads=nq, num_kv_heads=nkv,
                  memory_config=ttnn.L1_HEIGHT_SHARDED_MEMORY_CONFIG)
    assert shapes((q, k, v)) == [(1, b, nq, hd), (1, b, nkv, hd), (1, b, nkv, hd)]
    assert torch.equal(q[0, 5, 3], x[0, 0, 5, 3 * hd: 4 * hd])
    assert torch.equal(k[0, 9, 1], x[0, 0, 9, (nq + 1) * hd: (nq + 2) * hd])
    assert torch.equal(v[0, 31, 0], x[0, 0, 31, (nq + nkv) * hd: (nq + nkv + 1) * hd])
    # concat_heads_decode of Q (as SDPA decode leaves it: heads padded to 32) gives Q's columns back
    padded = torch.cat([q, torch.full((1, b, 32 - nq, hd), 7.0, dtype=q.dtype)], 2)
    assert torch.equal(ref(X.nlp_concat_heads_decode, padded, num_heads=nq), x[..., : nq * hd])
    assert torch.equal(ref(X.nlp_concat_heads_decode, q, num_heads=nq), x[..., : nq * hd])
    # a slice of the users
    q2, _, _ = ref(X.nlp_create_qkv_heads_decode, x, num_heads=nq, num_kv_heads=nkv,
                   batch_offset=torch.tensor([4]), slice_size=8)
    assert torch.equal(q2, q[:, 4:12])


# ---------------------------------------------------------------------------
# values: rotary embeddings
# ---------------------------------------------------------------------------

def test_rotary_llama_prefill_identity_and_rotation():
    x = f64(1, 4, 64, 64, seed=16)
    ones, zeros = torch.ones(1, 1, 64, 64, dtype=torch.float64), torch.zeros(1, 1, 64, 64, dtype=torch.float64)
    out = ref(X.rotary_embedding_llama, x, ones, zeros, trans_mat(), is_decode_mode=False)
    assert torch.equal(out, x)
    # cos 0, sin 1: each pair (x0, x1) -> (-x1, x0)
    out = ref(X.rotary_embedding_llama, x, zeros, ones, trans_mat(), is_decode_mode=False)
    assert torch.equal(out[..., 0::2], -x[..., 1::2]) and torch.equal(out[..., 1::2], x[..., 0::2])
    # real angles: the meta pairwise rotation, per position
    ang = torch.outer(torch.arange(64, dtype=torch.float64), 1.0 / 10000 ** (torch.arange(0, 64, 2) / 64.0))
    cos = torch.cos(ang).repeat_interleave(2, -1).reshape(1, 1, 64, 64)
    sin = torch.sin(ang).repeat_interleave(2, -1).reshape(1, 1, 64, 64)
    out = ref(X.rotary_embedding_llama, x, cos, sin, trans_mat(), is_decode_mode=False)
    assert torch.allclose(out, rotate_pairs(x, cos, sin))


def test_rotary_llama_decode_uses_row_zero_per_user():
    b, nh, hd = 4, 8, 64
    x = f64(1, b, nh, hd, seed=17)
    ang = f64(b, hd // 2, seed=18)
    cos = torch.cos(ang).repeat_interleave(2, -1).reshape(1, b, 1, hd)
    sin = torch.sin(ang).repeat_interleave(2, -1).reshape(1, b, 1, hd)
    tm = trans_mat().repeat(1, 1, b, 1)  # one tile per user core
    out = ref(X.rotary_embedding_llama, x, cos, sin, tm, is_decode_mode=True)
    assert out.shape == x.shape
    assert torch.allclose(out, rotate_pairs(x, cos, sin))  # cos row of user b over all its heads
    # rows 1..31 of each user's tile do not take part (row broadcast of row 0)
    noisy_cos = torch.cat([cos, f64(1, b, 31, hd, seed=19)], 2)
    noisy_sin = torch.cat([sin, f64(1, b, 31, hd, seed=20)], 2)
    assert torch.equal(ref(X.rotary_embedding_llama, x, noisy_cos, noisy_sin, tm, is_decode_mode=True), out)
    one = torch.ones(1, b, 1, hd, dtype=torch.float64)
    assert torch.equal(ref(X.rotary_embedding_llama, x, one, 0 * one, tm, is_decode_mode=True), x)


def test_rotary_llama_fused_qk_reads_q_then_k_rows():
    b, hd = 4, 64
    q, k = f64(1, b, 8, hd, seed=21), f64(1, b, 2, hd, seed=22)
    ang = f64(2 * b, hd // 2, seed=23)
    cos = torch.cos(ang).repeat_interleave(2, -1).reshape(1, 2 * b, 1, hd)
    sin = torch.sin(ang).repeat_interleave(2, -1).reshape(1, 2 * b, 1, hd)
    tm = trans_mat().repeat(1, 1, 2 * b, 1)
    qo, ko = ref(X.rotary_embedding_llama_fused_qk, q, k, cos, sin, tm)
    assert torch.allclose(qo, rotate_pairs(q, cos[:, :b], sin[:, :b]))
    assert torch.allclose(ko, rotate_pairs(k, cos[:, b:], sin[:, b:]))


def test_rotary_falcon_token_idx_and_prefill():
    hd = 64
    x = f64(1, 3, 32, hd, seed=24)
    cos, sin = f64(1, 1, 128, hd, seed=25), f64(1, 1, 128, hd, seed=26)
    out = ref(X.rotary_embedding, x, cos, sin, 5, memory_config=ttnn.L1_MEMORY_CONFIG)
    rot_half = torch.cat([-x[..., 32:], x[..., :32]], -1)
    assert torch.allclose(out, x * cos[0, 0, 5] + rot_half * sin[0, 0, 5])
    ones, zeros = torch.ones_like(cos), torch.zeros_like(cos)
    assert torch.equal(ref(X.rotary_embedding, x, ones, zeros, 9), x)
    # prefill: row s at position s; the output is tile padded (40 -> 64 rows, zero rows)
    xp = f64(1, 3, 40, hd, seed=27)
    out = ref(X.rotary_embedding, xp, cos, sin)
    assert out.shape == (1, 3, 64, hd)
    rot_half = torch.cat([-xp[..., 32:], xp[..., :32]], -1)
    assert torch.allclose(out[:, :, :40], xp * cos[:, :, :40] + rot_half * sin[:, :, :40])
    assert torch.equal(out[:, :, 40:], torch.zeros(1, 3, 24, hd, dtype=torch.float64))


# ---------------------------------------------------------------------------
# values: caches
# ---------------------------------------------------------------------------

def test_paged_fill_cache_writes_exactly_the_named_blocks():
    blocks, nh, bs, hd = 16, 2, 32, 64
    cache = f64(blocks, nh, bs, hd, seed=30)
    before = cache.clone()
    x = f64(1, nh, 96, hd, seed=31)  # 3 blocks of 32 tokens
    table = torch.tensor([[0, 1, 2, 3], [11, 4, 7, 9]], dtype=torch.int64)
    out = ref(X.paged_fill_cache, cache, x, table, batch_idx=1)
    assert torch.equal(cache, before)  # no write into the argument
    for j, blk in enumerate([11, 4, 7]):
        assert torch.equal(out[blk], x[0, :, 32 * j: 32 * (j + 1)])
    untouched = [i for i in range(blocks) if i not in (11, 4, 7)]
    assert torch.equal(out[untouched], cache[untouched])


def test_paged_fill_cache_blocks_of_64_skip_entries_and_batch_idx_tensor():
    blocks, nh, bs, hd = 8, 1, 64, 32
    cache = torch.zeros(blocks, nh, bs, hd, dtype=torch.float64)
    x = f64(2, nh, 128, hd, seed=32)
    table = torch.tensor([[5, -1], [2, 6], [3, 0]], dtype=torch.int64)
    out = ref(X.paged_fill_cache, cache, x, table, batch_idx_tensor=torch.tensor([0, 2]))
    assert torch.equal(out[5], x[0, :, :64])      # input row 0 -> user 0: block 5, then a skipped block
    assert torch.equal(out[3], x[1, :, :64])      # input row 1 -> user 2: blocks 3, 0
    assert torch.equal(out[0], x[1, :, 64:])
    assert out[[1, 2, 4, 6, 7]].abs().sum() == 0


def test_paged_fused_update_cache_writes_one_row_per_user():
    blocks, nkv, bs, hd, b = 8, 2, 32, 64, 3
    kc, vc = f64(blocks, nkv, bs, hd, seed=33), f64(blocks, nkv, bs, hd, seed=34)
    k_before, v_before = kc.clone(), vc.clone()
    k_in = torch.cat([f64(1, b, nkv, hd, seed=35), torch.full((1, b, 32 - nkv, hd), 9.0, dtype=torch.float64)], 2)
    v_in = f64(1, b, nkv, hd, seed=36)
    pos = torch.tensor([5, 40, -1])
    table = torch.tensor([[1, 2], [3, 4], [6, 7]])
    ko, vo = ref(X.paged_fused_update_cache, kc, k_in, vc, v_in, update_idxs_tensor=pos, page_table=table)
    assert torch.equal(kc, k_before) and torch.equal(vc, v_before)
    want_k, want_v = kc.clone(), vc.clone()
    want_k[1, :, 5], want_v[1, :, 5] = k_in[0, 0, :nkv], v_in[0, 0]       # user 0, pos 5: block 1 row 5
    want_k[4, :, 8], want_v[4, :, 8] = k_in[0, 1, :nkv], v_in[0, 1]       # user 1, pos 40: block 4 row 8
    assert torch.equal(ko, want_k) and torch.equal(vo, want_v)           # user 2 skipped (-1)


def test_paged_update_cache_unpaged_list_positions():
    cache = torch.zeros(2, 1, 64, 32, dtype=torch.float64)
    x = f64(1, 2, 1, 32, seed=37)
    out = ref(X.paged_update_cache, cache, x, update_idxs=[3, 60])
    assert torch.equal(out[0, 0, 3], x[0, 0, 0]) and torch.equal(out[1, 0, 60], x[0, 1, 0])
    assert out.abs().sum() == x.abs().sum()


def test_update_cache_and_fill_cache_do_not_write_their_argument():
    cache = f64(4, 1, 128, 64, seed=38)
    before = cache.clone()
    x = f64(1, 1, 32, 64, seed=39)
    out = ref(ttnn.update_cache, cache, x, 7)
    assert torch.equal(cache, before)
    want = cache.clone()
    want[:, 0, 7] = x[0, 0, :4]
    assert torch.equal(out, want)
    out = ref(ttnn.update_cache, cache, x, update_idx=7, batch_offset=8)
    want[:, 0, 7] = x[0, 0, 8:12]
    assert torch.equal(out, want)
    y = f64(1, 1, 64, 64, seed=40)
    out = ref(ttnn.fill_cache, cache, y, 2, update_idx=32)
    assert torch.equal(cache, before)
    want = cache.clone()
    want[2, :, 32:96] = y[0]
    assert torch.equal(out, want)
    out = ref(ttnn.fill_cache, cache, y, batch_idx=1)
    assert torch.equal(out[1, :, :64], y[0]) and torch.equal(out[1, :, 64:], cache[1, :, 64:])


# ---------------------------------------------------------------------------
# shapes against ttnn on the mock device
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dev():
    from corpus.common import corpus_device

    with corpus_device() as d:
        yield d


def on_dev(t: torch.Tensor, d, mem=ttnn.DRAM_MEMORY_CONFIG, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT):
    return ttnn.from_torch(t.float() if t.is_floating_point() else t, dtype=dtype, layout=layout, device=d,
                           memory_config=mem)


def height_sharded(shape, cores: int, start=(0, 0)):
    if start == (0, 0):
        grid = ttnn.num_cores_to_corerangeset(cores, ttnn.CoreCoord(8, 8), row_wise=True)
    else:
        x0, y0 = start
        grid = ttnn.CoreRangeSet({ttnn.CoreRange(ttnn.CoreCoord(x0, y0),
                                                 ttnn.CoreCoord(x0 + min(cores, 8) - 1, y0 + cores // 8 - 1))})
    return ttnn.create_sharded_memory_config(shape=shape, core_grid=grid, strategy=ttnn.ShardStrategy.HEIGHT,
                                             orientation=ttnn.ShardOrientation.ROW_MAJOR,
                                             use_height_and_width_as_shard_shape=True)


def assert_same_shapes(golden_out, ttnn_out):
    assert shapes(golden_out) == shapes(ttnn_out)


@pytest.mark.mock_device
def test_shapes_heads(dev):
    # tt_transformers decode: [1, 1, 32, 6144] -> 32 Q, 8 KV heads of 128
    x = f64(1, 1, 32, 6144)
    got = X.nlp_create_qkv_heads_decode(on_dev(x, dev, ttnn.L1_MEMORY_CONFIG), num_heads=32, num_kv_heads=8,
                                         memory_config=ttnn.L1_HEIGHT_SHARDED_MEMORY_CONFIG)
    assert_same_shapes(ref(X.nlp_create_qkv_heads_decode, x, num_heads=32, num_kv_heads=8,
                           memory_config=ttnn.L1_HEIGHT_SHARDED_MEMORY_CONFIG), got)
    x8 = f64(1, 1, 8, 12 * 64)  # 8 users, heads padded to 32 in the tile
    got = X.nlp_create_qkv_heads_decode(on_dev(x8, dev, ttnn.L1_MEMORY_CONFIG), num_heads=8, num_kv_heads=2,
                                         memory_config=ttnn.L1_HEIGHT_SHARDED_MEMORY_CONFIG)
    assert_same_shapes(ref(X.nlp_create_qkv_heads_decode, x8, num_heads=8, num_kv_heads=2), got)

    # tt_transformers prefill: [1, 1, 128, 6144], transpose_k_heads=False; and the default transpose
    xp = f64(1, 1, 128, 6144)
    kw = dict(num_heads=32, num_kv_heads=8, transpose_k_heads=False, memory_config=ttnn.DRAM_MEMORY_CONFIG)
    assert_same_shapes(ref(X.nlp_create_qkv_heads, xp, **kw), X.nlp_create_qkv_heads(on_dev(xp, dev), **kw))
    xs = f64(1, 1, 64, 8 * 128)
    got = X.nlp_create_qkv_heads(on_dev(xs, dev), num_heads=4, num_kv_heads=2)
    assert_same_shapes(ref(X.nlp_create_qkv_heads, xs, num_heads=4, num_kv_heads=2), got)
    xo = f64(1, 1, 40, 8 * 64)  # sequence not a multiple of 32
    got = X.nlp_create_qkv_heads(on_dev(xo, dev), num_heads=4, num_kv_heads=2, transpose_k_heads=False)
    assert_same_shapes(ref(X.nlp_create_qkv_heads, xo, num_heads=4, num_kv_heads=2, transpose_k_heads=False), got)
    xt = f64(1, 1, 64, 5 * 64)
    got = X.nlp_create_qkv_heads(on_dev(xt, dev), num_heads=4, num_kv_heads=1, kv_tied=True, transpose_k_heads=False)
    assert_same_shapes(ref(X.nlp_create_qkv_heads, xt, num_heads=4, num_kv_heads=1, kv_tied=True,
                           transpose_k_heads=False), got)

    # Falcon-7B decode: [1, 1, 32, 4672]
    xf = f64(1, 1, 32, 4672)
    got = X.nlp_create_qkv_heads_falcon7b(on_dev(xf, dev), memory_config=ttnn.DRAM_MEMORY_CONFIG)
    assert_same_shapes(ref(X.nlp_create_qkv_heads_falcon7b, xf, memory_config=ttnn.DRAM_MEMORY_CONFIG), got)

    # concat heads: tt_transformers prefill [1, 32, 128, 128], Falcon [1, 71, 32, 64], an odd sequence
    for shape in [(1, 32, 128, 128), (1, 71, 32, 64), (2, 4, 40, 64)]:
        a = f64(*shape)
        got = X.nlp_concat_heads(on_dev(a, dev), memory_config=ttnn.DRAM_MEMORY_CONFIG)
        assert_same_shapes(ref(X.nlp_concat_heads, a, memory_config=ttnn.DRAM_MEMORY_CONFIG), got)

    # concat heads decode: the per-user [32, 128] shards of tt_transformers
    mem = height_sharded((32, 128), 32)
    for heads, num_heads in [(32, 32), (8, 8)]:
        a = f64(1, 32, heads, 128)
        got = X.nlp_concat_heads_decode(on_dev(a, dev, mem), num_heads=num_heads)
        assert_same_shapes(ref(X.nlp_concat_heads_decode, a, num_heads=num_heads), got)


@pytest.mark.mock_device
def test_shapes_rotary(dev):
    # tt_transformers prefill: Q [1, 32, 128, 128], cos/sin [1, 1, 128, 128], one DRAM trans tile
    x, c, s, tm = f64(1, 32, 128, 128), f64(1, 1, 128, 128), f64(1, 1, 128, 128), trans_mat()
    got = X.rotary_embedding_llama(on_dev(x, dev), on_dev(c, dev), on_dev(s, dev), on_dev(tm, dev), is_decode_mode=False)
    assert_same_shapes(ref(X.rotary_embedding_llama, x, c, s, tm, is_decode_mode=False), got)

    # decode, one user per core: x [1, 8, 8, 128], cos/sin [1, 8, 1, 128], trans tiles [1, 1, 256, 32]
    b = 8
    xd, cd, sd = f64(1, b, 8, 128), f64(1, b, 1, 128), f64(1, b, 1, 128)
    tmd = trans_mat().repeat(1, 1, b, 1)
    got = X.rotary_embedding_llama(on_dev(xd, dev, height_sharded((32, 128), b)),
                                   on_dev(cd, dev, height_sharded((32, 128), b)),
                                   on_dev(sd, dev, height_sharded((32, 128), b)),
                                   on_dev(tmd, dev, height_sharded((32, 32), b)), is_decode_mode=True)
    assert_same_shapes(ref(X.rotary_embedding_llama, xd, cd, sd, tmd, is_decode_mode=True), got)

    # fused QK as tt_transformers decode: Q [1, 32, 32, 128] on cores 0-31, K [1, 32, 8, 128] on 32-63,
    # cos/sin [1, 64, 1, 128] and the trans tiles over the 64 cores
    b = 32
    q, k = f64(1, b, 32, 128), f64(1, b, 8, 128)
    cf, sf = f64(1, 2 * b, 1, 128), f64(1, 2 * b, 1, 128)
    tmf = trans_mat().repeat(1, 1, 2 * b, 1)
    got = X.rotary_embedding_llama_fused_qk(
        on_dev(q, dev, height_sharded((32, 128), b)), on_dev(k, dev, height_sharded((32, 128), b, start=(0, 4))),
        on_dev(cf, dev, height_sharded((32, 128), 2 * b)), on_dev(sf, dev, height_sharded((32, 128), 2 * b)),
        on_dev(tmf, dev, height_sharded((32, 32), 2 * b)))
    assert_same_shapes(ref(X.rotary_embedding_llama_fused_qk, q, k, cf, sf, tmf), got)

    # Falcon: decode with token_idx on [1, 71, 32, 64]; prefill without; a one-row input (tile padded)
    cos, sin = f64(1, 1, 2048, 64), f64(1, 1, 2048, 64)
    tc, ts = on_dev(cos, dev), on_dev(sin, dev)
    for shape, tok in [((1, 71, 32, 64), 5), ((1, 71, 128, 64), None), ((1, 71, 40, 64), None), ((1, 71, 1, 64), 5)]:
        xf = f64(*shape)
        args = (tok,) if tok is not None else ()
        got = X.rotary_embedding(on_dev(xf, dev), tc, ts, *args, memory_config=ttnn.DRAM_MEMORY_CONFIG)
        assert_same_shapes(ref(X.rotary_embedding, xf, cos, sin, *args, memory_config=ttnn.DRAM_MEMORY_CONFIG), got)


@pytest.mark.mock_device
def test_shapes_minimal_matmul(dev):
    cfg = ttnn.MinimalMatmulConfig(M_block_size=8, K_block_size=8, N_block_size=8,
                                   compute_with_storage_grid_size=ttnn.CoreCoord(8, 8))
    a, w, b = f64(1, 1, 256, 512), f64(1, 1, 512, 256), f64(1, 1, 1, 256)
    ta, tw, tb = on_dev(a, dev), on_dev(w, dev), on_dev(b, dev)
    assert_same_shapes(ref(X.minimal_matmul, a, w, compute_kernel_config=None, config=cfg),
                       X.minimal_matmul(ta, tw, compute_kernel_config=None, config=cfg))
    relu = ttnn.UnaryWithParam(ttnn.UnaryOpType.RELU)
    assert_same_shapes(ref(X.minimal_matmul, a, w, bias_tensor=b, fused_activation=relu),
                       X.minimal_matmul(ta, tw, bias_tensor=tb, fused_activation=relu))
    assert_same_shapes(ref(X.minimal_matmul, a, w, fuse_swiglu=True), X.minimal_matmul(ta, tw, fuse_swiglu=True))
    a3 = f64(2, 100, 512)
    assert_same_shapes(ref(X.minimal_matmul, a3, w), X.minimal_matmul(on_dev(a3, dev), tw))
    pre, suf, cw = f64(1, 1, 64, 40), f64(1, 1, 64, 50), f64(1, 1, 128, 96)
    assert_same_shapes(ref(X.minimal_matmul, [pre, suf], cw),
                       X.minimal_matmul([on_dev(pre, dev), on_dev(suf, dev)], on_dev(cw, dev)))


@pytest.mark.mock_device
def test_shapes_caches(dev):
    # tt_transformers prefill: paged_fill_cache(keys, k_fill, page_table, batch_idx=user_id)
    cache, k = torch.zeros(64, 8, 32, 128, dtype=torch.float64), f64(1, 8, 128, 128)
    table = torch.randperm(64).reshape(16, 4).to(torch.int32)
    tcache = on_dev(cache, dev, dtype=ttnn.bfloat8_b)
    ttable = ttnn.from_torch(table, dtype=ttnn.int32, layout=ttnn.ROW_MAJOR_LAYOUT, device=dev)
    got = X.paged_fill_cache(tcache, on_dev(k, dev, dtype=ttnn.bfloat8_b), ttable, batch_idx=0)
    assert_same_shapes(ref(X.paged_fill_cache, cache, k, table.long(), batch_idx=0), got)

    # tt_transformers decode: paged_fused_update_cache(keys, k, values, v, update_idxs_tensor=, page_table=)
    b = 8
    kc, vc = torch.zeros(64, 8, 32, 128, dtype=torch.float64), torch.zeros(64, 8, 32, 128, dtype=torch.float64)
    ki, vi = f64(1, b, 8, 128), f64(1, b, 8, 128)
    pos = torch.arange(b, dtype=torch.int32) * 7
    ptab = torch.randperm(64).reshape(b, 8).to(torch.int32)
    tpos = ttnn.from_torch(pos, dtype=ttnn.int32, device=dev)
    tptab = ttnn.from_torch(ptab, dtype=ttnn.int32, device=dev)
    tki = on_dev(ki, dev, height_sharded((32, 128), b))
    tvi = on_dev(vi, dev, height_sharded((32, 128), b, start=(0, 1)))
    got = X.paged_fused_update_cache(on_dev(kc, dev, dtype=ttnn.bfloat8_b), tki, on_dev(vc, dev, dtype=ttnn.bfloat8_b),
                                     tvi, update_idxs_tensor=tpos, page_table=tptab)
    assert_same_shapes(ref(X.paged_fused_update_cache, kc, ki, vc, vi, update_idxs_tensor=pos.long(),
                           page_table=ptab.long()), got)
    got = X.paged_update_cache(on_dev(kc, dev, dtype=ttnn.bfloat8_b), tki, update_idxs_tensor=tpos, page_table=tptab)
    assert_same_shapes(ref(X.paged_update_cache, kc, ki, update_idxs_tensor=pos.long(), page_table=ptab.long()), got)

    # Falcon: ttnn.update_cache(k_cache, key_layer, layer_past_len) on [32, 1, 1024, 64]
    fc, fi = torch.zeros(32, 1, 1024, 64, dtype=torch.float64), f64(1, 1, 32, 64)
    got = ttnn.update_cache(on_dev(fc, dev), on_dev(fi, dev), 5)
    assert_same_shapes(ref(ttnn.update_cache, fc, fi, 5), got)
    fill = f64(1, 1, 64, 64)
    got = ttnn.fill_cache(on_dev(fc, dev), on_dev(fill, dev), 3, update_idx=32)
    assert_same_shapes(ref(ttnn.fill_cache, fc, fill, 3, update_idx=32), got)


def test_fast_reduce_nc_sums_outer_dims_keeping_them():
    x = f64(2, 8, 32, 64)
    assert torch.allclose(ref(X.fast_reduce_nc, x, dims=[1]), x.sum(1, keepdim=True))
    assert shapes(ref(X.fast_reduce_nc, x, dims=[0, 1])) == (1, 1, 32, 64)
    assert _golden(X.fast_reduce_nc) is GOLDENS["ttnn.experimental.fast_reduce_nc"]


@pytest.mark.mock_device
def test_shapes_fast_reduce_nc(dev):
    # DeepSeek-V3 MLA decode: the all-gathered [1, 8, 32, 2112] summed over dim 1
    x = f64(1, 8, 32, 2112)
    assert_same_shapes(ref(X.fast_reduce_nc, x, dims=[1]), X.fast_reduce_nc(on_dev(x, dev), dims=[1]))
    y = f64(2, 4, 64, 96)
    assert_same_shapes(ref(X.fast_reduce_nc, y, dims=[0, 1]), X.fast_reduce_nc(on_dev(y, dev), dims=[0, 1]))


def test_sharded_to_interleaved_partial_writes_its_slice_into_a_copy_of_the_cache():
    import torch

    from fusion.goldens import GOLDENS

    cache = torch.zeros(1, 1, 64, 32, dtype=torch.float64)
    piece = torch.ones(1, 1, 16, 32, dtype=torch.float64)
    out = GOLDENS["ttnn.sharded_to_interleaved_partial"](piece, cache, 4, 2)
    assert out[0, 0, 32:48].eq(1).all() and out[0, 0, :32].eq(0).all() and out[0, 0, 48:].eq(0).all()
    assert cache.eq(0).all()  # the cache given is not mutated
