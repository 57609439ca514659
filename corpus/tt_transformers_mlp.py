"""tt_transformers' dense gated MLP (w1/w3 up-projections, SiLU-gated multiply, w2 down-projection).

Follows ``models/tt_transformers/tt/mlp.py`` (``MLP.__init__`` for the weights, ``MLP.forward`` for
the ops) together with the configs it pulls from ``models/tt_transformers/tt/model_config.py``
(``ModelArgs``): ``create_dram_sharded_mem_config`` for the weights, ``get_mlp_ff1_3_prg_config`` /
``get_mlp_ff2_prg_config`` (DRAM-sharded decode matmuls via ``dram_matmul_config``, 2D-multicast
prefill matmuls via ``matmul_config`` on ``mlp1_3_grid`` / ``mlp2_grid``, and the
``MinimalMatmulConfig`` the w2 prefill takes above 128 tokens), ``get_mlp_ff1_3_mem_config`` /
``get_mlp_ff2_mem_config`` / ``get_mlp_binary_mult_mem_config`` / ``get_mlp_output_mem_config``
(= the decode residual config), the compute-kernel configs of ``ModelArgs.__init__`` and the
dtypes / fidelities of ``DecodersPrecision.performance`` (``ModelOptimizations.performance``).
The decode input is what ``TransformerBlock.forward`` hands the MLP: the ff_norm output,
L1 width-sharded on ``mlp_core_grid`` (``get_mlp_input_mem_config`` / SHARDED_MLP_INPUT_MEMCFG).

The version followed is the getter-based one (``mlp.py`` with ``Mode``, the optional prefetcher and
``ttnn.experimental.minimal_matmul`` for long prefill). Every ``ModelArgs`` value is computed here
by small functions (``_dram_matmul_config``, ``_prefill_matmul_config``, ``_find_grid_k_n``, ...)
that reproduce what ModelArgs yields on one Wormhole chip (N150: 8x8 compute grid, 12 DRAM banks,
mesh 1x1) for the chosen model, and the three forwards share them.

Forwards (all on N150, mesh (1, 1), layer 0, ``performance`` optimizations as the demo runs them):

* ``tt_transformers.mlp.decode.llama3_8b``: Llama-3.1-8B(-Instruct), dim 4096, hidden 14336,
  batch 32 decode ([1, 1, 32, 4096]).
* ``tt_transformers.mlp.prefill.llama3_8b``: Llama-3.1-8B, one 2048-token prefill
  ([1, 1, 2048, 4096] in DRAM); on N150 ``prefill_len_cutoff`` is 512 for this model, so the input
  is reshaped to [1, 4, 512, 4096] and w2 runs through ``minimal_matmul`` (seq_len > 128).
* ``tt_transformers.mlp.decode.qwen``: Qwen2.5-3B(-Instruct) (dim 2048, hidden 11008), batch 32
  decode. Qwen2.5-7B (the brief's example) is not possible on one chip: ``_set_params_from_dict``
  asserts Qwen2.5-7B / Qwen2.5-VL-7B run only on 2 or 4 devices (its hidden dim 18944 would be
  padded to 19456 by PAD_MLP_CORES=16). Qwen2.5-3B is in tt_transformers' N150 list and has no
  default MLP padding cores, so its hidden dim stays 11008 (344 tiles = 8 x 43: the decode
  matmuls fall to 8 cores, per_core_N 43 for w1/w3).

Left out (not on the path for these configs): the Galaxy (TG) branches (reduce-scatter /
all-gather / all-reduce of w1/w3 and w2_in), the prefetcher (global_cb / sub_device_id stay None),
and ``tt_all_reduce`` of w2_out, which returns its input unchanged on a 1x1 mesh (no ttnn call).
Weights are random (seeded) of the real shapes, made with ``ttnn.as_tensor`` without a cache file.
"""
from __future__ import annotations

import dataclasses
import math

import corpus
from corpus.common import randn, seeded

FOLLOWS = "models/tt_transformers/tt/mlp.py: MLP.forward"
TILE = 32

# N150 (one Wormhole B0 chip) as ModelArgs sees it
N150 = dict(num_devices=1, cluster_shape=(1, 1), grid_x=8, grid_y=8, dram_banks=12)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str            # base model name as get_base_model_name gives it
    dim: int             # hidden_size
    hidden_dim: int      # intermediate_size from the HF config (before MLP padding)
    prefill_len_cutoff: int  # ModelArgs.prefill_len_cutoff on N150 (Wormhole default 1024)


# Llama-3.1-8B on N150: ModelArgs lowers prefill_len_cutoff to 512 for this model on N150
LLAMA3_8B = ModelSpec("Llama-3.1-8B", dim=4096, hidden_dim=14336, prefill_len_cutoff=512)
# Qwen2.5-3B: hidden_size 2048, intermediate_size 11008; no N150 cutoff override
QWEN2_5_3B = ModelSpec("Qwen2.5-3B", dim=2048, hidden_dim=11008, prefill_len_cutoff=1024)

# ModelArgs._set_params_from_dict: default PAD_MLP_CORES per base model (0 = no padding)
_DEFAULT_PADDED_CORES = {"Qwen2.5-VL-72B": 32, "Qwen2.5-VL-32B": 16, "Qwen2.5-72B": 32, "Qwen2.5-32B": 16,
                         "Qwen2.5-7B": 16, "QwQ-32B": 16}


# ---------------------------------------------------------------------------------------------
# what ModelArgs computes (our functions, same arithmetic)


def padded_hidden_dim(spec: ModelSpec, num_devices: int) -> int:
    """hidden_dim after the MLP padding rule: round up to cores * 32 * num_devices when the model
    has default padding cores (none for Llama-3.1-8B and Qwen2.5-3B)."""
    cores = _DEFAULT_PADDED_CORES.get(spec.name, 0)
    if cores == 0:
        return spec.hidden_dim
    step = cores * TILE * num_devices
    return math.ceil(spec.hidden_dim / step) * step


def _largest_divisor(n: int, cap: int = 8) -> int:
    return next((d for d in range(cap, 0, -1) if n % d == 0), 1)


def _subblock_w(per_core_n: int, subblock_h: int = 1) -> int:
    """get_out_subblock_w: widest w <= 4 with w*h <= 4 dividing per_core_N."""
    return next((w for w in range(4, 1, -1) if w * subblock_h <= 4 and per_core_n % w == 0), 1)


def _find_grid_k_n(k_tiles: int, n_tiles: int):
    """Largest core count <= 64 dividing both K and N tiles, laid out as the fewest rows of <= 8."""
    for cores in sorted((c for c in range(1, 65) if k_tiles % c == 0 and n_tiles % c == 0), reverse=True):
        for rows in range(1, 9):
            if cores % rows == 0 and cores // rows <= 8:
                return rows, cores // rows
    raise AssertionError(f"no DRAM-sharded grid for K={k_tiles} N={n_tiles} tiles")


def _find_grid(n_tiles: int):
    """find_grid (Wormhole, 8x8 max): core count dividing N closest to 32, fewest rows."""
    for cores in sorted((c for c in range(1, 65) if n_tiles % c == 0), key=lambda c: abs(c - 32)):
        for rows in range(1, 9):
            if cores % rows == 0 and cores // rows <= 8:
                return rows, cores // rows
    raise AssertionError(f"no grid for {n_tiles} tiles")


def _find_prefill_grid(row_tiles: int, col_tiles: int):
    """(rows, cols): the largest count <= 8 dividing each; ModelArgs uses the pair as (x, y)."""
    return _largest_divisor(row_tiles), _largest_divisor(col_tiles)


def _core_grid(rows_cols):
    import ttnn

    rows, cols = rows_cols
    return ttnn.CoreGrid(x=cols, y=rows)


def _dram_matmul_config(m, k, n, num_cores):
    """ModelArgs.dram_matmul_config."""
    import ttnn

    return ttnn.MatmulMultiCoreReuseMultiCastDRAMShardedProgramConfig(
        in0_block_w=_largest_divisor(k // (TILE * num_cores)),
        per_core_M=math.ceil(m / TILE),
        per_core_N=math.ceil(n / (TILE * num_cores)),
        fused_activation=None,
    )


def _prefill_matmul_config(m, k, n, grid_size, per_core_n):
    """ModelArgs.matmul_config (2D multicast) with per_core_N pinned to the 8-wide DRAM shard
    width (dram_shard_grid_width = 8 on Wormhole), as the MLP prefill configs pass it."""
    import ttnn

    assert k % (TILE * grid_size[1]) == 0
    return ttnn.MatmulMultiCoreReuseMultiCastProgramConfig(
        compute_with_storage_grid_size=grid_size,
        in0_block_w=_largest_divisor(k // (TILE * grid_size[1])),
        out_subblock_h=1,
        out_subblock_w=_subblock_w(per_core_n, 1),
        per_core_M=math.ceil(m / (TILE * grid_size[1])),
        per_core_N=per_core_n,
        transpose_mcast=False,
        fused_activation=None,
        fuse_batch=False,
    )


def _dram_sharded_weight_memcfg(k, n, dram_banks):
    """ModelArgs.create_dram_sharded_mem_config: width-shard over all DRAM banks, the width padded
    up to a multiple of 32 * banks."""
    import ttnn

    padded = math.ceil(n / (TILE * dram_banks)) * (TILE * dram_banks)
    grid = ttnn.CoreRangeSet({ttnn.CoreRange(ttnn.CoreCoord(0, 0), ttnn.CoreCoord(dram_banks - 1, 0))})
    spec = ttnn.ShardSpec(grid, (k, padded // dram_banks), ttnn.ShardOrientation.ROW_MAJOR)
    return ttnn.MemoryConfig(ttnn.TensorMemoryLayout.WIDTH_SHARDED, ttnn.BufferType.DRAM, spec)


def _width_sharded_l1(rows, width, core_grid):
    import ttnn

    return ttnn.create_sharded_memory_config(
        (rows, width), core_grid, ttnn.ShardStrategy.WIDTH, ttnn.ShardOrientation.ROW_MAJOR,
        use_height_and_width_as_shard_shape=True,
    )


def _kernel_config(name):
    """The compute-kernel configs ModelArgs.__init__ builds (those the MLP can pick)."""
    import ttnn

    return {
        # MathFidelitySetting.LOFI
        "lofi": ttnn.WormholeComputeKernelConfig(math_fidelity=ttnn.MathFidelity.LoFi, math_approx_mode=False,
                                                 fp32_dest_acc_en=False, packer_l1_acc=True),
        # MathFidelitySetting.HIFI2_FP16
        "hifi2_fp16": ttnn.WormholeComputeKernelConfig(math_fidelity=ttnn.MathFidelity.HiFi2,
                                                       math_approx_mode=False, fp32_dest_acc_en=False,
                                                       packer_l1_acc=True),
    }[name]


@dataclasses.dataclass
class MLPArgs:
    """The slice of ModelArgs (+ DecodersPrecision, layer 0) MLP reads, for one model on N150."""

    spec: ModelSpec
    max_batch_size: int = 32
    device: dict = dataclasses.field(default_factory=lambda: dict(N150))

    def __post_init__(self):
        d = self.device
        self.num_devices = d["num_devices"]
        self.cluster_shape = d["cluster_shape"]
        self.dim = self.spec.dim
        self.hidden_dim = padded_hidden_dim(self.spec, self.num_devices)
        self.prefill_len_cutoff = self.spec.prefill_len_cutoff
        self.tile_padded_batch_rows = TILE * math.ceil(self.max_batch_size / TILE)
        self.dram_banks = d["dram_banks"]
        self.dram_shard_grid_width = 8      # Wormhole
        self.prefill_rows = 8
        # mlp_core_grid / mlp2_core_grid (non-Galaxy): DRAM-sharded grids dividing both K and N
        self.mlp_core_grid = _core_grid(_find_grid_k_n(self.dim // TILE, self.hidden_dim // self.num_devices // TILE))
        self.mlp2_core_grid = _core_grid(_find_grid_k_n(self.hidden_dim // self.num_devices // TILE, self.dim // TILE))
        # performance optimizations, decoder 0 (the demo's default; Llama-3.1-8B's
        # performance_decoder_config.json only changes decoder 31):
        import ttnn

        self.ff1_3_dtype = ttnn.bfloat4_b          # TensorGroup.FF1_FF3 -> BFP4
        self.ff2_dtype = ttnn.bfloat8_b            # TensorGroup.FF2 -> BFP8 (default)
        self.activation_dtype = None               # TensorGroup.ACTIVATION -> None (keep input dtype)
        self.li_ff1_3_kernel = _kernel_config("lofi")        # OpGroup.LI_FF1_FF3 -> LOFI
        self.li_ff2_kernel = _kernel_config("hifi2_fp16")    # OpGroup.LI_FF2 -> HIFI2_FP16 (default)
        self.activation_type = ttnn.UnaryOpType.SILU         # hidden_act "silu"

    # grids for the prefill matmuls: find_prefill_grid(prefill_rows, K tiles)
    def mlp1_3_grid(self, seq_len):
        return _find_prefill_grid(self.prefill_rows, self.dim // TILE)

    def mlp2_grid(self, seq_len):
        return _find_prefill_grid(self.prefill_rows, self.hidden_dim // TILE)

    # --- memory configs
    def w1_w3_memcfg(self):
        return _dram_sharded_weight_memcfg(self.dim, self.hidden_dim // self.num_devices, self.dram_banks)

    def w2_memcfg(self):
        return _dram_sharded_weight_memcfg(self.hidden_dim // self.num_devices, self.dim, self.dram_banks)

    def mlp_input_memcfg(self, mode):
        """get_mlp_input_mem_config: the ff_norm output the decoder hands in."""
        import ttnn

        if mode == "decode":
            return _width_sharded_l1(self.tile_padded_batch_rows, self.dim // self.mlp_core_grid.num_cores,
                                     self.mlp_core_grid)
        return ttnn.DRAM_MEMORY_CONFIG

    def ff1_3_memcfg(self, mode):
        import ttnn

        return ttnn.L1_WIDTH_SHARDED_MEMORY_CONFIG if mode == "decode" else ttnn.DRAM_MEMORY_CONFIG

    def ff2_memcfg(self, mode):
        import ttnn

        return ttnn.L1_WIDTH_SHARDED_MEMORY_CONFIG if mode == "decode" else ttnn.DRAM_MEMORY_CONFIG

    def binary_mult_memcfg(self):
        """get_mlp_binary_mult_mem_config(DECODE): w2's input width-sharded on mlp2_core_grid."""
        return _width_sharded_l1(self.tile_padded_batch_rows,
                                 self.hidden_dim // self.cluster_shape[1] // self.mlp2_core_grid.num_cores,
                                 self.mlp2_core_grid)

    def output_memcfg(self):
        """get_mlp_output_mem_config(DECODE) = get_residual_mem_config(DECODE): width-sharded on
        dram_shard_core_grid_for_k(dim / num_devices)."""
        grid = _core_grid(_find_grid(self.dim // self.num_devices // TILE))
        return _width_sharded_l1(self.tile_padded_batch_rows, self.dim // grid.num_cores // self.num_devices, grid)

    # --- program configs
    def ff1_3_program_config(self, mode, seq_len):
        if mode == "decode":
            return _dram_matmul_config(self.tile_padded_batch_rows, self.dim, self.hidden_dim // self.cluster_shape[1],
                                       self.mlp_core_grid.num_cores)
        n = self.hidden_dim // self.cluster_shape[1]
        return _prefill_matmul_config(
            m=min(seq_len, self.prefill_len_cutoff), k=self.dim // self.cluster_shape[0], n=n,
            grid_size=self.mlp1_3_grid(seq_len),
            per_core_n=math.ceil(n / (TILE * self.dram_shard_grid_width)),
        )

    def ff2_program_config(self, mode, seq_len):
        import ttnn

        if mode == "decode":
            return _dram_matmul_config(self.tile_padded_batch_rows, self.hidden_dim // self.cluster_shape[1], self.dim,
                                       self.mlp2_core_grid.num_cores)
        if seq_len > 128:
            gx, gy = self.mlp2_grid(seq_len)
            return ttnn.MinimalMatmulConfig(M_block_size=8, K_block_size=8, N_block_size=8,
                                            compute_with_storage_grid_size=ttnn.CoreCoord(gx, gy))
        return _prefill_matmul_config(
            m=min(seq_len, self.prefill_len_cutoff), k=self.hidden_dim, n=self.dim,
            grid_size=self.mlp2_grid(seq_len),
            per_core_n=math.ceil(self.dim / (TILE * self.dram_shard_grid_width)),
        )


# ---------------------------------------------------------------------------------------------
# the module


class TTTMLP:
    """MLP.__init__ (weights) and MLP.forward (ops) for one MLPArgs, no prefetcher, non-Galaxy."""

    def __init__(self, mesh_device, args: MLPArgs, seed: int = 0):
        import ttnn

        self.mesh_device = mesh_device
        self.args = args
        gen = seeded(seed)
        # HF gate_proj / up_proj [hidden, dim], down_proj [dim, hidden]; MLP transposes them
        scale_up, scale_down = args.dim ** -0.5, args.spec.hidden_dim ** -0.5
        torch_w = {
            "w1": randn((args.spec.hidden_dim, args.dim), gen, scale_up).transpose(-2, -1),
            "w2": randn((args.dim, args.spec.hidden_dim), gen, scale_down).transpose(-2, -1),
            "w3": randn((args.spec.hidden_dim, args.dim), gen, scale_up).transpose(-2, -1),
        }
        # non-Galaxy: w1/w3 split on their last dim, w2 on its rows (all whole on 1x1)
        w1_dims, w2_dims = (-2, -1), (-1, -2)

        def load(name, dtype, dims, memcfg):
            w = torch_w[name]
            pad_dim = dims[-1]  # pad_to_size(hidden_dim) on the dim the mesh splits (no-op unpadded)
            if w.shape[pad_dim] != args.hidden_dim:
                import torch

                pad = [0, 0, 0, 0]
                pad[1 if pad_dim == -1 else 3] = args.hidden_dim - w.shape[pad_dim]
                w = torch.nn.functional.pad(w, pad)
            return ttnn.as_tensor(
                w.unsqueeze(0).unsqueeze(0),  # [1, 1, H, W]
                dtype=dtype,
                device=mesh_device,
                mesh_mapper=ttnn.ShardTensor2dMesh(mesh_device, dims=dims, mesh_shape=list(args.cluster_shape)),
                layout=ttnn.TILE_LAYOUT,
                memory_config=memcfg,
                cache_file_name=None,
            )

        self.w1 = load("w1", args.ff1_3_dtype, w1_dims, args.w1_w3_memcfg())
        self.w2 = load("w2", args.ff2_dtype, w2_dims, args.w2_memcfg())
        self.w3 = load("w3", args.ff1_3_dtype, w1_dims, args.w1_w3_memcfg())

    def forward(self, x, mode: str):
        import ttnn

        args = self.args
        seq_len = x.shape[-2]
        activation_dtype = args.activation_dtype

        if mode == "prefill" and seq_len >= args.prefill_len_cutoff:
            # fold the sequence into prefill_len_cutoff-row batches
            x = ttnn.reshape(x, [1, seq_len // args.prefill_len_cutoff, args.prefill_len_cutoff, -1])

        pc_1 = args.ff1_3_program_config(mode, seq_len)
        pc_2 = args.ff2_program_config(mode, seq_len)
        pc_3 = args.ff1_3_program_config(mode, seq_len)

        w1_out = ttnn.linear(
            x,
            self.w1,
            dtype=activation_dtype or ttnn.bfloat16,
            core_grid=None,
            compute_kernel_config=args.li_ff1_3_kernel,
            program_config=pc_1,
            memory_config=args.ff1_3_memcfg(mode),
            global_cb=None,
            sub_device_id=None,
        )
        w3_out = ttnn.linear(
            x,
            self.w3,
            dtype=activation_dtype or ttnn.bfloat16,
            core_grid=None,
            compute_kernel_config=args.li_ff1_3_kernel,
            program_config=pc_3,
            memory_config=args.ff1_3_memcfg(mode),
            global_cb=None,
            sub_device_id=None,
        )
        ttnn.deallocate(x)

        w2_in = ttnn.mul(
            w1_out,
            w3_out,
            input_tensor_a_activations=[args.activation_type],
            dtype=activation_dtype or ttnn.bfloat8_b,
            memory_config=w1_out.memory_config(),
        )

        if mode == "decode":
            # reshard onto w2's grid (a no-op move when the grids already match)
            w2_in = ttnn.to_memory_config(w2_in, args.binary_mult_memcfg())

        ttnn.deallocate(w3_out)
        ttnn.deallocate(w1_out)

        if seq_len > 128 and mode != "decode":
            w2_out = ttnn.experimental.minimal_matmul(
                w2_in,
                self.w2,
                compute_kernel_config=args.li_ff2_kernel,
                config=pc_2,
            )
        else:
            w2_out = ttnn.linear(
                w2_in,
                self.w2,
                compute_kernel_config=args.li_ff2_kernel,
                dtype=activation_dtype or ttnn.bfloat16,
                program_config=pc_2,
                memory_config=args.ff2_memcfg(mode),
                core_grid=None,
                global_cb=None,
                sub_device_id=None,
            )
        ttnn.deallocate(w2_in)

        # tt_all_reduce(w2_out, ...) returns w2_out unchanged on a 1x1 mesh
        w2_out_reduced = w2_out
        shape = w2_out_reduced.shape
        w2_out_reduced = ttnn.reshape(w2_out_reduced, (1, 1, shape[-4] * shape[-3] * shape[-2], shape[-1]))

        if mode == "decode":
            w2_out_reduced = ttnn.to_memory_config(w2_out_reduced, args.output_memcfg())

        return w2_out_reduced


# ---------------------------------------------------------------------------------------------
# forwards


def _build(mesh_device, *, name, spec, mode, seq_len, notes):
    import ttnn

    args = MLPArgs(spec)
    mlp = TTTMLP(mesh_device, args)
    rows = args.tile_padded_batch_rows if mode == "decode" else seq_len
    x_host = randn((1, 1, rows, args.dim), seeded(1))
    x = ttnn.from_torch(x_host, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=mesh_device,
                        memory_config=args.mlp_input_memcfg(mode),
                        mesh_mapper=ttnn.ReplicateTensorToMesh(mesh_device))

    def model(x):
        return mlp.forward(x, mode)

    return corpus.Forward(name=name, family="tt_transformers", mode=mode, follows=FOLLOWS, model=model,
                          example_inputs=[x], host_inputs=[x_host], notes=notes)


_COMMON_NOTES = (
    "N150 (1x1 mesh), layer 0, performance optimizations: w1/w3 bfloat4_b + LoFi, w2 bfloat8_b + "
    "HiFi2 (fp16 acc), activations bfloat16 (mul output bfloat8_b). Weights DRAM width-sharded over the "
    "12 banks (create_dram_sharded_mem_config). No prefetcher / Galaxy paths; tt_all_reduce is a no-op on "
    "1x1 (global_cb / sub_device_id passed as None, as without a prefetcher). The forward deallocates its "
    "input, as the real one does. "
)


@corpus.forward("tt_transformers.mlp.decode.llama3_8b", family="tt_transformers", mode="decode",
                follows=FOLLOWS, device="n150", mesh_shape=(1, 1))
def build_decode_llama3_8b(mesh_device) -> corpus.Forward:
    # mlp_core_grid = mlp2_core_grid = 8x8 (64 cores divide 128 and 448 tiles);
    # w1/w3: in0_block_w 2, per_core_N 7; w2: in0_block_w 7, per_core_N 2; output on 4x8 cores, [32, 128]
    return _build(mesh_device, name="tt_transformers.mlp.decode.llama3_8b", spec=LLAMA3_8B, mode="decode",
                  seq_len=1, notes=_COMMON_NOTES + "Llama-3.1-8B, dim 4096, hidden 14336, batch 32 decode: "
                  "input [1,1,32,4096] L1 width-sharded on 8x8 ([32,64] shards).")


@corpus.forward("tt_transformers.mlp.prefill.llama3_8b", family="tt_transformers", mode="prefill",
                follows=FOLLOWS, device="n150", mesh_shape=(1, 1))
def build_prefill_llama3_8b(mesh_device) -> corpus.Forward:
    # prefill_len_cutoff 512 (Llama-3.1-8B on N150): [1,1,2048,4096] -> [1,4,512,4096];
    # w1/w3: 8x8 grid, per_core_M 2, per_core_N 56, in0_block_w 8, subblock 1x4;
    # w2: minimal_matmul, MinimalMatmulConfig(8, 8, 8) on an 8x8 grid (mlp2_grid)
    return _build(mesh_device, name="tt_transformers.mlp.prefill.llama3_8b", spec=LLAMA3_8B, mode="prefill",
                  seq_len=2048, notes=_COMMON_NOTES + "Llama-3.1-8B, dim 4096, hidden 14336, one 2048-token "
                  "prefill: input [1,1,2048,4096] bfloat16 in DRAM, reshaped to [1,4,512,4096] "
                  "(prefill_len_cutoff 512 on N150); w2 via ttnn.experimental.minimal_matmul (no dtype / memory "
                  "config given, so its output is bfloat8_b like w2_in, DRAM interleaved); output [1,1,2048,4096].")


@corpus.forward("tt_transformers.mlp.decode.qwen", family="tt_transformers", mode="decode",
                follows=FOLLOWS, device="n150", mesh_shape=(1, 1))
def build_decode_qwen(mesh_device) -> corpus.Forward:
    # hidden 11008 = 344 tiles = 8 x 43 -> mlp_core_grid = mlp2_core_grid = 1x8 (8 cores);
    # w1/w3: in0_block_w 8, per_core_N 43; w2: in0_block_w 1, per_core_N 8; output on 4x8 cores, [32, 64]
    return _build(mesh_device, name="tt_transformers.mlp.decode.qwen", spec=QWEN2_5_3B, mode="decode",
                  seq_len=1, notes=_COMMON_NOTES + "Qwen2.5-3B(-Instruct) (N150-supported; Qwen2.5-7B is "
                  "asserted to need 2 or 4 devices), dim 2048, hidden 11008 (no MLP padding cores for this "
                  "model), batch 32 decode: input [1,1,32,2048] L1 width-sharded on 1x8 ([32,256] shards).")
