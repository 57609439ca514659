"""Llama-3.1-8B attention of tt-metal's tt_transformers on one Wormhole chip (N150, a 1x1 mesh).

Follows ``models/tt_transformers/tt/attention.py`` (``Attention.forward_decode`` and
``Attention.forward_prefill``, the version that takes ``tt_ccl`` and has the fused-QK decode path),
with the configs ``models/tt_transformers/tt/model_config.py`` (``ModelArgs``) computes for this
model and device, the rotary inputs ``models/tt_transformers/tt/rope.py`` (``RotarySetup``) makes,
and the CCL helpers of ``models/tt_transformers/tt/ccl.py`` (``tt_all_reduce`` / ``tt_all_gather``
return their input unchanged on a 1x1 mesh, so no CCL op is issued):

* ``tt_transformers.attention.decode.llama3_8b``: DRAM-sharded QKV matmul, sharded -> interleaved,
  reshape to the unpadded batch, ``nlp_create_qkv_heads_decode``, the fused-QK reshard of Q and K
  (``Attention.to_qk_fused_memory_config``), ``rotary_embedding_llama_fused_qk`` with the decode
  transformation matrix, ``paged_fused_update_cache`` (in-place K and V cache update),
  ``paged_scaled_dot_product_attention_decode``, reshard to the per-user height shards,
  ``nlp_concat_heads_decode``, DRAM-sharded output matmul, reshard to the residual config, and the
  code's ``ttnn.deallocate`` calls.
* ``tt_transformers.attention.prefill.llama3_8b``: prefill of one user (user 0) with 128 tokens:
  QKV matmul, ``nlp_create_qkv_heads``, two ``rotary_embedding_llama`` (prefill transformation
  matrix), typecasts to the bfloat8_b cache dtype, ``paged_fill_cache`` of K and V, the causal
  ``scaled_dot_product_attention``, ``nlp_concat_heads`` and the output matmul.

Config (ModelArgs for meta-llama/Llama-3.1-8B-Instruct on N150 as ``simple_text_demo.py``'s batch-32
run sets it up): dim 4096, 32 heads, 8 KV heads, head_dim 128, max_batch_size 32, max_seq_len 1024,
paged attention (the demo default: block_size 32, max_num_blocks 1024, so the K and V caches are
[1024, 8, 32, 128] bfloat8_b and the page table [32 users, 32 blocks]). Precision: ``ModelArgs``'
default ``DecodersPrecision.accuracy``, which for Llama-3 keeps WQKV, WO and the KV cache in
bfloat8_b (the same as the demo's "performance" set for attention) with HiFi2 compute for the
decode and prefill linears and SDPA decode and HiFi4 for SDPA prefill; activations bfloat16
(ACTIVATION precision None). ``use_qk_fused = not is_multimodal`` is True for this text model,
so decode uses the fused rotary and fused cache-update ops and ``RotarySetup`` doubles the batch
(64 cores) for the cos/sin and transformation-matrix shards.

Weights are random (seeded) tensors of the real shapes in the real dtypes and DRAM-sharded
memory configs (no cache files). The KV caches and the transformation matrices live in the
callable (the caches are written in place); per-call inputs are the activation, ``current_pos``,
the rotary cos/sin and the page table. Left out: the QKV bias (Llama has none), q/k norms (Llama
has none), the TG, fused all-gather-matmul and multi-device CCL branches (not taken on N150), the
sliding window (None for Llama), chunked prefill (``chunk_start_idx`` None in the demo's
128-token prefill).
"""
from __future__ import annotations

import math
import types

import torch

import corpus
from corpus.common import randn, seeded

FOLLOWS_FILE = "models/tt_transformers/tt/attention.py"
CONFIG = "llama3_8b"

# meta-llama/Llama-3.1-8B-Instruct (HF config.json)
DIM = 4096
N_HEADS = 32
N_KV_HEADS = 8
HEAD_DIM = DIM // N_HEADS                      # 128
HIDDEN_DIM = 14336
NORM_EPS = 1e-5
ROPE_THETA = 500000.0
ROPE_FACTOR = 8.0                              # rope_scaling: llama3
ROPE_LOW_FREQ_FACTOR = 1.0
ROPE_HIGH_FREQ_FACTOR = 4.0
ROPE_ORIGINAL_MAX_POS = 8192

# the demo's batch-32 run on N150
BATCH = 32
MAX_SEQ_LEN = 1024
BLOCK_SIZE = 32                                # page_params["page_block_size"]
MAX_NUM_BLOCKS = 1024                          # page_params["page_max_num_blocks_per_dp"]
PREFILL_SEQ = 128                              # the demo's prefill_128 prompts (a trace-supported length)
PREFILL_USER = 0

TILE = 32
NUM_DEVICES = 1
DRAM_BANKS = 12                                # Wormhole dram_grid_size().x
QKV_SIZE = HEAD_DIM * (2 * N_KV_HEADS + N_HEADS)   # 6144
SCALE = HEAD_DIM ** -0.5


def make_config():
    """The concrete values ``ModelArgs`` computes for Llama-3.1-8B on N150 (batch 32), as a
    namespace (``cfg.X`` is ``model_config["X"]`` or the named ModelArgs attribute)."""
    import ttnn

    c = types.SimpleNamespace()
    c.tile_padded_batch_rows = 32                          # 32 * ceil(32 / 32)

    # compute kernel configs (ModelArgs.compute_kernel_config_*)
    c.hifi2 = ttnn.WormholeComputeKernelConfig(
        math_fidelity=ttnn.MathFidelity.HiFi2, math_approx_mode=True, fp32_dest_acc_en=True, packer_l1_acc=True)
    c.hifi2_fp16 = ttnn.WormholeComputeKernelConfig(
        math_fidelity=ttnn.MathFidelity.HiFi2, math_approx_mode=False, fp32_dest_acc_en=False, packer_l1_acc=True)
    c.hifi4 = ttnn.WormholeComputeKernelConfig(
        math_fidelity=ttnn.MathFidelity.HiFi4, math_approx_mode=False, fp32_dest_acc_en=True, packer_l1_acc=True)
    # DecodersPrecision.accuracy for a Llama-3 model: attention ops keep the defaults
    c.li_qkv_decode = c.hifi2
    c.sdpa_decode = c.hifi2
    c.li_o_decode = c.hifi2
    c.li_qkv_prefill = c.hifi2
    c.sdpa_prefill = c.hifi4
    c.li_o_prefill = c.hifi2
    c.li_ff1_3 = c.hifi2_fp16                              # MLP: HIFI2_FP16 in accuracy mode
    c.li_ff2 = c.hifi2_fp16
    c.wqkv_dtype = ttnn.bfloat8_b
    c.wo_dtype = ttnn.bfloat8_b
    c.kv_cache_dtype = ttnn.bfloat8_b
    c.ff1_3_dtype = ttnn.bfloat8_b
    c.ff2_dtype = ttnn.bfloat8_b
    c.activation_dtype = None                              # TensorGroup.ACTIVATION: None

    # DRAM-sharded weights: create_dram_sharded_mem_config(k, n) pads n to 12 banks * 32
    dram_grid = ttnn.CoreRangeSet({ttnn.CoreRange(ttnn.CoreCoord(0, 0), ttnn.CoreCoord(DRAM_BANKS - 1, 0))})

    def dram_sharded(k, n):
        padded = math.ceil(n / (TILE * DRAM_BANKS)) * (TILE * DRAM_BANKS)
        return ttnn.MemoryConfig(ttnn.TensorMemoryLayout.WIDTH_SHARDED, ttnn.BufferType.DRAM,
                                 ttnn.ShardSpec(dram_grid, (k, padded // DRAM_BANKS), ttnn.ShardOrientation.ROW_MAJOR))

    c.wqkv_mem = dram_sharded(DIM, QKV_SIZE)               # shards [4096, 512]
    c.wo_mem = dram_sharded(N_HEADS * HEAD_DIM, DIM)       # 4096 -> 4224 padded: shards [4096, 352]
    c.w1_w3_mem = dram_sharded(DIM, HIDDEN_DIM)            # 14336 -> 14592 padded: shards [4096, 1216]
    c.w2_mem = dram_sharded(HIDDEN_DIM, DIM)               # shards [14336, 352]

    def width_sharded(shard_w, grid):
        return ttnn.create_sharded_memory_config(
            (c.tile_padded_batch_rows, shard_w), grid, ttnn.ShardStrategy.WIDTH, ttnn.ShardOrientation.ROW_MAJOR,
            use_height_and_width_as_shard_shape=True)

    # dram_shard_core_grid_for_k(4096): find_grid(128 tiles) -> 32 cores as 4 rows x 8 columns
    attn_input_grid = ttnn.CoreGrid(x=8, y=4)
    c.DECODE_RESIDUAL_MEMCFG = width_sharded(DIM // 32, attn_input_grid)       # [32, 128] on 8x4
    c.SHARDED_ATTN_INPUT_MEMCFG = width_sharded(DIM // 32, attn_input_grid)    # same grid
    # dram_shard_core_grid_for_k_and_n(4096, 14336): 128 and 448 tiles share 64 -> 8x8
    mlp_core_grid = ttnn.CoreGrid(x=8, y=8)
    c.SHARDED_MLP_INPUT_MEMCFG = width_sharded(DIM // 64, mlp_core_grid)       # [32, 64] on 8x8
    # dram_shard_core_grid_for_k_and_n(14336, 4096): 64 cores -> 8x8
    mlp2_core_grid = ttnn.CoreGrid(x=8, y=8)
    c.SHARDED_MLP2_INPUT_MEMCFG = width_sharded(HIDDEN_DIM // 64, mlp2_core_grid)  # [32, 224] on 8x8

    # create_sharded_norm_config(grid): block_w = dim / cores / 32, subblock_w = largest <= 4 dividing it
    c.SHARDED_NORM_ATTN_PRGM_CFG = ttnn.LayerNormShardedMultiCoreProgramConfig(
        compute_with_storage_grid_size=[8, 4], subblock_w=4, block_h=1, block_w=4, inplace=False)   # 4096/32/32 = 4
    c.SHARDED_NORM_MLP_PRGM_CFG = ttnn.LayerNormShardedMultiCoreProgramConfig(
        compute_with_storage_grid_size=[8, 8], subblock_w=2, block_h=1, block_w=2, inplace=False)   # 4096/64/32 = 2

    # dram_matmul_config(m, k, n, num_cores): in0_block_w = largest divisor <= 8 of k / 32 / cores,
    # per_core_M = m / 32, per_core_N = ceil(n / 32 / cores)
    c.XQKV_DECODE_PROGCFG = ttnn.MatmulMultiCoreReuseMultiCastDRAMShardedProgramConfig(
        in0_block_w=4, per_core_M=1, per_core_N=6, fused_activation=None)   # k 4096 / 32 / 32 = 4; 6144 / 32 / 32 = 6
    c.ATTN_OUTPUT_PROGCFG = ttnn.MatmulMultiCoreReuseMultiCastDRAMShardedProgramConfig(
        in0_block_w=4, per_core_M=1, per_core_N=4, fused_activation=None)   # 32 cores (n_heads): 4096 / 32 / 32 = 4
    c.DECODE_MLP_W1_W3_PRG_CONFIG = ttnn.MatmulMultiCoreReuseMultiCastDRAMShardedProgramConfig(
        in0_block_w=2, per_core_M=1, per_core_N=7, fused_activation=None)   # 64 cores: 4096/32/64 = 2; 14336/32/64 = 7
    c.DECODE_MLP_W2_PRG_CONFIG = ttnn.MatmulMultiCoreReuseMultiCastDRAMShardedProgramConfig(
        in0_block_w=7, per_core_M=1, per_core_N=2, fused_activation=None)   # 64 cores: 14336/32/64 = 7; 4096/32/64 = 2

    # Wormhole: CREATE_QKV_DECODE_SHARD is the default L1 height-sharded config
    c.CREATE_QKV_DECODE_SHARD = ttnn.L1_HEIGHT_SHARDED_MEMORY_CONFIG
    c.SDPA_DECODE_PROGCFG = ttnn.SDPAProgramConfig(
        compute_with_storage_grid_size=(8, 8), exp_approx_mode=False, q_chunk_size=0, k_chunk_size=0)
    # SCORES_BATCHED_MM_OUTPUT_MEMCFG(32): [ceil(32 heads / 32) * 32, 128] per user on num_to_corerange(32)
    c.SCORES_BATCHED_MM_OUTPUT_MEMCFG = ttnn.create_sharded_memory_config(
        shape=(32, HEAD_DIM), core_grid=ttnn.CoreRangeSet({ttnn.CoreRange(ttnn.CoreCoord(0, 0), ttnn.CoreCoord(7, 3))}),
        strategy=ttnn.ShardStrategy.HEIGHT, orientation=ttnn.ShardOrientation.ROW_MAJOR,
        use_height_and_width_as_shard_shape=True)

    # prefill (seq_len 128)
    s = PREFILL_SEQ
    # XQKV_PREFILL_PROGCFG(128): per_core_M = ceil(128 / 32 / 8) = 1, per_core_N = ceil(6144 / 32 / 8) = 24
    c.XQKV_PREFILL_PROGCFG = ttnn.MatmulMultiCoreReuseMultiCastProgramConfig(
        compute_with_storage_grid_size=(8, 8), in0_block_w=1, out_subblock_h=1, out_subblock_w=1,
        per_core_M=max(1, math.ceil(s / TILE / 8)), per_core_N=math.ceil(QKV_SIZE / 32 / 8),
        transpose_mcast=False, fused_activation=None, fuse_batch=s <= 2048)
    # SDPA_PROGCFG(128): q/k chunks 64 below 2048 tokens
    c.SDPA_PROGCFG = ttnn.SDPAProgramConfig(
        compute_with_storage_grid_size=(8, 8), exp_approx_mode=False, q_chunk_size=64, k_chunk_size=64)
    # WO_PREFILL_PROGCFG(128) = matmul_config(m=128, k=4096, n=4096, grid=find_prefill_grid(8, 128) = (8, 8),
    # per_core_N=ceil(4096 / (32 * 8)) = 16 (DRAM-sharded wo)): per_core_M = ceil(128 / 256) = 1,
    # in0_block_w = largest divisor <= 8 of 4096 / 256 = 16 -> 8, out_subblock_w = get_out_subblock_w(16, 1) = 4
    c.WO_PREFILL_PROGCFG = ttnn.MatmulMultiCoreReuseMultiCastProgramConfig(
        compute_with_storage_grid_size=(8, 8), in0_block_w=8, out_subblock_h=1, out_subblock_w=4,
        per_core_M=1, per_core_N=16, transpose_mcast=False, fused_activation=None, fuse_batch=s <= 1024)
    # min_kv_prefill_shard_seqlen = 32 * 8 * 8 / 8 kv heads = 256 > 128 (and paged): no KV_PREFILL_MEM_CFG reshard
    return c


# --- rotary inputs (RotarySetup with use_qk_fused=True: the batch is doubled to 64) -----------------

def _llama3_inv_freq() -> torch.Tensor:
    """Llama-3 scaled RoPE frequencies (LlamaRotaryEmbedding.apply_scaling's rule)."""
    freqs = 1.0 / (ROPE_THETA ** (torch.arange(0, HEAD_DIM, 2).float() / HEAD_DIM))
    wavelen = 2 * math.pi / freqs
    low_wavelen = ROPE_ORIGINAL_MAX_POS / ROPE_LOW_FREQ_FACTOR
    high_wavelen = ROPE_ORIGINAL_MAX_POS / ROPE_HIGH_FREQ_FACTOR
    smooth = (ROPE_ORIGINAL_MAX_POS / wavelen - ROPE_LOW_FREQ_FACTOR) / (ROPE_HIGH_FREQ_FACTOR - ROPE_LOW_FREQ_FACTOR)
    mid = (1 - smooth) * freqs / ROPE_FACTOR + smooth * freqs
    return torch.where(wavelen < high_wavelen, freqs, torch.where(wavelen > low_wavelen, freqs / ROPE_FACTOR, mid))


def rope_cos_sin(positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin rows in the meta (pairwise-interleaved) layout tt_transformers uses: [n, head_dim]."""
    angles = torch.outer(positions.float(), _llama3_inv_freq())
    return (torch.cos(angles).repeat_interleave(2, dim=-1).to(torch.bfloat16),
            torch.sin(angles).repeat_interleave(2, dim=-1).to(torch.bfloat16))


def rot_transformation_mat() -> torch.Tensor:
    """The single-tile rotation matrix of common.get_rot_transformation_mat: [1, 1, 32, 32]."""
    mat = torch.zeros(1, 1, TILE, TILE)
    even, odd = torch.arange(0, TILE, 2), torch.arange(1, TILE, 2)
    mat[..., even, odd] = 1
    mat[..., odd, even] = -1
    return mat


def rope_batch_grid(mesh_device):
    """RotarySetup.batch_grid: 64 cores (batch 32 doubled for the fused QK ops), row-wise on 8x8."""
    import ttnn

    return ttnn.num_cores_to_corerangeset(2 * BATCH, mesh_device.compute_with_storage_grid_size(), row_wise=True)


def make_trans_mats(mesh_device) -> dict:
    """RotarySetup.get_both_trans_mats(): the decode matrix repeated over the 64 batch cores and
    height-sharded one tile per core; the prefill matrix as one DRAM tile."""
    import ttnn

    decode_mem = ttnn.create_sharded_memory_config(
        shape=(ttnn.TILE_SIZE, ttnn.TILE_SIZE), core_grid=rope_batch_grid(mesh_device),
        strategy=ttnn.ShardStrategy.HEIGHT, orientation=ttnn.ShardOrientation.ROW_MAJOR,
        use_height_and_width_as_shard_shape=True)
    decode = ttnn.from_torch(rot_transformation_mat().repeat(1, 1, 2 * BATCH, 1), device=mesh_device,
                             layout=ttnn.TILE_LAYOUT, dtype=ttnn.bfloat16, memory_config=decode_mem,
                             mesh_mapper=ttnn.ReplicateTensorToMesh(mesh_device))
    prefill = ttnn.from_torch(rot_transformation_mat(), device=mesh_device, layout=ttnn.TILE_LAYOUT,
                              dtype=ttnn.bfloat16, memory_config=ttnn.DRAM_MEMORY_CONFIG,
                              mesh_mapper=ttnn.ReplicateTensorToMesh(mesh_device))
    return {"decode": decode, "prefill": prefill}


# --- per-call inputs ------------------------------------------------------------------------------

def page_table_host(gen: torch.Generator) -> torch.Tensor:
    """The demo's page table: a random permutation of the 1024 blocks, 32 per user: [32, 32] int32."""
    permutation = torch.randperm(MAX_NUM_BLOCKS, generator=gen)
    return torch.argsort(permutation).reshape(BATCH, MAX_NUM_BLOCKS // BATCH).to(torch.int32)


def decode_position_inputs(mesh_device, gen: torch.Generator):
    """current_pos, rotary cos/sin and page table for one decode step, as Transformer.
    prepare_decode_inputs_host + RotarySetup.get_rot_mats put them on the device.
    Returns (hosts, devices) in the order current_pos, cos, sin, page_table."""
    import ttnn

    pos = torch.randint(PREFILL_SEQ, MAX_SEQ_LEN - 1, (BATCH,), generator=gen, dtype=torch.int32)
    current_pos = ttnn.from_torch(pos, device=mesh_device, dtype=ttnn.int32,
                                  mesh_mapper=ttnn.ShardTensor2dMesh(mesh_device, dims=(None, None), mesh_shape=[1, 1]))
    # get_rot_mats: embedding of the (doubled) positions -> [1, 1, 64, 128] -> transpose(1, 2) ->
    # [1, 64, 1(32), 128], height-sharded one [32, 128] tile row per core over the 64 batch cores
    cos_rows, sin_rows = rope_cos_sin(pos.repeat(2))
    cos_host = cos_rows.reshape(1, 2 * BATCH, 1, HEAD_DIM)
    sin_host = sin_rows.reshape(1, 2 * BATCH, 1, HEAD_DIM)
    rot_mem = ttnn.create_sharded_memory_config(
        shape=(ttnn.TILE_SIZE, HEAD_DIM), core_grid=rope_batch_grid(mesh_device), strategy=ttnn.ShardStrategy.HEIGHT,
        orientation=ttnn.ShardOrientation.ROW_MAJOR, use_height_and_width_as_shard_shape=True)
    cos = ttnn.from_torch(cos_host, device=mesh_device, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT,
                          memory_config=rot_mem, mesh_mapper=ttnn.ReplicateTensorToMesh(mesh_device))
    sin = ttnn.from_torch(sin_host, device=mesh_device, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT,
                          memory_config=rot_mem, mesh_mapper=ttnn.ReplicateTensorToMesh(mesh_device))
    table_host = page_table_host(gen)
    page_table = ttnn.from_torch(table_host, device=mesh_device, dtype=ttnn.int32,
                                 mesh_mapper=ttnn.ShardTensor2dMesh(mesh_device, dims=(None, None), mesh_shape=[1, 1]))
    return [pos, cos_host, sin_host, table_host], [current_pos, cos, sin, page_table]


def prefill_position_inputs(mesh_device, gen: torch.Generator):
    """Rotary cos/sin for positions 0..127 (Transformer.prepare_inputs_prefill slices RotarySetup's
    [1, 1, 1024, 128] matrices, DRAM TILE bfloat16) and the user's page table (Generator.
    _get_prefill_user_page_table: the table cut to ceil(128 / 32) = 4 blocks: [32, 4] int32).
    Returns (hosts, devices) in the order cos, sin, page_table."""
    import ttnn

    cos_rows, sin_rows = rope_cos_sin(torch.arange(PREFILL_SEQ))
    cos_host = cos_rows.reshape(1, 1, PREFILL_SEQ, HEAD_DIM)
    sin_host = sin_rows.reshape(1, 1, PREFILL_SEQ, HEAD_DIM)
    rep = ttnn.ReplicateTensorToMesh(mesh_device)
    cos = ttnn.from_torch(cos_host, device=mesh_device, layout=ttnn.TILE_LAYOUT, dtype=ttnn.bfloat16, mesh_mapper=rep)
    sin = ttnn.from_torch(sin_host, device=mesh_device, layout=ttnn.TILE_LAYOUT, dtype=ttnn.bfloat16, mesh_mapper=rep)
    table_host = page_table_host(gen)[:, : math.ceil(PREFILL_SEQ / BLOCK_SIZE)].contiguous()
    page_table = ttnn.from_torch(table_host, device=mesh_device, dtype=ttnn.int32, layout=ttnn.ROW_MAJOR_LAYOUT,
                                 mesh_mapper=rep)
    return [cos_host, sin_host, table_host], [cos, sin, page_table]


# --- the module -----------------------------------------------------------------------------------

class Attention:
    """Attention with its weights, paged KV cache and configs on one chip."""

    def __init__(self, mesh_device, cfg, gen: torch.Generator, transformation_mats: dict):
        import ttnn

        self.mesh_device = mesh_device
        self.cfg = cfg
        self.transformation_mats = transformation_mats
        self.n_local_heads = N_HEADS // NUM_DEVICES
        self.n_local_kv_heads = N_KV_HEADS // NUM_DEVICES
        self.batch_size_per_device_group = BATCH
        self.scale = SCALE

        # wqkv: per device [wq^T | wk^T | wv^T] -> [1, 1, 4096, 6144], DRAM-sharded over 12 banks. The random
        # values are drawn directly in the transposed, concatenated [in, out] layout (same shapes as the
        # real torch.cat of the transposed wq/wk/wv chunks; it saves host time on these 25M values).
        qkv = randn((1, 1, DIM, QKV_SIZE), gen, DIM ** -0.5)
        self.wqkv = ttnn.as_tensor(
            qkv, dtype=cfg.wqkv_dtype, layout=ttnn.TILE_LAYOUT, device=mesh_device,
            memory_config=cfg.wqkv_mem,
            mesh_mapper=ttnn.ShardTensor2dMesh(mesh_device, dims=(2, 3), mesh_shape=[1, 1]))
        # wo: [1, 1, 4096, 4096] (wo^T: [n_heads * head_dim, dim]), DRAM-sharded
        wo = randn((1, 1, N_HEADS * HEAD_DIM, DIM), gen, (N_HEADS * HEAD_DIM) ** -0.5)
        self.wo = ttnn.as_tensor(
            wo, dtype=cfg.wo_dtype, layout=ttnn.TILE_LAYOUT,
            device=mesh_device, memory_config=cfg.wo_mem,
            mesh_mapper=ttnn.ShardTensor2dMesh(mesh_device, dims=(3, 2), mesh_shape=[1, 1]))

        # init_kv_cache with the paged config: [max_num_blocks, n_local_kv_heads, block_size, head_dim]
        cache_shape = (MAX_NUM_BLOCKS, self.n_local_kv_heads, BLOCK_SIZE, HEAD_DIM)
        self.layer_past = [
            ttnn.as_tensor(torch.zeros(cache_shape), dtype=cfg.kv_cache_dtype, layout=ttnn.TILE_LAYOUT,
                           device=mesh_device, memory_config=ttnn.DRAM_MEMORY_CONFIG,
                           mesh_mapper=ttnn.ReplicateTensorToMesh(mesh_device))
            for _ in range(2)
        ]

    def to_qk_fused_memory_config(self, q_tensor, k_tensor):
        """Q on the first 32 cores (rows 0-3), K on the next 32 (rows 4-7), one user per core."""
        import ttnn

        n_q_heads = q_tensor.shape[2]
        n_kv_heads = k_tensor.shape[2]
        q_batch = q_tensor.shape[1]
        k_batch = k_tensor.shape[1]
        assert q_batch == k_batch
        row = 8
        k_start = ttnn.CoreCoord(q_batch % row, q_batch // row)

        def cores(n, start):
            num_x = min(n, row)
            num_y = n // num_x
            return ttnn.CoreRangeSet({ttnn.CoreRange(start, ttnn.CoreCoord(start.x + num_x - 1, start.y + num_y - 1))})

        def nearest_32(n):
            return math.ceil(n / 32) * 32

        q_mem = ttnn.create_sharded_memory_config(
            shape=(nearest_32(n_q_heads), HEAD_DIM), core_grid=cores(q_batch, ttnn.CoreCoord(0, 0)),
            strategy=ttnn.ShardStrategy.HEIGHT, orientation=ttnn.ShardOrientation.ROW_MAJOR,
            use_height_and_width_as_shard_shape=True)
        k_mem = ttnn.create_sharded_memory_config(
            shape=(nearest_32(n_kv_heads), HEAD_DIM), core_grid=cores(k_batch, k_start),
            strategy=ttnn.ShardStrategy.HEIGHT, orientation=ttnn.ShardOrientation.ROW_MAJOR,
            use_height_and_width_as_shard_shape=True)
        q_tensor = ttnn.to_memory_config(q_tensor, q_mem)
        k_tensor = ttnn.to_memory_config(k_tensor, k_mem)
        return q_tensor, k_tensor

    def forward_decode(self, x, current_pos, rot_mats, page_table):
        import ttnn

        cfg = self.cfg
        # QKV matmul (DRAM-sharded, HiFi2)
        xqkv_fused_sharded = ttnn.linear(
            x,
            self.wqkv,
            memory_config=ttnn.L1_WIDTH_SHARDED_MEMORY_CONFIG,
            program_config=cfg.XQKV_DECODE_PROGCFG,
            compute_kernel_config=cfg.li_qkv_decode,
            dtype=cfg.activation_dtype or ttnn.bfloat16,
        )
        ttnn.deallocate(x)
        # tt_all_reduce(cluster_axis=1): no-op on a 1x1 mesh
        xqkv_fused = ttnn.sharded_to_interleaved(xqkv_fused_sharded, ttnn.L1_MEMORY_CONFIG, ttnn.bfloat16)
        ttnn.deallocate(xqkv_fused_sharded)

        # keep the unpadded batch in the logical shape
        fqkv_shape = xqkv_fused.shape
        xqkv_fused = ttnn.reshape(
            xqkv_fused, (1, 1, self.batch_size_per_device_group, fqkv_shape[3]), (1, 1, 32, fqkv_shape[3])
        )

        q_heads_pre_rot_1BQD, k_heads_pre_rot_1BKD, v_heads_1BKD = ttnn.experimental.nlp_create_qkv_heads_decode(
            xqkv_fused,
            num_heads=self.n_local_heads,
            num_kv_heads=self.n_local_kv_heads,
            memory_config=cfg.CREATE_QKV_DECODE_SHARD,
        )
        ttnn.deallocate(xqkv_fused)

        # fused Q/K rotary embedding (use_qk_fused)
        q_heads_pre_rot_1BQD, k_heads_pre_rot_1BKD = self.to_qk_fused_memory_config(
            q_heads_pre_rot_1BQD, k_heads_pre_rot_1BKD
        )
        q_heads_1BQD, k_heads_1BKD = ttnn.experimental.rotary_embedding_llama_fused_qk(
            q_heads_pre_rot_1BQD, k_heads_pre_rot_1BKD, rot_mats[0], rot_mats[1], self.transformation_mats["decode"]
        )
        ttnn.deallocate(q_heads_pre_rot_1BQD)
        ttnn.deallocate(k_heads_pre_rot_1BKD)

        # KV cache update, in place
        keys = self.layer_past[0]
        values = self.layer_past[1]
        ttnn.experimental.paged_fused_update_cache(
            keys, k_heads_1BKD, values, v_heads_1BKD, update_idxs_tensor=current_pos, page_table=page_table
        )
        ttnn.deallocate(k_heads_1BKD)
        ttnn.deallocate(v_heads_1BKD)

        attn_output_1G4D = ttnn.transformer.paged_scaled_dot_product_attention_decode(
            q_heads_1BQD,
            keys,
            values,
            page_table_tensor=page_table,
            cur_pos_tensor=current_pos,
            scale=self.scale,
            sliding_window_size=None,
            program_config=cfg.SDPA_DECODE_PROGCFG,
            compute_kernel_config=cfg.sdpa_decode,
            memory_config=ttnn.DRAM_MEMORY_CONFIG,
        )
        ttnn.deallocate(q_heads_1BQD)

        attn_output_11BH = ttnn.to_memory_config(attn_output_1G4D, memory_config=cfg.SCORES_BATCHED_MM_OUTPUT_MEMCFG)
        attn_output_cat = ttnn.experimental.nlp_concat_heads_decode(attn_output_11BH, num_heads=self.n_local_heads)
        ttnn.deallocate(attn_output_11BH)
        ttnn.deallocate(attn_output_1G4D)

        # tt_all_gather(cluster_axis=1): no-op on a 1x1 mesh
        attn_output = attn_output_cat
        dense_out_sharded = ttnn.matmul(
            attn_output,
            self.wo,
            core_grid=None,
            program_config=cfg.ATTN_OUTPUT_PROGCFG,
            memory_config=ttnn.L1_WIDTH_SHARDED_MEMORY_CONFIG,
            dtype=None,
            compute_kernel_config=cfg.li_o_decode,
        )
        ttnn.deallocate(attn_output_cat)

        # tt_all_reduce(cluster_axis=0): no-op on a 1x1 mesh
        dense_out_reduced = ttnn.to_memory_config(dense_out_sharded, cfg.DECODE_RESIDUAL_MEMCFG)
        return dense_out_reduced

    def forward_prefill(self, x_11SH, rot_mats, user_id, page_table):
        import ttnn

        cfg = self.cfg
        seq_len = x_11SH.shape[-2]
        assert seq_len % 128 == 0 and seq_len <= 2048  # no MAX_QKV_MM_SEQ_LEN reshape at 128

        xqkv_fused = ttnn.linear(
            x_11SH,
            self.wqkv,
            dtype=cfg.activation_dtype or ttnn.bfloat16,
            memory_config=ttnn.DRAM_MEMORY_CONFIG,
            compute_kernel_config=cfg.li_qkv_prefill,
            program_config=cfg.XQKV_PREFILL_PROGCFG,
        )
        # tt_all_reduce(cluster_axis=1): no-op on a 1x1 mesh
        ttnn.deallocate(x_11SH)

        q_heads_1QSD_pre_rot, k_heads_1KSD_pre_rot, v_heads_1VSD = ttnn.experimental.nlp_create_qkv_heads(
            xqkv_fused,
            num_heads=self.n_local_heads,
            num_kv_heads=self.n_local_kv_heads,
            transpose_k_heads=False,
            memory_config=ttnn.DRAM_MEMORY_CONFIG,
        )
        ttnn.deallocate(xqkv_fused)

        # the heads are bfloat16 already, so no typecast before the rotary embedding
        q_heads_1QSD = ttnn.experimental.rotary_embedding_llama(
            q_heads_1QSD_pre_rot, rot_mats[0], rot_mats[1], self.transformation_mats["prefill"], is_decode_mode=False
        )
        ttnn.deallocate(q_heads_1QSD_pre_rot)
        k_heads_1KSD = ttnn.experimental.rotary_embedding_llama(
            k_heads_1KSD_pre_rot, rot_mats[0], rot_mats[1], self.transformation_mats["prefill"], is_decode_mode=False
        )
        ttnn.deallocate(k_heads_1KSD_pre_rot)

        keys_BKSD, values_BKSD = self.layer_past[0], self.layer_past[1]
        k_heads_1KSD_8b = ttnn.typecast(k_heads_1KSD, dtype=keys_BKSD.dtype)
        ttnn.deallocate(k_heads_1KSD)
        k_fill = k_heads_1KSD_8b                 # paged: no KV_PREFILL_MEM_CFG reshard
        v_heads_1VSD_8b = ttnn.typecast(v_heads_1VSD, dtype=values_BKSD.dtype)
        ttnn.deallocate(v_heads_1VSD)
        v_fill = v_heads_1VSD_8b

        # paged fill; the page table covers exactly the 128 tokens (4 blocks of 32), so no slicing
        fill_page_table = page_table
        ttnn.experimental.paged_fill_cache(keys_BKSD, k_fill, fill_page_table, batch_idx=user_id)
        ttnn.experimental.paged_fill_cache(values_BKSD, v_fill, fill_page_table, batch_idx=user_id)

        q_heads_1QSD_8b = ttnn.typecast(q_heads_1QSD, dtype=cfg.activation_dtype or ttnn.bfloat8_b)
        ttnn.deallocate(q_heads_1QSD)

        attn_output_84SD = ttnn.transformer.scaled_dot_product_attention(
            q_heads_1QSD_8b,
            k_heads_1KSD_8b,
            v_heads_1VSD_8b,
            is_causal=True,
            sliding_window_size=None,
            scale=self.scale,
            compute_kernel_config=cfg.sdpa_prefill,
            program_config=cfg.SDPA_PROGCFG,
        )
        ttnn.deallocate(q_heads_1QSD_8b)
        ttnn.deallocate(k_heads_1KSD_8b)
        ttnn.deallocate(v_heads_1VSD_8b)

        attn_output_1QSD = ttnn.reshape(attn_output_84SD, [1, self.n_local_heads, -1, HEAD_DIM])
        attn_output_11SH = ttnn.experimental.nlp_concat_heads(attn_output_1QSD, memory_config=ttnn.DRAM_MEMORY_CONFIG)
        ttnn.deallocate(attn_output_1QSD)

        output_11SH = ttnn.linear(
            attn_output_11SH,
            self.wo,
            compute_kernel_config=cfg.li_o_prefill,
            dtype=cfg.activation_dtype or ttnn.bfloat8_b,
            memory_config=ttnn.DRAM_MEMORY_CONFIG,
            program_config=cfg.WO_PREFILL_PROGCFG,
        )
        ttnn.deallocate(attn_output_11SH)
        # tt_all_reduce(cluster_axis=0): no-op on a 1x1 mesh
        return output_11SH


class _DecodeForward:
    def __init__(self, attention):
        self.attention = attention

    def __call__(self, x, current_pos, cos, sin, page_table):
        return self.attention.forward_decode(x, current_pos, [cos, sin], page_table)


class _PrefillForward:
    def __init__(self, attention, user_id):
        self.attention = attention
        self.user_id = user_id

    def __call__(self, x, cos, sin, page_table):
        return self.attention.forward_prefill(x, [cos, sin], self.user_id, page_table)


def residual_input(mesh_device, gen: torch.Generator, memory_config, mesh_mapper=None):
    """A [1, 1, 32, 4096] bfloat16 decode activation in ``memory_config``."""
    import ttnn

    host = randn((1, 1, BATCH, DIM), gen)
    dev = ttnn.from_torch(host, device=mesh_device, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT,
                          memory_config=memory_config,
                          mesh_mapper=mesh_mapper or ttnn.ReplicateTensorToMesh(mesh_device))
    return host, dev


_NOTES = (
    "Llama-3.1-8B-Instruct on N150 (1x1 mesh), ModelArgs(max_batch_size=32, max_seq_len=1024), paged KV cache "
    "(block 32, 1024 blocks, as simple_text_demo.py), DecodersPrecision.accuracy (ModelArgs' default; bfloat8_b "
    "WQKV/WO/KV cache, HiFi2 linears, HiFi4 SDPA prefill), use_qk_fused=True (text model). Random weights. "
    "tt_all_reduce / tt_all_gather are no-ops on 1x1 and issue no op. "
)


@corpus.forward(f"tt_transformers.attention.decode.{CONFIG}", family="tt_transformers", mode="decode",
                follows=f"{FOLLOWS_FILE}: Attention.forward_decode", device="n150", mesh_shape=(1, 1))
def build_decode(mesh_device) -> corpus.Forward:
    gen = seeded(10)
    cfg = make_config()
    attn = Attention(mesh_device, cfg, gen, make_trans_mats(mesh_device))
    # the attention input is the attention norm's output: width-sharded [32, 128] on 8x4 cores
    x_host, x = residual_input(mesh_device, gen, cfg.SHARDED_ATTN_INPUT_MEMCFG)
    hosts, devs = decode_position_inputs(mesh_device, gen)
    return corpus.Forward(
        name=f"tt_transformers.attention.decode.{CONFIG}", family="tt_transformers", mode="decode",
        follows=f"{FOLLOWS_FILE}: Attention.forward_decode", model=_DecodeForward(attn),
        example_inputs=[x] + devs, host_inputs=[x_host] + hosts,
        notes=_NOTES + "Decode of 32 users: inputs x [1, 1, 32, 4096] bfloat16 (SHARDED_ATTN_INPUT_MEMCFG), "
        "current_pos [32] int32, cos/sin [1, 64, 1, 128] height-sharded on 64 cores (RotarySetup.get_rot_mats "
        "with the doubled batch), page_table [32, 32] int32. The K/V caches [1024, 8, 32, 128] bfloat8_b and the "
        "decode transformation matrix [1, 1, 2048, 32] (64 sharded tiles) live in the callable; "
        "paged_fused_update_cache writes the caches in place. The forward deallocates x. As in the real code, the "
        "Q and K tensors nlp_create_qkv_heads_decode returns get no ttnn.deallocate (the names are rebound to their "
        "resharded copies, which are deallocated after the rotary op).",
    )


@corpus.forward(f"tt_transformers.attention.prefill.{CONFIG}", family="tt_transformers", mode="prefill",
                follows=f"{FOLLOWS_FILE}: Attention.forward_prefill", device="n150", mesh_shape=(1, 1))
def build_prefill(mesh_device) -> corpus.Forward:
    import ttnn

    gen = seeded(11)
    cfg = make_config()
    attn = Attention(mesh_device, cfg, gen, make_trans_mats(mesh_device))
    # the attention input is the attention norm's prefill output: [1, 1, 128, 4096] bfloat16 in DRAM
    x_host = randn((1, 1, PREFILL_SEQ, DIM), gen)
    x = ttnn.from_torch(x_host, device=mesh_device, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT,
                        memory_config=ttnn.DRAM_MEMORY_CONFIG, mesh_mapper=ttnn.ReplicateTensorToMesh(mesh_device))
    hosts, devs = prefill_position_inputs(mesh_device, gen)
    return corpus.Forward(
        name=f"tt_transformers.attention.prefill.{CONFIG}", family="tt_transformers", mode="prefill",
        follows=f"{FOLLOWS_FILE}: Attention.forward_prefill", model=_PrefillForward(attn, PREFILL_USER),
        example_inputs=[x] + devs, host_inputs=[x_host] + hosts,
        notes=_NOTES + "Prefill of user 0 with 128 tokens (no chunking, chunk_start_idx None): inputs x "
        "[1, 1, 128, 4096] bfloat16 DRAM, cos/sin [1, 1, 128, 128] bfloat16 DRAM (the slices "
        "prepare_inputs_prefill takes), page_table [32, 4] int32 (the user page table cut to the prompt's 4 "
        "blocks); user_id 0 is a constant of the callable. paged_fill_cache writes K and V into the paged caches "
        "(callable state). seq 128 < min_kv_prefill_shard_seqlen (256) and the cache is paged, so no "
        "interleaved_to_sharded of K/V. The forward deallocates x.",
    )
