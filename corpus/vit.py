"""ViT-Base/16 (google/vit-base-patch16-224) on one Wormhole chip: tt-metal's sharded ViT.

Follows ``models/demos/wormhole/vit/tt/ttnn_optimized_sharded_vit_wh.py`` (the code the Wormhole
ViT demo and ``models/demos/wormhole/vit/tests/test_ttnn_optimized_sharded_vit_wh.py`` run):

* ``vit.encoder_layer.base_patch16_224_b8``: ``vit_layer`` op for op (layernorm_before,
  ``vit_attention``, attention residual add, layernorm_after, ``vit_intermediate``,
  ``vit_output`` with its residual add).
* ``vit.attention.base_patch16_224_b8``: ``vit_attention`` alone (QKV linear, reshard 64 -> 48
  cores, sharded split-heads, Q.K^T, in-place scale and softmax, P.V, concatenate heads, the
  sharded -> DRAM -> sharded round trip back to 64 cores, self-output linear).
* ``vit.embeddings.base_patch16_224_b8``: ``vit_embeddings`` with ``vit_patch_embeddings``
  (fold of the height-sharded NHWC image, tilize to bfloat8_b, the patch projection linear,
  untilize, reshape, concat of the class token, tilize, add of the position embeddings).
* ``vit.classifier.base_patch16_224_b8``: the tail of ``vit`` (final layernorm, reshard 64 -> 48
  cores, classifier linear over 1000 classes padded to 1152).

Config: the demo's: batch 8, 224x224 images, patch 16 -> 196 patches + class token = 197 tokens,
tile-padded to 224; hidden 768, 12 heads of 64, MLP 3072, layer_norm_eps 1e-12. For batch 8
``update_model_config`` picks ``core_grid = CoreGrid(y=8, x=6)`` (48 cores: batch rows x 6) for the
attention matmuls / softmax / classifier and the full 8x8 grid for the block-sharded layernorms and
linears; ``should_reallocate_in_attention`` is False (batch <= 8), so no ``ttnn.reallocate``.

Weights are what ``preprocess_model_parameters(custom_preprocessor=custom_preprocessor)`` and
``move_to_device`` produce: linear weights transposed to [in, out] and biases [1, out] in bfloat8_b
TILE (the QKV weight packed per head as q_h|k_h|v_h, 12 x 192 columns), layernorm weight/bias
[1, 768] bfloat16 TILE (the default preprocessor), patch projection weight zero-padded to 4 input
channels and permuted to [16*16*4, 768] bfloat8_b, all in DRAM (``ttnn.to_device`` default); class
token [8, 1, 768] bfloat16 row-major and position embeddings [8, 197, 768] bfloat8_b TILE (the test
infra expands both to the batch). Values are random (seeded), not the trained checkpoint.

Left out: nothing inside the followed functions (``ttnn.mul_`` as the code spells it; 0.81.1 has
it as an alias of ``ttnn.multiply_``; the GELU fused activation as the ``(UnaryOpType.GELU, True)``
tuple the code passes, which 0.81.1 accepts). The encoder input is made directly in the
block-sharded memory config ``vit_encoder`` puts it in (rather than running that
``to_memory_config`` here), and the image input directly in the L1 height-sharded config the test
infra copies it to.
"""
from __future__ import annotations

import torch

import corpus
from corpus.common import randn, seeded

FOLLOWS_FILE = "models/demos/wormhole/vit/tt/ttnn_optimized_sharded_vit_wh.py"
CONFIG = "base_patch16_224_b8"

# google/vit-base-patch16-224
BATCH = 8
IMAGE = 224
PATCH = 16
CHANNELS = 3
HIDDEN = 768
HEADS = 12
HEAD_SIZE = HIDDEN // HEADS          # 64
INTERMEDIATE = 3072
CLASSES = 1000
CLASSES_PADDED = 1152                # custom_preprocessor pads the classifier to 1152 outputs
LN_EPS = 1e-12                       # config.layer_norm_eps (only the final layernorm passes it)

PATCHES = (IMAGE // PATCH) ** 2      # 196
TOKENS = PATCHES + 1                 # 197 with the class token
TOKENS_PADDED = 224                  # 197 rounded up to tiles
SEQ_T = TOKENS_PADDED // 32          # 7
DIM_T = HIDDEN // 32                 # 24


def _program_configs():
    """The concrete values ``update_model_config(config, batch_size=8)`` computes."""
    import ttnn

    # batch_size <= 8: grid_y = batch_size = 8, grid_x = 6
    core_grid = ttnn.CoreGrid(y=8, x=6)
    core_grid_8x8 = ttnn.CoreGrid(y=8, x=8)
    dim_t_full = DIM_T // core_grid_8x8.x             # 24 / 8 = 3 tiles per core column
    head_seq_t = (HEADS * SEQ_T) // core_grid.x       # 12 * 7 / 6 = 14 rows of tiles per core
    head_size_t = DIM_T // HEADS                      # 2
    dim_t_x = DIM_T // core_grid.x                    # 4
    class_t = (CLASSES_PADDED // 32) // core_grid.x   # 36 / 6 = 6 (<= 8, so subblock w stays 6)

    block_ln = dict(
        compute_with_storage_grid_size=(core_grid_8x8.x, core_grid_8x8.y),
        subblock_w=dim_t_full, block_h=SEQ_T, block_w=dim_t_full, inplace=False,
    )
    return core_grid, core_grid_8x8, {
        "layernorm_before_program_config": ttnn.LayerNormShardedMultiCoreProgramConfig(**block_ln),
        "query_key_value_matmul_program_config": ttnn.MatmulMultiCoreReuseMultiCastProgramConfig(
            compute_with_storage_grid_size=(core_grid_8x8.x, core_grid_8x8.y),
            in0_block_w=dim_t_full,            # the [224, 96] shard: 3 tiles wide
            out_subblock_h=1,
            out_subblock_w=dim_t_full,         # 3
            per_core_M=SEQ_T,                  # 7
            per_core_N=3 * dim_t_full,         # 2304 / 32 / 8 = 9
            transpose_mcast=False,
            fused_activation=None,
        ),
        "query_by_key_matmul_program_config": ttnn.MatmulMultiCoreReuseProgramConfig(
            compute_with_storage_grid_size=(core_grid.x, core_grid.y),
            in0_block_w=head_size_t,           # 2
            out_subblock_h=1,
            out_subblock_w=SEQ_T,              # 7
            per_core_M=head_seq_t,             # 14
            per_core_N=SEQ_T,                  # 7
        ),
        "softmax_program_config": ttnn.SoftmaxShardedMultiCoreProgramConfig(
            compute_with_storage_grid_size=(core_grid.x, core_grid.y),
            subblock_w=SEQ_T,                  # 7
            block_h=head_seq_t,                # 14
            block_w=SEQ_T,                     # 7
        ),
        "attention_probabilities_by_value_matmul_program_config": ttnn.MatmulMultiCoreReuseProgramConfig(
            compute_with_storage_grid_size=(core_grid.x, core_grid.y),
            in0_block_w=SEQ_T,                 # 7
            out_subblock_h=1,
            out_subblock_w=head_size_t,        # 2
            per_core_M=head_seq_t,             # 14
            per_core_N=head_size_t,            # 2
        ),
        "self_output_matmul_program_config": ttnn.MatmulMultiCoreReuseMultiCastProgramConfig(
            compute_with_storage_grid_size=(core_grid_8x8.x, core_grid_8x8.y),
            in0_block_w=dim_t_full,            # 3
            out_subblock_h=1,
            out_subblock_w=dim_t_full,         # 3
            per_core_M=SEQ_T,                  # 7
            per_core_N=dim_t_full,             # 3
            transpose_mcast=False,
            fused_activation=None,
        ),
        "layernorm_after_output_program_config": ttnn.LayerNormShardedMultiCoreProgramConfig(**block_ln),
        "ff1_matmul_program_config": ttnn.MatmulMultiCoreReuseMultiCastProgramConfig(
            compute_with_storage_grid_size=(core_grid_8x8.x, core_grid_8x8.y),
            in0_block_w=dim_t_full,            # 3
            out_subblock_h=1,
            out_subblock_w=(dim_t_full * 4) // 2,  # 6
            per_core_M=SEQ_T,                  # 7
            per_core_N=dim_t_full * 4,         # 3072 / 32 / 8 = 12
            transpose_mcast=False,
            fused_activation=(ttnn.UnaryOpType.GELU, True),
        ),
        "ff2_matmul_program_config": ttnn.MatmulMultiCoreReuseMultiCastProgramConfig(
            compute_with_storage_grid_size=(core_grid_8x8.x, core_grid_8x8.y),
            in0_block_w=dim_t_full * 4,        # 12
            out_subblock_h=1,
            out_subblock_w=dim_t_full,         # 3
            per_core_M=SEQ_T,                  # 7
            per_core_N=dim_t_full,             # 3
            transpose_mcast=False,
            fused_activation=None,
        ),
        "classifer_matmul_program_config": ttnn.MatmulMultiCoreReuseMultiCastProgramConfig(
            compute_with_storage_grid_size=(core_grid.x, core_grid.y),
            in0_block_w=dim_t_x // 2,          # 2
            out_subblock_h=1,
            out_subblock_w=class_t,            # 6
            per_core_M=SEQ_T,                  # 7
            per_core_N=class_t,                # 6
            transpose_mcast=False,
            fused_activation=None,
        ),
        "ln_compute_config": ttnn.WormholeComputeKernelConfig(
            math_fidelity=ttnn.MathFidelity.HiFi2,
            math_approx_mode=True,
            fp32_dest_acc_en=False,
            packer_l1_acc=True,
        ),
    }


# ---------------------------------------------------------------------------------------------
# weights, as custom_preprocessor / the default preprocessor and move_to_device leave them


def _linear(mesh_device, gen, in_features, out_features, scale=0.02):
    """preprocess_linear_weight / preprocess_linear_bias with dtype=bfloat8_b, then to_device."""
    weight = randn((out_features, in_features), gen, scale)
    bias = randn((out_features,), gen, scale)
    return _linear_from(mesh_device, weight, bias)


def _linear_from(mesh_device, weight, bias):
    import ttnn

    w = ttnn.from_torch(weight.T.contiguous(), dtype=ttnn.bfloat8_b, layout=ttnn.TILE_LAYOUT,
                        device=mesh_device, memory_config=ttnn.DRAM_MEMORY_CONFIG)
    b = ttnn.from_torch(bias.reshape((1, -1)), dtype=ttnn.bfloat8_b, layout=ttnn.TILE_LAYOUT,
                        device=mesh_device, memory_config=ttnn.DRAM_MEMORY_CONFIG)
    return w, b


def _layernorm(mesh_device, gen):
    """preprocess_layernorm_parameter(dtype=bfloat16): [1, 768] TILE, then to_device."""
    import ttnn

    gamma = (1.0 + randn((HIDDEN,), gen, 0.05).float()).to(torch.bfloat16)
    beta = randn((HIDDEN,), gen, 0.02)
    return tuple(ttnn.from_torch(p.reshape((1, -1)), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT,
                                 device=mesh_device, memory_config=ttnn.DRAM_MEMORY_CONFIG)
                 for p in (gamma, beta))


def _qkv(mesh_device, gen):
    """custom_preprocessor's fused QKV: per head, the 64 query, 64 key and 64 value rows."""
    q, k, v = (randn((HIDDEN, HIDDEN), gen, 0.02) for _ in range(3))
    qb, kb, vb = (randn((HIDDEN,), gen, 0.02) for _ in range(3))
    weight = torch.cat([t.reshape(HEADS, HEAD_SIZE, -1) for t in (q, k, v)], dim=1).reshape(3 * HIDDEN, -1)
    bias = torch.cat([t.reshape(HEADS, HEAD_SIZE) for t in (qb, kb, vb)], dim=1).reshape(3 * HIDDEN)
    return _linear_from(mesh_device, weight, bias)


def _encoder_input(mesh_device, gen):
    """The layer input as vit_encoder leaves it: [8, 197, 768] bfloat8_b, block-sharded over 8x8
    cores with [224, 96] shards (create_sharded_memory_config of [8, 224, 768])."""
    import ttnn

    host = randn((BATCH, TOKENS, HIDDEN), gen)
    mem = ttnn.create_sharded_memory_config(
        [BATCH, TOKENS_PADDED, HIDDEN],
        core_grid=ttnn.CoreGrid(y=8, x=8),
        strategy=ttnn.ShardStrategy.BLOCK,
        orientation=ttnn.ShardOrientation.ROW_MAJOR,
    )
    dev = ttnn.from_torch(host, dtype=ttnn.bfloat8_b, layout=ttnn.TILE_LAYOUT, device=mesh_device,
                          memory_config=mem)
    return host, dev


# ---------------------------------------------------------------------------------------------
# the forwards


class _Layer:
    def __init__(self, mesh_device, gen):
        self.core_grid, self.core_grid_8x8, self.pc = _program_configs()
        self.ln_before = _layernorm(mesh_device, gen)
        self.qkv = _qkv(mesh_device, gen)
        self.attn_out = _linear(mesh_device, gen, HIDDEN, HIDDEN)
        self.ln_after = _layernorm(mesh_device, gen)
        self.ff1 = _linear(mesh_device, gen, HIDDEN, INTERMEDIATE)
        self.ff2 = _linear(mesh_device, gen, INTERMEDIATE, HIDDEN)

    def attention(self, hidden_states):
        """vit_attention"""
        import ttnn

        pc = self.pc
        *_, hidden_size = hidden_states.shape
        head_size = hidden_size // HEADS

        query_key_value = ttnn.linear(
            hidden_states,
            self.qkv[0],
            bias=self.qkv[1],
            memory_config=ttnn.L1_BLOCK_SHARDED_MEMORY_CONFIG,
            dtype=ttnn.bfloat8_b,
            program_config=pc["query_key_value_matmul_program_config"],
        )
        # from the 8x8 block shards onto the 6x8 grid the attention matmuls use
        sharded_48 = ttnn.create_sharded_memory_config(
            query_key_value.padded_shape,
            core_grid=self.core_grid,
            strategy=ttnn.ShardStrategy.BLOCK,
            orientation=ttnn.ShardOrientation.ROW_MAJOR,
        )
        query_key_value = ttnn.reshard(query_key_value, sharded_48)
        query, key, value = ttnn.transformer.split_query_key_value_and_split_heads(
            query_key_value,
            memory_config=ttnn.L1_HEIGHT_SHARDED_MEMORY_CONFIG,
            num_heads=HEADS,
        )
        ttnn.deallocate(query_key_value)
        ttnn.deallocate(hidden_states)
        # should_reallocate_in_attention is False for batch 8: no ttnn.reallocate(value)

        attention_scores = ttnn.matmul(
            query,
            key,
            memory_config=ttnn.L1_HEIGHT_SHARDED_MEMORY_CONFIG,
            dtype=ttnn.bfloat8_b,
            program_config=pc["query_by_key_matmul_program_config"],
        )
        ttnn.deallocate(query)
        ttnn.deallocate(key)

        scale = 1.0 / (head_size**0.5)
        attention_scores = ttnn.mul_(attention_scores, scale)
        attention_probs = ttnn.softmax_in_place(attention_scores, program_config=pc["softmax_program_config"])

        context_layer = ttnn.matmul(
            attention_probs,
            value,
            memory_config=ttnn.L1_HEIGHT_SHARDED_MEMORY_CONFIG,
            dtype=ttnn.bfloat8_b,
            program_config=pc["attention_probabilities_by_value_matmul_program_config"],
        )
        ttnn.deallocate(attention_probs)
        ttnn.deallocate(value)

        context_layer = ttnn.transformer.concatenate_heads(
            context_layer,
            memory_config=ttnn.L1_BLOCK_SHARDED_MEMORY_CONFIG,
        )
        sharded_64 = ttnn.create_sharded_memory_config(
            context_layer.padded_shape,
            core_grid=self.core_grid_8x8,
            strategy=ttnn.ShardStrategy.BLOCK,
            orientation=ttnn.ShardOrientation.ROW_MAJOR,
        )
        # back to 64 cores through DRAM (the model's workaround for a reshard it cannot use here)
        context_layer = ttnn.to_memory_config(context_layer, ttnn.DRAM_MEMORY_CONFIG)
        context_layer = ttnn.to_memory_config(context_layer, sharded_64)

        self_output = ttnn.linear(
            context_layer,
            self.attn_out[0],
            bias=self.attn_out[1],
            memory_config=ttnn.L1_BLOCK_SHARDED_MEMORY_CONFIG,
            dtype=ttnn.bfloat8_b,
            program_config=pc["self_output_matmul_program_config"],
        )
        ttnn.deallocate(context_layer)
        return self_output

    def __call__(self, hidden_states):
        """vit_layer"""
        import ttnn

        pc = self.pc
        layernorm_before_output = ttnn.layer_norm(
            hidden_states,
            weight=self.ln_before[0],
            bias=self.ln_before[1],
            memory_config=ttnn.L1_BLOCK_SHARDED_MEMORY_CONFIG,
            program_config=pc["layernorm_before_program_config"],
            compute_kernel_config=pc["ln_compute_config"],
        )
        multi_head_attention_output = self.attention(layernorm_before_output)
        multi_head_attention_output = ttnn.add(
            multi_head_attention_output,
            hidden_states,
            memory_config=ttnn.L1_BLOCK_SHARDED_MEMORY_CONFIG,
            dtype=ttnn.bfloat8_b,
        )
        layernorm_after_output = ttnn.layer_norm(
            multi_head_attention_output,
            weight=self.ln_after[0],
            bias=self.ln_after[1],
            memory_config=ttnn.L1_BLOCK_SHARDED_MEMORY_CONFIG,
            program_config=pc["layernorm_after_output_program_config"],
            compute_kernel_config=pc["ln_compute_config"],
        )

        # vit_feedforward -> vit_intermediate
        intermediate = ttnn.linear(
            layernorm_after_output,
            self.ff1[0],
            bias=self.ff1[1],
            memory_config=ttnn.L1_BLOCK_SHARDED_MEMORY_CONFIG,
            dtype=ttnn.bfloat8_b,
            program_config=pc["ff1_matmul_program_config"],
        )
        ttnn.deallocate(layernorm_after_output)

        # vit_output
        output = ttnn.linear(
            intermediate,
            self.ff2[0],
            bias=self.ff2[1],
            memory_config=ttnn.L1_BLOCK_SHARDED_MEMORY_CONFIG,
            dtype=ttnn.bfloat8_b,
            program_config=pc["ff2_matmul_program_config"],
        )
        ttnn.deallocate(intermediate)
        output = ttnn.add(output, multi_head_attention_output, memory_config=ttnn.L1_BLOCK_SHARDED_MEMORY_CONFIG,
                          dtype=ttnn.bfloat8_b)
        ttnn.deallocate(multi_head_attention_output)
        return output


_NOTES = ("google/vit-base-patch16-224, batch 8 (the Wormhole demo's), 197 tokens padded to 224, hidden 768, "
          "12 heads, MLP 3072; n150 (1x1 mesh). update_model_config(batch_size=8): core_grid 6x8 for the "
          "attention matmuls/softmax, 8x8 block shards of [224, 96] elsewhere; no reallocate in attention. ")


@corpus.forward(f"vit.encoder_layer.{CONFIG}", family="vit", mode="",
                follows=f"{FOLLOWS_FILE}: vit_layer", device="n150", mesh_shape=(1, 1))
def build_encoder_layer(mesh_device) -> corpus.Forward:
    gen = seeded(0)
    layer = _Layer(mesh_device, gen)
    host, dev = _encoder_input(mesh_device, gen)
    return corpus.Forward(
        name=f"vit.encoder_layer.{CONFIG}", family="vit", mode="",
        follows=f"{FOLLOWS_FILE}: vit_layer", model=layer, example_inputs=[dev], host_inputs=[host],
        notes=_NOTES + "One encoder layer (vit_layer -> vit_attention, vit_feedforward -> vit_intermediate, "
                       "vit_output); the input is made directly in vit_encoder's block-sharded config, with the "
                       "full model's 197 logical tokens (test_vit_layer feeds 224). The layer frees its "
                       "intermediates (layernorm outputs, QKV, Q/K/V, probabilities, context, MLP hidden, "
                       "attention residual) but not its input, as vit_layer does.",
    )


@corpus.forward(f"vit.attention.{CONFIG}", family="vit", mode="",
                follows=f"{FOLLOWS_FILE}: vit_attention", device="n150", mesh_shape=(1, 1))
def build_attention(mesh_device) -> corpus.Forward:
    gen = seeded(1)
    layer = _Layer(mesh_device, gen)
    # the layernorm_before output: the same block-sharded [224, 96] shards on 8x8 cores
    host, dev = _encoder_input(mesh_device, gen)
    return corpus.Forward(
        name=f"vit.attention.{CONFIG}", family="vit", mode="",
        follows=f"{FOLLOWS_FILE}: vit_attention", model=layer.attention, example_inputs=[dev],
        host_inputs=[host],
        notes=_NOTES + "vit_attention alone on a block-sharded [8, 197, 768] bfloat8_b input (as "
                       "test_vit_attention feeds it, with the demo's 197 tokens); it deallocates its input.",
    )


class _Embeddings:
    def __init__(self, mesh_device, gen):
        import ttnn

        self.core_grid, _, _ = _program_configs()
        # custom_preprocessor: conv weight [768, 3, 16, 16] padded to 4 channels, permuted to
        # (kh, kw, c, out) and flattened to [16 * 16 * 4, 768]; bfloat8_b TILE; bias [1, 768]
        conv_w = randn((HIDDEN, CHANNELS, PATCH, PATCH), gen, 0.02)
        conv_w = torch.nn.functional.pad(conv_w, (0, 0, 0, 0, 0, 4 - CHANNELS))
        conv_w = torch.permute(conv_w, (2, 3, 1, 0)).reshape(PATCH * PATCH * 4, HIDDEN)
        conv_b = randn((HIDDEN,), gen, 0.02)
        self.proj_w = ttnn.from_torch(conv_w, dtype=ttnn.bfloat8_b, layout=ttnn.TILE_LAYOUT, device=mesh_device,
                                      memory_config=ttnn.DRAM_MEMORY_CONFIG)
        self.proj_b = ttnn.from_torch(conv_b.unsqueeze(0), dtype=ttnn.bfloat8_b, layout=ttnn.TILE_LAYOUT,
                                      device=mesh_device, memory_config=ttnn.DRAM_MEMORY_CONFIG)
        # the test infra: cls token and position embeddings expanded to the batch
        cls = randn((1, 1, HIDDEN), gen, 0.02).expand(BATCH, -1, -1).contiguous()
        pos = randn((1, TOKENS, HIDDEN), gen, 0.02).expand(BATCH, -1, -1).contiguous()
        self.cls_token = ttnn.from_torch(cls, dtype=ttnn.bfloat16, layout=ttnn.ROW_MAJOR_LAYOUT, device=mesh_device)
        self.position_embeddings = ttnn.from_torch(pos, dtype=ttnn.bfloat8_b, layout=ttnn.TILE_LAYOUT,
                                                   device=mesh_device)

    def patch_embeddings(self, pixel_values):
        """vit_patch_embeddings"""
        import ttnn

        batch_size, img_h, img_w, img_c = pixel_values.shape   # [8, 224, 14, 64]: NHWC, 16 columns folded in
        patch_count = img_h // PATCH                            # 14
        patch_size_sq_trpl = int(PATCH * PATCH * 3)             # 768
        patch_count_all = int(patch_count * patch_count)        # 196
        stride_h = PATCH
        stride_w = 1

        folded_pixel_values = ttnn.fold(pixel_values, stride_h, stride_w)   # [8, 14, 14, 1024]
        ttnn.deallocate(pixel_values)
        folded_pixel_values = ttnn.to_memory_config(folded_pixel_values, memory_config=ttnn.L1_MEMORY_CONFIG)
        folded_pixel_values = ttnn.to_layout(folded_pixel_values, layout=ttnn.TILE_LAYOUT, dtype=ttnn.bfloat8_b)

        patch_embedding_output = ttnn.linear(
            folded_pixel_values,
            self.proj_w,
            bias=self.proj_b,
            memory_config=ttnn.L1_MEMORY_CONFIG,
            dtype=ttnn.bfloat16,
            core_grid=self.core_grid,
        )
        patch_embedding_output = ttnn.to_layout(patch_embedding_output, layout=ttnn.ROW_MAJOR_LAYOUT)
        patch_embedding_output = ttnn.reshape(patch_embedding_output, (batch_size, patch_count_all, patch_size_sq_trpl))
        return patch_embedding_output

    def __call__(self, pixel_values):
        """vit_embeddings"""
        import ttnn

        patch_embeddings = self.patch_embeddings(pixel_values)
        embedding_output = ttnn.concat([self.cls_token, patch_embeddings], -2, memory_config=ttnn.L1_MEMORY_CONFIG)
        embedding_output = ttnn.to_layout(embedding_output, layout=ttnn.TILE_LAYOUT)
        embedding_output = ttnn.add(
            embedding_output, self.position_embeddings, memory_config=ttnn.L1_MEMORY_CONFIG, dtype=ttnn.bfloat8_b
        )
        return embedding_output


def _pixel_input(mesh_device, gen):
    """The image as the test infra stages it: NCHW -> NHWC, channels padded 3 -> 4, every 16
    columns folded into the channels ([8, 224, 14, 64] bfloat16 row-major), height-sharded over
    the 16 cores (0,0)-(7,1) with [8*224*14/16 = 1568, 64] shards in L1."""
    import ttnn

    image = randn((BATCH, CHANNELS, IMAGE, IMAGE), gen)
    nhwc = torch.nn.functional.pad(torch.permute(image, (0, 2, 3, 1)), (0, 1, 0, 0, 0, 0, 0, 0))
    host = nhwc.reshape(BATCH, IMAGE, IMAGE // PATCH, 4 * PATCH)
    n, h, w, c = host.shape
    shard_grid = ttnn.CoreRangeSet({ttnn.CoreRange(ttnn.CoreCoord(0, 0), ttnn.CoreCoord(7, 1))})
    shard_spec = ttnn.ShardSpec(shard_grid, [n * h * w // 16, c], ttnn.ShardOrientation.ROW_MAJOR)
    mem = ttnn.MemoryConfig(ttnn.TensorMemoryLayout.HEIGHT_SHARDED, ttnn.BufferType.L1, shard_spec)
    dev = ttnn.from_torch(host, dtype=ttnn.bfloat16, layout=ttnn.ROW_MAJOR_LAYOUT, device=mesh_device,
                          memory_config=mem)
    return host, dev


@corpus.forward(f"vit.embeddings.{CONFIG}", family="vit", mode="",
                follows=f"{FOLLOWS_FILE}: vit_embeddings", device="n150", mesh_shape=(1, 1))
def build_embeddings(mesh_device) -> corpus.Forward:
    gen = seeded(2)
    emb = _Embeddings(mesh_device, gen)
    host, dev = _pixel_input(mesh_device, gen)
    return corpus.Forward(
        name=f"vit.embeddings.{CONFIG}", family="vit", mode="",
        follows=f"{FOLLOWS_FILE}: vit_embeddings", model=emb, example_inputs=[dev], host_inputs=[host],
        notes=_NOTES + "Patch embedding by fold (stride 16 x 1) + linear on core_grid 6x8, class-token concat, "
                       "position-embedding add. cls_token and position_embeddings, arguments of vit() in the "
                       "real code, live in the callable here (they are the model's constants, expanded to "
                       "the batch once by the test infra). The forward deallocates its pixel input.",
    )


class _Head:
    def __init__(self, mesh_device, gen):
        import ttnn

        self.core_grid, _, self.pc = _program_configs()
        self.ln = _layernorm(mesh_device, gen)
        # custom_preprocessor pads the 1000-class classifier to 1152 outputs
        weight = torch.nn.functional.pad(randn((CLASSES, HIDDEN), gen, 0.02), (0, 0, 0, CLASSES_PADDED - CLASSES))
        bias = torch.nn.functional.pad(randn((CLASSES,), gen, 0.02), (0, CLASSES_PADDED - CLASSES))
        self.classifier = _linear_from(mesh_device, weight, bias)

    def __call__(self, hidden_states):
        """the end of vit(): final layernorm, reshard to 48 cores, classifier"""
        import ttnn

        output = ttnn.layer_norm(
            hidden_states,
            weight=self.ln[0],
            bias=self.ln[1],
            epsilon=LN_EPS,
            memory_config=ttnn.L1_BLOCK_SHARDED_MEMORY_CONFIG,
            program_config=self.pc["layernorm_before_program_config"],
        )
        sharded_48 = ttnn.create_sharded_memory_config(
            output.padded_shape,
            core_grid=self.core_grid,
            strategy=ttnn.ShardStrategy.BLOCK,
            orientation=ttnn.ShardOrientation.ROW_MAJOR,
        )
        output = ttnn.reshard(output, sharded_48)
        classifier_output = ttnn.linear(
            output,
            self.classifier[0],
            bias=self.classifier[1],
            memory_config=ttnn.L1_BLOCK_SHARDED_MEMORY_CONFIG,
            dtype=ttnn.bfloat8_b,
            program_config=self.pc["classifer_matmul_program_config"],
        )
        return classifier_output


@corpus.forward(f"vit.classifier.{CONFIG}", family="vit", mode="",
                follows=f"{FOLLOWS_FILE}: vit", device="n150", mesh_shape=(1, 1))
def build_classifier(mesh_device) -> corpus.Forward:
    gen = seeded(3)
    head = _Head(mesh_device, gen)
    host, dev = _encoder_input(mesh_device, gen)
    return corpus.Forward(
        name=f"vit.classifier.{CONFIG}", family="vit", mode="",
        follows=f"{FOLLOWS_FILE}: vit", model=head, example_inputs=[dev], host_inputs=[host],
        notes=_NOTES + "The part of vit() after vit_encoder: final layernorm (epsilon=1e-12 passed, default "
                       "compute kernel config), reshard 8x8 -> 6x8 block shards, classifier linear to 1152 "
                       "padded classes with bfloat8_b output. Input: the last encoder layer's output.",
    )
