"""DeepSeek-V3 forwards (tt-metal ``models/demos/deepseek_v3``): the dense MLP of the first three
layers (decode and prefill), the routed MoE block (gate, dispatch, experts, combine) and the LM head.

Follows (tt-metal, models/demos/deepseek_v3/):
  * tt/mlp/mlp.py: MLP.forward_decode / MLP.forward_prefill (with _forward_decode_compute_only,
    _forward_prefill_compute_only and the _fwd_* wrappers), its decode_model_config /
    prefill_model_config, _get_decode_activation_memory_config and _get_prefill_pc; the weights of
    convert_metaweight (bfloat8_b, DRAM width-sharded over the 12 banks). The dense layers 0-2 use
    this MLP as tt/mlp/non_expert.py: NonExpert (intermediate_size 18432). Version followed: the
    generation with batch_size_per_row / fabric_config in the configs, bfloat8_b weights and HiFi2
    matmuls (stored commit 02adedd9), with tt/ccl.py: CCL (populate_*_runtime_args: semaphores
    rotated per axis, num_links 1) and utils/config_helpers.py of the same commit
    (get_dram_sharded_matmul_config, dram_sharded_weight_config,
    get_activation_sharding_core_counts_for_dram_matmul, COMPUTE_KERNEL_CONFIG_*).
  * tt/moe.py: MoE.forward_decode(x, cfg, handle_tensor_parallel=True) -> forward -> _forward_impl
    -> _fwd_moe_gate / _fwd_moe (the version with batch_size_per_row, the per-chunk slice of the
    routing weights and MoE._fwd_reduce_scatter through ttnn.reduce_scatter); tt/moe_gate.py:
    MoEGate.forward on the device path (topk_fallback=False: linear, sigmoid, bias add, grouped
    top-2, top-4 groups, scatter mask, top-8 experts, gather, normalise, scale); tt/experts.py:
    Experts._forward (decode: batched linears with transpose_b over the local experts, LoFi w1/w3,
    HiFi2 w2, SiLU fused into the mul, permute + reshape).
  * tt/lm_head.py: LMHead.forward_decode with utils/composite_ops.py: mesh_scatter, as listed by
    the ops analysis (ops_analysis/LMHead_ops.md): mesh_scatter -> DRAM-sharded linear -> deallocate.

Config: DeepSeek-V3 (HF config: hidden 7168, intermediate 18432, moe_intermediate 2048, 256 routed
experts, 8 per token, 8 groups / top-4 groups, routed_scaling_factor 2.5, vocab 129280). The model
targets a TG (4x8 mesh: rows = data/dispatch axis, 32 users per row; columns = tensor-parallel
axis). On the mock T3K:
  * MLP decode / prefill: mesh (1, 8). The MLP only uses axis 1 (cluster_axis=1 all-gather and
    reduce-scatter), so one row of 8 gives exactly the TG per-device shapes: hidden 7168/8 = 896 in
    and out, intermediate 18432/8 = 2304 per device.
  * MoE decode: mesh (2, 4): two dispatch rows (all_to_all over axis 0 moves tokens between rows
    as on TG's 4 rows) and 4 tensor-parallel columns. Per-device shapes come from the code's own
    formulas with this mesh: experts per device = 256 / 8 devices = 32 (TG: 8), TP hidden slice
    7168/4 = 1792; batch_size_per_row 16 (global decode batch 32 tokens; see the forward's notes).
  * LM head decode: mesh (1, 8) (a 2x4 mesh would exercise mesh_scatter's point_to_point between
    rows, which segfaults on the mock device): vocab per device = 129280 / 8 = 16160 (TG: 4040).

Weights are random (seeded), made per device (replicated over the mesh) with the real per-device
shape, dtype, layout and memory config; the real code shards one full tensor with
ShardTensor2dMesh / shard_tensor_to_mesh_mapper (same per-device shape, different values per
device). Left out: the weight cache files (shard_and_save / SavedWeight), the RunConfig machinery,
the host-side asserts on memory configs, the topk/linear host fallbacks of the gate (not on the
default path), the ring-fabric MoE reduce (FABRIC_1D here, so the ttnn.sum + reduce_scatter path).
"""
from __future__ import annotations

import math

import corpus
from corpus.common import randn, seeded

FAMILY = "deepseek_v3"

# ---- DeepSeek-V3 (HF config.json) ----
HIDDEN = 7168
INTERMEDIATE = 18432          # dense MLP (layers 0-2)
MOE_INTERMEDIATE = 2048
N_ROUTED_EXPERTS = 256
EXPERTS_PER_TOK = 8
N_GROUP = 8
TOPK_GROUP = 4
ROUTED_SCALING_FACTOR = 2.5
VOCAB = 129280

USERS_PER_ROW = 32            # config_helpers.USERS_PER_ROW: decode batch per mesh row
MAX_BATCH_SIZE = 32           # config_helpers.MAX_BATCH_SIZE (= USERS_PER_ROW) used by the LM head PC
SEQ_LEN_CHUNK_SIZE = 1024     # config_helpers.SEQ_LEN_CHUNK_SIZE (MLP prefill "max_rows")
TOPK_MIN_WIDTH = 64           # config_helpers.TOPK_MIN_WIDTH
TILE = 32

MLP_FOLLOWS = "models/demos/deepseek_v3/tt/mlp/mlp.py: MLP.forward_decode"
MLP_PREFILL_FOLLOWS = "models/demos/deepseek_v3/tt/mlp/mlp.py: MLP.forward_prefill"
MOE_FOLLOWS = "models/demos/deepseek_v3/tt/moe.py: MoE.forward_decode"
LM_HEAD_FOLLOWS = "models/demos/deepseek_v3/tt/lm_head.py: LMHead.forward_decode"


# ---------------------------------------------------------------------------------------------
# shared pieces
# ---------------------------------------------------------------------------------------------
def _kernel_configs(ttnn):
    """utils/config_helpers.py: COMPUTE_KERNEL_CONFIG_LOFI / _HIFI2."""
    lofi = ttnn.WormholeComputeKernelConfig(
        math_fidelity=ttnn.MathFidelity.LoFi, math_approx_mode=False, fp32_dest_acc_en=False, packer_l1_acc=True)
    hifi2 = ttnn.WormholeComputeKernelConfig(
        math_fidelity=ttnn.MathFidelity.HiFi2, math_approx_mode=True, fp32_dest_acc_en=True, packer_l1_acc=True)
    return lofi, hifi2


class _CCL:
    """tt/ccl.py: CCL(mesh_device). Per mesh axis, two rotating sets of global semaphores on the
    whole 8x8 worker grid: 2 for an all-gather, 3 for a reduce-scatter, 1 barrier; every
    populate_*_runtime_args call takes the next set of that axis. get_max_links() is 1."""

    sems_per_axis = 2

    def __init__(self, ttnn, mesh_device):
        self.ttnn = ttnn
        self.mesh_device = mesh_device
        grid = mesh_device.compute_with_storage_grid_size()
        core_range_set = ttnn.num_cores_to_corerangeset(grid.x * grid.y, grid, row_wise=True)
        sem = lambda: ttnn.create_global_semaphore(mesh_device, core_range_set, 0)  # noqa: E731
        num_axes = len(list(mesh_device.shape))
        self.gather_sems = [[[sem(), sem()] for _ in range(self.sems_per_axis)] for _ in range(num_axes)]
        self.reduce_scatter_sems = [[[sem(), sem(), sem()] for _ in range(self.sems_per_axis)] for _ in range(num_axes)]
        self.barrier_sems = [[sem() for _ in range(self.sems_per_axis)] for _ in range(num_axes)]
        ttnn.synchronize_device(mesh_device)
        self.counters = {"gather": [0] * num_axes, "rs": [0] * num_axes, "barrier": [0] * num_axes}

    def _next(self, kind, sems, axis):
        i = self.counters[kind][axis]
        self.counters[kind][axis] = (i + 1) % self.sems_per_axis
        return sems[axis][i]

    def get_max_links(self, axis):
        return 1

    def populate_all_gather_runtime_args(self, cfg: dict) -> dict:
        axis = cfg["cluster_axis"]
        return {**cfg,
                "multi_device_global_semaphore": self._next("gather", self.gather_sems, axis),
                "barrier_semaphore": self._next("barrier", self.barrier_sems, axis),
                "num_links": self.get_max_links(axis)}

    def populate_reduce_scatter_runtime_args(self, cfg: dict) -> dict:
        axis = cfg["cluster_axis"]
        return {**cfg,
                "multi_device_global_semaphore": self._next("rs", self.reduce_scatter_sems, axis),
                "barrier_semaphore": self._next("barrier", self.barrier_sems, axis),
                "num_links": self.get_max_links(axis)}


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def _largest_divisor(n, max_divisor=8):
    """config_helpers.find_largest_divisor."""
    return max([d for d in _divisors(n) if d <= max_divisor], default=1)


def _act_sharding_cores(width, max_num_cores):
    """max(config_helpers.get_activation_sharding_core_counts_for_dram_matmul(width, max_num_cores))."""
    return max(d for d in _divisors(math.ceil(width / TILE)) if d <= max_num_cores)


def _dram_sharded_matmul_config(ttnn, m, k, n, input_num_shards, output_num_shards):
    """config_helpers.get_dram_sharded_matmul_config."""
    m_tiles, k_tiles, n_tiles = (math.ceil(v / TILE) for v in (m, k, n))
    assert k_tiles % input_num_shards == 0 and n_tiles % output_num_shards == 0
    return ttnn.MatmulMultiCoreReuseMultiCastDRAMShardedProgramConfig(
        in0_block_w=_largest_divisor(k_tiles // input_num_shards),
        per_core_M=m_tiles,
        per_core_N=n_tiles // output_num_shards,
        fused_activation=None,
    )


def _dram_sharded_weight_config(ttnn, k, n, dram_grid_size):
    """config_helpers.dram_sharded_weight_config: width-sharded over the DRAM banks (12 on WH),
    shard [k, roundup(ceil(n / 12), 32)]."""
    grid = ttnn.CoreRangeSet({ttnn.CoreRange(ttnn.CoreCoord(0, 0),
                                             ttnn.CoreCoord(dram_grid_size.x - 1, dram_grid_size.y - 1))})
    shard_spec = ttnn.ShardSpec(grid, (k, ttnn.core.roundup(math.ceil(n / dram_grid_size.x), TILE)),
                                ttnn.ShardOrientation.ROW_MAJOR)
    return ttnn.MemoryConfig(ttnn.TensorMemoryLayout.WIDTH_SHARDED, ttnn.BufferType.DRAM, shard_spec)


def _decode_activation_memory_config(ttnn, mesh_device, per_device_width, num_cores, batch):
    """MLP/LMHead._get_decode_activation_memory_config: L1 width-sharded [roundup(batch, 32),
    roundup(width / cores, 32)] on the first `num_cores` cores of the grid, row-wise."""
    grid = mesh_device.compute_with_storage_grid_size()
    return ttnn.create_sharded_memory_config_(
        shape=(ttnn.core.roundup(batch, ttnn.TILE_SIZE),
               ttnn.core.roundup(per_device_width // num_cores, ttnn.TILE_SIZE)),
        core_grid=ttnn.num_cores_to_corerangeset(num_cores, grid, row_wise=True),
        strategy=ttnn.TensorMemoryLayout.WIDTH_SHARDED,
        orientation=ttnn.ShardOrientation.ROW_MAJOR,
        tile_layout=True,
        use_height_and_width_as_shard_shape=True,
    )


def _replicated(ttnn, mesh_device, t, dtype, layout, memory_config):
    return ttnn.from_torch(t, device=mesh_device, dtype=dtype, layout=layout, memory_config=memory_config,
                           mesh_mapper=ttnn.ReplicateTensorToMesh(mesh_device))


# ---------------------------------------------------------------------------------------------
# dense MLP (NonExpert, layers 0-2)
# ---------------------------------------------------------------------------------------------
class _MLP:
    """tt/mlp/mlp.py: MLP with its weights (convert_metaweight: bfloat8_b, TILE, DRAM width-sharded
    by dram_sharded_weight_config; w1/w3 [1, 7168, 2304] and w2 [1, 2304, 7168] per device on a
    row of 8), its decode and prefill configs and its forwards."""

    def __init__(self, ttnn, mesh_device, gen, batch_size_per_row=USERS_PER_ROW):
        self.ttnn = ttnn
        self.mesh_device = mesh_device
        self.ccl = _CCL(ttnn, mesh_device)
        _, mesh_width = mesh_device.shape
        dim, hidden_dim = HIDDEN, INTERMEDIATE
        self.dim, self.hidden_dim, self.mesh_width = dim, hidden_dim, mesh_width
        hidden_per_device = hidden_dim // mesh_width  # 2304
        dram_grid = mesh_device.dram_grid_size()
        self.lofi, self.hifi2 = _kernel_configs(ttnn)

        def weight(in_features, out_features, scale):
            t = randn((1, in_features, out_features), gen, scale)
            return _replicated(ttnn, mesh_device, t, ttnn.bfloat8_b, ttnn.TILE_LAYOUT,
                               _dram_sharded_weight_config(ttnn, in_features, out_features, dram_grid))

        self.w1 = weight(dim, hidden_per_device, dim ** -0.5)         # gate_proj
        self.w3 = weight(dim, hidden_per_device, dim ** -0.5)         # up_proj
        self.w2 = weight(hidden_per_device, dim, hidden_dim ** -0.5)  # down_proj

        # ---- decode_model_config ----
        grid = mesh_device.compute_with_storage_grid_size()
        max_num_cores = grid.x * grid.y                                                   # 64
        input_num_cores = _act_sharding_cores(dim, max_num_cores)                         # 224 tiles -> 56
        inner_num_cores = _act_sharding_cores(hidden_per_device, max_num_cores)           # 72 tiles -> 36
        output_num_cores = _act_sharding_cores(dim // mesh_width, max_num_cores)          # 28 tiles -> 28
        self.input_memory_config = _decode_activation_memory_config(
            ttnn, mesh_device, dim, input_num_cores, batch_size_per_row)                  # [32, 128] x 56 cores
        self.output_memory_config = _decode_activation_memory_config(
            ttnn, mesh_device, dim // mesh_width, output_num_cores, batch_size_per_row)   # [32, 32] x 28 cores
        # w1 / w3: in0_block_w = 224/56 = 4, per_core_M = 1, per_core_N = 72/36 = 2
        self.pc_w1_w3 = _dram_sharded_matmul_config(ttnn, batch_size_per_row, dim, hidden_per_device,
                                                    input_num_cores, inner_num_cores)
        # w2: in0_block_w = 72/36 = 2, per_core_N = 224/28 = 8
        self.pc_w2 = _dram_sharded_matmul_config(ttnn, batch_size_per_row, hidden_per_device, dim,
                                                 inner_num_cores, output_num_cores)
        self.decode_cfg = {
            # AllGatherAsyncConfig(mesh_device, cluster_axis=1, dim=-1, memory_config=input_memory_config);
            # topology: the dataclass default, Linear
            "all_gather": {"dim": -1, "cluster_axis": 1, "mesh_device": mesh_device,
                           "topology": ttnn.Topology.Linear, "memory_config": self.input_memory_config},
            "w1": {"input_tensor_b": self.w1, "memory_config": ttnn.L1_WIDTH_SHARDED_MEMORY_CONFIG,
                   "compute_kernel_config": self.hifi2, "program_config": self.pc_w1_w3},
            "w2": {"input_tensor_b": self.w2, "memory_config": ttnn.L1_WIDTH_SHARDED_MEMORY_CONFIG,
                   "compute_kernel_config": self.hifi2, "program_config": self.pc_w2},
            "w3": {"input_tensor_b": self.w3, "memory_config": ttnn.L1_WIDTH_SHARDED_MEMORY_CONFIG,
                   "compute_kernel_config": self.hifi2, "program_config": self.pc_w1_w3},
            "mul": {"memory_config": ttnn.L1_WIDTH_SHARDED_MEMORY_CONFIG,
                    "input_tensor_a_activations": [ttnn.UnaryOpType.SILU]},
            # ReduceScatterAsyncMinimalConfig(cluster_axis=1, dim=3, memory_config=output_memory_config)
            "reduce_scatter_async": {"cluster_axis": 1, "dim": 3, "memory_config": self.output_memory_config,
                                     "topology": ttnn.Topology.Linear},
        }

        # ---- prefill_model_config ----
        self.prefill_grid = ttnn.CoreCoord(grid.x, grid.y)
        linear_prefill = {"memory_config": ttnn.DRAM_MEMORY_CONFIG, "compute_kernel_config": self.hifi2}
        self.prefill_cfg = {
            "all_gather": {"dim": -1, "cluster_axis": 1, "mesh_device": mesh_device,
                           "topology": ttnn.Topology.Linear, "memory_config": ttnn.DRAM_MEMORY_CONFIG},
            "max_rows": SEQ_LEN_CHUNK_SIZE,
            "w1": {"input_tensor_b": self.w1, **linear_prefill},
            "w2": {"input_tensor_b": self.w2, **linear_prefill},
            "w3": {"input_tensor_b": self.w3, **linear_prefill},
            "mul": {"memory_config": ttnn.DRAM_MEMORY_CONFIG, "input_tensor_a_activations": [ttnn.UnaryOpType.SILU]},
            "reduce_scatter_async": {"dim": 3, "cluster_axis": 1, "memory_config": ttnn.DRAM_MEMORY_CONFIG,
                                     "topology": ttnn.Topology.Linear},
        }

    def _prefill_pc(self, seq_len, is_w2):
        """MLP._get_prefill_pc: 2D multicast on the 8x8 grid; in0_block_w limited by what fits in L1."""
        ttnn = self.ttnn
        core_grid_size = self.prefill_grid
        if is_w2:
            in_features, out_features = self.hidden_dim // self.mesh_width, self.dim
        else:
            in_features, out_features = self.dim, self.hidden_dim // self.mesh_width
        per_core_M_tiles = math.ceil(seq_len / (TILE * core_grid_size.y))
        K_tiles = math.ceil(in_features / TILE)
        per_core_N_tiles = math.ceil(out_features / (TILE * core_grid_size.x))
        tile_bytes = 2 * TILE * TILE
        max_l1 = ttnn.get_max_worker_l1_unreserved_size()
        kernel_overhead = 30 * 1024
        out_cb_bytes = per_core_M_tiles * per_core_N_tiles * tile_bytes
        available_tiles = (max_l1 - kernel_overhead - out_cb_bytes) // tile_bytes
        max_in0_block_w = max(1, available_tiles // (2 * (per_core_M_tiles + per_core_N_tiles)))
        return ttnn.MatmulMultiCoreReuseMultiCastProgramConfig(
            compute_with_storage_grid_size=core_grid_size,
            in0_block_w=_largest_divisor(K_tiles, min(8, max_in0_block_w)),
            out_subblock_h=1,
            out_subblock_w=_largest_divisor(per_core_N_tiles, 4),
            per_core_M=per_core_M_tiles,
            per_core_N=per_core_N_tiles,
            transpose_mcast=False,
            fused_activation=None,
            fuse_batch=False,
        )

    def forward_decode(self, x):
        ttnn, cfg, ccl = self.ttnn, self.decode_cfg, self.ccl
        # _fwd_all_gather_preff1_3
        x = ttnn.experimental.all_gather_async(x, **ccl.populate_all_gather_runtime_args(cfg["all_gather"]))
        # _forward_decode_compute_only: _fwd_ff1_3, _fwd_mul, _fwd_ff2
        w1_out = ttnn.linear(x, **cfg["w1"])
        w3_out = ttnn.linear(x, **cfg["w3"])
        activated = ttnn.mul(w1_out, w3_out, **cfg["mul"])
        ttnn.deallocate(w1_out)
        ttnn.deallocate(w3_out)
        w2_out = ttnn.linear(activated, **cfg["w2"])
        ttnn.deallocate(activated)
        # _fwd_reduce_scatter_post_ff2
        output = ttnn.experimental.reduce_scatter_minimal_async(
            w2_out, **ccl.populate_reduce_scatter_runtime_args(cfg["reduce_scatter_async"]))
        ttnn.deallocate(w2_out)
        return output

    def forward_prefill(self, x):
        ttnn, cfg, ccl = self.ttnn, self.prefill_cfg, self.ccl
        num_layers = x.shape[0]
        x = ttnn.experimental.all_gather_async(x, **ccl.populate_all_gather_runtime_args(cfg["all_gather"]))
        # _forward_prefill_compute_only
        _, _, seq_len, _ = x.shape
        original_seq_len = seq_len
        pad_rows = 0
        if seq_len > cfg["max_rows"]:
            if seq_len % cfg["max_rows"] != 0:
                pad_rows = cfg["max_rows"] - (seq_len % cfg["max_rows"])
                x_padded = ttnn.pad(x, padding=((0, 0), (0, 0), (0, pad_rows), (0, 0)), value=0.0)
                ttnn.deallocate(x)
                x = x_padded
                seq_len += pad_rows
            x = ttnn.reshape(x, [num_layers, seq_len // cfg["max_rows"], cfg["max_rows"], -1])
            seq_len = cfg["max_rows"]
        w1_out = ttnn.linear(x, program_config=self._prefill_pc(seq_len, is_w2=False), **cfg["w1"])
        w3_out = ttnn.linear(x, program_config=self._prefill_pc(seq_len, is_w2=False), **cfg["w3"])
        activated = ttnn.mul(w1_out, w3_out, **cfg["mul"])
        ttnn.deallocate(w1_out)
        ttnn.deallocate(w3_out)
        output = ttnn.linear(activated, program_config=self._prefill_pc(seq_len, is_w2=True), **cfg["w2"])
        ttnn.deallocate(activated)
        # _fwd_reduce_scatter_post_ff2
        output = ttnn.experimental.reduce_scatter_minimal_async(
            output, **ccl.populate_reduce_scatter_runtime_args(cfg["reduce_scatter_async"]))
        _, _, _, output_dim = output.shape
        if original_seq_len > cfg["max_rows"]:
            output = ttnn.reshape(output, [num_layers, 1, -1, output_dim])
            if pad_rows > 0:
                output = ttnn.slice(output, [0, 0, 0, 0], [num_layers, 1, original_seq_len, output_dim])
        return output


@corpus.forward("deepseek_v3.mlp.decode.deepseek_v3_1x8", family=FAMILY, mode="decode", follows=MLP_FOLLOWS,
                device="t3k", mesh_shape=(1, 8))
def build_mlp_decode(mesh_device) -> corpus.Forward:
    import ttnn

    gen = seeded(0)
    mlp = _MLP(ttnn, mesh_device, gen)
    # the decoder block hands the MLP its TP slice of the 32 users of this row: [1, 1, 32, 896],
    # width-sharded as the MLP's own output (28 cores, [32, 32] shards)
    x = randn((1, 1, USERS_PER_ROW, HIDDEN // mlp.mesh_width), gen)
    tt_x = _replicated(ttnn, mesh_device, x, ttnn.bfloat16, ttnn.TILE_LAYOUT, mlp.output_memory_config)
    return corpus.Forward(
        name="deepseek_v3.mlp.decode.deepseek_v3_1x8", family=FAMILY, mode="decode", follows=MLP_FOLLOWS,
        model=mlp.forward_decode, example_inputs=[tt_x], host_inputs=[x],
        notes="DeepSeek-V3 dense MLP (NonExpert, layers 0-2: 7168 -> 18432 -> 7168), decode, 32 users on one "
              "row of the TG mesh mapped to the T3K as a 1x8 mesh (per-device shapes equal TG's: TP=8). "
              "all_gather_async (axis 1) -> DRAM-sharded w1/w3 (bf8, HiFi2, 56 -> 36 cores) -> mul with fused "
              "SiLU -> w2 (36 -> 28 cores) -> reduce_scatter_minimal_async (axis 1) to [1, 1, 32, 896] on 28 "
              "cores. Deviations: topology=Linear is written out for both CCLs (the config dataclass default "
              "the 02adedd code relies on; the 0.81.1 all_gather_async overload with cluster_axis+mesh_device "
              "requires one, reduce_scatter_minimal_async would default to Ring); the input memory config "
              "(the MLP's output config) is our choice, the real one comes from the decoder block's norm; "
              "weights replicated per device instead of ShardTensor2dMesh over the full weight.",
    )


@corpus.forward("deepseek_v3.mlp.prefill.deepseek_v3_1x8", family=FAMILY, mode="prefill",
                follows=MLP_PREFILL_FOLLOWS, device="t3k", mesh_shape=(1, 8))
def build_mlp_prefill(mesh_device) -> corpus.Forward:
    import ttnn

    gen = seeded(1)
    mlp = _MLP(ttnn, mesh_device, gen)
    seq_len = 1024  # = SEQ_LEN_CHUNK_SIZE: one chunk, no padding
    x = randn((1, 1, seq_len, HIDDEN // mlp.mesh_width), gen)
    tt_x = _replicated(ttnn, mesh_device, x, ttnn.bfloat16, ttnn.TILE_LAYOUT, ttnn.DRAM_MEMORY_CONFIG)
    return corpus.Forward(
        name="deepseek_v3.mlp.prefill.deepseek_v3_1x8", family=FAMILY, mode="prefill", follows=MLP_PREFILL_FOLLOWS,
        model=mlp.forward_prefill, example_inputs=[tt_x], host_inputs=[x],
        notes="DeepSeek-V3 dense MLP, prefill of 1024 tokens (one SEQ_LEN_CHUNK_SIZE chunk: no pad / reshape) on "
              "a 1x8 mesh (TP=8 as on a TG row). all_gather_async (axis 1, DRAM) -> w1/w3 2D-multicast matmuls "
              "with _get_prefill_pc (8x8 grid, per_core_M 4, per_core_N 9, in0_block_w from the L1 budget) -> mul "
              "with fused SiLU -> w2 -> reduce_scatter_minimal_async (axis 1, DRAM). Same weights as decode "
              "(bf8, DRAM width-sharded). Deviations as for the decode forward (topology=Linear written out, "
              "replicated per-device weights).",
    )


# ---------------------------------------------------------------------------------------------
# MoE (gate + routed experts)
# ---------------------------------------------------------------------------------------------
class _MoE:
    """tt/moe.py: MoE with MoEGate (tt/moe_gate.py) and Experts (tt/experts.py), decode configs."""

    def __init__(self, ttnn, mesh_device, gen, batch_size_per_row=USERS_PER_ROW):
        self.ttnn = ttnn
        self.mesh_device = mesh_device
        self.ccl = _CCL(ttnn, mesh_device)
        rows, cols = mesh_device.shape
        num_devices = mesh_device.get_num_devices()
        self.num_experts_per_device = N_ROUTED_EXPERTS // num_devices  # Experts._get_num_experts_per_device: 32
        self.num_dispatch_devices = rows
        self.tp_size = cols
        lofi, hifi2 = _kernel_configs(ttnn)
        L1 = ttnn.L1_MEMORY_CONFIG
        DRAM = ttnn.DRAM_MEMORY_CONFIG
        rep = lambda t, dtype, layout, mc=DRAM: _replicated(ttnn, mesh_device, t, dtype, layout, mc)  # noqa: E731

        # ---- MoE.create_shared_state: one-hot expert -> device mapping [1, 1, 256, 8] ----
        import torch

        mapping = torch.eye(num_devices, dtype=torch.int32).repeat_interleave(self.num_experts_per_device, dim=0)
        self.expert_mapping_tensors = rep(mapping.unsqueeze(0).unsqueeze(0), ttnn.uint16, ttnn.ROW_MAJOR_LAYOUT)

        # ---- MoEGate.convert_weights (replicated: shard_dims (None, None)) ----
        self.gate_proj = rep(randn((HIDDEN, N_ROUTED_EXPERTS), gen, HIDDEN ** -0.5).unsqueeze(0).unsqueeze(0),
                             ttnn.bfloat16, ttnn.TILE_LAYOUT)
        self.score_correction_bias = rep(randn((1, 1, 1, N_ROUTED_EXPERTS), gen, 0.01), ttnn.bfloat16,
                                         ttnn.ROW_MAJOR_LAYOUT)
        self.expert_scale = rep(torch.full((1, 1, 1, EXPERTS_PER_TOK), ROUTED_SCALING_FACTOR), ttnn.bfloat16,
                                ttnn.ROW_MAJOR_LAYOUT)
        self.group_mask_input = rep(torch.full((1, 1, 1, N_GROUP), -float("inf")), ttnn.bfloat16,
                                    ttnn.ROW_MAJOR_LAYOUT)
        self.group_mask_src = rep(torch.ones((1, 1, 1, TOPK_GROUP)), ttnn.bfloat16, ttnn.ROW_MAJOR_LAYOUT)

        # ---- Experts._convert_weights_default: [1, E_local, out, in] per device (HF layout, used with
        # transpose_b=True); gate/up bfloat4_b, down bfloat8_b; TILE, DRAM interleaved ----
        def experts_weight(out_features, in_features, dtype):
            # Build time: one random expert repeated over the 32 local experts, uploaded as bfloat16 and
            # converted to the block-float format on the device (host bfloat4_b packing of 470M values
            # takes ~20 s per weight here). The resulting tensor is what shard_and_save loads: [1, 32, out,
            # in], `dtype`, TILE, DRAM interleaved.
            one = randn((out_features, in_features), gen, in_features ** -0.5)
            t = one.unsqueeze(0).unsqueeze(0).expand(1, self.num_experts_per_device, out_features, in_features)
            staged = rep(t.contiguous(), ttnn.bfloat16, ttnn.TILE_LAYOUT)
            weight = ttnn.typecast(staged, dtype)
            ttnn.deallocate(staged)
            return weight

        self.w1_experts = experts_weight(MOE_INTERMEDIATE, HIDDEN, ttnn.bfloat4_b)
        self.w3_experts = experts_weight(MOE_INTERMEDIATE, HIDDEN, ttnn.bfloat4_b)
        self.w2_experts = experts_weight(HIDDEN, MOE_INTERMEDIATE, ttnn.bfloat8_b)

        # ---- MoE.model_config(mode="decode") ----
        per_core_width = (HIDDEN // self.tp_size) // 28  # CoreGrid(y=7, x=4): 28 cores -> 64
        self.input_output_memory_config = ttnn.create_sharded_memory_config(
            shape=(ttnn.core.roundup(batch_size_per_row, ttnn.TILE_SIZE), ttnn.core.roundup(per_core_width, ttnn.TILE_SIZE)),
            core_grid=ttnn.CoreGrid(y=7, x=4),
            strategy=ttnn.ShardStrategy.WIDTH,
            orientation=ttnn.ShardOrientation.ROW_MAJOR,
            use_height_and_width_as_shard_shape=True,
        )
        self.cfg = {
            "num_experts_per_device": self.num_experts_per_device,
            "hidden_size": HIDDEN,
            "num_experts_per_tok": EXPERTS_PER_TOK,
            "num_dispatch_devices": self.num_dispatch_devices,
            "activations_repeat": {"repeat_dims": ttnn.Shape((1, self.num_experts_per_device, 1, 1))},
            "topk_weights_repeat": {"repeat_dims": ttnn.Shape((HIDDEN, 1, 1, 1))},
            "mul_experts_output_with_weights": {"memory_config": L1},
            # AllToAllDispatchConfig(cluster_axis=0, memory_config=L1) (+ topology default Linear) and
            # create_state's num_links = ccl.get_max_links(axis=0)
            "all_to_all_dispatch": {"cluster_axis": 0, "memory_config": L1, "num_links": 1,
                                    "topology": ttnn.Topology.Linear},
            "all_to_all_combine": {"cluster_axis": 0, "memory_config": L1, "num_links": 1,
                                   "topology": ttnn.Topology.Linear},
            "sum_experts_output_memory_config": L1,
            # ReduceScatterAsyncMinimalConfig(cluster_axis=1, dim=3, memory_config=...); topology: the
            # dataclass default, Linear (the same assumption as for the MLP's reduce-scatter)
            "final_output_reduce_scatter": {"cluster_axis": 1, "dim": 3,
                                            "memory_config": self.input_output_memory_config,
                                            "topology": ttnn.Topology.Linear},
            "revert_tp": {"dim": -1, "cluster_axis": 1, "mesh_device": mesh_device,
                          "topology": ttnn.Topology.Linear, "memory_config": L1},
        }
        # MoEGate.model_config(mode="decode", topk_fallback=False)
        self.gate_cfg = {
            "gate_proj": {"input_tensor_b": self.gate_proj, "memory_config": L1, "compute_kernel_config": hifi2},
            "add_score_correction_bias": {"memory_config": L1, "dtype": ttnn.bfloat16},
            "multiply_expert_scale": {"memory_config": L1, "dtype": ttnn.bfloat16},
            "reshape_scores": {"shape": (1, -1, N_GROUP, N_ROUTED_EXPERTS // N_GROUP)},
            "topk_within_expert_groups": {"k": 2, "dim": -1, "largest": True, "sorted": True},
            "topk_expert_groups": {"k": TOPK_GROUP, "dim": -1, "largest": True, "sorted": True},
            "scatter_dim": 3,
            "reshape_group_mask": {"shape": (1, -1, N_GROUP, 1)},
            "reshape_active_experts": {"shape": (1, 1, -1, N_ROUTED_EXPERTS)},
            "mul_scores_with_mask": {"memory_config": L1},
            "topk_experts": {"k": EXPERTS_PER_TOK, "dim": -1, "largest": True, "sorted": True},
        }
        # Experts._create_model_config(mode="decode")
        self.experts_cfg = {
            "w1_experts": {"input_tensor_b": self.w1_experts, "transpose_b": True, "memory_config": L1,
                           "compute_kernel_config": lofi},
            "w2_experts": {"input_tensor_b": self.w2_experts, "transpose_b": True, "memory_config": L1,
                           "compute_kernel_config": hifi2},
            "w3_experts": {"input_tensor_b": self.w3_experts, "transpose_b": True, "memory_config": L1,
                           "compute_kernel_config": lofi},
            "mul_experts": {"memory_config": L1, "input_tensor_a_activations": [ttnn.UnaryOpType.SILU]},
        }

    # ---- tt/moe_gate.py: MoEGate.forward (device path) ----
    def _gate(self, x):
        ttnn, cfg = self.ttnn, self.gate_cfg
        logits = ttnn.linear(x, **cfg["gate_proj"])
        scores = ttnn.sigmoid(logits)
        ttnn.deallocate(logits)
        scores_correction_bias = ttnn.repeat(self.score_correction_bias, ttnn.Shape((1, 1, scores.shape[2], 1)))
        scores_correction_bias = ttnn.to_layout(scores_correction_bias, ttnn.TILE_LAYOUT)
        scores_with_bias = ttnn.add(scores, scores_correction_bias, **cfg["add_score_correction_bias"])
        ttnn.deallocate(scores_correction_bias)

        expert_scores_grouped = ttnn.reshape(scores_with_bias, **cfg["reshape_scores"])
        num_experts_per_group = expert_scores_grouped.shape[3]
        if expert_scores_grouped.shape[3] < TOPK_MIN_WIDTH:  # 32 < 64: pad with -inf for topk
            expert_scores_grouped = ttnn.pad(
                expert_scores_grouped,
                [(0, 0), (0, 0), (0, 0), (0, TOPK_MIN_WIDTH - expert_scores_grouped.shape[3])],
                value=-float("inf"),
            )
        # _cast_for_device_topk: already bfloat16
        topk_scores_within_expert_groups, topk_indices_within_expert_groups = ttnn.topk(
            expert_scores_grouped, **cfg["topk_within_expert_groups"])
        ttnn.deallocate(expert_scores_grouped)
        ttnn.deallocate(topk_indices_within_expert_groups)
        expert_group_scores = ttnn.sum(topk_scores_within_expert_groups, dim=3)
        ttnn.deallocate(topk_scores_within_expert_groups)
        expert_group_scores = ttnn.unsqueeze(expert_group_scores, dim=0)

        if expert_group_scores.shape[3] < TOPK_MIN_WIDTH:  # 8 < 64
            expert_group_scores = ttnn.pad(
                expert_group_scores,
                [(0, 0), (0, 0), (0, 0), (0, TOPK_MIN_WIDTH - expert_group_scores.shape[3])],
                value=-float("inf"),
            )
        topk_expert_groups_scores, topk_expert_groups_indices = ttnn.topk(expert_group_scores,
                                                                          **cfg["topk_expert_groups"])
        ttnn.deallocate(expert_group_scores)
        ttnn.deallocate(topk_expert_groups_scores)

        input_mask = ttnn.repeat(self.group_mask_input, ttnn.Shape((1, 1, scores.shape[2], 1)))
        src_tensor = ttnn.repeat(self.group_mask_src, ttnn.Shape((1, 1, scores.shape[2], 1)))
        active_groups_mask = ttnn.scatter(input=input_mask, index=topk_expert_groups_indices, src=src_tensor,
                                          dim=cfg["scatter_dim"])
        ttnn.deallocate(input_mask)
        ttnn.deallocate(src_tensor)
        ttnn.deallocate(topk_expert_groups_indices)
        active_groups_mask = ttnn.to_layout(active_groups_mask, ttnn.TILE_LAYOUT)
        active_groups_mask = ttnn.reshape(active_groups_mask, **cfg["reshape_group_mask"])

        active_experts_mask = ttnn.repeat(active_groups_mask, ttnn.Shape((1, 1, 1, num_experts_per_group)))
        ttnn.deallocate(active_groups_mask)
        active_experts_mask = ttnn.reshape(active_experts_mask, **cfg["reshape_active_experts"])
        active_experts_scores = ttnn.mul(scores_with_bias, active_experts_mask, **cfg["mul_scores_with_mask"])
        ttnn.deallocate(scores_with_bias)
        ttnn.deallocate(active_experts_mask)

        topk_experts_scores_with_bias, topk_experts_indices = ttnn.topk(active_experts_scores, **cfg["topk_experts"])
        ttnn.deallocate(active_experts_scores)
        ttnn.deallocate(topk_experts_scores_with_bias)

        topk_experts_scores = ttnn.gather(scores, dim=3, index=topk_experts_indices)
        ttnn.deallocate(scores)

        topk_expert_scores_sum = ttnn.sum(topk_experts_scores, dim=3, keepdim=True) + 1e-20  # norm eps
        topk_experts_scores_normalized = ttnn.div(topk_experts_scores, topk_expert_scores_sum)
        ttnn.deallocate(topk_expert_scores_sum)
        ttnn.deallocate(topk_experts_scores)

        expert_scale = ttnn.repeat(self.expert_scale, ttnn.Shape((1, 1, topk_experts_scores_normalized.shape[2], 1)))
        expert_scale = ttnn.to_layout(expert_scale, ttnn.TILE_LAYOUT)
        topk_experts_scores_normalized = ttnn.mul(topk_experts_scores_normalized, expert_scale,
                                                  **cfg["multiply_expert_scale"])
        ttnn.deallocate(expert_scale)
        return topk_experts_scores_normalized, topk_experts_indices

    # ---- tt/experts.py: Experts._forward (decode: L1 input, no prefill W2 program config) ----
    def _experts(self, x):
        ttnn, cfg = self.ttnn, self.experts_cfg
        _, _, num_tokens, hidden_size = x.shape
        w1_out = ttnn.linear(x, **cfg["w1_experts"])
        w3_out = ttnn.linear(x, **cfg["w3_experts"])
        activated = ttnn.mul(w1_out, w3_out, **cfg["mul_experts"])
        ttnn.deallocate(w1_out)
        ttnn.deallocate(w3_out)
        output = ttnn.linear(activated, **cfg["w2_experts"])
        ttnn.deallocate(activated)
        output = ttnn.permute(output, (1, 0, 2, 3))
        output = ttnn.reshape(output, shape=(1, self.num_experts_per_device, num_tokens, hidden_size))
        return output

    # ---- tt/moe.py: MoE._fwd_moe ----
    def _fwd_moe(self, x, topk_experts_indices, topk_experts_weights, batch_size_per_device, seq_len):
        ttnn, cfg = self.ttnn, self.cfg
        x_rm = ttnn.to_layout(x, ttnn.ROW_MAJOR_LAYOUT)
        x_rm = ttnn.reshape(x_rm, shape=(batch_size_per_device, 1, seq_len, cfg["hidden_size"]))
        topk_experts_indices_rm = ttnn.to_layout(topk_experts_indices, ttnn.ROW_MAJOR_LAYOUT)
        topk_experts_indices_rm = ttnn.reshape(
            topk_experts_indices_rm, shape=(batch_size_per_device, 1, seq_len, cfg["num_experts_per_tok"]))

        chunk_size = min(batch_size_per_device, 256)  # PREFILL_BATCH_CHUNK_SIZE: one chunk in decode
        output_chunks = []

        def _slice_topk_weights(batch_start, batch_end):
            token_start, token_end = batch_start * seq_len, batch_end * seq_len
            topk_weights_chunk = ttnn.slice(topk_experts_weights, [0, 0, token_start, 0],
                                            [1, 1, token_end, cfg["num_experts_per_tok"]])
            topk_weights_chunk_rm = ttnn.to_layout(topk_weights_chunk, ttnn.ROW_MAJOR_LAYOUT)
            ttnn.deallocate(topk_weights_chunk)
            topk_weights_chunk_rm = ttnn.repeat(topk_weights_chunk_rm, **cfg["topk_weights_repeat"])
            topk_weights_chunk_rm = ttnn.permute(topk_weights_chunk_rm, (3, 1, 2, 0))
            topk_weights_chunk = ttnn.to_layout(topk_weights_chunk_rm, ttnn.TILE_LAYOUT)
            ttnn.deallocate(topk_weights_chunk_rm)
            return topk_weights_chunk

        for batch_start in range(0, batch_size_per_device, chunk_size):
            batch_end = min(batch_start + chunk_size, batch_size_per_device)
            batch_chunk = batch_end - batch_start
            batch_size_chunk = batch_chunk * cfg["num_dispatch_devices"]
            x_chunk = ttnn.slice(x_rm, [batch_start, 0, 0, 0], [batch_end, 1, seq_len, cfg["hidden_size"]])
            topk_indices_chunk = ttnn.slice(topk_experts_indices_rm, [batch_start, 0, 0, 0],
                                            [batch_end, 1, seq_len, cfg["num_experts_per_tok"]])
            all_to_all_dispatch_output_tensors, all_to_all_dispatch_metadata_tensors = ttnn.all_to_all_dispatch(
                x_chunk, topk_indices_chunk, self.expert_mapping_tensors, **cfg["all_to_all_dispatch"])
            ttnn.deallocate(x_chunk)
            ttnn.deallocate(topk_indices_chunk)

            dispatch_chunk = ttnn.reshape(all_to_all_dispatch_output_tensors,
                                          shape=(1, 1, batch_size_chunk * seq_len, cfg["hidden_size"]))
            dispatch_chunk = ttnn.repeat(dispatch_chunk, **cfg["activations_repeat"])
            dispatch_chunk_rm = dispatch_chunk
            dispatch_chunk = ttnn.to_layout(dispatch_chunk_rm, ttnn.TILE_LAYOUT)
            ttnn.deallocate(dispatch_chunk_rm)
            ttnn.deallocate(all_to_all_dispatch_output_tensors)

            experts_output = self._experts(dispatch_chunk)
            ttnn.deallocate(dispatch_chunk)

            experts_output = ttnn.to_layout(experts_output, ttnn.ROW_MAJOR_LAYOUT)
            experts_output = ttnn.reshape(experts_output, shape=(cfg["num_experts_per_device"], batch_size_chunk,
                                                                 seq_len, cfg["hidden_size"]))
            all_to_all_dispatch_metadata_tensors = ttnn.reshape(
                all_to_all_dispatch_metadata_tensors, shape=(1, batch_size_chunk, seq_len, cfg["num_experts_per_tok"]))
            all_to_all_combine_output_tensors = ttnn.all_to_all_combine(
                experts_output, all_to_all_dispatch_metadata_tensors, self.expert_mapping_tensors,
                **cfg["all_to_all_combine"])
            ttnn.deallocate(experts_output)
            ttnn.deallocate(all_to_all_dispatch_metadata_tensors)

            post_combine_output_tensor = ttnn.reshape(
                all_to_all_combine_output_tensors,
                shape=(cfg["num_experts_per_tok"], 1, batch_chunk * seq_len, cfg["hidden_size"]))
            post_combine_output_tensor_rm = post_combine_output_tensor
            post_combine_output_tensor = ttnn.to_layout(post_combine_output_tensor_rm, ttnn.TILE_LAYOUT)
            ttnn.deallocate(all_to_all_combine_output_tensors)

            topk_weights_chunk = _slice_topk_weights(batch_start, batch_end)
            post_combine_weighted_output_tensor = ttnn.mul(post_combine_output_tensor, topk_weights_chunk,
                                                           **cfg["mul_experts_output_with_weights"])
            ttnn.deallocate(post_combine_output_tensor)
            ttnn.deallocate(topk_weights_chunk)

            post_combine_output_tensor = ttnn.sum(post_combine_weighted_output_tensor, dim=0, keepdim=True)
            ttnn.deallocate(post_combine_weighted_output_tensor)
            output_chunks.append(post_combine_output_tensor)

        if len(output_chunks) == 1:
            post_combine_output_tensor = output_chunks[0]
        else:
            post_combine_output_tensor = ttnn.concat(output_chunks, dim=2)
            for chunk in output_chunks:
                ttnn.deallocate(chunk)
        ttnn.deallocate(x_rm)
        ttnn.deallocate(topk_experts_indices_rm)
        return post_combine_output_tensor

    def forward_decode(self, x):
        """MoE.forward_decode(x, cfg, handle_tensor_parallel=True) on FABRIC_1D (not a ring)."""
        ttnn, cfg, ccl = self.ttnn, self.cfg, self.ccl
        # _fwd_all_gather (revert_tp)
        x = ttnn.experimental.all_gather_async(x, **ccl.populate_all_gather_runtime_args(cfg["revert_tp"]))
        # forward: 64 global tokens <= PREFILL_TOKEN_CHUNK_SIZE -> _forward_impl
        seq_len = 1
        batch_size_per_device = x.shape[-2]
        topk_experts_weights, topk_experts_indices = self._gate(x)
        output = self._fwd_moe(x, topk_experts_indices, topk_experts_weights, batch_size_per_device, seq_len)
        ttnn.deallocate(topk_experts_weights)
        ttnn.deallocate(topk_experts_indices)
        # sum over experts + _fwd_reduce_scatter (ttnn.reduce_scatter, the composite fallback)
        output = ttnn.sum(output, dim=0, keepdim=True, memory_config=cfg["sum_experts_output_memory_config"])
        rs_cfg = cfg["final_output_reduce_scatter"]
        output = ttnn.reduce_scatter(output, dim=rs_cfg["dim"], cluster_axis=rs_cfg["cluster_axis"],
                                     memory_config=rs_cfg["memory_config"], topology=rs_cfg["topology"])
        return output


# decode_model_config(batch_size_per_row=16): with 32 local experts per chip (256 / 8), 16 users per row
# (32 global tokens) give the experts the same activation size as TG's 8 experts x 128 tokens
# ([1, 32, 32, 7168] bf16 = 14.7 MB in L1); 32 users per row ([1, 32, 64, 7168], 29 MB) do not fit in L1.
MOE_BATCH_PER_ROW = 16


@corpus.forward("deepseek_v3.moe.decode.deepseek_v3_2x4", family=FAMILY, mode="decode", follows=MOE_FOLLOWS,
                device="t3k", mesh_shape=(2, 4))
def build_moe_decode(mesh_device) -> corpus.Forward:
    import ttnn

    gen = seeded(2)
    moe = _MoE(ttnn, mesh_device, gen, batch_size_per_row=MOE_BATCH_PER_ROW)
    # input: this device's TP slice (7168 / 4 columns) of its row's 16 users, width-sharded on 7x4 cores
    x = randn((1, 1, MOE_BATCH_PER_ROW, HIDDEN // moe.tp_size), gen)
    tt_x = _replicated(ttnn, mesh_device, x, ttnn.bfloat16, ttnn.TILE_LAYOUT, moe.input_output_memory_config)
    return corpus.Forward(
        name="deepseek_v3.moe.decode.deepseek_v3_2x4", family=FAMILY, mode="decode", follows=MOE_FOLLOWS,
        model=moe.forward_decode, example_inputs=[tt_x], host_inputs=[x],
        notes="DeepSeek-V3 routed MoE, decode, TG mapped to the T3K as a 2x4 mesh (2 dispatch rows x 4 TP "
              "columns; 256 experts / 8 chips = 32 local experts), decode_model_config(batch_size_per_row=16): "
              "16 users per row, 32 global tokens. forward_decode(handle_tensor_parallel=True): all_gather_async "
              "revert_tp (axis 1, L1) -> MoEGate (bf16 linear HiFi2, sigmoid, bias add, -inf pad to 64, top-2 per "
              "group, sum, top-4 groups, scatter group mask, repeat/reshape to experts, mul, top-8, gather, "
              "normalise (+1e-20), x 2.5) -> row-major tokens, slice (one chunk) -> all_to_all_dispatch (axis 0) "
              "-> repeat over the 32 local experts -> experts (bf4 w1/w3 LoFi, bf8 w2 HiFi2, transpose_b, SiLU "
              "fused in mul, permute + reshape) -> all_to_all_combine (axis 0) -> routing-weight chain (slice, "
              "to_layout RM, repeat x7168, permute (3,1,2,0), to_layout TILE) -> mul -> sum over the 8 selected "
              "experts -> sum(dim 0, L1) -> reduce_scatter (axis 1) to [1, 1, 16, 1792] width-sharded on 7x4 "
              "cores. Deviations: 16 users per row instead of the demo's 32 (32 local experts x 64 tokens = 29 MB "
              "of L1 activations overflow L1 at the w2 matmul; 16 per row gives TG's per-device activation size, "
              "8 experts x 128 tokens); topology=Linear written out for all_gather_async and reduce_scatter (the config "
              "dataclass default; the 0.81.1 all_gather_async overload requires one) and for dispatch/combine "
              "(AllToAll*Config default); the 32 local "
              "experts share one random expert's values and are converted bf16 -> bf4/bf8 by ttnn.typecast at "
              "build time (host block-float packing is too slow); weights replicated per device.",
    )


# ---------------------------------------------------------------------------------------------
# LM head
# ---------------------------------------------------------------------------------------------
class _LMHead:
    """tt/lm_head.py: LMHead (weight [7168, V/D] bfloat4_b, DRAM width-sharded) with its
    decode_model_config and forward_decode."""

    def __init__(self, ttnn, mesh_device, gen, input_row_idx=0):
        self.ttnn = ttnn
        self.mesh_device = mesh_device
        num_devices = mesh_device.get_num_devices()
        vocab_per_device = VOCAB // num_devices  # 16160 on 8 chips
        self.vocab_per_device = vocab_per_device
        lofi, _ = _kernel_configs(ttnn)
        w = randn((HIDDEN, vocab_per_device), gen, HIDDEN ** -0.5)
        self.weight = _replicated(ttnn, mesh_device, w, ttnn.bfloat4_b, ttnn.TILE_LAYOUT,
                                  _dram_sharded_weight_config(ttnn, HIDDEN, vocab_per_device,
                                                              mesh_device.dram_grid_size()))
        grid = mesh_device.compute_with_storage_grid_size()
        max_num_cores = grid.x * grid.y
        input_num_cores = _act_sharding_cores(HIDDEN, max_num_cores)              # 224 tiles -> 56
        output_num_cores = _act_sharding_cores(vocab_per_device, max_num_cores)   # 505 tiles = 5 x 101 -> 5
        self.input_memory_config = _decode_activation_memory_config(
            ttnn, mesh_device, HIDDEN, input_num_cores, MAX_BATCH_SIZE)           # [32, 128] x 56 cores
        self.output_memory_config = _decode_activation_memory_config(
            ttnn, mesh_device, vocab_per_device, output_num_cores, MAX_BATCH_SIZE)  # [32, 3232] x 5 cores
        self.cfg = {
            "mesh_scatter": {"mesh_shape": tuple(mesh_device.shape), "scatter_idx": (input_row_idx, None)},
            "linear": {
                "input_tensor_b": self.weight,
                "memory_config": ttnn.L1_WIDTH_SHARDED_MEMORY_CONFIG,
                "compute_kernel_config": lofi,
                # M 32 -> per_core_M 1; K 224 tiles / 56 -> in0_block_w 4; N 505 tiles / 5 -> per_core_N 101
                "program_config": _dram_sharded_matmul_config(ttnn, MAX_BATCH_SIZE, HIDDEN, vocab_per_device,
                                                              input_num_cores, output_num_cores),
            },
        }

    def _mesh_scatter(self, tensor, mesh_shape, scatter_idx):
        """utils/composite_ops.py: mesh_scatter (point_to_point needs interleaved tensors)."""
        ttnn = self.ttnn
        from_row_scatter_idx, from_col_scatter_idx = scatter_idx
        num_mesh_rows, num_mesh_cols = mesh_shape
        old_memory_config = tensor.memory_config()
        old_tensor = tensor
        if not old_memory_config.interleaved:
            tensor = ttnn.to_memory_config(
                tensor,
                ttnn.L1_MEMORY_CONFIG if old_memory_config.buffer_type == ttnn.BufferType.L1 else ttnn.DRAM_MEMORY_CONFIG)
        else:
            old_memory_config = None
            old_tensor = None
        for to_row_scatter_idx in range(0 if from_row_scatter_idx is None else num_mesh_rows):
            if to_row_scatter_idx == from_row_scatter_idx:
                continue
            for column_scatter_idx in range(num_mesh_cols):
                ttnn.point_to_point(
                    tensor,
                    ttnn.MeshCoordinate(from_row_scatter_idx, column_scatter_idx),
                    ttnn.MeshCoordinate(to_row_scatter_idx, column_scatter_idx),
                    topology=ttnn.Topology.Linear,
                    output_tensor=tensor,
                )
        for to_col_scatter_idx in range(0 if from_col_scatter_idx is None else num_mesh_cols):
            if to_col_scatter_idx == from_col_scatter_idx:
                continue
            for row_scatter_idx in range(num_mesh_rows):
                ttnn.point_to_point(
                    tensor,
                    ttnn.MeshCoordinate(row_scatter_idx, from_col_scatter_idx),
                    ttnn.MeshCoordinate(row_scatter_idx, to_col_scatter_idx),
                    topology=ttnn.Topology.Linear,
                    output_tensor=tensor,
                )
        if old_memory_config is not None:
            reconfig_tensor = ttnn.to_memory_config(tensor, old_memory_config)
            ttnn.deallocate(tensor)
            ttnn.copy(reconfig_tensor, old_tensor)
            ttnn.deallocate(reconfig_tensor)

    def forward_decode(self, x):
        ttnn, cfg = self.ttnn, self.cfg
        self._mesh_scatter(x, **cfg["mesh_scatter"])
        output = ttnn.linear(x, **cfg["linear"])
        ttnn.deallocate(x)
        return output


@corpus.forward("deepseek_v3.lm_head.decode.deepseek_v3_1x8", family=FAMILY, mode="decode",
                follows=LM_HEAD_FOLLOWS, device="t3k", mesh_shape=(1, 8))
def build_lm_head_decode(mesh_device) -> corpus.Forward:
    import ttnn

    gen = seeded(3)
    head = _LMHead(ttnn, mesh_device, gen)
    x = randn((1, 1, MAX_BATCH_SIZE, HIDDEN), gen)
    tt_x = _replicated(ttnn, mesh_device, x, ttnn.bfloat16, ttnn.TILE_LAYOUT, head.input_memory_config)
    return corpus.Forward(
        name="deepseek_v3.lm_head.decode.deepseek_v3_1x8", family=FAMILY, mode="decode", follows=LM_HEAD_FOLLOWS,
        model=head.forward_decode, example_inputs=[tt_x], host_inputs=[x],
        notes="DeepSeek-V3 LM head, decode, 32 users, on the T3K as a 1x8 mesh (D = 8: vocab 129280 / 8 = 16160 "
              "per device; TG: 4040). mesh_scatter(scatter_idx=(0, None)) on one mesh row: the input is sharded, "
              "so to_memory_config to L1 interleaved, no point_to_point (no other row), to_memory_config back to "
              "the 56-core width-sharded input config, deallocate, copy into the input, deallocate -> DRAM-sharded "
              "linear (bf4 weight [7168, 16160], LoFi, M 32, in0_block_w 4, per_core_N 101 on 5 output cores, L1 "
              "width-sharded output [32, 3232] x 5) -> deallocate(x). Deviations: a 2x4 mesh (row 0 -> row 1 "
              "point_to_point for each column) segfaults in the mock device's dispatch of point_to_point "
              "(FDMeshCommandQueue::write_go_signal_sequences_to_unused_sub_grids), so one row; the real "
              "decode_model_config asserts (hidden / D) % output_num_cores == 0, which 896 % 5 fails on 8 devices "
              "(it holds on TG, output_num_cores 1): the check is skipped, the formula's 5 cores kept; the stored "
              "lm_head.py versions either lack the final deallocate or comment out mesh_scatter, the sequence "
              "here is the ops analysis's (seed 003); weight replicated per device instead of "
              "shard_tensor_to_mesh_mapper(dim -1) over the full [7168, 129280] weight.",
    )
