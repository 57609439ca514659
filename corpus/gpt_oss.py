"""gpt-oss MoE forwards (tt-metal ``models/demos/gpt_oss``): the sparse experts, the all-to-all
throughput experts and the top-k router, for gpt-oss-20b.

Follows (tt-metal, models/demos/gpt_oss/):
  * tt/experts/decode.py: decode_forward (sparse_matmul experts; the version with the separate gate
    and up sparse_matmuls, in-place bias adds, experts/operations.py: apply_swiglu and
    apply_tensor_parallel_allreduce(tensor, mesh_config, mesh_device, ccl_manager, activation_dtype,
    seq_len, tp)), with its weights from tt/experts/weights.py: load_expert_weights, its program
    configs from tt/experts/config.py: ProgramConfig._build_matmul_config + tt/expert_configs.py:
    GPTOSSProgramConfig (gate/up 3x4 cores, in0_block_w 30; down 5x6 cores, in0_block_w 12), and the
    TP all-reduce of config.py: MeshConfig.allreduce (reduce_scatter_minimal_async +
    all_gather_async) with tt/ccl.py: CCLManager's ping-pong semaphores.
  * tt/experts_throughput/decode.py: decode_forward / expert_mlp_forward / _apply_swiglu /
    prepare_expert_weights (all_to_all_dispatch -> batched matmuls over the local experts ->
    all_to_all_combine -> routing weights -> sum over k -> all_reduce over the columns), with
    experts_throughput/config.py (AllToAllDispatchConfig / AllToAllCombineConfig defaults,
    use_fused_gate_up=True, create_expert_mapping_tensors), experts_throughput/weights.py
    (load_throughput_expert_weights, fused w1|w3) and experts_throughput/__init__.py:
    ThroughputExperts (decode memory config L1, dispatch_cluster_axis=0 as tt/mlp.py passes it).
  * tt/topk.py: TopKRouter.__call__ + topk_router (linear with bias, topk, HiFi4 softmax, and for the
    sparse experts the scatter of the k weights into a dense [tokens, num_experts] tensor). Two
    forwards: the sparse-experts router (1x8, batch 1) and the throughput router (2x4, 32 tokens per
    chip, no scatter).

Config: gpt-oss-20b (hidden 2880, intermediate 2880, 32 experts, 4 per token, swiglu_limit 7.0,
alpha 1.702), the model the demo README's HF_MODEL example names. The sparse experts and the router
run as on a LoudBox (1x8 Wormhole mesh, config.py: mesh_1x8, decode TP=8, EP=1) with one user
(the sparse experts accept batch 1 only); the mock T3K is that same 1x8 mesh. The throughput experts
target the 4x8 Galaxy (dispatch along the rows, all-reduce along the columns); here that is the T3K
as a 2x4 mesh (2 dispatch rows, 4 columns; 32 experts / 8 chips = 4 experts per chip, as 120b has on
the Galaxy), 32 users per row (64 in all), tokens on dim -2.

The tt-metal gpt_oss code changed many times; the versions followed are one consistent generation
of those files (the sparse experts before the fused gate|up sparse_matmul and fused SwiGLU kernel,
the throughput experts with the fused w1|w3 matmul). Left out: tensor cache files (weights are
random), the MLP wrapper (router -> experts), the throughput experts' unused program configs
(decode builds them but its matmuls do not pass them), the CCLManager's SubDevice object (built but
never loaded).

Deviations (also in each Forward's notes): the big expert weights are one chip's random shard placed
on every chip with the real mapper's placement metadata (converting ~800M values to bfloat4_b per
forward took over a minute); the throughput experts' CCLs use num_links=2, the T3K's links per
neighbour, where the code passes the Galaxy's 4.
"""
from __future__ import annotations

import math

import torch

import corpus
from corpus.common import randn, seeded

# ---- gpt-oss-20b (HF config.json) ----
HIDDEN = 2880
INTERMEDIATE = 2880
NUM_EXPERTS = 32
TOP_K = 4
SWIGLU_LIMIT = 7.0
ALPHA = 1.702

FAMILY = "gpt_oss"
#: ethernet links between neighbouring T3K chips (the code's num_links=4 is the Galaxy's)
T3K_NUM_LINKS = 2


# ---------------------------------------------------------------------------------------------
# shared pieces: CCL manager semaphores, the TP all-reduce, the router
# ---------------------------------------------------------------------------------------------
class _CCLManager:
    """tt/ccl.py: CCLManager(mesh_device) with its defaults (num_links=4, Ring): ping-pong global
    semaphores on the 8x8 worker grid (3 per reduce-scatter, 2 per all-gather, 1 barrier; two deep)."""

    def __init__(self, ttnn, mesh_device, num_links=4, topology=None):
        self.mesh_device = mesh_device
        self.num_links = num_links
        self.topology = ttnn.Topology.Ring if topology is None else topology
        self.ccl_cores = ttnn.CoreRangeSet({ttnn.CoreRange(ttnn.CoreCoord(0, 0), ttnn.CoreCoord(7, 7))})
        self.rs_ping_pong_semaphores = [ttnn.create_global_semaphore(mesh_device, self.ccl_cores, 0) for _ in range(3 * 2)]
        self.ag_ping_pong_semaphores = [ttnn.create_global_semaphore(mesh_device, self.ccl_cores, 0) for _ in range(2 * 2)]
        self.barrier_semaphore = [ttnn.create_global_semaphore(mesh_device, self.ccl_cores, 0) for _ in range(2)]
        self.rs_ping_pong_idx = 0
        self.ag_ping_pong_idx = 0
        self.barrier_idx = 0

    def get_rs_ping_pong_semaphore(self):
        i = self.rs_ping_pong_idx
        self.rs_ping_pong_idx = (i + 1) % 2
        return self.rs_ping_pong_semaphores[i * 3:(i + 1) * 3]

    def get_ag_ping_pong_semaphore(self):
        i = self.ag_ping_pong_idx
        self.ag_ping_pong_idx = (i + 1) % 2
        return self.ag_ping_pong_semaphores[i * 2:(i + 1) * 2]

    def get_barrier_semaphore(self):
        i = self.barrier_idx
        self.barrier_idx = (i + 1) % 2
        return self.barrier_semaphore[i]


def _mesh_allreduce(ttnn, tensor, ccl, pad_size, axis):
    """config.py: MeshConfig.allreduce: optional width pad (only with >= 32 rows), reduce-scatter
    on dim 3 then all-gather back on dim 3, both num_links=1, DRAM output; the pad is sliced off."""
    memory_config = ttnn.DRAM_MEMORY_CONFIG
    padded = False
    if pad_size and tensor.shape[-2] >= 32:
        tensor_padded = ttnn.pad(tensor, [(0, 0), (0, 0), (0, 0), (0, pad_size)], 0)
        tensor.deallocate(True)
        tensor = tensor_padded
        padded = True
    scattered = ttnn.experimental.reduce_scatter_minimal_async(
        tensor,
        dim=3,
        multi_device_global_semaphore=ccl.get_rs_ping_pong_semaphore(),
        num_links=1,
        memory_config=memory_config,
        topology=ccl.topology,
        cluster_axis=axis,
        barrier_semaphore=ccl.get_barrier_semaphore(),
    )
    gathered = ttnn.experimental.all_gather_async(
        scattered,
        dim=3,
        cluster_axis=axis,
        mesh_device=ccl.mesh_device,
        topology=ccl.topology,
        multi_device_global_semaphore=ccl.get_ag_ping_pong_semaphore(),
        num_links=1,
        memory_config=memory_config,
        barrier_semaphore=ccl.get_barrier_semaphore(),
    )
    if padded:
        gathered_sliced = gathered[:, :, :, :-pad_size]
        gathered.deallocate(True)
        gathered = gathered_sliced
    return gathered


class _TopKRouter:
    """tt/topk.py: TopKRouter (weight [hidden, E] and bias [1, E] bf16 TILE in DRAM, replicated on the
    mesh; the linear's compute_kernel_config is None) and topk_router."""

    def __init__(self, ttnn, mesh_device, gen):
        self.ttnn = ttnn
        self.top_k = TOP_K
        self.hidden_dim = HIDDEN
        # state_dict["weight"] is [E, hidden]; the router keeps its transpose
        self.weight = ttnn.as_tensor(randn((NUM_EXPERTS, HIDDEN), gen, 0.02).transpose(0, 1), device=mesh_device,
                                     layout=ttnn.TILE_LAYOUT, dtype=ttnn.bfloat16,
                                     memory_config=ttnn.DRAM_MEMORY_CONFIG)
        self.bias = ttnn.as_tensor(randn((NUM_EXPERTS,), gen, 0.02).unsqueeze(0), device=mesh_device,
                                   layout=ttnn.TILE_LAYOUT, dtype=ttnn.bfloat16,
                                   memory_config=ttnn.DRAM_MEMORY_CONFIG)
        self.compute_config = None

    def topk_router(self, g, experts_per_token, use_throughput_experts):
        ttnn = self.ttnn
        typecast_needed = False
        if g.dtype != ttnn.bfloat16:
            g_og = g
            typecast_needed = True
            g = ttnn.typecast(g, dtype=ttnn.bfloat16)
        expert_weights, expert_indices = ttnn.topk(g, k=experts_per_token, dim=-1, sorted=True)
        if typecast_needed:
            g.deallocate(True)
            g = g_og
        compute_config = ttnn.init_device_compute_kernel_config(
            g.device().arch(),
            math_fidelity=ttnn.MathFidelity.HiFi4,
            math_approx_mode=False,
            fp32_dest_acc_en=True,
            packer_l1_acc=False,
        )
        expert_weights = ttnn.softmax(expert_weights, dim=1, numeric_stable=True, compute_kernel_config=compute_config)
        if use_throughput_experts:
            return expert_indices, expert_weights
        return expert_indices, ttnn.scatter(ttnn.zeros_like(g), dim=1, index=expert_indices, src=expert_weights)

    def __call__(self, hidden_states, use_throughput_experts):
        ttnn = self.ttnn
        is_decode_mode = hidden_states.shape[1] == 1
        mem_config = ttnn.DRAM_MEMORY_CONFIG
        hidden_states = ttnn.reshape(hidden_states, (-1, self.hidden_dim))
        router_logits = ttnn.linear(
            hidden_states,
            self.weight,
            bias=self.bias,
            memory_config=mem_config,
            compute_kernel_config=self.compute_config,
        )
        if is_decode_mode:
            router_logits = ttnn.to_memory_config(router_logits, ttnn.DRAM_MEMORY_CONFIG)
        expert_indices, expert_weights = self.topk_router(router_logits, self.top_k, use_throughput_experts)
        ttnn.deallocate(router_logits)
        return expert_indices, expert_weights


def _expert_weight(ttnn, mesh_device, full_shape, dtype, mapper, gen, scale=0.02):
    """A [1, E, K, N] expert weight as ``ttnn.as_tensor(w, dtype, TILE, mesh_mapper, DRAM)`` lays it out,
    made fast: bfloat4_b conversion of the full ~800M-value tensors of a forward takes over a minute
    here, so one chip's shard is drawn and converted once, placed on every chip (from_host_shards +
    to_device, DRAM interleaved) and given the placement metadata ``mapper`` produces (taken from a
    tiny host tensor of the same mapping). Same per-chip shape, dtype, layout, memory config and
    topology as the real weight; every chip holds the same values."""
    probe = ttnn.from_torch(torch.zeros(full_shape[0], full_shape[1], 32, 32, dtype=torch.bfloat16),
                            mesh_mapper=mapper)
    n = mesh_device.get_num_devices()
    shard_shape = list(full_shape)
    for placement_dim, size in _sharded_dims(probe, full_shape):
        shard_shape[placement_dim] = size
    host = ttnn.from_torch(randn(shard_shape, gen, scale), dtype=dtype, layout=ttnn.TILE_LAYOUT)
    t = ttnn.to_device(ttnn.from_host_shards([host] * n, mesh_device.shape), mesh_device,
                       memory_config=ttnn.DRAM_MEMORY_CONFIG)
    t.update_tensor_topology(probe.tensor_topology())
    return t


def _sharded_dims(probe, full_shape):
    """(dim, per-chip size) for every tensor dim the probe's mapper shards (read from its topology)."""
    topo = probe.tensor_topology()
    dist = list(topo.distribution_shape())
    out = []
    for axis, placement in enumerate(topo.placements()):
        dim = getattr(placement, "dim", None)
        if dim is None:
            continue
        dim = dim % len(full_shape)
        out.append((dim, full_shape[dim] // dist[axis]))
    return out


def _replicated(ttnn, mesh_device, t, dtype, layout=None):
    layout = ttnn.TILE_LAYOUT if layout is None else layout
    return ttnn.from_torch(t, device=mesh_device, dtype=dtype, layout=layout,
                           memory_config=ttnn.DRAM_MEMORY_CONFIG,
                           mesh_mapper=ttnn.ReplicateTensorToMesh(mesh_device))


def _dense_routing(gen, tokens):
    """A dense [tokens, E] routing tensor as topk_router's scatter makes it: softmax over 4 chosen
    experts, zeros elsewhere (so sparse_matmul's nnz=4 is the true count)."""
    logits = torch.randn(tokens, NUM_EXPERTS, generator=gen)
    vals, idx = torch.topk(logits, TOP_K, dim=-1)
    dense = torch.zeros(tokens, NUM_EXPERTS)
    dense.scatter_(1, idx, torch.softmax(vals, dim=-1))
    return dense.to(torch.bfloat16)


# ---------------------------------------------------------------------------------------------
# 1. sparse experts, decode (LoudBox 1x8, TP=8, EP=1, batch 1)
# ---------------------------------------------------------------------------------------------
class _SparseExpertsDecode:
    def __init__(self, ttnn, mesh_device, gen):
        self.ttnn = ttnn
        self.mesh_device = mesh_device
        self.tp, self.ep = 8, 1                                   # mesh_1x8(): ModeConfig(tp=8, ep=1)
        self.tp_axis, self.ep_axis = 1, 0
        self.ccl = _CCLManager(ttnn, mesh_device)
        self.I = INTERMEDIATE // self.tp                          # intermediate_size_per_device = 2880 / 8 = 360
        col = ttnn.ShardTensor2dMesh(mesh_device, mesh_device.shape, dims=(None, -1))   # column_parallel
        row = ttnn.ShardTensor2dMesh(mesh_device, mesh_device.shape, dims=(None, -2))   # row_parallel
        wdt, bdt = ttnn.bfloat4_b, ttnn.bfloat16

        def load(shape, scale, dtype, mapper):
            if scale is None:  # a [1, E, K, N] expert weight (see _expert_weight)
                return _expert_weight(ttnn, mesh_device, shape, dtype, mapper, gen)
            return ttnn.as_tensor(randn(shape, gen, scale), device=mesh_device, layout=ttnn.TILE_LAYOUT,
                                  dtype=dtype, mesh_mapper=mapper, memory_config=ttnn.DRAM_MEMORY_CONFIG)

        # gate/up: the even / odd columns of gate_up_proj, [1, E, hidden, intermediate], TP on the last dim
        self.gate_proj = load((1, NUM_EXPERTS, HIDDEN, INTERMEDIATE), None, wdt, col)
        self.up_proj = load((1, NUM_EXPERTS, HIDDEN, INTERMEDIATE), None, wdt, col)
        self.gate_proj_bias = load((1, NUM_EXPERTS, INTERMEDIATE), 0.02, bdt, col)
        self.up_proj_bias = load((1, NUM_EXPERTS, INTERMEDIATE), 0.02, bdt, col)
        # down: [1, E, intermediate, hidden], TP on the intermediate (row-parallel)
        self.down_proj = load((1, NUM_EXPERTS, INTERMEDIATE, HIDDEN), None, wdt, row)
        # row-parallel bias: the real bias on the first TP device, zeros on the others
        # ([bias, 0 x 7] concatenated on the last dim, then column-sharded)
        bias = randn((1, NUM_EXPERTS, HIDDEN), gen, 0.02)
        bias = torch.cat([bias] + [torch.zeros_like(bias)] * (self.tp - 1), dim=-1)
        self.down_proj_bias = ttnn.as_tensor(bias, device=mesh_device, layout=ttnn.TILE_LAYOUT, dtype=bdt,
                                             mesh_mapper=col, memory_config=ttnn.DRAM_MEMORY_CONFIG)

    def _program_config(self, cores, m, n, in0_block_w, out_subblock_w):
        """experts/config.py: ProgramConfig._build_matmul_config."""
        ttnn = self.ttnn
        core_x, core_y = cores
        return ttnn.MatmulMultiCoreReuseMultiCast1DProgramConfig(
            compute_with_storage_grid_size=ttnn.CoreCoord(core_x, core_y),
            in0_block_w=in0_block_w,
            out_subblock_h=1,
            out_subblock_w=out_subblock_w,
            out_block_h=1,
            out_block_w=1,
            per_core_M=max(32, m) // 32,
            per_core_N=int(math.ceil(n / 32)) // (core_x * core_y),
            fuse_batch=False,
            fused_activation=None,
            mcast_in0=True,
        )

    def decode_gate_up_config(self, m, n):
        # GPTOSSProgramConfig: decode_gate_up_cores (3, 4), in0_block_w 30 (Kt = 2880/32 = 90), subblock 1;
        # per_core_N = ceil(360/32) // 12 = 1
        return self._program_config((3, 4), m, n, 30, 1)

    def decode_down_config(self, m, n):
        # GPTOSSProgramConfig: decode_down_cores (5, 6), in0_block_w 12 (Kt = ceil(360/32) = 12), subblock 1;
        # per_core_N = 90 // 30 = 3
        return self._program_config((5, 6), m, n, 12, 1)

    def apply_swiglu(self, gate, up):
        """experts/operations.py: apply_swiglu."""
        ttnn = self.ttnn
        gate = ttnn.clamp(gate, min=None, max=SWIGLU_LIMIT, output_tensor=gate)
        up = ttnn.clamp(up, min=-SWIGLU_LIMIT, max=SWIGLU_LIMIT, output_tensor=up)
        gate_alpha = ttnn.mul(gate, ALPHA)
        gate_sigmoid = ttnn.sigmoid(gate_alpha)
        gate_alpha.deallocate(True)
        glu = ttnn.mul(gate, gate_sigmoid, output_tensor=gate)
        gate_sigmoid.deallocate(True)
        up = ttnn.add(up, 1, output_tensor=up)
        result = ttnn.mul(up, glu, output_tensor=up)
        ttnn.deallocate(glu)
        return result

    def apply_tensor_parallel_allreduce(self, tensor, activation_dtype, seq_len):
        """experts/operations.py: apply_tensor_parallel_allreduce (bf16 for the CCL, back after)."""
        ttnn = self.ttnn
        if tensor.dtype != ttnn.bfloat16:
            tensor_16 = ttnn.typecast(tensor, ttnn.bfloat16)
            ttnn.deallocate(tensor)
        else:
            tensor_16 = tensor
        if seq_len > 1:
            ttnn.synchronize_device(self.mesh_device)
        tensor_allreduced = _mesh_allreduce(ttnn, tensor_16, self.ccl, pad_size=192 if self.tp == 8 else 0,
                                            axis=self.tp_axis)
        tensor_16.deallocate(True)
        if tensor_allreduced.dtype == ttnn.bfloat16 and activation_dtype != ttnn.bfloat16:
            tensor_converted = ttnn.typecast(tensor_allreduced, activation_dtype)
            tensor_allreduced.deallocate(True)
            return tensor_converted
        return tensor_allreduced

    def __call__(self, hidden_states, routing_weights):
        """experts/decode.py: decode_forward (hidden_states [1, 1, hidden], routing_weights [1, E])."""
        ttnn = self.ttnn
        I = self.I
        activation_dtype = ttnn.bfloat8_b
        batch_size, seq_len = hidden_states.shape[0], hidden_states.shape[1]
        if seq_len != 1:
            raise ValueError(f"Decode mode requires seq_len=1, got {seq_len}")
        if batch_size != 1:
            raise NotImplementedError(f"Currently only batch_size=1 supported, got {batch_size}")
        ep, tp = self.ep, self.tp

        hidden_states_4D = ttnn.unsqueeze_to_4D(hidden_states)
        sparsity = ttnn.to_layout(ttnn.unsqueeze_to_4D(routing_weights), ttnn.ROW_MAJOR_LAYOUT)
        if ep > 1:
            sparsity = ttnn.moe_routing_remap(ttnn.reshape(sparsity, (1, sparsity.shape[-1])), 4, 4, 0)
            routing_weights = ttnn.tilize_with_zero_padding(sparsity, use_multicore=True)
        num_experts_per_tok = TOP_K // ep
        output_tile = ttnn.Tile([32, 32])

        gate = ttnn.sparse_matmul(
            hidden_states_4D,
            self.gate_proj,
            sparsity=sparsity,
            nnz=num_experts_per_tok,
            memory_config=ttnn.L1_MEMORY_CONFIG,
            output_tile=output_tile,
            program_config=self.decode_gate_up_config(hidden_states_4D.shape[2], self.gate_proj.shape[3]),
            dtype=activation_dtype,
        )
        gate = ttnn.reshape(gate, (batch_size, NUM_EXPERTS, 1, I))
        gate = ttnn.transpose(gate, 1, 2)
        gate = ttnn.reshape(gate, (batch_size, NUM_EXPERTS, I))
        gate = ttnn.add(gate, self.gate_proj_bias, output_tensor=gate)

        up = ttnn.sparse_matmul(
            hidden_states_4D,
            self.up_proj,
            sparsity=sparsity,
            nnz=num_experts_per_tok,
            memory_config=ttnn.L1_MEMORY_CONFIG,
            output_tile=output_tile,
            program_config=self.decode_gate_up_config(hidden_states_4D.shape[2], self.up_proj.shape[3]),
            dtype=activation_dtype,
        )
        hidden_states_4D.deallocate(True)
        up = ttnn.reshape(up, (batch_size, NUM_EXPERTS, 1, I))
        up = ttnn.transpose(up, 1, 2)
        up = ttnn.reshape(up, (batch_size, NUM_EXPERTS, I))
        up = ttnn.add(up, self.up_proj_bias, output_tensor=up)

        down_input = self.apply_swiglu(gate, up)
        down_input = ttnn.transpose(down_input, 1, 0)
        down_input = ttnn.reshape(down_input, (1, NUM_EXPERTS, seq_len, I))
        down = ttnn.sparse_matmul(
            down_input,
            self.down_proj,
            sparsity=sparsity,
            nnz=num_experts_per_tok,
            memory_config=ttnn.L1_MEMORY_CONFIG,
            output_tile=output_tile,
            is_input_a_sparse=True,
            program_config=self.decode_down_config(down_input.shape[2], self.down_proj.shape[-1]),
            dtype=activation_dtype,
        )
        down_input.deallocate(True)
        sparsity.deallocate(True)

        next_states = ttnn.reshape(ttnn.permute(down, (0, 2, 1, 3)), (batch_size, NUM_EXPERTS, HIDDEN))
        next_states = ttnn.add(next_states, self.down_proj_bias, output_tensor=next_states)
        routing_weights = ttnn.permute(routing_weights, (1, 0))
        routing_weights = ttnn.reshape(routing_weights, (batch_size, NUM_EXPERTS, 1))
        next_states = ttnn.mul(next_states, routing_weights, output_tensor=next_states)
        routing_weights.deallocate(True)

        next_states = ttnn.unsqueeze_to_4D(ttnn.sum(next_states, dim=1))
        if ep > 1:
            next_states = _mesh_allreduce(ttnn, next_states, self.ccl, pad_size=None, axis=self.ep_axis)
        next_states = ttnn.unsqueeze_to_4D(next_states)
        if tp > 1:
            next_states = self.apply_tensor_parallel_allreduce(next_states, activation_dtype, seq_len)
        next_states = ttnn.reshape(
            next_states,
            (batch_size, seq_len, HIDDEN),
            (batch_size, max(32, seq_len), HIDDEN),
        )
        return next_states


@corpus.forward("gpt_oss.experts.decode.gpt_oss_20b_1x8", family=FAMILY, mode="decode",
                follows="models/demos/gpt_oss/tt/experts/decode.py: decode_forward",
                device="t3k", mesh_shape=(1, 8))
def build_experts_decode(mesh_device) -> corpus.Forward:
    import ttnn

    gen = seeded(0)
    model = _SparseExpertsDecode(ttnn, mesh_device, gen)
    x = randn((1, 1, HIDDEN), gen)
    rw = _dense_routing(gen, 1)
    inputs = [_replicated(ttnn, mesh_device, x, ttnn.bfloat16), _replicated(ttnn, mesh_device, rw, ttnn.bfloat16)]
    return corpus.Forward(
        name="gpt_oss.experts.decode.gpt_oss_20b_1x8", family=FAMILY, mode="decode",
        follows="models/demos/gpt_oss/tt/experts/decode.py: decode_forward",
        model=model, example_inputs=inputs, host_inputs=[x, rw],
        notes=("gpt-oss-20b sparse experts, decode, batch 1, LoudBox/T3K 1x8 mesh (mesh_1x8: TP=8, EP=1): "
               "bfloat4_b expert weights (gate/up column-sharded [1,32,2880,360] per chip, down row-sharded "
               "[1,32,360,2880]), bf16 biases; two sparse_matmuls (nnz=4, L1, bfloat8_b out) with in-place bias "
               "adds, clamped SwiGLU (apply_swiglu), down sparse_matmul (is_input_a_sparse), in-place down bias "
               "and routing-weight multiply, sum over the experts, TP all-reduce as MeshConfig.allreduce "
               "(bf16 typecast, reduce_scatter_minimal_async + all_gather_async on axis 1, num_links=1, Ring; "
               "the 192 pad is skipped since the row count is 1 < 32), typecast back to bfloat8_b. Inputs: the "
               "MLP input [1,1,2880] and the router's dense scattered routing weights [1,32], replicated, DRAM. "
               "The forward deallocates its hidden_states input (through the unsqueeze_to_4D view), as the "
               "real code does. Deviation: the three expert weights hold one chip's random shard on every chip "
               "(same per-chip spec and mesh placement as the code's ShardTensor2dMesh mappers; see "
               "_expert_weight), for build time."),
    )


# ---------------------------------------------------------------------------------------------
# 2. throughput experts, decode (Galaxy 4x8 -> T3K 2x4; 32 tokens per row)
# ---------------------------------------------------------------------------------------------
class _ThroughputExpertsDecode:
    TOKENS_PER_DEVICE = 32

    def __init__(self, ttnn, mesh_device, gen):
        self.ttnn = ttnn
        self.mesh_device = mesh_device
        self.num_devices = mesh_device.get_num_devices()
        self.num_experts_per_device = NUM_EXPERTS // self.num_devices        # 32 / 8 = 4
        # ThroughputExperts(dispatch_cluster_axis=0, decode_memory_config=L1) and the config defaults:
        # Ring, output_concat_dim 2 (dispatch) / output_shard_dim 2 (combine), num_links 4 -- the Galaxy's
        # links per neighbour; a T3K has 2 (tt-fabric rejects link index 2), so T3K_NUM_LINKS here
        self.memory_config = ttnn.L1_MEMORY_CONFIG
        self.dispatch_kwargs = dict(cluster_axis=0, memory_config=self.memory_config, num_links=T3K_NUM_LINKS,
                                    topology=ttnn.Topology.Ring, output_concat_dim=2)
        self.combine_kwargs = dict(cluster_axis=0, memory_config=self.memory_config, num_links=T3K_NUM_LINKS,
                                   topology=ttnn.Topology.Ring, output_shard_dim=2)
        wdt = ttnn.bfloat4_b
        E = NUM_EXPERTS

        def shard_experts(t, dtype, shard_dim=1):
            # weights.py: _shard_experts_by_device: expert dim sharded over all chips, TILE, DRAM
            return ttnn.as_tensor(t, device=mesh_device, layout=ttnn.TILE_LAYOUT, dtype=dtype,
                                  mesh_mapper=ttnn.ShardTensorToMesh(mesh_device, dim=shard_dim),
                                  memory_config=ttnn.DRAM_MEMORY_CONFIG)

        experts_mapper = ttnn.ShardTensorToMesh(mesh_device, dim=1)
        self.w2 = _expert_weight(ttnn, mesh_device, (1, E, INTERMEDIATE, HIDDEN), wdt, experts_mapper, gen)
        self.w2_bias = shard_experts(randn((1, E, 1, HIDDEN), gen, 0.02), ttnn.bfloat16, shard_dim=-3)
        # use_fused_gate_up=True: w1|w3 concatenated on the output dim -> [1, E, hidden, 2 * intermediate]
        self.w1_w3_fused = _expert_weight(ttnn, mesh_device, (1, E, HIDDEN, 2 * INTERMEDIATE), wdt,
                                          experts_mapper, gen)
        self.w1_w3_bias_fused = shard_experts(randn((1, E, 1, 2 * INTERMEDIATE), gen, 0.02), ttnn.bfloat16,
                                              shard_dim=-3)
        # create_expert_mapping_tensors: one-hot [1, 1, E, D], uint16 ROW_MAJOR, replicated, DRAM
        mapping = (torch.eye(self.num_devices, dtype=torch.int32)
                   .repeat_interleave(self.num_experts_per_device, dim=0).unsqueeze(0).unsqueeze(0))
        self.expert_mapping_tensors = ttnn.from_torch(mapping, device=mesh_device,
                                                      mesh_mapper=ttnn.ReplicateTensorToMesh(mesh_device),
                                                      dtype=ttnn.uint16, memory_config=ttnn.DRAM_MEMORY_CONFIG,
                                                      layout=ttnn.ROW_MAJOR_LAYOUT)

    def _apply_swiglu(self, gate, up, memory_config):
        """experts_throughput/decode.py: _apply_swiglu."""
        ttnn = self.ttnn
        gate_clamped = ttnn.clamp(gate, min=None, max=SWIGLU_LIMIT)
        ttnn.deallocate(gate)
        up_clamped = ttnn.clamp(up, min=-SWIGLU_LIMIT, max=SWIGLU_LIMIT)
        ttnn.deallocate(up)
        gate_alpha = ttnn.mul(gate_clamped, ALPHA)
        gate_sigmoid = ttnn.sigmoid(gate_alpha)
        ttnn.deallocate(gate_alpha)
        glu = ttnn.mul(gate_clamped, gate_sigmoid, memory_config=memory_config)
        ttnn.deallocate(gate_clamped)
        ttnn.deallocate(gate_sigmoid)
        ttnn.add(up_clamped, 1.0, output_tensor=up_clamped)
        result = ttnn.mul(up_clamped, glu, memory_config=memory_config)
        ttnn.deallocate(up_clamped)
        ttnn.deallocate(glu)
        return result

    def _expert_mlp_forward(self, experts_input, memory_config, total_tokens):
        """experts_throughput/decode.py: expert_mlp_forward, fused w1|w3 path."""
        ttnn = self.ttnn
        w1_w3_out = ttnn.matmul(experts_input, self.w1_w3_fused, memory_config=memory_config)
        ttnn.deallocate(experts_input)
        ttnn.add(w1_w3_out, self.w1_w3_bias_fused, output_tensor=w1_w3_out)
        shape = w1_w3_out.shape
        w1_out = ttnn.slice(w1_w3_out, [0, 0, 0, 0], [shape[0], shape[1], shape[2], INTERMEDIATE], [1, 1, 1, 1])
        w3_out = ttnn.slice(
            w1_w3_out,
            [0, 0, 0, INTERMEDIATE],
            [shape[0], shape[1], shape[2], 2 * INTERMEDIATE],
            [1, 1, 1, 1],
        )
        ttnn.deallocate(w1_w3_out)
        activated = self._apply_swiglu(w1_out, w3_out, memory_config)
        expert_output = ttnn.matmul(activated, self.w2, memory_config=memory_config)
        ttnn.deallocate(activated)
        ttnn.add(expert_output, self.w2_bias, output_tensor=expert_output)
        expert_output = ttnn.reshape(expert_output, shape=(self.num_experts_per_device, 1, total_tokens, -1))
        expert_output_tiled = expert_output
        expert_output = ttnn.to_layout(expert_output, ttnn.ROW_MAJOR_LAYOUT)
        ttnn.deallocate(expert_output_tiled)
        return expert_output

    def _prepare_expert_weights(self, topk_expert_weights):
        """experts_throughput/decode.py: prepare_expert_weights: [1, 1, T, K] -> [K, 1, T, 1]."""
        ttnn = self.ttnn
        topk_weights_rm = ttnn.to_layout(topk_expert_weights, ttnn.ROW_MAJOR_LAYOUT)
        ttnn.deallocate(topk_expert_weights)
        topk_weights_rm = ttnn.permute(topk_weights_rm, (3, 1, 2, 0))
        topk_weights_reshaped = ttnn.to_layout(topk_weights_rm, ttnn.TILE_LAYOUT)
        ttnn.deallocate(topk_weights_rm)
        return topk_weights_reshaped

    def __call__(self, hidden_states, topk_expert_indices, topk_expert_weights):
        """experts_throughput/decode.py: decode_forward."""
        ttnn = self.ttnn
        input_shape = hidden_states.shape
        tokens_per_device = input_shape[0] * input_shape[2]
        hidden_states = ttnn.reshape(hidden_states, (1, 1, tokens_per_device, HIDDEN))

        topk_expert_indices_orig = topk_expert_indices
        topk_expert_indices = ttnn.typecast(topk_expert_indices, dtype=ttnn.uint32)
        ttnn.deallocate(topk_expert_indices_orig)
        topk_expert_indices = ttnn.reshape(topk_expert_indices, (1, 1, tokens_per_device, TOP_K))
        topk_expert_indices_u32 = topk_expert_indices
        topk_expert_indices = ttnn.typecast(topk_expert_indices, dtype=ttnn.uint16)
        ttnn.deallocate(topk_expert_indices_u32)
        topk_expert_weights = ttnn.reshape(topk_expert_weights, (1, 1, tokens_per_device, TOP_K))

        num_dispatch_devices = self.mesh_device.shape[self.dispatch_kwargs["cluster_axis"]]
        total_tokens = tokens_per_device * num_dispatch_devices

        hidden_rm = ttnn.to_layout(hidden_states, ttnn.ROW_MAJOR_LAYOUT)
        ttnn.deallocate(hidden_states)
        hidden_rm = ttnn.reshape(hidden_rm, shape=(1, 1, tokens_per_device, HIDDEN))
        topk_indices_rm = ttnn.to_layout(topk_expert_indices, ttnn.ROW_MAJOR_LAYOUT)
        ttnn.deallocate(topk_expert_indices)
        topk_indices_rm = ttnn.reshape(topk_indices_rm, shape=(1, 1, tokens_per_device, TOP_K))

        dispatch_output, dispatch_metadata = ttnn.all_to_all_dispatch(
            hidden_rm,
            topk_indices_rm,
            self.expert_mapping_tensors,
            **self.dispatch_kwargs,
        )
        ttnn.deallocate(hidden_rm)
        ttnn.deallocate(topk_indices_rm)

        post_dispatch = ttnn.reshape(dispatch_output, shape=(1, 1, total_tokens, HIDDEN))
        post_dispatch_rm = post_dispatch
        post_dispatch = ttnn.to_layout(post_dispatch, ttnn.TILE_LAYOUT)
        ttnn.deallocate(post_dispatch_rm)
        post_dispatch = ttnn.repeat(post_dispatch, ttnn.Shape((1, self.num_experts_per_device, 1, 1)))

        expert_output = self._expert_mlp_forward(post_dispatch, self.memory_config, total_tokens)

        combine_output = ttnn.all_to_all_combine(
            expert_output,
            dispatch_metadata,
            self.expert_mapping_tensors,
            **self.combine_kwargs,
        )
        ttnn.deallocate(expert_output)
        ttnn.deallocate(dispatch_metadata)

        post_combine = ttnn.to_layout(combine_output, ttnn.TILE_LAYOUT)
        ttnn.deallocate(combine_output)
        topk_weights_reshaped = self._prepare_expert_weights(topk_expert_weights)
        memory_config = self.memory_config
        weighted_output = ttnn.mul(post_combine, topk_weights_reshaped, memory_config=memory_config)
        ttnn.deallocate(post_combine)
        ttnn.deallocate(topk_weights_reshaped)
        output = ttnn.sum(weighted_output, dim=0, keepdim=True)
        ttnn.deallocate(weighted_output)
        # use_experimental_all_reduce=False: the composite all_reduce over the columns
        output_all_reduced = ttnn.all_reduce(
            output,
            num_links=T3K_NUM_LINKS,  # real: 4
            topology=ttnn.Topology.Ring,
            cluster_axis=1,
            memory_config=memory_config,
        )
        ttnn.deallocate(output)
        return output_all_reduced


def _routed_tokens(gen, tokens):
    logits = torch.randn(tokens, NUM_EXPERTS, generator=gen)
    vals, idx = torch.topk(logits, TOP_K, dim=-1)
    return idx.to(torch.int32), torch.softmax(vals, dim=-1).to(torch.bfloat16)


@corpus.forward("gpt_oss.experts_throughput.decode.gpt_oss_20b_2x4", family=FAMILY, mode="decode",
                follows="models/demos/gpt_oss/tt/experts_throughput/decode.py: decode_forward",
                device="t3k", mesh_shape=(2, 4))
def build_experts_throughput_decode(mesh_device) -> corpus.Forward:
    import ttnn

    gen = seeded(1)
    model = _ThroughputExpertsDecode(ttnn, mesh_device, gen)
    rows = mesh_device.shape[0]
    tokens = model.TOKENS_PER_DEVICE * rows                    # 32 users per row, rows hold different users
    x = randn((1, 1, tokens, HIDDEN), gen)
    idx, w = _routed_tokens(gen, tokens)
    rows_mapper = ttnn.ShardTensor2dMesh(mesh_device, mesh_device.shape, dims=(-2, None))
    tt_x = ttnn.from_torch(x, device=mesh_device, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT,
                           memory_config=ttnn.DRAM_MEMORY_CONFIG, mesh_mapper=rows_mapper)
    # the router's outputs: [tokens_per_device, K] per chip, uint16 indices / bf16 weights, TILE
    tok_mapper = ttnn.ShardTensor2dMesh(mesh_device, mesh_device.shape, dims=(0, None))
    tt_idx = ttnn.from_torch(idx, device=mesh_device, dtype=ttnn.uint16, layout=ttnn.TILE_LAYOUT,
                             memory_config=ttnn.DRAM_MEMORY_CONFIG, mesh_mapper=tok_mapper)
    tt_w = ttnn.from_torch(w, device=mesh_device, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT,
                           memory_config=ttnn.DRAM_MEMORY_CONFIG, mesh_mapper=tok_mapper)
    return corpus.Forward(
        name="gpt_oss.experts_throughput.decode.gpt_oss_20b_2x4", family=FAMILY, mode="decode",
        follows="models/demos/gpt_oss/tt/experts_throughput/decode.py: decode_forward",
        model=model, example_inputs=[tt_x, tt_idx, tt_w], host_inputs=[x, idx, w],
        notes=("gpt-oss-20b throughput experts, decode, the Galaxy 4x8 layout mapped onto a T3K 2x4 mesh: "
               "32 tokens per chip (64 users, 32 per row, replicated along the row), 4 experts per chip "
               "(bfloat4_b fused w1|w3 [1,4,2880,5760] and w2 [1,4,2880,2880], bf16 biases, expert dim sharded "
               "over all 8 chips). all_to_all_dispatch / all_to_all_combine along axis 0 (2 rows, Ring, L1, "
               "output_concat_dim=2 / output_shard_dim=2), repeat over the local experts, fused gate|up matmul + "
               "in-place bias, slices, clamped SwiGLU, down matmul + in-place bias, routing weights permuted to "
               "[K,1,T,1], multiply, sum over K, all_reduce over axis 1 (4 columns, Ring, L1). Inputs: MLP input "
               "[1,1,32,2880] per chip, router indices (uint16) and weights (bf16) [32,4] per chip, DRAM. "
               "Deviations: num_links=2 for the dispatch, combine and all_reduce (the code's 4 is the Galaxy's "
               "link count; tt-fabric rejects link index 2 on a T3K); the expert weights hold one chip's random "
               "shard on every chip (same per-chip spec and mesh placement as ShardTensorToMesh(dim=1); see "
               "_expert_weight), for build time."),
    )


# ---------------------------------------------------------------------------------------------
# 3. router, decode
# ---------------------------------------------------------------------------------------------
@corpus.forward("gpt_oss.router.decode.gpt_oss_20b_1x8", family=FAMILY, mode="decode",
                follows="models/demos/gpt_oss/tt/topk.py: TopKRouter.__call__",
                device="t3k", mesh_shape=(1, 8))
def build_router_decode(mesh_device) -> corpus.Forward:
    import ttnn

    gen = seeded(2)
    router = _TopKRouter(ttnn, mesh_device, gen)
    x = randn((1, 1, HIDDEN), gen)

    def model(hidden_states):
        # the sparse experts' router: use_throughput_experts=False -> (indices, dense scattered weights)
        return router(hidden_states, False)

    return corpus.Forward(
        name="gpt_oss.router.decode.gpt_oss_20b_1x8", family=FAMILY, mode="decode",
        follows="models/demos/gpt_oss/tt/topk.py: TopKRouter.__call__",
        model=model, example_inputs=[_replicated(ttnn, mesh_device, x, ttnn.bfloat16)], host_inputs=[x],
        notes=("gpt-oss-20b top-k router, decode, batch 1, replicated on the LoudBox/T3K 1x8 mesh, sparse-experts "
               "mode (use_throughput_experts=False): reshape to [1,2880], linear [2880,32] + bias (bf16, DRAM, "
               "default compute config), to_memory_config DRAM (decode), topk k=4 (sorted), softmax dim=1 "
               "numeric_stable with HiFi4/fp32-acc, scatter of the 4 weights into zeros_like(logits) -> dense "
               "[1,32]; logits deallocated. Returns (indices, dense routing weights)."),
    )


@corpus.forward("gpt_oss.router.decode.gpt_oss_20b_2x4_throughput", family=FAMILY, mode="decode",
                follows="models/demos/gpt_oss/tt/topk.py: TopKRouter.__call__",
                device="t3k", mesh_shape=(2, 4))
def build_router_decode_throughput(mesh_device) -> corpus.Forward:
    import ttnn

    gen = seeded(3)
    router = _TopKRouter(ttnn, mesh_device, gen)
    rows = mesh_device.shape[0]
    x = randn((1, 1, 32 * rows, HIDDEN), gen)
    tt_x = ttnn.from_torch(x, device=mesh_device, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT,
                           memory_config=ttnn.DRAM_MEMORY_CONFIG,
                           mesh_mapper=ttnn.ShardTensor2dMesh(mesh_device, mesh_device.shape, dims=(-2, None)))

    def model(hidden_states):
        # the throughput experts' router: use_throughput_experts=True -> (indices [T, K], weights [T, K])
        return router(hidden_states, True)

    return corpus.Forward(
        name="gpt_oss.router.decode.gpt_oss_20b_2x4_throughput", family=FAMILY, mode="decode",
        follows="models/demos/gpt_oss/tt/topk.py: TopKRouter.__call__",
        model=model, example_inputs=[tt_x], host_inputs=[x],
        notes=("gpt-oss-20b top-k router, decode, throughput mode (use_throughput_experts=True) as it feeds the "
               "throughput experts on the Galaxy layout mapped to a T3K 2x4 mesh: 32 tokens per chip "
               "[1,1,32,2880]; reshape to [32,2880], linear + bias (DRAM), to_memory_config DRAM (shape[1] == 1 "
               "counts as decode), topk k=4, HiFi4 softmax; returns (indices, weights) [32,4] without the "
               "scatter."),
    )
