"""A Llama-3 decoder layer as a PyTorch-first author ports it to TT-NN, call for call.

Not a tt-metal file: the module structure is Hugging Face's ``transformers`` Llama
(``modeling_llama.py``: ``LlamaRMSNorm.forward``, ``LlamaAttention.forward`` without rotary or KV
cache, ``LlamaMLP.forward`` = ``down_proj(act_fn(gate_proj(x)) * up_proj(x))``,
``LlamaDecoderLayer.forward`` with its two residual adds), each torch call replaced by the ttnn call
of the same name, the way the first port of a model usually reads before anyone tunes it:

* RMSNorm written out: ``x * rsqrt(mean(x * x, -1, keepdim) + eps)``, then ``weight * x``
  (the HF order: weight first);
* q/k/v/o and the MLP as ``ttnn.linear``; heads split with reshape + permute (``view`` +
  ``transpose(1, 2)``), k transposed for the scores, ``softmax`` in the activation dtype;
* an explicit ``ttnn.to_memory_config`` wherever the author wanted a value in L1 for the next
  matmul (after each norm) or back in DRAM (the attention and MLP outputs), the residual stream in DRAM.

Config: Llama-3.2-1B (dim 2048, 32 heads of 64, 8 KV heads repeated to 32 with
``ttnn.repeat_interleave``, hidden 8192), one 32-token sequence on N150. No rotary embedding and no
KV cache: this forward exists to measure what the pass does to code written this way (the issue's
target: at least 30% fewer dispatches), not to reproduce a model's numerics.
"""
from __future__ import annotations

import corpus
from corpus.common import randn, seeded

DIM, HEADS, KV_HEADS, HEAD_DIM, HIDDEN, EPS = 2048, 32, 8, 64, 8192, 1e-5
SEQ = 32
FOLLOWS = "transformers/models/llama/modeling_llama.py: LlamaDecoderLayer.forward (ported call for call)"


class PyTorchFirstLlamaLayer:
    def __init__(self, device, gen):
        import ttnn

        def weight(shape, scale):
            return ttnn.from_torch(randn(shape, gen, scale), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT,
                                   device=device, memory_config=ttnn.DRAM_MEMORY_CONFIG)

        self.attn_norm = weight((1, 1, 1, DIM), 1.0)
        self.ffn_norm = weight((1, 1, 1, DIM), 1.0)
        self.wq = weight((DIM, HEADS * HEAD_DIM), DIM ** -0.5)
        self.wk = weight((DIM, KV_HEADS * HEAD_DIM), DIM ** -0.5)
        self.wv = weight((DIM, KV_HEADS * HEAD_DIM), DIM ** -0.5)
        self.wo = weight((HEADS * HEAD_DIM, DIM), DIM ** -0.5)
        self.w1 = weight((DIM, HIDDEN), DIM ** -0.5)
        self.w3 = weight((DIM, HIDDEN), DIM ** -0.5)
        self.w2 = weight((HIDDEN, DIM), HIDDEN ** -0.5)

    @staticmethod
    def rms_norm(x, w):
        import ttnn

        variance = ttnn.mean(x * x, dim=-1, keepdim=True)
        x = x * ttnn.rsqrt(variance + EPS)
        return w * x

    def heads(self, t, n):
        import ttnn

        t = ttnn.reshape(t, (1, SEQ, n, HEAD_DIM))
        return ttnn.permute(t, (0, 2, 1, 3))

    def attention(self, x):
        import ttnn

        q = self.heads(ttnn.linear(x, self.wq), HEADS)
        k = self.heads(ttnn.linear(x, self.wk), KV_HEADS)
        v = self.heads(ttnn.linear(x, self.wv), KV_HEADS)
        k = ttnn.repeat_interleave(k, HEADS // KV_HEADS, dim=1)
        v = ttnn.repeat_interleave(v, HEADS // KV_HEADS, dim=1)
        scores = ttnn.matmul(q, ttnn.permute(k, (0, 1, 3, 2))) * (HEAD_DIM ** -0.5)
        probs = ttnn.softmax(scores, dim=-1)
        out = ttnn.matmul(probs, v)
        out = ttnn.reshape(ttnn.permute(out, (0, 2, 1, 3)), (1, 1, SEQ, HEADS * HEAD_DIM))
        out = ttnn.linear(out, self.wo)
        return ttnn.to_memory_config(out, ttnn.DRAM_MEMORY_CONFIG)

    def mlp(self, x):
        import ttnn

        gate = ttnn.silu(ttnn.linear(x, self.w1))
        up = ttnn.linear(x, self.w3)
        out = ttnn.linear(gate * up, self.w2)
        return ttnn.to_memory_config(out, ttnn.DRAM_MEMORY_CONFIG)

    def __call__(self, x):
        import ttnn

        h = ttnn.to_memory_config(self.rms_norm(x, self.attn_norm), ttnn.L1_MEMORY_CONFIG)
        x = x + self.attention(h)
        h = ttnn.to_memory_config(self.rms_norm(x, self.ffn_norm), ttnn.L1_MEMORY_CONFIG)
        return x + self.mlp(h)


@corpus.forward("llama_pytorch_first.decoder.prefill.llama3_2_1b", family="pytorch_first", mode="prefill",
                follows=FOLLOWS, device="n150", mesh_shape=(1, 1))
def build(mesh_device) -> corpus.Forward:
    import ttnn

    gen = seeded(31)
    layer = PyTorchFirstLlamaLayer(mesh_device, gen)
    host = randn((1, 1, SEQ, DIM), gen)
    x = ttnn.from_torch(host, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=mesh_device,
                        memory_config=ttnn.DRAM_MEMORY_CONFIG)
    return corpus.Forward(name="llama_pytorch_first.decoder.prefill.llama3_2_1b", family="pytorch_first",
                          mode="prefill", follows=FOLLOWS, model=layer, example_inputs=[x], host_inputs=[host],
                          notes="Llama-3.2-1B shapes, 32 tokens, no rotary embedding or KV cache (see the module text).")
