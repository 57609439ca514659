"""A Llama-style decoder layer written the way TT-NN model authors write it.

attention_norm -> fused QKV linear -> attention -> output linear -> residual add ->
ff_norm -> w1 and w3 -> silu(w1) * w3 -> w2 -> residual add.

The attention core is plain multi-head attention over the rows of the input with grouped
KV heads and no KV cache (the fusions of interest sit around it, not in it). Decode mode is
batch 32, one token per user; prefill is one user, seq 128. The feed-forward width is a
constructor argument so tests can keep weights small at the real hidden sizes.
"""
from __future__ import annotations

import math

import torch
import ttnn

from fusion import TensorSpec


def _weight(g, rows, cols, device, scale=None):
    w = torch.randn(rows, cols, generator=g) * (scale if scale is not None else rows ** -0.5)
    return ttnn.from_torch(w, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device)


def _gamma(g, width, device):
    w = 1.0 + 0.1 * torch.randn(1, 1, 1, width, generator=g)
    return ttnn.from_torch(w, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device)


class LlamaDecoderLayer:
    def __init__(self, hidden: int = 4096, n_heads: int = 32, n_kv_heads: int = 8, ffn: int = 14336,
                 eps: float = 1e-5, mode: str = "decode", device=None, seed: int = 0):
        if mode not in ("decode", "prefill"):
            raise ValueError("mode is 'decode' or 'prefill'")
        self.hidden, self.n_heads, self.n_kv_heads, self.ffn, self.eps, self.mode = hidden, n_heads, n_kv_heads, ffn, eps, mode
        self.head_dim = hidden // n_heads
        self.rows = 32 if mode == "decode" else 128
        g = torch.Generator().manual_seed(seed)
        kv = n_kv_heads * self.head_dim
        self.attention_norm = _gamma(g, hidden, device)
        self.ff_norm = _gamma(g, hidden, device)
        self.wqkv = _weight(g, hidden, hidden + 2 * kv, device)
        self.wo = _weight(g, hidden, hidden, device)
        self.w1 = _weight(g, hidden, ffn, device)
        self.w3 = _weight(g, hidden, ffn, device)
        self.w2 = _weight(g, ffn, hidden, device)

    def attention(self, xqkv):
        s, hd, nh, nkv = self.rows, self.head_dim, self.n_heads, self.n_kv_heads
        q = ttnn.slice(xqkv, [0, 0, 0, 0], [1, 1, s, nh * hd])
        k = ttnn.slice(xqkv, [0, 0, 0, nh * hd], [1, 1, s, (nh + nkv) * hd])
        v = ttnn.slice(xqkv, [0, 0, 0, (nh + nkv) * hd], [1, 1, s, (nh + 2 * nkv) * hd])
        q = ttnn.permute(ttnn.reshape(q, (1, s, nh, hd)), (0, 2, 1, 3))
        k = ttnn.permute(ttnn.reshape(k, (1, s, nkv, hd)), (0, 2, 1, 3))
        v = ttnn.permute(ttnn.reshape(v, (1, s, nkv, hd)), (0, 2, 1, 3))
        if nh != nkv:  # grouped KV heads serve several query heads each
            k = ttnn.repeat(k, (1, nh // nkv, 1, 1))
            v = ttnn.repeat(v, (1, nh // nkv, 1, 1))
        scores = ttnn.multiply(ttnn.matmul(q, k, transpose_b=True), 1.0 / math.sqrt(hd))
        probs = ttnn.softmax(scores, dim=-1)
        out = ttnn.matmul(probs, v)
        out = ttnn.reshape(ttnn.permute(out, (0, 2, 1, 3)), (1, 1, s, nh * hd))
        return out

    def __call__(self, x):
        attn_in = ttnn.rms_norm(x, weight=self.attention_norm, epsilon=self.eps)
        xqkv = ttnn.linear(attn_in, self.wqkv)
        ttnn.deallocate(attn_in)
        attn = self.attention(xqkv)
        attn_out = ttnn.linear(attn, self.wo)
        h = ttnn.add(x, attn_out)
        ff_in = ttnn.rms_norm(h, weight=self.ff_norm, epsilon=self.eps)
        gate = ttnn.linear(ff_in, self.w1)
        up = ttnn.linear(ff_in, self.w3)
        ttnn.deallocate(ff_in)
        act = ttnn.multiply(ttnn.silu(gate), up)
        down = ttnn.linear(act, self.w2)
        return ttnn.add(h, down)

    def example_inputs(self) -> list:
        return [TensorSpec((1, 1, self.rows, self.hidden))]

    def random_inputs(self, seed: int = 1) -> list:
        return [torch.randn(1, 1, self.rows, self.hidden, generator=torch.Generator().manual_seed(seed))]


CONFIGS = [
    dict(hidden=4096, n_heads=32, n_kv_heads=8, ffn=2048, mode="decode"),
    dict(hidden=4096, n_heads=32, n_kv_heads=8, ffn=2048, mode="prefill"),
    dict(hidden=7168, n_heads=56, n_kv_heads=8, ffn=2048, mode="decode"),
]
