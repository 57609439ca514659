"""RMSNorm micro-op for decode rows (one tile row, 1..32 rows) on a single Tensix core.

    y = x * gamma * rsqrt(mean(x^2, dim=-1) + epsilon)

Placement (the single variant, RMSNormSingleCore):
  x      [..., M, W]  bfloat16, TILE, L1 HEIGHT_SHARDED on ONE core, shard [32, W]; M <= 32, leading dims 1
  gamma  [..., W]     bfloat16, ROW_MAJOR, L1 HEIGHT_SHARDED on the SAME core, shard [1, W]
         (row-major keeps gamma at W*2 bytes; a TILE [1, W] gamma would be padded to 32 rows, 448 KB at
         W=7168, which with x and y does not fit one core's L1. The reader expands it block by block into
         tiles whose row 0 is gamma and the compute multiplies with a row broadcast.)
  y      same shape / memory config as x (pre-allocated, last in io_tensors)
W must be a multiple of 32; the widest width that fits one core's L1 is 10432 (check() computes it).
epsilon, 1/W and the shapes are compile-time args: a new epsilon builds new kernels (a model uses one).
Use `x_memory_config`, `prepare_gamma` to place tensors.

Kernel: kernels/rmsnorm/rmsnorm_kernel.cpp -> kernels/unified/rmsnorm.hpp (RMSNorm::Op).
"""
from __future__ import annotations

import torch
import ttnn

from micro_ops import common

from . import _util as U

_CACHE = U.DescriptorCache()


class RMSNormSingleCore:
    # CB indices are fixed per op (descriptors and kernels agree on them)
    CB_X = 0
    CB_GAMMA_RM = 1
    CB_GAMMA = 2
    CB_CONST = 3
    CB_GRAM = 4
    CB_DIAG = 5
    CB_RINV = 6
    CB_OUT = 16
    KERNEL = "rmsnorm/rmsnorm_kernel.cpp"

    # ------------------------------------------------------------------ golden
    @staticmethod
    def golden(x: torch.Tensor, gamma: torch.Tensor, *, epsilon: float = 1e-6, fp32_dest_acc_en: bool = True) -> torch.Tensor:
        """CPU reference with the rounding points of the kernel (bf16 in, bf16 out).

        fp32_dest_acc_en=True : sum of squares, mean, +eps and rsqrt in fp32; y = (x*gamma)*r in fp32,
                                rounded once to bf16.
        fp32_dest_acc_en=False: DST holds bf16: each 32-column tile partial (exact in the FPU) is added
                                to a bf16 running sum; mean+eps, rsqrt, x*gamma and the final product are
                                each rounded to bf16.
        Returns bf16 of x's shape.
        """
        return rms_norm_reference(x, gamma, epsilon=epsilon, fp32_dest_acc_en=fp32_dest_acc_en)

    # ------------------------------------------------------------------ constraints
    @staticmethod
    def check(x_shape, gamma_shape=None, *, x_dtype=ttnn.bfloat16, gamma_dtype=ttnn.bfloat16,
              fp32_dest_acc_en: bool = True) -> str | None:
        """None if this variant can run these shapes, else the reason it cannot."""
        rw = U.rows_and_width(x_shape)
        if rw is None:
            return f"x shape {list(x_shape)}: expected [..., rows, width] with all leading dims 1"
        rows, width = rw
        if not 1 <= rows <= U.TILE:
            return f"x has {rows} rows: the decode variant handles 1..32 rows (one tile row)"
        if width % U.TILE:
            return f"width {width} is not a multiple of 32"
        if x_dtype != ttnn.bfloat16:
            return f"x dtype {x_dtype}: only bfloat16"
        if gamma_shape is not None:
            g = list(gamma_shape)
            if not g or g[-1] != width or any(d != 1 for d in g[:-1]):
                return f"gamma shape {g} is not a per-channel weight [..., {width}]"
            if gamma_dtype != ttnn.bfloat16:
                return f"gamma dtype {gamma_dtype}: only bfloat16"
        need = RMSNormSingleCore.l1_bytes(width, fp32_dest_acc_en)
        if need > U.L1_BYTES_PER_CORE:
            return f"width {width} needs {need} B of L1 on one core, more than the {U.L1_BYTES_PER_CORE} B available"
        return None

    @staticmethod
    def block(fp32_dest_acc_en: bool) -> int:
        return U.DST_TILES_FP32 if fp32_dest_acc_en else U.DST_TILES_BF16

    @staticmethod
    def l1_bytes(width: int, fp32_dest_acc_en: bool = True, *, with_output: bool = True) -> int:
        """L1 on the norm core: x shard, gamma shard, output shard and the program CBs."""
        wt = width // U.TILE
        tensors = wt * U.BF16_TILE_BYTES * (2 if with_output else 1) + U.ceil_div(width * 2, 32) * 32
        return tensors + RMSNormSingleCore.program_cb_bytes(fp32_dest_acc_en)

    @staticmethod
    def program_cb_bytes(fp32_dest_acc_en: bool) -> int:
        interm = U.FP32_TILE_BYTES if fp32_dest_acc_en else U.BF16_TILE_BYTES
        blk = RMSNormSingleCore.block(fp32_dest_acc_en)
        return 2 * blk * U.BF16_TILE_BYTES + 2 * U.BF16_TILE_BYTES + 3 * interm

    # ------------------------------------------------------------------ runtime validation
    @staticmethod
    def validate_inputs(x, gamma) -> tuple[ttnn.CoreCoord, int, int]:
        """Raise InvalidInputError naming the expectation; returns (core, rows, width)."""
        U.expect_tensor("x", x, memory_layout=ttnn.TensorMemoryLayout.HEIGHT_SHARDED)
        xs = U.shape_list(x.shape)
        reason = RMSNormSingleCore.check(xs, U.shape_list(gamma.shape) if isinstance(gamma, ttnn.Tensor) else None)
        if reason:
            raise U.InvalidInputError(reason)
        rows, width = U.rows_and_width(xs)
        grid = x.memory_config().shard_spec.grid
        core_rng = U.single_rect(grid, "x")
        if U.rect_size(core_rng) != 1:
            raise U.InvalidInputError(f"x: expected a shard on exactly one core, got grid {grid}")
        U.expect_tensor("x", x, memory_layout=ttnn.TensorMemoryLayout.HEIGHT_SHARDED, shard_shape=(U.TILE, width))
        U.expect_tensor("gamma", gamma, layout=ttnn.ROW_MAJOR_LAYOUT,
                        memory_layout=ttnn.TensorMemoryLayout.HEIGHT_SHARDED, grid=grid, shard_shape=(1, width))
        U.same_device(x=x, gamma=gamma)
        return core_rng.start, rows, width

    @staticmethod
    def validate(x, gamma, out) -> tuple[ttnn.CoreCoord, int, int]:
        """validate_inputs plus the pre-allocated output: same shape and shard as x."""
        core, rows, width = RMSNormSingleCore.validate_inputs(x, gamma)
        U.expect_tensor("out", out, memory_layout=ttnn.TensorMemoryLayout.HEIGHT_SHARDED,
                        grid=x.memory_config().shard_spec.grid, shard_shape=(U.TILE, width),
                        shape=U.shape_list(x.shape))
        U.same_device(x=x, out=out)
        return core, rows, width

    # ------------------------------------------------------------------ descriptor pieces (reused by fused ops)
    @staticmethod
    def named_args(*, width: int, epsilon: float, fp32_dest_acc_en: bool, x_cb: int, out_cb: int,
                   gamma_rm_cb: int, gamma_cb: int, const_cb: int, gram_cb: int, diag_cb: int, rinv_cb: int,
                   push_x: bool, rows: int, prefix: str = "") -> dict[str, list[tuple[str, int]]]:
        """Named compile-time args of RMSNorm::Op per RISC: {'reader': [...], 'writer': [...], 'compute': [...]}.
        ``rows``: the rows of x that are data (1..32); the reader zeroes the padding rows below them."""
        wt = width // U.TILE
        p = prefix
        return {
            "reader": [(p + "x_cb", x_cb), (p + "gamma_rm_cb", gamma_rm_cb), (p + "gamma_cb", gamma_cb),
                       (p + "const_cb", const_cb), (p + "num_tiles", wt), (p + "push_x", int(push_x)),
                       (p + "valid_rows", int(rows))],
            "writer": [(p + "out_cb", out_cb), (p + "num_tiles", wt)],
            "compute": [(p + "x_cb", x_cb), (p + "gamma_cb", gamma_cb), (p + "const_cb", const_cb),
                        (p + "gram_cb", gram_cb), (p + "diag_cb", diag_cb), (p + "rinv_cb", rinv_cb),
                        (p + "out_cb", out_cb), (p + "num_tiles", wt),
                        (p + "block", RMSNormSingleCore.block(fp32_dest_acc_en)),
                        (p + "inv_width_bits", U.fp32_bits(1.0 / width)), (p + "eps_bits", U.fp32_bits(epsilon))],
        }

    @staticmethod
    def program_cbs(cores: ttnn.CoreRangeSet, fp32_dest_acc_en: bool, *, gamma_cb: int, const_cb: int,
                    gram_cb: int, diag_cb: int, rinv_cb: int) -> list[ttnn.CBDescriptor]:
        interm = ttnn.float32 if fp32_dest_acc_en else ttnn.bfloat16
        blk = RMSNormSingleCore.block(fp32_dest_acc_en)
        return [
            U.cb(gamma_cb, ttnn.bfloat16, 2 * blk, cores),  # double-buffered gamma tiles
            U.cb(const_cb, ttnn.bfloat16, 2, cores),
            U.cb(gram_cb, interm, 1, cores),
            U.cb(diag_cb, interm, 1, cores),
            U.cb(rinv_cb, interm, 1, cores),
        ]

    @staticmethod
    def compute_config(fp32_dest_acc_en: bool, math_fidelity) -> ttnn.ComputeConfigDescriptor:
        return ttnn.ComputeConfigDescriptor(math_fidelity=math_fidelity, math_approx_mode=False,
                                            fp32_dest_acc_en=fp32_dest_acc_en, dst_full_sync_en=False)

    # ------------------------------------------------------------------ op
    @staticmethod
    def program_descriptor(x, gamma, out, *, epsilon: float = 1e-6, fp32_dest_acc_en: bool = True,
                           math_fidelity=ttnn.MathFidelity.HiFi4) -> ttnn.ProgramDescriptor:
        """Validate the tensors and build the ProgramDescriptor op() runs. Cached per tensor signature and
        config: validation runs on a miss only (a hit means these exact properties were validated before)."""
        if not 0.0 <= float(epsilon) < 1.0:
            raise U.InvalidInputError(f"epsilon {epsilon}: expected 0 <= epsilon < 1")
        S = RMSNormSingleCore
        key = ("rmsnorm", float(epsilon), bool(fp32_dest_acc_en), str(math_fidelity),
               U.signature_key(x=x, gamma=gamma, out=out))

        def build():
            core, rows, width = RMSNormSingleCore.validate(x, gamma, out)
            cores = U.single_core(core)
            args = S.named_args(width=width, epsilon=epsilon, fp32_dest_acc_en=fp32_dest_acc_en, x_cb=S.CB_X,
                                out_cb=S.CB_OUT, gamma_rm_cb=S.CB_GAMMA_RM, gamma_cb=S.CB_GAMMA,
                                const_cb=S.CB_CONST, gram_cb=S.CB_GRAM, diag_cb=S.CB_DIAG, rinv_cb=S.CB_RINV,
                                push_x=True, rows=rows)
            kernels = [
                common.kernel_descriptor(S.KERNEL, cores, "reader", named_compile_time_args=args["reader"]),
                common.kernel_descriptor(S.KERNEL, cores, "writer", named_compile_time_args=args["writer"]),
                common.kernel_descriptor(S.KERNEL, cores, S.compute_config(fp32_dest_acc_en, math_fidelity),
                                         named_compile_time_args=args["compute"]),
            ]
            cbs = S.program_cbs(cores, fp32_dest_acc_en, gamma_cb=S.CB_GAMMA, const_cb=S.CB_CONST,
                                gram_cb=S.CB_GRAM, diag_cb=S.CB_DIAG, rinv_cb=S.CB_RINV)
            return kernels, cbs

        kernels, cbs = _CACHE.get_or_build(key, build)
        tensor_cbs = [
            ttnn.cb_descriptor_from_sharded_tensor(S.CB_X, x),
            ttnn.cb_descriptor_from_sharded_tensor(S.CB_GAMMA_RM, gamma),
            ttnn.cb_descriptor_from_sharded_tensor(S.CB_OUT, out),
        ]
        return ttnn.ProgramDescriptor(kernels=kernels, semaphores=[], cbs=tensor_cbs + cbs)

    @staticmethod
    def op(x, gamma, out, *, epsilon: float = 1e-6, fp32_dest_acc_en: bool = True,
           math_fidelity=ttnn.MathFidelity.HiFi4):
        """Run RMSNorm on device into the pre-allocated `out`; returns `out`."""
        program = RMSNormSingleCore.program_descriptor(x, gamma, out, epsilon=epsilon,
                                                       fp32_dest_acc_en=fp32_dest_acc_en,
                                                       math_fidelity=math_fidelity)
        return ttnn.generic_op([x, gamma, out], program)


# ---------------------------------------------------------------------------------------------
# golden
# ---------------------------------------------------------------------------------------------

def _bf16(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.bfloat16).float()


def rms_norm_reference(x: torch.Tensor, gamma: torch.Tensor, *, epsilon: float = 1e-6,
                       fp32_dest_acc_en: bool = True) -> torch.Tensor:
    xb = _bf16(x)
    gb = _bf16(gamma).reshape(-1)
    width = xb.shape[-1]
    if gb.numel() != width:
        raise ValueError(f"gamma has {gb.numel()} elements, x is {width} wide")
    if fp32_dest_acc_en:
        ss = (xb * xb).sum(-1, keepdim=True)
        r = torch.rsqrt(ss / width + epsilon)
        y = (xb * gb) * r
    else:
        if width % U.TILE:
            raise ValueError("width must be a multiple of 32")
        parts = (xb * xb).reshape(*xb.shape[:-1], width // U.TILE, U.TILE).sum(-1)
        ss = torch.zeros(xb.shape[:-1], dtype=torch.float32)
        for i in range(parts.shape[-1]):
            ss = _bf16(ss + _bf16(parts[..., i]))
        ss = ss.unsqueeze(-1)
        r = _bf16(torch.rsqrt(_bf16(_bf16(ss * (1.0 / width)) + epsilon)))
        y = _bf16(xb * gb) * r
    return y.to(torch.bfloat16)


# ---------------------------------------------------------------------------------------------
# placement helpers and the device-level entry used as a fused-graph node target
# ---------------------------------------------------------------------------------------------

def x_memory_config(width: int, core: ttnn.CoreCoord = ttnn.CoreCoord(0, 0)) -> ttnn.MemoryConfig:
    """L1 height-sharded [32, width] on `core`: the placement x and y must have."""
    return U.height_sharded(core, (U.TILE, width))


def gamma_memory_config(width: int, core: ttnn.CoreCoord = ttnn.CoreCoord(0, 0)) -> ttnn.MemoryConfig:
    return U.height_sharded(core, (1, width))


def prepare_gamma(gamma: torch.Tensor, device, core: ttnn.CoreCoord = ttnn.CoreCoord(0, 0)):
    """Place a torch gamma ([..., W], any leading 1s) as the row-major L1 shard the op expects."""
    g = gamma.reshape(1, -1).to(torch.bfloat16)
    return ttnn.from_torch(g, dtype=ttnn.bfloat16, layout=ttnn.ROW_MAJOR_LAYOUT, device=device,
                           memory_config=gamma_memory_config(g.shape[-1], core))


def rms_norm(x, gamma, *, epsilon: float = 1e-6, fp32_dest_acc_en: bool = True,
             math_fidelity=ttnn.MathFidelity.HiFi4):
    """Device entry: allocates y like x (same shard) and runs RMSNormSingleCore.op."""
    U.expect_tensor("x", x, memory_layout=ttnn.TensorMemoryLayout.HEIGHT_SHARDED)
    out = ttnn.allocate_tensor_on_device(x.shape, x.dtype, x.layout, x.device(), x.memory_config())
    return RMSNormSingleCore.op(x, gamma, out, epsilon=epsilon, fp32_dest_acc_en=fp32_dest_acc_en,
                                math_fidelity=math_fidelity)


def _rms_norm_golden(x, gamma, *, epsilon: float = 1e-6, fp32_dest_acc_en: bool = True, math_fidelity=None):
    return rms_norm_reference(x, gamma, epsilon=epsilon, fp32_dest_acc_en=fp32_dest_acc_en)


def _rms_norm_output_shape(x_shape, gamma_shape=None, **_):
    return list(x_shape)


rms_norm.golden = _rms_norm_golden
rms_norm.output_shape = _rms_norm_output_shape
rms_norm.check = RMSNormSingleCore.check
