"""Falcon-7B (tiiuae/falcon-7b-instruct) on one Wormhole N150, as tt-metal's Falcon-7B demo runs it.

Follows tt-metal's ``models/demos/nlp/llms/falcon7b/common/tt/`` (the newest home of what was
``models/demos/falcon7b_common/tt/``):

* ``falcon_mlp.py``: ``TtFalconMLPDecode.forward`` (with ``falcon_dense_h_to_4h_matmul`` /
  ``falcon_dense_4h_to_h_matmul``) and ``TtFalconMLPPrefill.forward``;
* ``falcon_attention.py``: ``TtFalconAttentionDecode.forward`` and ``TtFalconRotaryEmbedding``;
* ``falcon_decoder.py``: ``TtFalconDecoderLayer.forward`` (decode), with ``model_utils.layernorm``;
* ``model_config.py``: ``get_model_config`` / ``set_prefill_config`` / ``get_ln_block_sharded_config``.

(``model_utils.py`` of the new directory is not in the stored copy of tt-metal; ``layernorm`` and
``get_falcon_default_core_grid`` follow ``models/demos/falcon7b_common/tt/model_utils.py``.)

Config: the Wormhole demo (``models/demos/nlp/llms/falcon7b/wormhole/demo_wormhole.py``), test
``perf_mode_1024``: batch 32, ``max_seq_len = 1024`` (the KV cache and the rotary cos/sin tables hold
1024 positions), prefill of 1024 tokens with model config ``BFLOAT16-DRAM`` (``get_model_config(
"BFLOAT16-DRAM", 1024, 32)``), then decode with ``BFLOAT16-L1_SHARDED`` (the demo's
``update_model_config``, i.e. ``get_model_config("BFLOAT16-L1_SHARDED", 32)``) at
``kv_cache_len = 1023`` (perf mode decodes at ``max_seq_len - 1``). Weights as ``get_weights_cached``
makes them: every ``*_MM_WEIGHTS`` bfloat8_b, the rest bfloat16, TILE, DRAM, replicated. Because the
layer is built with ``MLP_SEQ_LEN = 1024`` and ``PREFILL_OPTIMIZED_MODE`` (true off Grayskull), the MLP
weights are zero-padded to 4608 x 18432 / 18432 x 4608 and the decode MLP concatenates a 64-column
zero pad onto its input and slices the output back to 4544 columns.

Falcon-7B: hidden 4544, 71 query heads of 64 and one shared K/V head (fused QKV width 4672), MLP
18176 (padded 18432), layer-norm epsilon 1e-5, parallel attention + MLP.

Left out: weights are seeded random values of the real shapes (no state dict, no cache files); the
embedding, final layer norm and LM head (not part of these modules).
"""
from __future__ import annotations

import math

import torch

import corpus
from corpus.common import randn, seeded

# --- Falcon-7B dimensions (FalconConfig of tiiuae/falcon-7b-instruct) ----------------------------
HIDDEN = 4544
NUM_HEADS = 71
HEAD_DIM = HIDDEN // NUM_HEADS          # 64
QKV_WIDTH = HIDDEN + 2 * HEAD_DIM       # 4672: 71 q heads + 1 k head + 1 v head
FF = 4 * HIDDEN                         # 18176
LN_EPS = 1e-5

# --- demo config (demo_wormhole.py perf_mode_1024) -----------------------------------------------
BATCH = 32                              # decode users on the chip
MAX_SEQ_LEN = 1024                      # max_position_embeddings handed to the layers, KV-cache length
PREFILL_SEQ_LEN = 1024                  # nearest_32(num_input_tokens) in perf mode = MLP_SEQ_LEN
DECODE_POS = MAX_SEQ_LEN - 1            # kv_cache_len of perf-mode decode (num_input_tokens = 1023)
MLP_PADDING_VALUE = 4608                # set_prefill_config: MLP_PADDING_VALUE
PADDED_LOCAL_HEADS = 96                 # nearest_32(71)

FOLLOWS_DIR = "models/demos/nlp/llms/falcon7b/common/tt"


def _nearest_32(x: int) -> int:
    return ((x + 31) // 32) * 32


def _replicated_weight(ttnn, device, torch_tensor, dtype):
    """get_weights_cached: ttnn.as_tensor(TILE, DRAM, ReplicateTensorToMesh) of the (padded) weight."""
    return ttnn.as_tensor(
        torch_tensor,
        dtype=dtype,
        layout=ttnn.TILE_LAYOUT,
        device=device,
        memory_config=ttnn.DRAM_MEMORY_CONFIG,
        mesh_mapper=ttnn.ReplicateTensorToMesh(device),
    )


def _from_torch(ttnn, device, torch_tensor, dtype, layout, memory_config=None):
    """test_utils.tt_from_torch on a mesh: ttnn.from_torch with a replicating mesh mapper."""
    return ttnn.from_torch(
        torch_tensor,
        dtype=dtype,
        device=device,
        layout=layout,
        memory_config=memory_config,
        mesh_mapper=ttnn.ReplicateTensorToMesh(device),
    )


def _default_core_grid(ttnn, device):
    """model_utils.get_falcon_default_core_grid: on Wormhole with >= 8 rows, 7 rows of the full width
    (CoreGrid(y=7, x=8) on an N150), given the activation's ``tensor.device()`` as the real code does."""
    grid = device.compute_with_storage_grid_size()
    if grid.y >= 8:
        return ttnn.CoreGrid(y=7, x=grid.x)
    return ttnn.CoreGrid(y=grid.y, x=grid.x)


# --- MLP ------------------------------------------------------------------------------------------
class _MLPWeights:
    """TtFalconMLP{Prefill,Decode}.__init__ with MLP_SEQ_LEN in [1024, 2048] and PREFILL_OPTIMIZED_MODE:
    the transposed weights zero-padded to custom_output_shape (1, 1, 4608, 18432) / (1, 1, 18432, 4608)
    (get_weights_cached pads the 2-D weight with torch.nn.functional.pad), bfloat8_b (MM_WEIGHTS_DTYPE)."""

    def __init__(self, ttnn, device, gen):
        w_h_to_4h = randn((FF, HIDDEN), gen, scale=1.0 / math.sqrt(HIDDEN))        # torch Linear layout [out, in]
        w_4h_to_h = randn((HIDDEN, FF), gen, scale=1.0 / math.sqrt(FF))
        pad = MLP_PADDING_VALUE
        h_to_4h = torch.nn.functional.pad(w_h_to_4h.T, (0, 4 * pad - FF, 0, pad - HIDDEN))   # [4608, 18432]
        four_h_to_h = torch.nn.functional.pad(w_4h_to_h.T, (0, pad - HIDDEN, 0, 4 * pad - FF))  # [18432, 4608]
        self.dense_h_to_4h = _replicated_weight(ttnn, device, h_to_4h, ttnn.bfloat8_b)
        self.dense_4h_to_h = _replicated_weight(ttnn, device, four_h_to_h, ttnn.bfloat8_b)


def _lofi_mlp_kernel_config(ttnn):
    """falcon_dense_{h_to_4h,4h_to_h}_matmul on Wormhole."""
    return ttnn.WormholeComputeKernelConfig(
        math_fidelity=ttnn.MathFidelity.LoFi,
        math_approx_mode=True,
        fp32_dest_acc_en=False,
        packer_l1_acc=True,
    )


class _FalconMLPDecode:
    """TtFalconMLPDecode.forward with the decode model config (BFLOAT16-L1_SHARDED): both matmul outputs
    DENSE_*_MM_OUTPUT_MEMCFG = DRAM (that config keeps DRAM as the default memcfg), dtype bfloat16."""

    def __init__(self, ttnn, device, weights: _MLPWeights):
        self.ttnn = ttnn
        self.device = device
        self.weights = weights
        # _load_mlp_padded_tensors: a [1, 1, 32, 64] zero pad (4608 - 4544 = 64 columns), bf16 TILE DRAM
        self.decode_padding = _from_torch(
            ttnn, device, torch.zeros((1, 1, 32, 64)).bfloat16().float(), ttnn.bfloat16, ttnn.TILE_LAYOUT,
            ttnn.DRAM_MEMORY_CONFIG,
        )
        self.output_memcfg = ttnn.DRAM_MEMORY_CONFIG
        self.output_dtype = ttnn.bfloat16

    def __call__(self, x):
        ttnn = self.ttnn
        batch_size = x.shape[-2]
        # hidden_size (4544) < padding value (4608) and the layer was built for a 1024-token prefill
        x = ttnn.concat([x, self.decode_padding], dim=3)
        # falcon_dense_h_to_4h_matmul: seq (padded_shape[2] = 32) <= 1024, so the fused-gelu path
        hidden_states = ttnn.matmul(
            x,
            self.weights.dense_h_to_4h,
            memory_config=self.output_memcfg,
            dtype=self.output_dtype,
            core_grid=_default_core_grid(ttnn, x.device()),
            activation="gelu_approx",
            compute_kernel_config=_lofi_mlp_kernel_config(ttnn),
        )
        x.deallocate()
        # falcon_dense_4h_to_h_matmul
        hidden_states = ttnn.matmul(
            hidden_states,
            self.weights.dense_4h_to_h,
            memory_config=self.output_memcfg,
            dtype=self.output_dtype,
            core_grid=_default_core_grid(ttnn, hidden_states.device()),
            compute_kernel_config=_lofi_mlp_kernel_config(ttnn),
        )
        # remove the padding columns
        hidden_states = ttnn.slice(
            hidden_states,
            starts=(0, 0, 0, 0),
            ends=(1, 1, batch_size, HIDDEN),
            steps=(1, 1, 1, 1),
            memory_config=self.output_memcfg,
        )
        return hidden_states


class _FalconMLPPrefill:
    """TtFalconMLPPrefill.forward, optimized path (PREFILL_OPTIMIZED_MODE and seq_len 1024): pad to 4608
    columns, block-shard the whole sequence (1 slice) over the 8x8 grid, two block-sharded 2D-mcast
    matmuls (the first with fused approximate GELU), write back into a preallocated DRAM output, slice
    the padding off."""

    def __init__(self, ttnn, device, weights: _MLPWeights, seq_len: int = PREFILL_SEQ_LEN):
        assert seq_len in (1024, 2048)
        self.ttnn = ttnn
        self.weights = weights
        self.seq_len = seq_len
        # _load_mlp_padded_tensors: zero pads [1, 1, s, 64] for s in (1024, 2048) with s <= max_position_embeddings
        self.padding = _from_torch(
            ttnn, device, torch.zeros((1, 1, seq_len, 64)).bfloat16().float(), ttnn.bfloat16, ttnn.TILE_LAYOUT,
            ttnn.DRAM_MEMORY_CONFIG,
        )
        # _allocate_output_mlp_tensors: [1, 1, seq_len, 4608] bf16 TILE DRAM (MLP_OUTPUT_TENSORS)
        self.out_tt = _from_torch(
            ttnn, device, torch.zeros((1, 1, seq_len, MLP_PADDING_VALUE)).bfloat16().float(), ttnn.bfloat16,
            ttnn.TILE_LAYOUT, ttnn.DRAM_MEMORY_CONFIG,
        )
        self.grid_size = (8, 8)                                   # MLP_GRID_SIZE
        # MLP_KERNEL_CONFIG (set_prefill_config, Wormhole)
        self.kernel_config = ttnn.WormholeComputeKernelConfig(
            math_fidelity=ttnn.MathFidelity.HiFi2,
            math_approx_mode=False,
            fp32_dest_acc_en=False,
            packer_l1_acc=True,
        )
        # DENSE_H_TO_4H_MM_PROGCFG: per_core_M = 1024 / 32 / 8 rows = 4, per_core_N = 18432 / 32 / 8 cols = 72
        self.h_to_4h_progcfg = ttnn.MatmulMultiCoreReuseMultiCastProgramConfig(
            compute_with_storage_grid_size=self.grid_size,
            in0_block_w=3,
            out_subblock_h=1,
            out_subblock_w=1,
            per_core_M=4,
            per_core_N=72,
            transpose_mcast=False,
            fused_activation=[ttnn.UnaryOpType.GELU, True],
        )
        # DENSE_4H_TO_H_MM_PROGCFG: per_core_N = 4608 / 32 / 8 = 18
        self.four_h_to_h_progcfg = ttnn.MatmulMultiCoreReuseMultiCastProgramConfig(
            compute_with_storage_grid_size=self.grid_size,
            in0_block_w=8,
            out_subblock_h=1,
            out_subblock_w=1,
            per_core_M=4,
            per_core_N=18,
            transpose_mcast=False,
            fused_activation=None,
        )
        self.out_memcfg = ttnn.DRAM_MEMORY_CONFIG             # MLP_INTERLEAVED_TO_SHARDED_MEM_CFG

    def __call__(self, x):
        ttnn = self.ttnn
        x = ttnn.concat([x, self.padding], dim=3)
        out_tt = self.out_tt
        num_slices = 2 if self.seq_len == 2048 else 1
        grid_size = self.grid_size
        for slice_idx in range(num_slices):
            slices = ttnn.interleaved_to_sharded_partial(
                x,
                grid_size,
                [self.seq_len // num_slices // grid_size[1], MLP_PADDING_VALUE // grid_size[0]],
                num_slices,
                slice_idx,
                ttnn.TensorMemoryLayout.BLOCK_SHARDED,
                ttnn.ShardOrientation.ROW_MAJOR,
            )
            hidden_states = ttnn.matmul(
                slices,
                self.weights.dense_h_to_4h,
                program_config=self.h_to_4h_progcfg,
                dtype=ttnn.bfloat16,
                memory_config=ttnn.L1_BLOCK_SHARDED_MEMORY_CONFIG,
                compute_kernel_config=self.kernel_config,
            )
            slices.deallocate()
            out_data = ttnn.matmul(
                hidden_states,
                self.weights.dense_4h_to_h,
                program_config=self.four_h_to_h_progcfg,
                dtype=ttnn.bfloat16,
                memory_config=ttnn.L1_BLOCK_SHARDED_MEMORY_CONFIG,
                compute_kernel_config=self.kernel_config,
            )
            hidden_states.deallocate()
            ttnn.sharded_to_interleaved_partial(
                out_data,
                out_tt,
                num_slices,
                slice_idx,
                memory_config=self.out_memcfg,
            )
            out_data.deallocate()
        x.deallocate()
        hidden_states.deallocate()
        hidden_states = out_tt[:, :, :, :HIDDEN]
        return hidden_states


# --- attention (decode, BFLOAT16-L1_SHARDED) -------------------------------------------------------
def _attn_batch_sharded_memcfg(ttnn, shard_height, shard_width):
    """ATTN_BATCH_SHARDED_MEMCFG: height-sharded over cores (0,0)-(7,3), one user (batch entry) a core."""
    return ttnn.MemoryConfig(
        ttnn.TensorMemoryLayout.HEIGHT_SHARDED,
        ttnn.BufferType.L1,
        ttnn.ShardSpec(
            ttnn.CoreRangeSet({ttnn.CoreRange(ttnn.CoreCoord(0, 0), ttnn.CoreCoord(7, 3))}),
            [shard_height, shard_width],
            ttnn.ShardOrientation.ROW_MAJOR,
        ),
    )


def _attn_batched_mm_progcfg(ttnn, block_w, per_core_M, per_core_N):
    """ATTN_BATCHED_MM_PROGCFG."""
    return ttnn.MatmulMultiCoreReuseProgramConfig(
        compute_with_storage_grid_size=[8, 4],
        in0_block_w=block_w,
        out_subblock_h=1,
        out_subblock_w=1,
        per_core_M=per_core_M,
        per_core_N=per_core_N,
    )


class _FalconAttentionDecode:
    """TtFalconAttentionDecode.forward with model_config["l1_sharded"] (BFLOAT16-L1_SHARDED on Wormhole)."""

    def __init__(self, ttnn, device, gen):
        self.ttnn = ttnn
        self.device = device
        # weights (get_weights_cached of the transposed torch weights, FUSED_QKV/SELFOUT_MM_WEIGHTS: bfloat8_b)
        qkv = randn((QKV_WIDTH, HIDDEN), gen, scale=1.0 / math.sqrt(HIDDEN))
        dense = randn((HIDDEN, HIDDEN), gen, scale=1.0 / math.sqrt(HIDDEN))
        self.query_key_value_weights = _replicated_weight(ttnn, device, qkv.T.contiguous(), ttnn.bfloat8_b)
        self.dense_weights = _replicated_weight(ttnn, device, dense.T.contiguous(), ttnn.bfloat8_b)
        # TtFalconRotaryEmbedding: cos/sin tables [1, 1, max_position_embeddings, 64], bf16 (COS/SIN_CACHED_WEIGHTS)
        inv_freq = 1.0 / (10000 ** (torch.arange(0, HEAD_DIM, 2).float() / HEAD_DIM))
        t = torch.arange(MAX_SEQ_LEN, dtype=inv_freq.dtype)
        freqs = torch.einsum("i,j->ij", t, inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.tt_cos_cached = _replicated_weight(ttnn, device, emb.cos()[None, None, :, :], ttnn.bfloat16)
        self.tt_sin_cached = _replicated_weight(ttnn, device, emb.sin()[None, None, :, :], ttnn.bfloat16)
        self.scalar = 1 / math.sqrt(HEAD_DIM)
        # model config values of BFLOAT16-L1_SHARDED (get_model_config)
        dram, l1 = ttnn.DRAM_MEMORY_CONFIG, ttnn.L1_MEMORY_CONFIG
        self.fused_qkv_mm_output_memcfg = dram
        self.create_qkv_heads_output_memcfg = dram
        self.rotary_embedding_output_memcfg = l1
        self.k_cache_slice_output_memcfg = dram    # kept in DRAM for L1_SHARDED (L1 fragmentation note)
        self.v_cache_slice_output_memcfg = l1
        self.post_softmax_mm_output_memcfg = l1
        self.concat_heads_output_memcfg = dram
        self.selfout_mm_output_memcfg = dram
        self.default_lofi_kernel_config = ttnn.WormholeComputeKernelConfig(   # DEFAULT_LoFi_KERNEL_CONFIG
            math_fidelity=ttnn.MathFidelity.LoFi,
            math_approx_mode=False,
            fp32_dest_acc_en=False,
            packer_l1_acc=False,
        )
        self.pre_softmax_mm_kernel_config = ttnn.WormholeComputeKernelConfig(
            math_fidelity=ttnn.MathFidelity.LoFi,
            math_approx_mode=True,
            fp32_dest_acc_en=False,
            packer_l1_acc=True,
        )
        self.post_softmax_mm_kernel_config = ttnn.WormholeComputeKernelConfig(
            math_fidelity=ttnn.MathFidelity.LoFi,
            math_approx_mode=True,
            fp32_dest_acc_en=True,
            packer_l1_acc=True,
        )

    def _rotary_embedding(self, layer, token_idx):
        return self.ttnn.experimental.rotary_embedding(
            layer,
            self.tt_cos_cached,
            self.tt_sin_cached,
            token_idx,
            memory_config=self.rotary_embedding_output_memcfg,
        )

    def __call__(self, hidden_states, attention_mask, k_cache, v_cache, layer_past_len):
        ttnn = self.ttnn
        padded_layer_past_len = _nearest_32(layer_past_len + 1)
        batch = hidden_states.padded_shape[2]

        # fused QKV
        fused_query_key_value = ttnn.matmul(
            hidden_states,
            self.query_key_value_weights,
            memory_config=self.fused_qkv_mm_output_memcfg,
            dtype=ttnn.bfloat16,
            core_grid=_default_core_grid(ttnn, hidden_states.device()),
            compute_kernel_config=self.default_lofi_kernel_config,
        )
        query_layer, key_layer, value_layer = ttnn.experimental.nlp_create_qkv_heads_falcon7b(
            fused_query_key_value,
            memory_config=self.create_qkv_heads_output_memcfg,
        )
        fused_query_key_value.deallocate(True)

        # rotary embeddings at position layer_past_len
        query_layer = self._rotary_embedding(query_layer, layer_past_len)
        key_layer = self._rotary_embedding(key_layer, layer_past_len)

        # K cache update in place, then the first nearest_32(pos + 1) positions of it
        ttnn.update_cache(k_cache, key_layer, layer_past_len)
        key_layer.deallocate(True)
        key_layer = ttnn.slice(
            k_cache,
            starts=(0, 0, 0, 0),
            ends=(batch, 1, _nearest_32(layer_past_len + 1), HEAD_DIM),
            steps=(1, 1, 1, 1),
            memory_config=self.k_cache_slice_output_memcfg,
        )
        key_layer = ttnn.interleaved_to_sharded(
            key_layer,
            _attn_batch_sharded_memcfg(ttnn, padded_layer_past_len, HEAD_DIM),
        )

        # Q: pad heads 71 -> 96, batch into dim 0, shard per user
        query_layer = ttnn.pad(
            query_layer,
            [1, PADDED_LOCAL_HEADS, batch, HEAD_DIM],
            [0, 0, 0, 0],
            0.0,
        )
        query_layer = ttnn.transpose(
            query_layer,
            -2,
            -3,
        )
        query_layer = ttnn.reshape(
            query_layer,
            (batch, 1, PADDED_LOCAL_HEADS, HEAD_DIM),
        )
        query_layer = ttnn.interleaved_to_sharded(
            query_layer,
            _attn_batch_sharded_memcfg(ttnn, PADDED_LOCAL_HEADS, HEAD_DIM),
        )

        # pre-softmax matmul
        key_layer_transposed = ttnn.transpose(
            key_layer,
            -2,
            -1,
            memory_config=ttnn.MemoryConfig(
                ttnn.TensorMemoryLayout.HEIGHT_SHARDED,
                ttnn.BufferType.L1,
            ),
        )
        key_layer.deallocate()
        attn_weights = ttnn.matmul(
            query_layer,
            key_layer_transposed,
            program_config=_attn_batched_mm_progcfg(
                ttnn, HEAD_DIM // 32, PADDED_LOCAL_HEADS // 32, padded_layer_past_len // 32
            ),
            memory_config=_attn_batch_sharded_memcfg(ttnn, PADDED_LOCAL_HEADS, padded_layer_past_len),
            dtype=ttnn.bfloat16,
            compute_kernel_config=self.pre_softmax_mm_kernel_config,
        )
        query_layer.deallocate()
        key_layer_transposed.deallocate(True)

        # softmax (scale + broadcast mask, in place on the sharded scores)
        attn_weights = ttnn.scale_mask_softmax_in_place(
            attn_weights,
            scale=self.scalar,
            mask=attention_mask,
            program_config=ttnn.SoftmaxShardedMultiCoreProgramConfig(
                compute_with_storage_grid_size=(8, 4),
                subblock_w=1,
                block_h=PADDED_LOCAL_HEADS // 32,
                block_w=padded_layer_past_len // 32,
            ),
            is_causal_mask=False,
        )

        # V cache update in place, then its first nearest_32(pos + 1) positions
        ttnn.update_cache(v_cache, value_layer, layer_past_len)
        value_layer = ttnn.slice(
            v_cache,
            starts=(0, 0, 0, 0),
            ends=(batch, 1, _nearest_32(layer_past_len + 1), HEAD_DIM),
            steps=(1, 1, 1, 1),
            memory_config=self.v_cache_slice_output_memcfg,
        )
        value_layer = ttnn.interleaved_to_sharded(
            value_layer,
            _attn_batch_sharded_memcfg(ttnn, padded_layer_past_len, HEAD_DIM),
        )

        # post-softmax matmul
        attn_output = ttnn.matmul(
            attn_weights,
            value_layer,
            program_config=_attn_batched_mm_progcfg(
                ttnn, padded_layer_past_len // 32, PADDED_LOCAL_HEADS // 32, HEAD_DIM // 32
            ),
            memory_config=_attn_batch_sharded_memcfg(ttnn, PADDED_LOCAL_HEADS, HEAD_DIM),
            dtype=ttnn.bfloat16,
            compute_kernel_config=self.post_softmax_mm_kernel_config,
        )
        attn_weights.deallocate(True)
        value_layer.deallocate()
        attn_output = ttnn.sharded_to_interleaved(attn_output, memory_config=self.post_softmax_mm_output_memcfg)
        attn_output = ttnn.transpose(attn_output, 0, 1)      # batch into dim 1
        attn_output = ttnn.transpose(attn_output, -2, -3)    # batch into dim 2
        attn_output = attn_output[:, :NUM_HEADS, :, :]       # drop the padded heads

        # self-out
        attn_output = ttnn.experimental.nlp_concat_heads(
            attn_output,
            memory_config=self.concat_heads_output_memcfg,
        )
        attn_output = ttnn.matmul(
            attn_output,
            self.dense_weights,
            memory_config=self.selfout_mm_output_memcfg,
            dtype=ttnn.bfloat16,
            core_grid=_default_core_grid(ttnn, attn_output.device()),
            compute_kernel_config=self.default_lofi_kernel_config,
        )
        # the module returns (attn_output, layer_present); layer_present is (k_cache, v_cache), the
        # inputs updated in place above, so only attn_output is returned here
        return attn_output


# --- decoder (decode) -----------------------------------------------------------------------------
class _FalconDecoderDecode:
    """TtFalconDecoderLayer.forward, llm_mode="decode": block-sharded layer norm (model_utils.layernorm,
    h_dim = 32 rows), parallel attention and MLP on the normed input, two residual adds."""

    def __init__(self, ttnn, device, gen):
        self.ttnn = ttnn
        self.attention = _FalconAttentionDecode(ttnn, device, gen)
        self.mlp = _FalconMLPDecode(ttnn, device, _MLPWeights(ttnn, device, gen))
        # INPUT_LAYERNORM_WEIGHTS / _BIAS: bf16, TILE (get_weights_cached's default layout), DRAM
        gamma = (1.0 + 0.1 * torch.randn(HIDDEN, generator=gen)).to(torch.bfloat16)
        beta = (0.1 * torch.randn(HIDDEN, generator=gen)).to(torch.bfloat16)
        self.layernorm_gamma = _replicated_weight(ttnn, device, gamma, ttnn.bfloat16)
        self.layernorm_beta = _replicated_weight(ttnn, device, beta, ttnn.bfloat16)
        # get_ln_block_sharded_config(32, 4544): rows 32 -> 1 core row (32 // 32 = 1); 8 core columns;
        # block_h = ceil(32 / 1 / 32) = 1, block_w = ceil(4544 / 8 / 32) = 18 -> shard [32, 576];
        # subblock_w = largest divisor of 18 that is <= 8 = 6
        self.ln_memcfg = ttnn.MemoryConfig(
            ttnn.TensorMemoryLayout.BLOCK_SHARDED,
            ttnn.BufferType.L1,
            ttnn.ShardSpec(
                ttnn.CoreRangeSet({ttnn.CoreRange(ttnn.CoreCoord(0, 0), ttnn.CoreCoord(7, 0))}),
                [32, 576],
                ttnn.ShardOrientation.ROW_MAJOR,
            ),
        )
        self.ln_progcfg = ttnn.LayerNormShardedMultiCoreProgramConfig(
            compute_with_storage_grid_size=[8, 1],
            subblock_w=6,
            block_h=1,
            block_w=18,
            inplace=True,
            legacy_reduction=True,
            legacy_rsqrt=True,
        )
        self.ln_kernel_config = ttnn.WormholeComputeKernelConfig(
            math_fidelity=ttnn.MathFidelity.HiFi4,
            math_approx_mode=True,
            fp32_dest_acc_en=False,
            packer_l1_acc=False,
        )
        self.parallel_attn_add_output_memcfg = ttnn.DRAM_MEMORY_CONFIG
        self.dropout_add_output_memcfg = ttnn.DRAM_MEMORY_CONFIG

    def _layernorm(self, ln_input):
        ttnn = self.ttnn
        ln_output = ttnn.interleaved_to_sharded(ln_input, self.ln_memcfg)
        ln_output = ttnn.layer_norm(
            ln_output,
            epsilon=LN_EPS,
            weight=self.layernorm_gamma,
            bias=self.layernorm_beta,
            memory_config=self.ln_memcfg,
            program_config=self.ln_progcfg,
            compute_kernel_config=self.ln_kernel_config,
        )
        ln_output = ttnn.sharded_to_interleaved(ln_output)
        return ln_output

    def __call__(self, hidden_states, attention_mask, k_cache, v_cache, layer_past_len):
        ttnn = self.ttnn
        layernorm_output = self._layernorm(hidden_states)
        residual = hidden_states
        attention_output = self.attention(layernorm_output, attention_mask, k_cache, v_cache, layer_past_len)
        mlp_output = self.mlp(layernorm_output)
        output = ttnn.add(
            mlp_output,
            attention_output,
            memory_config=self.parallel_attn_add_output_memcfg,
        )
        mlp_output.deallocate()
        attention_output.deallocate()
        output = ttnn.add(
            output,
            residual,
            memory_config=self.dropout_add_output_memcfg,
        )
        residual.deallocate()
        # the module returns (output, layer_present); layer_present is the in-place-updated K/V caches
        return output


# --- inputs ---------------------------------------------------------------------------------------
def _decode_hidden(ttnn, device, gen):
    """Decode activations [1, 1, batch, 4544] (seq 1 in dim 0, users in dim 2), bf16 TILE DRAM (the
    embedding output / a layer-norm output after sharded_to_interleaved)."""
    host = randn((1, 1, BATCH, HIDDEN), gen)
    return host, _from_torch(ttnn, device, host, ttnn.bfloat16, ttnn.TILE_LAYOUT, ttnn.DRAM_MEMORY_CONFIG)


def _decode_attention_inputs(ttnn, device, gen):
    """TtFalconModelShared.model_preprocessing("decode") with l1_sharded: the mask row [batch, 1, 1,
    nearest_32(pos + 1)] of 0 / -1e3 reshaped to [batch, 1, -1, 32], bf16 ROW_MAJOR in L1
    (ATTN_MASK_MEMCFG); test_utils.initialize_kv_cache: K and V caches [batch, 1, max_seq_len, 64],
    bf16 TILE, default (DRAM) memory."""
    num_input_tokens = DECODE_POS + 1
    num_max_tokens = _nearest_32(DECODE_POS + 1)
    mask_bool = torch.cat(
        (
            torch.zeros(BATCH, 1, 1, num_input_tokens, dtype=bool),
            torch.ones(BATCH, 1, 1, num_max_tokens - num_input_tokens, dtype=bool),
        ),
        dim=-1,
    )
    mask_host = (mask_bool.reshape(BATCH, 1, -1, 32) * -1e3).to(torch.bfloat16)
    mask = _from_torch(ttnn, device, mask_host, ttnn.bfloat16, ttnn.ROW_MAJOR_LAYOUT, ttnn.L1_MEMORY_CONFIG)
    k_host = randn((BATCH, 1, MAX_SEQ_LEN, HEAD_DIM), gen)
    v_host = randn((BATCH, 1, MAX_SEQ_LEN, HEAD_DIM), gen)
    k_cache = _from_torch(ttnn, device, k_host, ttnn.bfloat16, ttnn.TILE_LAYOUT)
    v_cache = _from_torch(ttnn, device, v_host, ttnn.bfloat16, ttnn.TILE_LAYOUT)
    return [mask_host, k_host, v_host], [mask, k_cache, v_cache]


_CONFIG_NOTE = (
    "Falcon-7B, Wormhole N150 (1x1 mesh), demo_wormhole.py perf_mode_1024: batch 32, max_seq_len 1024, "
    "layer built for a 1024-token prefill (MLP_SEQ_LEN 1024, PREFILL_OPTIMIZED_MODE, MLP weights zero-padded "
    "to 4608/18432); prefill model config BFLOAT16-DRAM, decode model config BFLOAT16-L1_SHARDED; decode at "
    "kv_cache_len 1023. Weights bfloat8_b (matmuls) / bfloat16, TILE, DRAM, seeded random. "
)


# --- forwards ------------------------------------------------------------------------------------
@corpus.forward(
    "falcon7b.mlp.decode.n150",
    family="falcon7b",
    mode="decode",
    follows=f"{FOLLOWS_DIR}/falcon_mlp.py: TtFalconMLPDecode.forward",
)
def build_mlp_decode(mesh_device) -> corpus.Forward:
    import ttnn

    gen = seeded(7001)
    mlp = _FalconMLPDecode(ttnn, mesh_device, _MLPWeights(ttnn, mesh_device, gen))
    host, x = _decode_hidden(ttnn, mesh_device, gen)
    return corpus.Forward(
        name="falcon7b.mlp.decode.n150",
        family="falcon7b",
        mode="decode",
        follows=f"{FOLLOWS_DIR}/falcon_mlp.py: TtFalconMLPDecode.forward",
        model=mlp,
        example_inputs=[x],
        host_inputs=[host],
        notes=_CONFIG_NOTE + (
            "Input [1, 1, 32, 4544] bf16 DRAM. concat of the 64-column zero pad, h->4h matmul (core_grid 8x7, "
            "fused gelu_approx, LoFi), 4h->h matmul, slice back to 4544 columns; outputs DRAM bf16 "
            "(DENSE_*_MM_OUTPUT_MEMCFG/DTYPE of BFLOAT16-L1_SHARDED)."
        ),
    )


@corpus.forward(
    "falcon7b.mlp.prefill.n150",
    family="falcon7b",
    mode="prefill",
    follows=f"{FOLLOWS_DIR}/falcon_mlp.py: TtFalconMLPPrefill.forward",
)
def build_mlp_prefill(mesh_device) -> corpus.Forward:
    import ttnn

    gen = seeded(7002)
    mlp = _FalconMLPPrefill(ttnn, mesh_device, _MLPWeights(ttnn, mesh_device, gen), PREFILL_SEQ_LEN)
    host = randn((1, 1, PREFILL_SEQ_LEN, HIDDEN), gen)
    x = _from_torch(ttnn, mesh_device, host, ttnn.bfloat16, ttnn.TILE_LAYOUT, ttnn.DRAM_MEMORY_CONFIG)
    return corpus.Forward(
        name="falcon7b.mlp.prefill.n150",
        family="falcon7b",
        mode="prefill",
        follows=f"{FOLLOWS_DIR}/falcon_mlp.py: TtFalconMLPPrefill.forward",
        model=mlp,
        example_inputs=[x],
        host_inputs=[host],
        notes=_CONFIG_NOTE + (
            "Prefill of 1024 tokens (one user), model config BFLOAT16-DRAM: the optimized path (seq_len in "
            "[1024, 2048]): concat to 4608 columns, interleaved_to_sharded_partial (1 slice, 8x8 block-sharded, "
            "shard [128, 576]), matmul 2D-mcast (per_core_M 4, per_core_N 72, fused GELU approx, HiFi2), "
            "matmul (per_core_N 18), sharded_to_interleaved_partial into a preallocated DRAM output, slice "
            "[..., :4544]. No deviations from the code."
        ),
    )


@corpus.forward(
    "falcon7b.attention.decode.n150",
    family="falcon7b",
    mode="decode",
    follows=f"{FOLLOWS_DIR}/falcon_attention.py: TtFalconAttentionDecode.forward",
)
def build_attention_decode(mesh_device) -> corpus.Forward:
    import ttnn

    gen = seeded(7003)
    attn = _FalconAttentionDecode(ttnn, mesh_device, gen)
    host, x = _decode_hidden(ttnn, mesh_device, gen)
    hosts, devs = _decode_attention_inputs(ttnn, mesh_device, gen)
    return corpus.Forward(
        name="falcon7b.attention.decode.n150",
        family="falcon7b",
        mode="decode",
        follows=f"{FOLLOWS_DIR}/falcon_attention.py: TtFalconAttentionDecode.forward",
        model=attn,
        example_inputs=[x, *devs, DECODE_POS],
        host_inputs=[host, *hosts, DECODE_POS],
        notes=_CONFIG_NOTE + (
            "Inputs: hidden [1, 1, 32, 4544] bf16 DRAM, attention mask [32, 1, 32, 32] bf16 ROW_MAJOR L1, "
            "K and V caches [32, 1, 1024, 64] bf16 DRAM (updated in place by update_cache), layer_past_len "
            "1023 (a Python int). l1_sharded path: fused QKV matmul, nlp_create_qkv_heads_falcon7b, rotary "
            "embedding (token_idx), K update_cache + slice + height-shard per user on 8x4 cores, Q pad to 96 "
            "heads / transpose / reshape / shard, K transpose, batched matmul (MatmulMultiCoreReuse), "
            "scale_mask_softmax_in_place (sharded, broadcast mask), V update_cache + slice + shard, batched "
            "matmul, unshard, transposes, head unpad slice, nlp_concat_heads, self-out matmul. Deviations: "
            "returns attn_output only (the module also returns layer_present = the two input caches, "
            "updated in place); the alibi / llm_mode / user_id / use_cache arguments, unused on this path, "
            "are dropped."
        ),
    )


@corpus.forward(
    "falcon7b.decoder.decode.n150",
    family="falcon7b",
    mode="decode",
    follows=f"{FOLLOWS_DIR}/falcon_decoder.py: TtFalconDecoderLayer.forward",
)
def build_decoder_decode(mesh_device) -> corpus.Forward:
    import ttnn

    gen = seeded(7004)
    layer = _FalconDecoderDecode(ttnn, mesh_device, gen)
    host, x = _decode_hidden(ttnn, mesh_device, gen)
    hosts, devs = _decode_attention_inputs(ttnn, mesh_device, gen)
    return corpus.Forward(
        name="falcon7b.decoder.decode.n150",
        family="falcon7b",
        mode="decode",
        follows=f"{FOLLOWS_DIR}/falcon_decoder.py: TtFalconDecoderLayer.forward",
        model=layer,
        example_inputs=[x, *devs, DECODE_POS],
        host_inputs=[host, *hosts, DECODE_POS],
        notes=_CONFIG_NOTE + (
            "Decode layer: model_utils.layernorm (h_dim 32: interleaved_to_sharded to 8x1 block shards "
            "[32, 576], sharded layer_norm with LayerNormShardedMultiCoreProgramConfig(block_w 18, subblock_w 6, "
            "inplace, legacy reduction/rsqrt), HiFi4, sharded_to_interleaved), then the decode attention and "
            "the decode MLP (as falcon7b.attention.decode.n150 / falcon7b.mlp.decode.n150) on the normed input, "
            "add(mlp, attention) and add(+residual) into DRAM. Like the real layer it deallocates its input "
            "hidden_states (residual.deallocate()) and the K/V caches are updated in place, so a second call "
            "needs fresh inputs. Deviations: those of the attention and MLP forwards; returns the layer output "
            "only (the module also returns layer_present, the input caches updated in place)."
        ),
    )
