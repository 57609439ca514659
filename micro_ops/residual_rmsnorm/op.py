"""Residual add + RMSNorm in one program, two outputs:

    s = x + residual              (bf16; the next residual stream of a decoder layer)
    y = rmsnorm(s) * gamma

Placement (ResidualRMSNormSingleCore): x, residual, s and y are [..., M, W] bfloat16 TILE, L1 HEIGHT_SHARDED
on ONE core, shard [32, W], M <= 32; gamma is row-major [1, W] on the same core (as micro_ops.rmsnorm).
With four [32, W] shards on one core the widest width is 5248 (check() computes it).

Kernel: kernels/residual_rmsnorm/residual_rmsnorm_kernel.cpp -> ResidualAdd::Op then RMSNorm::Op reading the
sum from s's CB.
"""
from __future__ import annotations

import torch
import ttnn

from micro_ops import common
from micro_ops.rmsnorm import RMSNormSingleCore, rms_norm_reference
from micro_ops.rmsnorm import _util as U

_CACHE = common.DescriptorCache()


class ResidualRMSNormSingleCore:
    CB_X = 0
    CB_GAMMA_RM = 1
    CB_GAMMA = 2
    CB_CONST = 3
    CB_GRAM = 4
    CB_DIAG = 5
    CB_RINV = 6
    CB_RES = 7
    CB_SUM = 16   # output s
    CB_OUT = 17   # output y
    KERNEL = "residual_rmsnorm/residual_rmsnorm_kernel.cpp"

    @staticmethod
    def golden(x, residual, gamma, *, epsilon: float = 1e-6, fp32_dest_acc_en: bool = True):
        """(s, y): s = bf16(x + residual) (the add is exact in DST, rounded once when packed), y = the RMSNorm
        golden of that bf16 s. Both bf16, x's shape."""
        s = (x.to(torch.bfloat16).float() + residual.to(torch.bfloat16).float()).to(torch.bfloat16)
        return s, rms_norm_reference(s, gamma, epsilon=epsilon, fp32_dest_acc_en=fp32_dest_acc_en)

    @staticmethod
    def check(x_shape, residual_shape, gamma_shape=None, *, x_dtype=ttnn.bfloat16, residual_dtype=ttnn.bfloat16,
              fp32_dest_acc_en: bool = True) -> str | None:
        if list(residual_shape) != list(x_shape):
            return f"residual shape {list(residual_shape)} differs from x {list(x_shape)} (no broadcasting)"
        if residual_dtype != ttnn.bfloat16:
            return f"residual dtype {residual_dtype}: only bfloat16"
        reason = RMSNormSingleCore.check(x_shape, gamma_shape, x_dtype=x_dtype, fp32_dest_acc_en=fp32_dest_acc_en)
        if reason and "L1" not in reason:
            return reason
        width = list(x_shape)[-1]
        need = ResidualRMSNormSingleCore.l1_bytes(width, fp32_dest_acc_en)
        if need > U.L1_BYTES_PER_CORE:
            return f"width {width} needs {need} B of L1 on one core (x, residual, s, y), more than {U.L1_BYTES_PER_CORE} B"
        return None

    @staticmethod
    def l1_bytes(width: int, fp32_dest_acc_en: bool = True) -> int:
        wt = width // U.TILE
        return 4 * wt * U.BF16_TILE_BYTES + U.ceil_div(width * 2, 32) * 32 + \
            RMSNormSingleCore.program_cb_bytes(fp32_dest_acc_en)

    @staticmethod
    def validate(x, residual, gamma, s_out, y_out):
        U.expect_tensor("x", x, memory_layout=ttnn.TensorMemoryLayout.HEIGHT_SHARDED)
        U.expect_tensor("residual", residual, memory_layout=ttnn.TensorMemoryLayout.HEIGHT_SHARDED)
        xs = U.shape_list(x.shape)
        reason = ResidualRMSNormSingleCore.check(xs, U.shape_list(residual.shape), U.shape_list(gamma.shape))
        if reason:
            raise U.InvalidInputError(reason)
        core, rows, width = RMSNormSingleCore.validate_inputs(x, gamma)
        grid = x.memory_config().shard_spec.grid
        for name, t in (("residual", residual), ("s_out", s_out), ("y_out", y_out)):
            U.expect_tensor(name, t, memory_layout=ttnn.TensorMemoryLayout.HEIGHT_SHARDED, grid=grid,
                            shard_shape=(U.TILE, width), shape=xs)
        U.same_device(x=x, residual=residual, s_out=s_out, y_out=y_out)
        return core, rows, width

    @staticmethod
    def program_descriptor(x, residual, gamma, s_out, y_out, *, epsilon: float = 1e-6, fp32_dest_acc_en: bool = True,
                           math_fidelity=ttnn.MathFidelity.HiFi4) -> ttnn.ProgramDescriptor:
        if not 0.0 <= float(epsilon) < 1.0:
            raise U.InvalidInputError(f"epsilon {epsilon}: expected 0 <= epsilon < 1")
        R = ResidualRMSNormSingleCore
        # cached per tensor signature and config: validation runs on a miss only
        key = ("residual_rmsnorm", float(epsilon), bool(fp32_dest_acc_en), str(math_fidelity),
               U.signature_key(x=x, residual=residual, gamma=gamma, s_out=s_out, y_out=y_out))

        def build():
            core, rows, width = ResidualRMSNormSingleCore.validate(x, residual, gamma, s_out, y_out)
            wt = width // U.TILE
            cores = U.single_core(core)
            norm = RMSNormSingleCore.named_args(
                width=width, epsilon=epsilon, fp32_dest_acc_en=fp32_dest_acc_en, x_cb=R.CB_SUM, out_cb=R.CB_OUT,
                gamma_rm_cb=R.CB_GAMMA_RM, gamma_cb=R.CB_GAMMA, const_cb=R.CB_CONST, gram_cb=R.CB_GRAM,
                diag_cb=R.CB_DIAG, rinv_cb=R.CB_RINV, push_x=False, rows=rows, prefix="rms_")
            add = {
                "reader": [("add_x_cb", R.CB_X), ("add_res_cb", R.CB_RES), ("add_num_tiles", wt),
                           ("add_valid_rows", rows)],
                "writer": [("add_sum_cb", R.CB_SUM), ("add_num_tiles", wt)],
                "compute": [("add_x_cb", R.CB_X), ("add_res_cb", R.CB_RES), ("add_sum_cb", R.CB_SUM),
                            ("add_num_tiles", wt), ("add_block", RMSNormSingleCore.block(fp32_dest_acc_en))],
            }
            kernels = [
                common.kernel_descriptor(R.KERNEL, cores, "reader", named_compile_time_args=add["reader"] + norm["reader"]),
                common.kernel_descriptor(R.KERNEL, cores, "writer", named_compile_time_args=add["writer"] + norm["writer"]),
                common.kernel_descriptor(R.KERNEL, cores, RMSNormSingleCore.compute_config(fp32_dest_acc_en, math_fidelity),
                                         named_compile_time_args=add["compute"] + norm["compute"]),
            ]
            cbs = RMSNormSingleCore.program_cbs(cores, fp32_dest_acc_en, gamma_cb=R.CB_GAMMA, const_cb=R.CB_CONST,
                                                gram_cb=R.CB_GRAM, diag_cb=R.CB_DIAG, rinv_cb=R.CB_RINV)
            return kernels, cbs

        kernels, cbs = _CACHE.get_or_build(key, build)
        tensor_cbs = [ttnn.cb_descriptor_from_sharded_tensor(i, t) for i, t in (
            (R.CB_X, x), (R.CB_RES, residual), (R.CB_GAMMA_RM, gamma), (R.CB_SUM, s_out), (R.CB_OUT, y_out))]
        return ttnn.ProgramDescriptor(kernels=kernels, semaphores=[], cbs=tensor_cbs + cbs)

    @staticmethod
    def op(x, residual, gamma, s_out, y_out, *, epsilon: float = 1e-6, fp32_dest_acc_en: bool = True,
           math_fidelity=ttnn.MathFidelity.HiFi4):
        """Writes s_out and y_out in one program; returns (s_out, y_out). generic_op returns its last tensor
        (y_out); s_out is written in place by the same program."""
        program = ResidualRMSNormSingleCore.program_descriptor(x, residual, gamma, s_out, y_out, epsilon=epsilon,
                                                               fp32_dest_acc_en=fp32_dest_acc_en,
                                                               math_fidelity=math_fidelity)
        y_out = ttnn.generic_op([x, residual, gamma, s_out, y_out], program)
        return s_out, y_out


def residual_rms_norm(x, residual, gamma, *, epsilon: float = 1e-6, fp32_dest_acc_en: bool = True,
                      math_fidelity=ttnn.MathFidelity.HiFi4):
    """Device entry: returns (s, y) = (x + residual, rmsnorm(x + residual) * gamma), both allocated like x."""
    U.expect_tensor("x", x, memory_layout=ttnn.TensorMemoryLayout.HEIGHT_SHARDED)

    def alloc():
        return ttnn.allocate_tensor_on_device(x.shape, x.dtype, x.layout, x.device(), x.memory_config())

    return ResidualRMSNormSingleCore.op(x, residual, gamma, alloc(), alloc(), epsilon=epsilon,
                                        fp32_dest_acc_en=fp32_dest_acc_en, math_fidelity=math_fidelity)


def _golden(x, residual, gamma, *, epsilon: float = 1e-6, fp32_dest_acc_en: bool = True, math_fidelity=None):
    return ResidualRMSNormSingleCore.golden(x, residual, gamma, epsilon=epsilon, fp32_dest_acc_en=fp32_dest_acc_en)


def _output_shape(x_shape, residual_shape=None, gamma_shape=None, **_):
    return [list(x_shape), list(x_shape)]  # (s, y)


residual_rms_norm.golden = _golden
residual_rms_norm.output_shape = _output_shape
residual_rms_norm.check = ResidualRMSNormSingleCore.check
