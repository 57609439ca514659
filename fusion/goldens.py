"""Reference semantics (float64 torch) for ttnn ops that ship no golden function.

Each entry maps an op's fully qualified name to a function taking the op's arguments as ttnn
binds them (tensors as torch tensors) and returning what the op computes, shaped as ttnn's
logical output spec. Written from the ops' documented behaviour and their kernels' data flow.

Conventions shared by the entries below:

* parameter names are the ones of the op's nanobind signature (``help(ttnn.experimental.x)``);
  memory / program / compute-kernel configs, output dtypes and the like are accepted and ignored
  (``**_``): the reference runner rounds every result to its node's dtype itself;
* ops that write a cache in place (``paged_fill_cache``, ``paged_update_cache``,
  ``paged_fused_update_cache``, ``update_cache``, ``fill_cache``) return the cache's new value as
  a new tensor and never mutate their inputs;
* the kernels move whole 32x32 tiles. Where an op writes the tile padding of its input into a
  cache (a fill whose sequence length is not a multiple of 32) the padding rows are taken as
  zeros, which is what ttnn's host tilizer stores in them.
"""
from __future__ import annotations

from typing import Callable

import torch

GOLDENS: dict[str, Callable] = {}

TILE = 32


def golden(*names: str):
    def register(fn: Callable) -> Callable:
        for n in names:
            GOLDENS[n] = fn
        return fn

    return register


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def _round_up(n: int, m: int = TILE) -> int:
    return -(-n // m) * m


def _pad_dim(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """x zero-padded (or cut) along `dim` to `size`."""
    dim = dim % x.dim()
    n = x.shape[dim]
    if n == size:
        return x
    if n > size:
        return x.narrow(dim, 0, size)
    shape = list(x.shape)
    shape[dim] = size - n
    return torch.cat([x, x.new_zeros(shape)], dim=dim)


def _ints(t) -> list[int]:
    """The values of an index tensor (or list) as Python ints; uint32 -1 read as -1."""
    if isinstance(t, torch.Tensor):
        vals = [int(v) for v in t.reshape(-1).tolist()]
    else:
        vals = [int(v) for v in t]
    return [-1 if v == 0xFFFFFFFF else v for v in vals]


def _is_skip(v: int) -> bool:
    return v == -1 or v == 0xFFFFFFFF


def _index_table(page_table) -> list[list[int]]:
    t = page_table if isinstance(page_table, torch.Tensor) else torch.as_tensor(page_table)
    return [[int(v) for v in row] for row in t.reshape(t.shape[0], -1).tolist()]


def _activation(act):
    if act is None:
        return None
    from ttnn.operations.activations import get_golden_function_for_activation

    return get_golden_function_for_activation(act)


# ---------------------------------------------------------------------------
# matmul
# ---------------------------------------------------------------------------

@golden("ttnn.experimental.minimal_matmul")
def minimal_matmul(input_tensor, weight_tensor, bias_tensor=None, *, fused_activation=None, config=None,
                   fuse_swiglu=False, **_):
    """A @ W (+ bias, row-broadcast) then the fused activation; with ``fuse_swiglu`` the weight's
    column tiles alternate gate / up (tile 2p gate, 2p+1 up) and the result is silu(gate) * up
    (width N/2). ``input_tensor`` may be a [prefix, suffix] pair concatenated over K, the seam at
    the prefix's tile-padded K (minimal_matmul's docstring)."""
    k = weight_tensor.shape[-2]
    w = weight_tensor.reshape(k, weight_tensor.shape[-1])
    if isinstance(input_tensor, (list, tuple)):
        if len(input_tensor) != 2:
            raise ValueError("minimal_matmul: a fused-concat input is a [prefix, suffix] pair")
        prefix, suffix = input_tensor
        prefix = _pad_dim(prefix, -1, _round_up(prefix.shape[-1]))
        a = torch.cat([prefix, suffix], dim=-1)
    else:
        a = input_tensor
    a = _pad_dim(a, -1, k)  # K tile padding reads zeros
    out = a @ w.to(a.dtype)
    if bias_tensor is not None:
        out = out + bias_tensor.reshape(-1).to(out.dtype)
    if fuse_swiglu:
        n = out.shape[-1]
        if n % (2 * TILE):
            raise ValueError("minimal_matmul(fuse_swiglu=True) needs N divisible by 64")
        pairs = out.reshape(*out.shape[:-1], n // (2 * TILE), 2, TILE)
        gate, up = pairs[..., 0, :], pairs[..., 1, :]
        out = (torch.nn.functional.silu(gate) * up).reshape(*out.shape[:-1], n // 2)
    elif fused_activation is not None:
        out = _activation(fused_activation)(out)
    return out


# ---------------------------------------------------------------------------
# head split / merge
# ---------------------------------------------------------------------------

def _split_heads(x: torch.Tensor, n: int, hd: int) -> torch.Tensor:
    """[B, 1, S, n*hd] -> [B, n, S, hd]."""
    b, _, s, _ = x.shape
    return x.reshape(b, s, n, hd).permute(0, 2, 1, 3).contiguous()


@golden("ttnn.experimental.nlp_create_qkv_heads")
def nlp_create_qkv_heads(input, input_kv=None, *, num_heads, num_kv_heads=None, transpose_k_heads=True,
                         kv_tied=False, **_):
    """[B, 1, S, (nq + 2 nkv) * hd] laid out [Q heads | K heads | V heads] (the interleaved
    reader reads each row's Q tiles, then K's, then V's) -> Q [B, nq, S, hd], K [B, nkv, S, hd]
    ([B, nkv, hd, S] with transpose_k_heads), V [B, nkv, S, hd]. With ``input_kv`` Q comes from
    ``input`` and [K | V] from ``input_kv``; with ``kv_tied`` one K section is read for K and V.
    Models the interleaved input; a width-sharded input is grouped per KV head instead (not
    modelled)."""
    nq = int(num_heads)
    nkv = int(num_kv_heads) if num_kv_heads is not None else nq
    kv_sections = 1 if kv_tied else 2
    if input_kv is not None:
        hd = input.shape[-1] // nq
        q_part, kv_part = input, input_kv
    else:
        hd = input.shape[-1] // (nq + kv_sections * nkv)
        q_part, kv_part = input[..., : nq * hd], input[..., nq * hd:]
    q = _split_heads(q_part, nq, hd)
    k = _split_heads(kv_part[..., : nkv * hd], nkv, hd)
    v = k.clone() if kv_tied else _split_heads(kv_part[..., nkv * hd: 2 * nkv * hd], nkv, hd)
    if transpose_k_heads:
        k = k.transpose(-1, -2).contiguous()
    return q, k, v


@golden("ttnn.experimental.nlp_create_qkv_heads_falcon7b")
def nlp_create_qkv_heads_falcon7b(input, **_):
    """[B, 1, S, 4672] laid out [71 Q heads | K | V] of 64 -> [B, 71, S, 64], [B, 1, S, 64] x 2
    (the writer sends each tile row's first 142 tiles to Q, then 2 to K, 2 to V)."""
    hd, nq = 64, 71
    q = _split_heads(input[..., : nq * hd], nq, hd)
    k = _split_heads(input[..., nq * hd: (nq + 1) * hd], 1, hd)
    v = _split_heads(input[..., (nq + 1) * hd: (nq + 2) * hd], 1, hd)
    return q, k, v


@golden("ttnn.experimental.nlp_create_qkv_heads_decode")
def nlp_create_qkv_heads_decode(input_tensor, *, num_heads, num_kv_heads=None, batch_offset=None,
                                slice_size=None, overlap_qk_coregrid=True, **_):
    """[1, 1, B, (nq + 2 nkv) * hd] (per user row: [Q heads | K heads | V heads]) ->
    Q [1, B, nq, hd], K and V [1, B, nkv, hd] (heads padded to 32 in the tile, logically nq /
    nkv). With batch_offset (a one-value tensor) and slice_size only users
    [offset, offset + slice_size) are taken."""
    nq = int(num_heads)
    nkv = int(num_kv_heads) if num_kv_heads is not None else nq
    hd = input_tensor.shape[-1] // (nq + 2 * nkv)
    rows = input_tensor.reshape(-1, input_tensor.shape[-2], input_tensor.shape[-1])[0]  # [B, W]
    if batch_offset is not None and slice_size is not None:
        off = _ints(batch_offset)[0]
        rows = rows[off: off + int(slice_size)]
    b = rows.shape[0]
    q = rows[:, : nq * hd].reshape(1, b, nq, hd)
    k = rows[:, nq * hd: (nq + nkv) * hd].reshape(1, b, nkv, hd)
    v = rows[:, (nq + nkv) * hd: (nq + 2 * nkv) * hd].reshape(1, b, nkv, hd)
    return q.contiguous(), k.contiguous(), v.contiguous()


@golden("ttnn.experimental.nlp_concat_heads")
def nlp_concat_heads(input_tensor, **_):
    """[B, nh, S, hd] -> [B, 1, S, nh * hd]."""
    b, nh, s, hd = input_tensor.shape
    return input_tensor.permute(0, 2, 1, 3).reshape(b, 1, s, nh * hd).contiguous()


@golden("ttnn.experimental.nlp_concat_heads_decode")
def nlp_concat_heads_decode(input_tensor, *, num_heads, **_):
    """[1, B, 32 (padded heads), hd] -> [1, 1, B, num_heads * hd]: the first num_heads head rows
    of each user, concatenated."""
    nh = int(num_heads)
    s, b, _, hd = input_tensor.shape
    heads = _pad_dim(input_tensor, 2, max(nh, input_tensor.shape[2]))[:, :, :nh, :]
    return heads.reshape(s, 1, b, nh * hd).contiguous()


# ---------------------------------------------------------------------------
# rotary embeddings
# ---------------------------------------------------------------------------

def _rotate_by_tiles(x: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """x @ trans applied to every 32-wide block of the last dim; `trans` [32, 32] or
    broadcastable [..., 32, 32] over x's leading dims."""
    blocks = x.reshape(*x.shape[:-1], x.shape[-1] // TILE, TILE)
    return (blocks @ trans.to(x.dtype)).reshape(x.shape)


def _trans_tiles(trans_mat: torch.Tensor) -> torch.Tensor:
    """The transformation matrix as its 32x32 tiles: [n, 32, 32]."""
    return trans_mat.reshape(-1, TILE, TILE)


def _rope_decode(x, cos, sin, tiles, first):
    """Decode RoPE of x [1, B, H, hd], user b on the core of batch row first + b: row 0 of that
    row's cos / sin tile, broadcast over the heads (the kernel multiplies with a row broadcast),
    and that core's transformation-matrix tile (tile 0 when fewer tiles are given)."""
    b, hd = x.shape[1], x.shape[-1]
    c = cos[:, first: first + b, :1, :].to(x.dtype)
    s = sin[:, first: first + b, :1, :].to(x.dtype)
    if tiles.shape[0] >= first + b and tiles.shape[0] > 1:
        t = tiles[first: first + b].reshape(1, b, 1, 1, TILE, TILE).to(x.dtype)
        blocks = x.reshape(*x.shape[:-1], hd // TILE, 1, TILE)
        rot = (blocks @ t).reshape(x.shape)
    else:
        rot = _rotate_by_tiles(x, tiles[0])
    return x * c + rot * s


@golden("ttnn.experimental.rotary_embedding_llama")
def rotary_embedding_llama(input_tensor, cos_cache, sin_cache, trans_mat, is_decode_mode=False, **_):
    """out = x * cos + (x @ trans_mat per 32-wide block) * sin.

    Prefill (x [B, nh, S, hd], interleaved): cos / sin [1, 1 or nh, >= S, hd], element-wise at
    (head if cos has nh heads, position) for every batch; trans_mat one [32, 32] tile.
    Decode (x [1, B, nh, hd], one user per core): cos / sin [1, B, 1 (32), hd], row 0 of user
    b's tile broadcast over its heads; trans_mat one tile per core ([1, 1, 32 * B, 32]) or one."""
    x = input_tensor
    tiles = _trans_tiles(trans_mat)
    if is_decode_mode:
        return _rope_decode(x, cos_cache, sin_cache, tiles, 0)
    s = x.shape[-2]
    c = cos_cache[..., :s, :].to(x.dtype)
    sn = sin_cache[..., :s, :].to(x.dtype)
    return x * c + _rotate_by_tiles(x, tiles[0]) * sn


@golden("ttnn.experimental.rotary_embedding_llama_fused_qk")
def rotary_embedding_llama_fused_qk(q_input_tensor, k_input_tensor, cos_cache, sin_cache, trans_mat, **_):
    """Decode RoPE of Q [1, B, nq, hd] and K [1, B, nkv, hd] at once: cos / sin have 2B batch rows
    (sharded over Q's cores, then K's), Q's user b uses row b and K's user b row B + b (row 0 of
    that tile, broadcast over heads); the transformation matrix likewise one tile per core."""
    b = q_input_tensor.shape[1]
    tiles = _trans_tiles(trans_mat)
    k_first = b if cos_cache.shape[1] >= 2 * b else 0
    q = _rope_decode(q_input_tensor, cos_cache, sin_cache, tiles, 0)
    k = _rope_decode(k_input_tensor, cos_cache, sin_cache, tiles, k_first)
    return q, k


@golden("ttnn.experimental.rotary_embedding")
def rotary_embedding(input_tensor, cos_cache, sin_cache, token_index=None, *, token_idx=None, **_):
    """Falcon / GPT-NeoX RoPE with half rotation: out = x * cos + rotate_half(x) * sin,
    rotate_half(x) = [-x2, x1] over the halves of the last dim. With token_index every row uses
    the cache row token_index (decode: x [1, nh, B, hd]); without it row s uses cache row s. The
    output is tile-padded: ttnn's output shape is the input's padded shape (the rows of the last
    partial tile come out; they are zero rows of x, so zero)."""
    if token_index is None:
        token_index = token_idx
    x = _pad_dim(input_tensor, -2, _round_up(input_tensor.shape[-2]))
    half = x.shape[-1] // 2
    rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    if token_index is not None:
        t = int(token_index)
        c = cos_cache[..., t: t + 1, :]
        s = sin_cache[..., t: t + 1, :]
    else:
        n = x.shape[-2]
        c = _pad_dim(cos_cache, -2, max(n, cos_cache.shape[-2]))[..., :n, :]
        s = _pad_dim(sin_cache, -2, max(n, sin_cache.shape[-2]))[..., :n, :]
    return x * c.to(x.dtype) + rot * s.to(x.dtype)


# ---------------------------------------------------------------------------
# KV caches
# ---------------------------------------------------------------------------

@golden("ttnn.experimental.paged_fill_cache")
def paged_fill_cache(cache_tensor, input_tensor, page_table, *, batch_idx_tensor=None, batch_idx=0, block_size=None,
                     cache_position_modulo=None, valid_seq_len_tensor=None, **_):
    """Writes input [Bi, nh, S, hd] into the paged cache [blocks, nh, block_size, hd]: tile row t
    (tokens 32t..32t+31) of input batch row i, head h goes to block page_table[bi, t //
    (block_size / 32)], rows 32 * (t % (block_size / 32)).., where bi is batch_idx_tensor[i] (or
    the scalar batch_idx). Page-table entries of -1 are skipped. cache_position_modulo wraps the
    tile index into that many tokens and keeps only the last ones; valid_seq_len_tensor ends the
    written range at the block-rounded real length (writer_fill_cache_interleaved.cpp).
    Returns the new cache."""
    if block_size is not None and int(block_size) != cache_tensor.shape[2]:
        raise NotImplementedError("paged_fill_cache with a block_size other than the cache's is not modelled")
    out = cache_tensor.clone()
    bs = cache_tensor.shape[2]
    if bs % TILE:
        raise ValueError("paged_fill_cache: block_size must be a multiple of 32")
    bst = bs // TILE
    n_in, nh, s, _ = input_tensor.shape
    st = _round_up(s) // TILE
    x = _pad_dim(input_tensor, 2, st * TILE).to(out.dtype)
    x = _pad_dim(x, 3, out.shape[3])
    table = _index_table(page_table)
    if batch_idx_tensor is not None:
        users = _ints(batch_idx_tensor)
        if len(users) == 1:
            users = users * n_in
    else:
        if n_in != 1:
            raise ValueError("paged_fill_cache with a scalar batch_idx takes an input batch of 1")
        users = [int(batch_idx)]
    end = st
    if valid_seq_len_tensor is not None:
        valid_tiles = _round_up(_ints(valid_seq_len_tensor)[0]) // TILE
        valid_tiles = _round_up(valid_tiles, bst)
        if 0 < valid_tiles < st:
            end = valid_tiles
    capacity_t = int(cache_position_modulo) // TILE if cache_position_modulo else 0
    skip = end - capacity_t if capacity_t and end > capacity_t else 0
    for i in range(n_in):
        row = table[users[i]]
        for t in range(skip, end):
            tt = t % capacity_t if capacity_t else t
            block = row[tt // bst]
            if _is_skip(block):
                continue
            r = (tt % bst) * TILE
            out[block, :nh, r: r + TILE, :] = x[i, :, t * TILE: (t + 1) * TILE, :]
    return out


def _update_rows(out, inp, idxs, page_table, share_cache, modulo=None):
    """Writes input [1, B, heads, hd] row (b, h) at position idxs[b] of user b (through the page
    table when given) into `out` (in place): the paged_update_cache kernels' data flow."""
    nh = out.shape[1]
    b_in = inp.shape[1]
    rows = _pad_dim(inp[0], 1, max(nh, inp.shape[2]))[:, :nh, :]
    rows = _pad_dim(rows, 2, out.shape[3]).to(out.dtype)
    table = _index_table(page_table) if page_table is not None else None
    for b in range(b_in):
        pos = idxs[b]
        if _is_skip(pos):
            continue
        if modulo:
            pos = pos % int(modulo)
        if table is not None:
            bs = out.shape[2]
            block = table[b][pos // bs]
            out[block, :, pos % bs, :] = rows[b]
        else:
            out[0 if share_cache else b, :, pos, :] = rows[b]


def _update_idxs(update_idxs, update_idxs_tensor, page_table, n):
    if update_idxs_tensor is not None:
        return _ints(update_idxs_tensor)
    if page_table is not None:
        raise NotImplementedError("a paged cache update takes its positions from update_idxs_tensor")
    idxs = _ints(update_idxs or [])
    if len(idxs) < n:
        raise ValueError(f"update_idxs names {len(idxs)} positions for {n} users")
    return idxs


@golden("ttnn.experimental.paged_update_cache")
def paged_update_cache(cache_tensor, input_tensor, *, update_idxs=(), update_idxs_tensor=None, share_cache=None,
                       page_table=None, batch_offset=0, block_size=None, num_kv_heads=None,
                       cache_position_modulo=None, **_):
    """Writes the decode token input [1, B, nkv (32), hd] of user b at position
    update_idxs[b] (update_idxs_tensor, or the list) of cache [B, nkv, S, hd], or with a page
    table of the paged cache [blocks, nkv, block_size, hd] at block page_table[b, pos //
    block_size], row pos % block_size. Position -1 skips the user; share_cache writes every user
    into cache batch 0. Returns the new cache."""
    if block_size is not None and int(block_size) != cache_tensor.shape[2]:
        raise NotImplementedError("paged_update_cache with a block_size other than the cache's is not modelled")
    if num_kv_heads is not None and int(num_kv_heads) != cache_tensor.shape[1]:
        raise NotImplementedError("paged_update_cache with a num_kv_heads other than the cache's is not modelled")
    out = cache_tensor.clone()
    idxs = _update_idxs(update_idxs, update_idxs_tensor, page_table, input_tensor.shape[1])
    _update_rows(out, input_tensor, idxs, page_table, bool(share_cache), cache_position_modulo)
    return out


@golden("ttnn.experimental.paged_fused_update_cache")
def paged_fused_update_cache(cache_tensor1, input_tensor1, cache_tensor2, input_tensor2, *, update_idxs=(),
                             update_idxs_tensor=None, share_cache=None, page_table=None, batch_offset=0, **_):
    """paged_update_cache of (cache_tensor1, input_tensor1) and (cache_tensor2, input_tensor2)
    with the same positions and page table; returns the two new caches."""
    n = input_tensor1.shape[1]
    idxs = _update_idxs(update_idxs, update_idxs_tensor, page_table, n)
    out1 = cache_tensor1.clone()
    out2 = cache_tensor2.clone()
    _update_rows(out1, input_tensor1, idxs, page_table, bool(share_cache))
    _update_rows(out2, input_tensor2, idxs, page_table, bool(share_cache))
    return out1, out2


@golden("ttnn.update_cache")
def update_cache(cache, input, update_idx, *, batch_offset=0, **_):
    """cache [Bc, nh, S, hd], input [1, nh, B (32), hd]: row update_idx of cache user u becomes
    input row batch_offset + u (ttnn's own golden, without writing into its argument)."""
    out = cache.clone()
    users = out.shape[0]
    off = int(batch_offset)
    x = _pad_dim(input, -2, max(input.shape[-2], off + users)).to(out.dtype)
    x = _pad_dim(x, -1, out.shape[-1])
    pos = int(update_idx)
    for u in range(users):
        out[u, :, pos, :] = x[0, :, off + u, :]
    return out


@golden("ttnn.fill_cache")
def fill_cache(cache_tensor, input_tensor, batch_idx, *, update_idx=0, **_):
    """cache [Bc, nh, S, hd], input [1, nh, s, hd]: cache user batch_idx rows update_idx..
    update_idx + s take the input (whole tiles: the rows up to the next multiple of 32 take the
    input's zero padding). Returns the new cache."""
    out = cache_tensor.clone()
    start = int(update_idx)
    n = min(_round_up(input_tensor.shape[-2]), out.shape[-2] - start)
    x = _pad_dim(input_tensor, -2, n).to(out.dtype)
    x = _pad_dim(x, -1, out.shape[-1])
    out[int(batch_idx), :, start: start + n, :] = x[0]
    return out


@golden("ttnn.reshape")
def reshape(input_tensor, shape, padded_shape=None, **_):
    # the padded shape only places tile padding; the logical values are a row-major reshape
    return input_tensor.reshape(tuple(int(d) for d in shape))


def _softmax_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A mask as scale_mask_softmax adds it. A row-major mask whose last dim is one tile wide
    holds each row's mask folded into tile-wide rows ([.., W/32, 32]): unfold it into one row
    broadcast over the scores' rows (ttnn's documented row-major mask form)."""
    width = like.shape[-1]
    if mask.shape[-1] == TILE and width != TILE and mask.shape[-2] * TILE == width:
        mask = mask.reshape(*mask.shape[:-2], 1, width)
    return mask


@golden("ttnn.scale_mask_softmax_in_place", "ttnn.scale_mask_softmax")
def scale_mask_softmax(input_tensor, scale=None, mask=None, *, is_causal_mask=False, **_):
    x = input_tensor
    if scale is not None:
        x = x * scale
    if mask is not None:
        x = x + _softmax_mask(mask, x)
    return torch.softmax(x, dim=-1)


# ---------------------------------------------------------------------------
# reductions
# ---------------------------------------------------------------------------

@golden("ttnn.experimental.fast_reduce_nc")
def fast_reduce_nc(input, *, dims=(), output=None, **_):
    """Sum over the outer dims `dims` (0, 1 or both of a 4D tensor), kept as size-1 dims (the op's
    output shape: [1, C, H, W], [N, 1, H, W] or [1, 1, H, W]). No dims: every dim but the last two
    (the kernel's default reduction)."""
    ds = [int(d) % input.dim() for d in dims] or list(range(input.dim() - 2))
    return input.sum(dim=ds, keepdim=True)


@golden("ttnn.sharded_to_interleaved_partial")
def sharded_to_interleaved_partial(input_tensor, cache_tensor, num_slices, slice_index, **_):
    """The cache with rows [slice_index * n, (slice_index + 1) * n) of its flattened height
    replaced by the slice (n = height / num_slices); a new tensor, the cache is not mutated."""
    out = cache_tensor.clone()
    flat = out.reshape(1, 1, -1, out.shape[-1])
    n = flat.shape[-2] // num_slices
    flat[:, :, slice_index * n:(slice_index + 1) * n, :] = input_tensor.reshape(1, 1, -1, out.shape[-1])
    return flat.reshape(cache_tensor.shape)
