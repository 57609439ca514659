"""Llama-3.1-8B decoder block of tt-metal's tt_transformers on one Wormhole chip (N150, 1x1 mesh).

Follows ``models/tt_transformers/tt/decoder.py`` (``TransformerBlock.forward``, the version that
takes ``tt_ccl``), with its parts on one device:

* attention norm and ff norm: ``models/tt_transformers/tt/distributed_norm.py``
  (``DistributedNorm.forward``: on one chip no gather, just ``to_memory_config`` to the norm's
  input config) around ``models/common/rmsnorm.py`` (``RMSNorm.forward``: ``ttnn.rms_norm`` with
  the sharded program config and sharded output in decode, interleaved in prefill);
* attention: ``corpus.tt_transformers_attention`` (``Attention.forward_decode`` /
  ``forward_prefill`` of ``models/tt_transformers/tt/attention.py``);
* the residual adds in ``DECODE_RESIDUAL_MEMCFG`` (decode) or DRAM (prefill);
* the MLP: ``models/tt_transformers/tt/mlp.py`` (``MLP.forward``, written here again, not
  imported): w1 and w3 linears, ``ttnn.mul`` with the SiLU input activation, the reshard to the
  w2 input config (decode), the w2 linear, the final reshape and the reshard to the residual
  config (decode). The CCL calls (``tt_all_reduce``) are no-ops on a 1x1 mesh.

Forwards:

* ``tt_transformers.decoder.decode.llama3_8b``: one decode step of 32 users.
* ``tt_transformers.decoder.prefill.llama3_8b``: prefill of user 0 with 128 tokens.

Config: as ``corpus.tt_transformers_attention`` (Llama-3.1-8B-Instruct, N150, batch 32,
max_seq_len 1024, paged KV cache with block 32 / 1024 blocks, ``DecodersPrecision.accuracy``, the
ModelArgs default: bfloat8_b for WQKV, WO, KV cache, FF1/FF3 and FF2, HiFi2 with fp16 accumulation
for the MLP linears), plus the norm configs (``SHARDED_NORM_ATTN_PRGM_CFG`` on the 8x4 attention
input grid, ``SHARDED_NORM_MLP_PRGM_CFG`` on the 8x8 MLP grid), the MLP program configs
(``DECODE_MLP_W1_W3_PRG_CONFIG`` / ``DECODE_MLP_W2_PRG_CONFIG``, DRAM-sharded on 64 cores;
``PREFILL_MLP_W1_W3_PRG_CONFIG(128)`` / ``PREFILL_MLP_W2_PRG_CONFIG(128)``), norm weights
[1, 1, 128, 32] bfloat16 row-major in DRAM, and the MLP weights [1, 1, 4096, 14336] /
[1, 1, 14336, 4096] bfloat8_b DRAM-sharded over the 12 banks. Left out: the pre/post feed-forward
norms (Gemma only), the MoE branch, the TG branches and multi-device CCLs (not taken on N150),
the prefetcher (not used by the demo).
"""
from __future__ import annotations

import math

import torch

import corpus
from corpus.common import randn, seeded
from corpus.tt_transformers_attention import (
    CONFIG, DIM, HIDDEN_DIM, NORM_EPS, PREFILL_SEQ, PREFILL_USER, TILE,
    Attention, decode_position_inputs, make_config, make_trans_mats, prefill_position_inputs, residual_input,
)

FOLLOWS_FILE = "models/tt_transformers/tt/decoder.py"
PREFILL_LEN_CUTOFF = 512      # ModelArgs lowers it to 512 for Llama-3.1-8B on N150


def _prefill_mlp_configs():
    """PREFILL_MLP_W1_W3_PRG_CONFIG(128) and PREFILL_MLP_W2_PRG_CONFIG(128) (ModelArgs.matmul_config)."""
    import ttnn

    m = min(PREFILL_SEQ, PREFILL_LEN_CUTOFF)
    # w1/w3: grid find_prefill_grid(8, 4096 / 32) = (8, 8); per_core_N = ceil(14336 / (32 * 8)) = 56;
    # per_core_M = ceil(128 / (32 * 8)) = 1; in0_block_w = largest divisor <= 8 of 4096 / 256 = 16 -> 8;
    # out_subblock_w = get_out_subblock_w(56, 1) = 4
    w1_w3 = ttnn.MatmulMultiCoreReuseMultiCastProgramConfig(
        compute_with_storage_grid_size=(8, 8), in0_block_w=8, out_subblock_h=1, out_subblock_w=4,
        per_core_M=math.ceil(m / (TILE * 8)), per_core_N=math.ceil(HIDDEN_DIM / (TILE * 8)),
        transpose_mcast=False, fused_activation=None, fuse_batch=False)
    # w2: grid find_prefill_grid(8, 14336 / 32) = (8, 8); per_core_N = ceil(4096 / 256) = 16;
    # in0_block_w = largest divisor <= 8 of 14336 / 256 = 56 -> 8; out_subblock_w = get_out_subblock_w(16, 1) = 4
    w2 = ttnn.MatmulMultiCoreReuseMultiCastProgramConfig(
        compute_with_storage_grid_size=(8, 8), in0_block_w=8, out_subblock_h=1, out_subblock_w=4,
        per_core_M=math.ceil(m / (TILE * 8)), per_core_N=math.ceil(DIM / (TILE * 8)),
        transpose_mcast=False, fused_activation=None, fuse_batch=False)
    return w1_w3, w2


class RMSNorm:
    """models/common/rmsnorm.py RMSNorm (non-distributed) behind DistributedNorm on one chip."""

    def __init__(self, mesh_device, gen, sharded_program_config, sharded_output_config):
        import ttnn

        torch_weight = (1.0 + 0.1 * torch.randn(DIM, generator=gen)).to(torch.bfloat16)
        # [dim] -> [1, 1, dim / 32, 32] row-major
        self.weight = ttnn.as_tensor(
            torch_weight.view(1, 1, DIM).reshape([1, 1, DIM // TILE, TILE]), device=mesh_device,
            dtype=ttnn.bfloat16, layout=ttnn.ROW_MAJOR_LAYOUT, memory_config=ttnn.DRAM_MEMORY_CONFIG,
            mesh_mapper=ttnn.ReplicateTensorToMesh(mesh_device))
        self.eps = NORM_EPS
        self.sharded_program_config = sharded_program_config
        self.sharded_output_config = sharded_output_config
        self.compute_kernel_config_hifi2 = ttnn.WormholeComputeKernelConfig(
            math_fidelity=ttnn.MathFidelity.HiFi2, math_approx_mode=False, fp32_dest_acc_en=True, packer_l1_acc=True)

    def norm(self, x, mode, in_sharded=False, out_sharded=False):
        import ttnn

        program_config = self.sharded_program_config if in_sharded else None
        memory_config = self.sharded_output_config if out_sharded else None
        x = ttnn.rms_norm(
            x,
            epsilon=self.eps,
            weight=self.weight,
            program_config=program_config,
            memory_config=memory_config,
            compute_kernel_config=self.compute_kernel_config_hifi2,
        )
        if in_sharded and not out_sharded:
            return ttnn.sharded_to_interleaved(x)
        return x

    def __call__(self, x, mode):
        """DistributedNorm.forward on one chip (not multichip, not distributed)."""
        import ttnn

        input_mem_cfg = self.sharded_output_config if mode == "decode" else ttnn.DRAM_MEMORY_CONFIG
        x = ttnn.to_memory_config(x, input_mem_cfg)
        return self.norm(x, mode=mode, in_sharded=(mode == "decode"), out_sharded=(mode == "decode"))


class MLP:
    """models/tt_transformers/tt/mlp.py MLP on one chip (not TG, no prefetcher)."""

    def __init__(self, mesh_device, cfg, gen):
        import ttnn

        self.cfg = cfg

        def weight(out_features, in_features, dtype, mem, dims):
            # torch_weight(name) is the transposed [in, out] matrix; the random values are drawn directly in
            # that layout (saves host time on 59M values per matrix), then made 4D [1, 1, in, out]
            w = randn((1, 1, in_features, out_features), gen, in_features ** -0.5)
            return ttnn.as_tensor(
                w, dtype=dtype, device=mesh_device,
                mesh_mapper=ttnn.ShardTensor2dMesh(mesh_device, dims=dims, mesh_shape=[1, 1]),
                layout=ttnn.TILE_LAYOUT, memory_config=mem)

        self.w1 = weight(HIDDEN_DIM, DIM, cfg.ff1_3_dtype, cfg.w1_w3_mem, (-2, -1))
        self.w2 = weight(DIM, HIDDEN_DIM, cfg.ff2_dtype, cfg.w2_mem, (-1, -2))
        self.w3 = weight(HIDDEN_DIM, DIM, cfg.ff1_3_dtype, cfg.w1_w3_mem, (-2, -1))
        self.prefill_w1_w3, self.prefill_w2 = _prefill_mlp_configs()

    def forward(self, x, mode):
        import ttnn

        cfg = self.cfg
        seq_len = x.shape[-2]
        activation_dtype = cfg.activation_dtype
        if mode == "decode":
            pc_1 = cfg.DECODE_MLP_W1_W3_PRG_CONFIG
            pc_2 = cfg.DECODE_MLP_W2_PRG_CONFIG
            pc_3 = cfg.DECODE_MLP_W1_W3_PRG_CONFIG
        else:
            assert seq_len < PREFILL_LEN_CUTOFF  # no [1, seq / 512, 512, -1] reshape at 128 tokens
            pc_1 = self.prefill_w1_w3
            pc_2 = self.prefill_w2
            pc_3 = self.prefill_w1_w3

        memory_config = ttnn.L1_WIDTH_SHARDED_MEMORY_CONFIG if mode == "decode" else ttnn.DRAM_MEMORY_CONFIG
        w1_out = ttnn.linear(
            x,
            self.w1,
            dtype=activation_dtype or ttnn.bfloat16,
            core_grid=None,
            compute_kernel_config=cfg.li_ff1_3,
            program_config=pc_1,
            memory_config=memory_config,
        )
        w3_out = ttnn.linear(
            x,
            self.w3,
            dtype=activation_dtype or ttnn.bfloat16,
            core_grid=None,
            compute_kernel_config=cfg.li_ff1_3,
            program_config=pc_3,
            memory_config=memory_config,
        )
        ttnn.deallocate(x)

        w2_in = ttnn.mul(
            w1_out,
            w3_out,
            input_tensor_a_activations=[ttnn.UnaryOpType.SILU],
            dtype=activation_dtype or ttnn.bfloat8_b,
            memory_config=w1_out.memory_config(),
        )
        if mode == "decode":
            # w2 may use another core grid; a no-op when it matches
            w2_in = ttnn.to_memory_config(w2_in, cfg.SHARDED_MLP2_INPUT_MEMCFG)
        ttnn.deallocate(w3_out)
        ttnn.deallocate(w1_out)

        w2_out = ttnn.linear(
            w2_in,
            self.w2,
            compute_kernel_config=cfg.li_ff2,
            dtype=activation_dtype or ttnn.bfloat16,
            program_config=pc_2,
            memory_config=memory_config,
            core_grid=None,
        )
        ttnn.deallocate(w2_in)
        # tt_all_reduce(cluster_axis=0): no-op on a 1x1 mesh
        w2_out_reduced = w2_out

        original_shape = w2_out_reduced.shape
        w2_out_reduced = ttnn.reshape(
            w2_out_reduced, (1, 1, original_shape[-4] * original_shape[-3] * original_shape[-2], original_shape[-1])
        )
        if mode == "decode":
            w2_out_reduced = ttnn.to_memory_config(w2_out_reduced, cfg.DECODE_RESIDUAL_MEMCFG)
        return w2_out_reduced


class TransformerBlock:
    def __init__(self, mesh_device, gen):
        cfg = make_config()
        self.cfg = cfg
        self.attention = Attention(mesh_device, cfg, gen, make_trans_mats(mesh_device))
        self.feed_forward = MLP(mesh_device, cfg, gen)
        self.attention_norm = RMSNorm(mesh_device, gen, cfg.SHARDED_NORM_ATTN_PRGM_CFG, cfg.SHARDED_ATTN_INPUT_MEMCFG)
        self.ff_norm = RMSNorm(mesh_device, gen, cfg.SHARDED_NORM_MLP_PRGM_CFG, cfg.SHARDED_MLP_INPUT_MEMCFG)

    def forward(self, x, current_pos, rot_mats_global, user_id, mode, page_table):
        import ttnn

        residual = x
        skip_mem_cfg = self.cfg.DECODE_RESIDUAL_MEMCFG if mode == "decode" else ttnn.DRAM_MEMORY_CONFIG
        assert x.memory_config() == skip_mem_cfg
        rot_mats = rot_mats_global                 # Llama has no sliding layers

        attn_in = self.attention_norm(x, mode)
        if mode == "decode":
            attn_out = self.attention.forward_decode(attn_in, current_pos, rot_mats, page_table)
        else:
            attn_out = self.attention.forward_prefill(attn_in, rot_mats, user_id, page_table)
        attn_out = ttnn.to_memory_config(attn_out, skip_mem_cfg)

        hidden_states = ttnn.add(residual, attn_out, memory_config=skip_mem_cfg, dtype=None)
        residual = hidden_states
        if mode == "prefill":
            x.deallocate(True)
        hidden_states = self.ff_norm(hidden_states, mode)
        ttnn.deallocate(attn_out)

        hidden_states = self.feed_forward.forward(hidden_states, mode)

        activation_dtype = self.cfg.activation_dtype
        out = ttnn.add(residual, hidden_states, memory_config=skip_mem_cfg, dtype=activation_dtype or ttnn.bfloat16)
        return out


class _DecodeForward:
    def __init__(self, block):
        self.block = block

    def __call__(self, x, current_pos, cos, sin, page_table):
        return self.block.forward(x, current_pos, [cos, sin], 0, "decode", page_table)


class _PrefillForward:
    def __init__(self, block, user_id):
        self.block = block
        self.user_id = user_id

    def __call__(self, x, cos, sin, page_table):
        return self.block.forward(x, None, [cos, sin], self.user_id, "prefill", page_table)


_NOTES = (
    "Llama-3.1-8B-Instruct on N150 (1x1 mesh), ModelArgs(max_batch_size=32, max_seq_len=1024), paged KV cache "
    "(block 32, 1024 blocks, as simple_text_demo.py), DecodersPrecision.accuracy (ModelArgs' default; all weights "
    "bfloat8_b, HiFi2 attention linears, HiFi2-fp16 MLP linears, HiFi4 SDPA prefill), use_qk_fused=True. Random "
    "weights. No CCL ops on 1x1 (tt_all_reduce / tt_all_gather return their input). The attention is "
    "corpus.tt_transformers_attention's; the MLP follows models/tt_transformers/tt/mlp.py MLP.forward. "
)


@corpus.forward(f"tt_transformers.decoder.decode.{CONFIG}", family="tt_transformers", mode="decode",
                follows=f"{FOLLOWS_FILE}: TransformerBlock.forward", device="n150", mesh_shape=(1, 1))
def build_decode(mesh_device) -> corpus.Forward:
    import ttnn

    gen = seeded(20)
    block = TransformerBlock(mesh_device, gen)
    # the decoder input: the residual stream, width-sharded [32, 128] on 8x4 (DECODE_RESIDUAL_MEMCFG),
    # fractured over the mesh columns (one column here)
    x_host, x = residual_input(mesh_device, gen, block.cfg.DECODE_RESIDUAL_MEMCFG,
                               ttnn.ShardTensor2dMesh(mesh_device, dims=(None, -1), mesh_shape=[1, 1]))
    hosts, devs = decode_position_inputs(mesh_device, gen)
    return corpus.Forward(
        name=f"tt_transformers.decoder.decode.{CONFIG}", family="tt_transformers", mode="decode",
        follows=f"{FOLLOWS_FILE}: TransformerBlock.forward", model=_DecodeForward(block),
        example_inputs=[x] + devs, host_inputs=[x_host] + hosts,
        notes=_NOTES + "Decode step of 32 users: inputs x [1, 1, 32, 4096] bfloat16 in DECODE_RESIDUAL_MEMCFG, "
        "current_pos [32] int32, rot_mats_global cos/sin [1, 64, 1, 128] height-sharded on 64 cores, page_table "
        "[32, 32] int32. The K/V caches (written in place) and transformation matrices live in the callable. "
        "The attention-norm input reshard is to the same config as the residual; the ff-norm one reshards 8x4 -> "
        "8x8 (SHARDED_MLP_INPUT_MEMCFG). x itself is not deallocated in decode (only the norm outputs and "
        "intermediate tensors are).",
    )


@corpus.forward(f"tt_transformers.decoder.prefill.{CONFIG}", family="tt_transformers", mode="prefill",
                follows=f"{FOLLOWS_FILE}: TransformerBlock.forward", device="n150", mesh_shape=(1, 1))
def build_prefill(mesh_device) -> corpus.Forward:
    import ttnn

    gen = seeded(21)
    block = TransformerBlock(mesh_device, gen)
    x_host = randn((1, 1, PREFILL_SEQ, DIM), gen)
    x = ttnn.from_torch(x_host, device=mesh_device, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT,
                        memory_config=ttnn.DRAM_MEMORY_CONFIG,
                        mesh_mapper=ttnn.ShardTensor2dMesh(mesh_device, dims=(None, -1), mesh_shape=[1, 1]))
    hosts, devs = prefill_position_inputs(mesh_device, gen)
    return corpus.Forward(
        name=f"tt_transformers.decoder.prefill.{CONFIG}", family="tt_transformers", mode="prefill",
        follows=f"{FOLLOWS_FILE}: TransformerBlock.forward", model=_PrefillForward(block, PREFILL_USER),
        example_inputs=[x] + devs, host_inputs=[x_host] + hosts,
        notes=_NOTES + "Prefill of user 0 with 128 tokens: inputs x [1, 1, 128, 4096] bfloat16 DRAM, cos/sin "
        "[1, 1, 128, 128] bfloat16 DRAM, page_table [32, 4] int32; user_id 0 is a constant of the callable. "
        "Norms run interleaved (DRAM input, no program config); the MLP uses the 2D multicast prefill configs "
        "(128 < prefill_len_cutoff 512, so no reshape; seq_len <= 128 so w2 is ttnn.linear, not minimal_matmul). "
        "The block deallocates x (x.deallocate(True) after the first residual add).",
    )
