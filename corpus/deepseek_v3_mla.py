"""DeepSeek-V3 multi-latent attention (MLA), decode, on one row of the TG mesh (tt-metal
``models/demos/deepseek_v3``).

Follows (tt-metal, models/demos/deepseek_v3/), one stored version: tt/mla/mla1d.py at commit
0035d040699247da12bc8740d53158aea94fdc3a (index id 35132153133), the generation with the fused
``wq_kv_a`` projection (q_a_proj and kv_a_proj_with_mqa concatenated, all-gather + fast_reduce_nc
as the all-reduce), bfloat8_b weights in DRAM interleaved and mesh_partition + paged_update_cache:
  * MLA1D.forward_decode -> _fwd_decode_wq_kv_a, _fwd_decode_norm_and_rope,
    _fwd_decode_paged_update_cache, _fwd_decode_q_rope_nope, _fwd_decode_all_to_all_pre_flash_mla,
    _fwd_decode_flash_mla, _fwd_decode_wkv_b2, _fwd_decode_ag_reshape, _fwd_decode_wo;
  * MLA1D.decode_model_config, convert_weights / _convert_weight (shapes, dtypes, shard dims),
    get_valid_paged_config, create_page_table, create_state / _convert_cache (the KVPE cache);
  * tt/rms_norm/rms_norm.py: RMSNorm.decode_model_config and _rmsnorm_forward (stored commit
    02282d2f: ttnn.rms_norm(x, program_config=_get_pc(x.memory_config()), epsilon, weight,
    compute_kernel_config=COMPUTE_KERNEL_CONFIG_LOFI)), rms_norm_base.py: RMSNormBase._get_pc
    (LayerNormShardedMultiCoreProgramConfig for L1-sharded activations);
  * tt/rope.py: RotarySetup.get_rot_mats (decode cos / sin [1, 32, 1, 64] height-sharded [32, 64] on
    32 cores, transformation matrix [1, 1, 32 * 32, 32] height-sharded one tile per core);
  * tt/ccl.py: CCL.populate_all_gather_runtime_args (corpus.deepseek_v3._CCL);
  * utils/config_helpers.py: get_mesh_coords, USERS_PER_ROW (32), COMPUTE_KERNEL_CONFIG_LOFI.

Config: DeepSeek-V3 (hidden 7168, 128 heads, q_lora_rank 1536, kv_lora_rank 512, qk_nope 128,
qk_rope 64, v_head 128, rms_norm_eps 1e-6, YaRN factor 40, mscale 1.0). MLA1D works on mesh axis 1
only (TP over the columns; rows are independent data-parallel copies), so a 1x8 mesh on the T3K
gives exactly the TG per-device shapes: hidden 7168 / 8 = 896 per device, 16 local heads, 32 users
per row, 4 users per device for flash MLA. Paged cache: block_size 32 (TILE), max_seq_len 1024 ->
get_valid_paged_config(1024, 32, dp_factor 8): 1024 * 4 / 32 = 128 blocks, cache [128, 1, 32, 576]
bfloat8_b per device; page table [4, 32] int32 per device (create_page_table: randperm reshaped).

Left out / deviations (also in the Forward's notes):
  * the stored _fwd_decode_all_to_all_pre_flash_mla calls all_to_all_async_generic(tt_q,
    **cfg["flash_mla_reshard"]) alone, which lacks the required in_dim / out_dim (a TypeError);
    here it gets the wq_a2a_decode config (cluster_axis 1, in_dim 2, out_dim 1, num_links 1,
    Linear) with flash_mla_reshard's memory config (the Q height-sharded config), as the later
    stored versions call it (**cfg["wq_a2a_decode"], **cfg["flash_mla_reshard"]);
  * weights random, replicated per device with the real per-device shape (the real code shards
    one full dequantized weight with shard_and_save); no weight cache files, no RunConfig;
  * the KVPE cache holds random earlier tokens (as_tensor of a random tensor, bfloat8_b) instead
    of _convert_cache's ttnn.zeros, so the attention reads non-trivial values;
  * position_idxs: the row's 32 int32 positions split over the 8 columns ([4] per device: paged_update_cache
    and flash MLA take one position per local user); row_idx None (every device updates its cache).
"""
from __future__ import annotations

import math

import corpus
from corpus.common import randn, seeded
from corpus.deepseek_v3 import FAMILY, HIDDEN, USERS_PER_ROW, _CCL, _kernel_configs, _replicated

FOLLOWS = "models/demos/deepseek_v3/tt/mla/mla1d.py: MLA1D.forward_decode"

# ---- DeepSeek-V3 (HF config.json) ----
NUM_HEADS = 128
Q_LORA_RANK = 1536
KV_LORA_RANK = 512
QK_NOPE_HEAD_DIM = 128
QK_ROPE_HEAD_DIM = 64
V_HEAD_DIM = 128
RMS_NORM_EPS = 1e-6
ROPE_FACTOR = 40.0
ROPE_MSCALE = 1.0

MAX_SEQ_LEN = 1024     # paged cache length per user for this forward (see module docstring)
BLOCK_SIZE = 32        # get_valid_paged_config default: ttnn.TILE_SIZE


def _nearest_32(n):
    """models.common.utility_functions.nearest_y(n, 32)."""
    return math.ceil(n / 32) * 32


class _MLA1D:
    """MLA1D with its per-device weights, decode_model_config and KVPE cache on a 1 x 8 mesh."""

    def __init__(self, ttnn, mesh_device, gen):
        self.ttnn = ttnn
        self.mesh_device = mesh_device
        self.ccl = _CCL(ttnn, mesh_device)
        self.mesh_shape = tuple(mesh_device.shape)
        tp = self.mesh_shape[1]
        grid = mesh_device.compute_with_storage_grid_size()
        num_cores = grid.x * grid.y
        self.num_heads_local = NUM_HEADS // tp                       # 16
        hidden_per_device = HIDDEN // tp                             # 896
        qk_head_dim = QK_NOPE_HEAD_DIM + QK_ROPE_HEAD_DIM            # 192
        kvpe_dim = KV_LORA_RANK + QK_ROPE_HEAD_DIM                   # 576
        users_per_device = USERS_PER_ROW // tp                       # 4
        lofi, _ = _kernel_configs(ttnn)
        L1 = ttnn.L1_MEMORY_CONFIG
        DRAM = ttnn.DRAM_MEMORY_CONFIG

        # ---- convert_weights: bfloat8_b, TILE, DRAM interleaved (per-device shapes) ----
        def weight(shape, fan_in):
            return _replicated(ttnn, mesh_device, randn(shape, gen, fan_in ** -0.5), ttnn.bfloat8_b,
                               ttnn.TILE_LAYOUT, DRAM)

        # wq_kv_a: [q_a | kv_a] [2112, 7168] transposed, input dim sharded over the 8 columns
        self.wq_kv_a = weight((1, hidden_per_device, Q_LORA_RANK + kvpe_dim), HIDDEN)
        # wq_b: [24576, 1536] transposed, output dim sharded -> [1, 1536, 3072]
        self.wq_b = weight((1, Q_LORA_RANK, self.num_heads_local * qk_head_dim), Q_LORA_RANK)
        # wkv_b1: k part of kv_b_proj per head [128, 128 nope, 512], heads sharded -> [1, 16, 128, 512]
        self.wkv_b1 = weight((1, self.num_heads_local, QK_NOPE_HEAD_DIM, KV_LORA_RANK), QK_NOPE_HEAD_DIM)
        # wkv_b2: v part per head [128, 512, 128 v], replicated (every device runs all heads)
        self.wkv_b2 = weight((1, NUM_HEADS, KV_LORA_RANK, V_HEAD_DIM), KV_LORA_RANK)
        # wo: [7168, 16384] transposed, output dim sharded -> [1, 16384, 896]
        self.wo = weight((1, NUM_HEADS * V_HEAD_DIM, hidden_per_device), NUM_HEADS * V_HEAD_DIM)

        # RMSNorm.convert_weights: [1, 1, dim / 32, 32] bfloat16 ROW_MAJOR DRAM
        def norm_weight(dim):
            w = 1.0 + 0.1 * randn((dim,), gen)
            return _replicated(ttnn, mesh_device, w.reshape(1, 1, dim // 32, 32), ttnn.bfloat16,
                               ttnn.ROW_MAJOR_LAYOUT, DRAM)

        self.q_norm_weight = norm_weight(Q_LORA_RANK)
        self.kv_norm_weight = norm_weight(KV_LORA_RANK)

        # ---- create_state / _convert_cache: KVPE cache [blocks, 1, block_size, 576] bfloat8_b DRAM ----
        self.max_num_blocks = MAX_SEQ_LEN * users_per_device // BLOCK_SIZE   # 128
        self.kvpe_cache = _replicated(ttnn, mesh_device, randn((self.max_num_blocks, 1, BLOCK_SIZE, kvpe_dim), gen),
                                      ttnn.bfloat8_b, ttnn.TILE_LAYOUT, DRAM)

        # ---- decode_model_config ----
        self.input_memory_config = ttnn.create_sharded_memory_config(
            shape=(USERS_PER_ROW, hidden_per_device), core_grid=ttnn.CoreGrid(y=7, x=4),
            strategy=ttnn.ShardStrategy.WIDTH)                                   # [32, 32] x 28 cores

        def height_sharded(shard, cores):
            return ttnn.create_sharded_memory_config(
                shape=shard, core_grid=ttnn.num_cores_to_corerangeset(cores, grid, row_wise=True),
                strategy=ttnn.ShardStrategy.HEIGHT, use_height_and_width_as_shard_shape=True)

        # q_rope: (1, 32, 16, 64) -> shard [nearest_32(16), 64] on 32 cores
        q_rope_mem_cfg = height_sharded((_nearest_32(self.num_heads_local), QK_ROPE_HEAD_DIM), USERS_PER_ROW)
        # kv_rope: (1, 32, 1, 64) -> shard [32, 64] on 32 cores
        kv_rope_mem_cfg = height_sharded((_nearest_32(1), QK_ROPE_HEAD_DIM), USERS_PER_ROW)
        # kvpe: (1, 4, 1, 576) -> shard [32, 576] on 4 cores
        kvpe_mem_cfg = height_sharded((_nearest_32(1), kvpe_dim), users_per_device)

        # flash MLA: Q [1, 4, 128, 576]; q_num_cores = min(4 * 128, 64) = 64,
        # block_height = nearest_32(512 // 64) = 32
        q_num_cores = min(users_per_device * NUM_HEADS, num_cores)
        block_height = _nearest_32((users_per_device * NUM_HEADS) // q_num_cores)
        q_mem_config = height_sharded((block_height, kvpe_dim), q_num_cores)
        flash_mla_out_mem_config = height_sharded((block_height, KV_LORA_RANK), q_num_cores)
        scale = qk_head_dim ** -0.5
        if ROPE_FACTOR > 1.0:
            mscale = 0.1 * ROPE_MSCALE * math.log(ROPE_FACTOR) + 1.0
            scale = scale * mscale * mscale

        hifi4_fp32 = ttnn.WormholeComputeKernelConfig(
            math_fidelity=ttnn.MathFidelity.HiFi4, math_approx_mode=False, fp32_dest_acc_en=True, packer_l1_acc=True)

        self.cfg = {
            # LinearConfig(program_config=None): None fields are dropped when the config is expanded
            "wq_kv_a": {"input_tensor_b": self.wq_kv_a, "memory_config": ttnn.L1_WIDTH_SHARDED_MEMORY_CONFIG},
            "wq_b": {"input_tensor_b": self.wq_b, "memory_config": L1},
            "wkv_b1": {"input_tensor_b": self.wkv_b1, "memory_config": L1},
            "wkv_b2": {"input_tensor_b": self.wkv_b2, "memory_config": L1},
            "wo": {"input_tensor_b": self.wo, "memory_config": ttnn.L1_WIDTH_SHARDED_MEMORY_CONFIG},
            "q_rope_permute": {"dims": (1, 0, 2, 3)},
            "q_rope_slice": {"memory_config": q_rope_mem_cfg},
            "q_concat": {"dim": -1, "memory_config": L1},
            "q_rope_out_reshard": {"memory_config": L1},
            "kv_rope_reshard": {"memory_config": kv_rope_mem_cfg},
            "kv_rope_permute": {"dims": (0, 2, 1, 3), "memory_config": L1},
            "kv_rope_out_reshard": {"memory_config": L1},
            "kv_concat": {"dim": -1, "memory_config": L1},
            "kvpe_reshard": {"memory_config": kvpe_mem_cfg},
            "flash_mla_reshard": {"memory_config": q_mem_config},
            "flash_mla": {
                "head_dim_v": KV_LORA_RANK,
                "scale": scale,
                "program_config": ttnn.SDPAProgramConfig(compute_with_storage_grid_size=grid, q_chunk_size=0,
                                                         k_chunk_size=128, exp_approx_mode=False),
                "compute_kernel_config": ttnn.WormholeComputeKernelConfig(
                    math_fidelity=ttnn.MathFidelity.HiFi4, math_approx_mode=False, fp32_dest_acc_en=False,
                    packer_l1_acc=False),
                "memory_config": flash_mla_out_mem_config,
            },
            "flash_mla_out_reshard": {"memory_config": L1},
            # RMSNorm.decode_model_config: RMSNormConfig(epsilon, weight, compute_kernel_config=LOFI)
            "q_norm": {"epsilon": RMS_NORM_EPS, "weight": self.q_norm_weight, "compute_kernel_config": lofi},
            "kv_norm": {"epsilon": RMS_NORM_EPS, "weight": self.kv_norm_weight, "compute_kernel_config": lofi},
            "wq_kv_a_ag_decode": {"mesh_device": mesh_device, "cluster_axis": 1, "dim": 1, "memory_config": L1,
                                  "topology": ttnn.Topology.Linear},
            "wq_kv_a_r_decode": {"dims": [1], "compute_kernel_config": hifi4_fp32, "memory_config": L1},
            # q: 1536 wide on an 8x2 grid ([32, 96]); kv nope: 512 on 2x8 ([32, 32]); kv rope interleaved
            "q_slice_decode": {"memory_config": ttnn.create_sharded_memory_config(
                shape=(USERS_PER_ROW, Q_LORA_RANK), core_grid=ttnn.CoreGrid(y=2, x=8),
                strategy=ttnn.ShardStrategy.WIDTH)},
            "kv_nope_slice_decode": {"memory_config": ttnn.create_sharded_memory_config(
                shape=(USERS_PER_ROW, KV_LORA_RANK), core_grid=ttnn.CoreGrid(y=8, x=2),
                strategy=ttnn.ShardStrategy.WIDTH)},
            "kv_rope_slice_decode": {"memory_config": L1},
            # AllToAllAsyncGenericConfig(cluster_axis=1, in_dim=2, out_dim=1, num_links=1, L1, Linear)
            "wq_a2a_decode": {"cluster_axis": 1, "in_dim": 2, "out_dim": 1, "num_links": 1, "memory_config": L1,
                              "topology": ttnn.Topology.Linear},
            "wo_ag_decode": {"mesh_device": mesh_device, "cluster_axis": 1, "dim": 1, "memory_config": L1,
                             "topology": ttnn.Topology.Linear},
        }

    def _rms_norm(self, x, cfg):
        """RMSNorm._rmsnorm_forward with RMSNormBase._get_pc."""
        ttnn = self.ttnn
        mc = x.memory_config()
        if mc.shard_spec is None or mc.buffer_type != ttnn.BufferType.L1:
            pc = ttnn.LayerNormDefaultProgramConfig()
        else:
            shard_height, shard_width = mc.shard_spec.shape
            pc = ttnn.LayerNormShardedMultiCoreProgramConfig(
                compute_with_storage_grid_size=mc.shard_spec.grid.bounding_box().grid_size(),
                subblock_w=1,
                block_h=ttnn.core.divup(shard_height, ttnn.TILE_SIZE),
                block_w=ttnn.core.divup(shard_width, ttnn.TILE_SIZE),
                inplace=False,
            )
        return ttnn.rms_norm(x, program_config=pc, **cfg)

    def forward_decode(self, x, position_idxs, cos_matrix, sin_matrix, trans_matrix, page_table):
        ttnn, cfg, ccl = self.ttnn, self.cfg, self.ccl
        rope_tensors = {"cos_matrix": cos_matrix, "sin_matrix": sin_matrix, "trans_matrix": trans_matrix}
        num_heads_local = self.num_heads_local
        qk_head_dim = QK_NOPE_HEAD_DIM + QK_ROPE_HEAD_DIM
        kvpe_cache = self.kvpe_cache
        bsz = x.shape[2]

        # ---- _fwd_decode_wq_kv_a ----
        tt_q_kv = ttnn.linear(x, **cfg["wq_kv_a"])                              # [1, 1, 32, 2112]
        tt_q_kv = ttnn.experimental.all_gather_async(
            tt_q_kv, **ccl.populate_all_gather_runtime_args(cfg["wq_kv_a_ag_decode"]))  # [1, 8, 32, 2112]
        tt_q_kv = ttnn.experimental.fast_reduce_nc(tt_q_kv, **cfg["wq_kv_a_r_decode"])  # [1, 1, 32, 2112]
        tt_q = ttnn.slice(tt_q_kv, [0, 0, 0, 0], [1, 1, bsz, Q_LORA_RANK], **cfg["q_slice_decode"])
        tt_kv_nope = ttnn.slice(tt_q_kv, [0, 0, 0, Q_LORA_RANK], [1, 1, bsz, Q_LORA_RANK + KV_LORA_RANK],
                                **cfg["kv_nope_slice_decode"])
        tt_kv_rope = ttnn.slice(tt_q_kv, [0, 0, 0, Q_LORA_RANK + KV_LORA_RANK],
                                [1, 1, bsz, Q_LORA_RANK + KV_LORA_RANK + QK_ROPE_HEAD_DIM],
                                **cfg["kv_rope_slice_decode"])
        ttnn.deallocate(tt_q_kv)

        # ---- _fwd_decode_norm_and_rope ----
        tt_q = self._rms_norm(tt_q, cfg["q_norm"])
        tt_kv_nope = self._rms_norm(tt_kv_nope, cfg["kv_norm"])
        tt_kv_nope = ttnn.to_memory_config(tt_kv_nope, memory_config=ttnn.L1_MEMORY_CONFIG)
        tt_kv_rope = ttnn.permute(tt_kv_rope, **cfg["kv_rope_permute"])          # [1, 32, 1, 64]
        tt_kv_rope = ttnn.to_memory_config(tt_kv_rope, **cfg["kv_rope_reshard"])
        tt_kv_rope = ttnn.experimental.rotary_embedding_llama(
            tt_kv_rope, rope_tensors["cos_matrix"], rope_tensors["sin_matrix"], rope_tensors["trans_matrix"],
            is_decode_mode=True)
        tt_kv_rope = ttnn.to_memory_config(tt_kv_rope, **cfg["kv_rope_out_reshard"])
        tt_kv_rope = ttnn.permute(tt_kv_rope, **cfg["kv_rope_permute"])          # [1, 1, 32, 64]
        tt_kvpe = ttnn.concat([tt_kv_nope, tt_kv_rope], **cfg["kv_concat"])     # [1, 1, 32, 576]
        tt_kvpe = ttnn.pad(tt_kvpe, [(0, 0), (0, ttnn.TILE_SIZE - 1), (0, 0), (0, 0)], 0)
        tt_kvpe = ttnn.permute(tt_kvpe, (0, 2, 1, 3))                          # [1, 32, 1(32), 576]
        tt_kvpe = ttnn.mesh_partition(tt_kvpe, dim=1, cluster_axis=1, memory_config=ttnn.L1_MEMORY_CONFIG)
        tt_kvpe = ttnn.to_memory_config(tt_kvpe, **cfg["kvpe_reshard"])         # [1, 4, 1(32), 576]
        ttnn.deallocate(tt_kv_nope)
        ttnn.deallocate(tt_kv_rope)

        # ---- _fwd_decode_paged_update_cache ----
        # mesh_coords: get_mesh_coords(mesh_shape, row_idx) with row_idx None, every device of the mesh
        rows, cols = tuple(self.mesh_device.shape)
        mesh_coords = {ttnn.MeshCoordinate(r, c) for r in range(rows) for c in range(cols)}
        ttnn.experimental.paged_update_cache(kvpe_cache, tt_kvpe, update_idxs_tensor=position_idxs,
                                             page_table=page_table, mesh_coords=set(mesh_coords))

        # ---- _fwd_decode_q_rope_nope ----
        tt_q = ttnn.linear(tt_q, **cfg["wq_b"])                                 # [1, 1, 32, 3072]
        tt_q = ttnn.reshape(tt_q, (bsz, 1, num_heads_local, qk_head_dim))      # [32, 1, 16, 192]
        tt_q_nope = ttnn.slice(tt_q, [0, 0, 0, 0], [bsz, 1, num_heads_local, QK_NOPE_HEAD_DIM])
        tt_q_rope = ttnn.slice(tt_q, [0, 0, 0, QK_NOPE_HEAD_DIM], [bsz, 1, num_heads_local, qk_head_dim],
                               **cfg["q_rope_slice"])
        tt_q_nope = ttnn.permute(tt_q_nope, (1, 2, 0, 3))                      # [1, 16, 32, 128]
        tt_q_nope = ttnn.linear(tt_q_nope, **cfg["wkv_b1"])                    # [1, 16, 32, 512]
        tt_q_nope = ttnn.permute(tt_q_nope, (0, 2, 1, 3))                      # [1, 32, 16, 512]
        tt_q_rope = ttnn.permute(tt_q_rope, **cfg["q_rope_permute"])           # [1, 32, 16, 64]
        tt_q_rope = ttnn.experimental.rotary_embedding_llama(
            tt_q_rope, rope_tensors["cos_matrix"], rope_tensors["sin_matrix"], rope_tensors["trans_matrix"],
            is_decode_mode=True)
        tt_q_rope = ttnn.to_memory_config(tt_q_rope, **cfg["q_rope_out_reshard"])
        tt_q = ttnn.concat([tt_q_nope, tt_q_rope], **cfg["q_concat"])          # [1, 32, 16, 576]

        # ---- _fwd_decode_all_to_all_pre_flash_mla ----
        tt_q = ttnn.experimental.all_to_all_async_generic(
            tt_q, **{**cfg["wq_a2a_decode"], **cfg["flash_mla_reshard"]})      # [1, 4, 128, 576]

        # ---- _fwd_decode_flash_mla ----
        attn_out = ttnn.transformer.paged_flash_multi_latent_attention_decode(
            tt_q, kvpe_cache, page_table_tensor=page_table, cur_pos_tensor=position_idxs, **cfg["flash_mla"])
        ttnn.deallocate(tt_q)                                                  # [1, 4, 128, 512]

        # ---- _fwd_decode_wkv_b2 ----
        attn_out = ttnn.to_memory_config(attn_out, **cfg["flash_mla_out_reshard"])
        attn_out = ttnn.permute(attn_out, (0, 2, 1, 3))                        # [1, 128, 4, 512]
        v_out = ttnn.linear(attn_out, **cfg["wkv_b2"])                         # [1, 128, 4, 128]
        v_out = ttnn.permute(v_out, (0, 2, 1, 3))                              # [1, 4, 128, 128]

        # ---- _fwd_decode_ag_reshape ----
        v_out = ttnn.experimental.all_gather_async(v_out, **ccl.populate_all_gather_runtime_args(cfg["wo_ag_decode"]))
        v_out = ttnn.reshape(v_out, (1, 1, bsz, NUM_HEADS * V_HEAD_DIM))       # [1, 1, 32, 16384]

        # ---- _fwd_decode_wo ----
        return ttnn.linear(v_out, **cfg["wo"])                                 # [1, 1, 32, 896]


def _rot_transformation_mat():
    """rope.get_rot_transformation_mat: one 32x32 tile, +1 at (2i, 2i+1), -1 at (2i+1, 2i)."""
    import torch

    m = torch.zeros(1, 1, 32, 32)
    m[..., torch.arange(0, 32, 2), torch.arange(1, 32, 2)] = 1
    m[..., torch.arange(1, 32, 2), torch.arange(0, 32, 2)] = -1
    return m


@corpus.forward("deepseek_v3.mla.decode.deepseek_v3_1x8", family=FAMILY, mode="decode", follows=FOLLOWS,
                device="t3k", mesh_shape=(1, 8))
def build_mla_decode(mesh_device) -> corpus.Forward:
    import torch
    import ttnn

    gen = seeded(4)
    mla = _MLA1D(ttnn, mesh_device, gen)
    grid = mesh_device.compute_with_storage_grid_size()
    rep = lambda t, dtype, layout, mc: _replicated(ttnn, mesh_device, t, dtype, layout, mc)  # noqa: E731

    # x: this device's TP slice of the row's 32 users, [1, 1, 32, 896] width-sharded 7x4 [32, 32]
    x = randn((1, 1, USERS_PER_ROW, HIDDEN // mla.mesh_shape[1]), gen)
    tt_x = rep(x, ttnn.bfloat16, ttnn.TILE_LAYOUT, mla.input_memory_config)

    # position_idxs: the row's [32] decode positions, int32, DRAM, split over the 8 columns (device c
    # holds users 4c .. 4c + 3, the users mesh_partition and the all-to-all give it): [4] per device
    positions = torch.randint(0, MAX_SEQ_LEN, (USERS_PER_ROW,), generator=gen, dtype=torch.int32)
    tt_positions = ttnn.from_torch(positions, device=mesh_device, dtype=ttnn.int32, layout=ttnn.ROW_MAJOR_LAYOUT,
                                   memory_config=ttnn.DRAM_MEMORY_CONFIG,
                                   mesh_mapper=ttnn.ShardTensorToMesh(mesh_device, dim=0))

    # RotarySetup.get_rot_mats: cos / sin gathered at the positions ([1, 32, 1, 64] after the
    # transpose), height-sharded [32, 64] on find_largest_divisor(32, 64) = 32 cores; transformation
    # matrix repeated per user, [1, 1, 1024, 32] height-sharded one tile per core.
    batch_grid = ttnn.num_cores_to_corerangeset(USERS_PER_ROW, grid, row_wise=True)
    rope_mc = ttnn.create_sharded_memory_config(shape=(ttnn.TILE_SIZE, QK_ROPE_HEAD_DIM), core_grid=batch_grid,
                                                strategy=ttnn.ShardStrategy.HEIGHT,
                                                orientation=ttnn.ShardOrientation.ROW_MAJOR,
                                                use_height_and_width_as_shard_shape=True)
    trans_mc = ttnn.create_sharded_memory_config(shape=(ttnn.TILE_SIZE, ttnn.TILE_SIZE), core_grid=batch_grid,
                                                 strategy=ttnn.ShardStrategy.HEIGHT,
                                                 orientation=ttnn.ShardOrientation.ROW_MAJOR,
                                                 use_height_and_width_as_shard_shape=True)
    theta = torch.rand(USERS_PER_ROW, QK_ROPE_HEAD_DIM // 2, generator=gen) * 6.283
    theta = torch.stack((theta, theta), dim=-1).flatten(-2)                     # Meta-style [t1, t1, t2, t2, ...]
    cos = theta.cos().reshape(1, USERS_PER_ROW, 1, QK_ROPE_HEAD_DIM).to(torch.bfloat16)
    sin = theta.sin().reshape(1, USERS_PER_ROW, 1, QK_ROPE_HEAD_DIM).to(torch.bfloat16)
    trans = _rot_transformation_mat().repeat(1, 1, USERS_PER_ROW, 1).to(torch.bfloat16)
    tt_cos = rep(cos, ttnn.bfloat16, ttnn.TILE_LAYOUT, rope_mc)
    tt_sin = rep(sin, ttnn.bfloat16, ttnn.TILE_LAYOUT, rope_mc)
    tt_trans = rep(trans, ttnn.bfloat16, ttnn.TILE_LAYOUT, trans_mc)

    # create_page_table: randperm(128) as [4 users per device, 32 blocks], int32 ROW_MAJOR DRAM
    users_per_device = USERS_PER_ROW // mla.mesh_shape[1]
    page_table = torch.randperm(mla.max_num_blocks, generator=gen, dtype=torch.int32).reshape(
        users_per_device, mla.max_num_blocks // users_per_device)
    tt_page_table = rep(page_table, ttnn.int32, ttnn.ROW_MAJOR_LAYOUT, ttnn.DRAM_MEMORY_CONFIG)

    return corpus.Forward(
        name="deepseek_v3.mla.decode.deepseek_v3_1x8", family=FAMILY, mode="decode", follows=FOLLOWS,
        model=mla.forward_decode,
        example_inputs=[tt_x, tt_positions, tt_cos, tt_sin, tt_trans, tt_page_table],
        host_inputs=[x, positions, cos, sin, trans, page_table],
        notes="DeepSeek-V3 MLA decode (mla1d.py @ 0035d040, fused wq_kv_a), 32 users on one TG row mapped to the "
              "T3K as a 1x8 mesh (TP 8: 896 hidden, 16 heads per device; flash MLA over 4 users x 128 heads per "
              "device). wq_kv_a linear (bf8, L1 width-sharded) -> all_gather_async (axis 1, dim 1) -> "
              "fast_reduce_nc (dim 1) -> 3 slices (q 8x2 width-sharded, kv nope 2x8, kv rope L1) -> q / kv "
              "rms_norm (sharded LayerNorm PC, LoFi) -> kv rope: permute, reshard 32 cores, "
              "rotary_embedding_llama decode, permute back -> concat, pad, permute, mesh_partition (axis 1), "
              "reshard [32, 576] x 4 -> paged_update_cache (bf8 cache [128, 1, 32, 576], page table [4, 32]) -> "
              "wq_b, reshape, slices, wkv_b1 between permutes, q rope -> concat [1, 32, 16, 576] -> "
              "all_to_all_async_generic (axis 1) to [1, 4, 128, 576] height-sharded on 64 cores -> "
              "paged_flash_multi_latent_attention_decode (head_dim_v 512, YaRN-scaled softmax scale, k_chunk "
              "128, HiFi4) -> reshard L1, permute, wkv_b2, permute -> all_gather_async (axis 1, dim 1) -> "
              "reshape [1, 1, 32, 16384] -> wo (L1 width-sharded) to [1, 1, 32, 896]. Deviations: the stored "
              "all_to_all call passes only flash_mla_reshard (no in_dim / out_dim: it cannot run); here "
              "wq_a2a_decode's arguments with flash_mla_reshard's memory config, as later versions call it; "
              "weights random and replicated per device (real: shard_and_save of the dequantized weights); the "
              "KVPE cache holds random earlier tokens instead of zeros; max_seq_len 1024 (128 cache blocks per "
              "device); position_idxs the row's 32 positions sharded over the columns, [4] per device (the caller's "
              "tensor is not in the followed file; the ops need one position per local user).",
    )
