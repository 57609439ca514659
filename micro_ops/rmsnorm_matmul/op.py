"""Fused RMSNorm -> Matmul in ONE program (and the two-output form: one norm feeding two matmuls).

    y  = act(rmsnorm(x, gamma, eps) @ w)                              RMSNormMatmul
    y1 = act1(rmsnorm(x) @ w1), y3 = act3(rmsnorm(x) @ w3)            RMSNormDualMatmul (FF1 / FF3 of an MLP)

Placement:
  x      [..., M, K]  bfloat16 TILE, L1 HEIGHT_SHARDED on ONE core S (the norm core), shard [32, K], M <= 32
  gamma  [..., K]     bfloat16 ROW_MAJOR, L1 HEIGHT_SHARDED on S, shard [1, K]   (see micro_ops.rmsnorm)
  w, w3  [K, N_i]     bfloat16 TILE, L1 WIDTH_SHARDED over ONE rectangle G of C cores, shard [K, N_i/C]
  y, y3  [..., M, N_i] bfloat16 TILE, L1 WIDTH_SHARDED over G, shard [32, N_i/C]
S may be inside or outside G.

Dataflow (kernels/rmsnorm_matmul/rmsnorm_matmul_kernel.cpp): on S, RMSNorm::Op writes the normalized rows
into act_cb (never to DRAM or a tensor); S's BRISC multicasts act_cb to the same address on every other
core of G (Mcast::Op, ready/valid semaphores); every core of G runs Matmul::Op (twice in the dual form) on
its weight shard. The normalized activation is rounded to bf16 once, in act_cb, as the unfused chain would.

Two modes, chosen by `plan()` (resident preferred when it fits):
  resident  act_cb holds all K/32 tiles on S and on every core of G; one multicast; any N per core.
  streamed  (STREAM_ACT) act_cb is a ring of 2 x B tiles: the norm packs B-tile chunks, the sender multicasts
            each block into the weight cores' rings as soon as it is ready and MatmulStreamed consumes it block
            by block, so the act never has to fit in L1 whole. Needs S outside G and all output tiles of a core
            (both weights) in one DST half (<= 4 tiles with fp32 accumulation, <= 8 without). This is what lets
            K=7168 fit: x [32, 7168] and a 7168-deep weight shard already take 0.9 MB of the 1.39 MB per core.
"""
from __future__ import annotations

import math

import torch
import ttnn

from micro_ops import common
from micro_ops.matmul import McastPlan, MatmulWidthSharded, matmul_reference
from micro_ops.matmul.op import ACTIVATIONS, activation_code
from micro_ops.rmsnorm import RMSNormSingleCore, rms_norm_reference
from micro_ops.rmsnorm import _util as U

_CACHE = common.DescriptorCache()


class _Fused:
    CB_X = 0
    CB_GAMMA_RM = 1
    CB_GAMMA = 2
    CB_CONST = 3
    CB_GRAM = 4
    CB_DIAG = 5
    CB_RINV = 6
    CB_ACT = 7          # normalized activation: produced on S, multicast to G
    CB_W = (8, 9)       # weight shard(s)
    CB_OUT = (16, 17)   # output shard(s)
    SEM_READY, SEM_VALID, SEM_VALID_SRC = 0, 1, 2
    KERNEL = "rmsnorm_matmul/rmsnorm_matmul_kernel.cpp"
    STREAM_BLOCK_MAX_TILES = 32   # a multicast block of the streamed act: at most 64 KB

    # -------------------------------------------------------------- constraints
    @staticmethod
    def _check(x_shape, gamma_shape, w_shapes, *, num_cores, activations, fp32_dest_acc_en,
               norm_core_in_grid: bool = False, stream: bool | None = None, x_dtype=ttnn.bfloat16,
               w_dtype=ttnn.bfloat16) -> str | None:
        mode = _Fused.plan(x_shape, gamma_shape, w_shapes, num_cores=num_cores, activations=activations,
                           fp32_dest_acc_en=fp32_dest_acc_en, norm_core_in_grid=norm_core_in_grid, stream=stream,
                           x_dtype=x_dtype, w_dtype=w_dtype)
        return None if mode[0] else mode[1]

    @staticmethod
    def plan(x_shape, gamma_shape, w_shapes, *, num_cores, activations, fp32_dest_acc_en,
             norm_core_in_grid: bool = False, stream: bool | None = None, x_dtype=ttnn.bfloat16,
             w_dtype=ttnn.bfloat16) -> tuple[str | None, str | int]:
        """("resident", 0) or ("streamed", block tiles) when the op can run, else (None, reason).
        stream=None picks resident when it fits, True / False force a mode."""
        reason = RMSNormSingleCore.check(x_shape, gamma_shape, x_dtype=x_dtype, fp32_dest_acc_en=fp32_dest_acc_en)
        if reason:
            return None, reason
        for i, (ws, act) in enumerate(zip(w_shapes, activations)):
            r = MatmulWidthSharded.check(x_shape, ws, num_cores=num_cores, activation=act, w_dtype=w_dtype,
                                         check_l1=False)
            if r:
                return None, f"weight {i}: {r}"
        k = list(x_shape)[-1]
        per_core = [list(ws)[-1] // num_cores for ws in w_shapes]
        need = _Fused.l1_bytes(k, per_core, fp32_dest_acc_en, act_tiles=k // U.TILE)
        if need <= U.L1_BYTES_PER_CORE and not stream:
            return "resident", 0
        why = (f"the resident activation needs {need} B of L1 per core (K={k}, columns per core {per_core})"
               if not stream else "streaming requested")
        if stream is False:
            return None, why + f", more than {U.L1_BYTES_PER_CORE} B"
        blk = _Fused.stream_block(k // U.TILE, fp32_dest_acc_en)
        nts = sum(n // U.TILE for n in per_core)
        if norm_core_in_grid:
            return None, why + "; streaming it needs the norm core outside the weight grid"
        if nts > RMSNormSingleCore.block(fp32_dest_acc_en):
            return None, (why + f"; streaming it needs <= {RMSNormSingleCore.block(fp32_dest_acc_en)} output tiles "
                          f"per core (one DST half), got {nts}: use more weight cores")
        if blk is None:
            return None, why + "; streaming it needs K/32 to be a multiple of the DST block"
        need = _Fused.l1_bytes(k, per_core, fp32_dest_acc_en, act_tiles=2 * blk)
        if need > U.L1_BYTES_PER_CORE:
            return None, (why + f"; streamed it still needs {need} B (x, gamma and weight shards take the same "
                          f"address range on every core), more than {U.L1_BYTES_PER_CORE} B: use more weight cores")
        return "streamed", blk

    @staticmethod
    def stream_block(kt: int, fp32_dest_acc_en: bool) -> int | None:
        """Tiles per multicast block of the streamed act: a multiple of the norm's DST block dividing K/32."""
        b = RMSNormSingleCore.block(fp32_dest_acc_en)
        cands = [d for d in range(b, _Fused.STREAM_BLOCK_MAX_TILES + 1, b) if kt % d == 0]
        return max(cands) if cands else None

    @staticmethod
    def l1_bytes(k: int, n_per_core: list[int], fp32_dest_acc_en: bool, act_tiles: int | None = None) -> int:
        """Sharded buffers take the same address range on every core (lockstep banks): x, gamma, weight and
        output shards all count; the program CBs on the norm core (act + norm scratch) are the largest CB set."""
        kt = k // U.TILE
        act_tiles = kt if act_tiles is None else act_tiles
        t = U.BF16_TILE_BYTES
        tensors = kt * t + U.ceil_div(k * 2, 32) * 32 + sum(kt * (n // U.TILE) * t + (n // U.TILE) * t for n in n_per_core)
        return tensors + act_tiles * t + RMSNormSingleCore.program_cb_bytes(fp32_dest_acc_en)

    # -------------------------------------------------------------- runtime validation
    @staticmethod
    def _validate(x, gamma, weights, outs, activations, fp32_dest_acc_en, stream=None):
        for a in activations:
            activation_code(a)
        core, rows, k = RMSNormSingleCore.validate_inputs(x, gamma)
        grid_set = None
        for i, w in enumerate(weights):
            U.expect_tensor(f"weight{i}", w, memory_layout=ttnn.TensorMemoryLayout.WIDTH_SHARDED)
            g = w.memory_config().shard_spec.grid
            if grid_set is None:
                grid_set = g
            elif g != grid_set:
                raise U.InvalidInputError(f"weight{i}: expected the same shard grid as weight0 ({grid_set}), got {g}")
        grid = U.single_rect(grid_set, "weight0")
        c = U.rect_size(grid)
        xs = U.shape_list(x.shape)
        mode, detail = _Fused.plan(xs, U.shape_list(gamma.shape), [U.shape_list(w.shape) for w in weights],
                                   num_cores=c, activations=activations, fp32_dest_acc_en=fp32_dest_acc_en,
                                   norm_core_in_grid=U.in_rect(core, grid), stream=stream)
        if mode is None:
            raise U.InvalidInputError(detail)
        ns = [int(w.shape[-1]) for w in weights]
        for i, (w, o, n) in enumerate(zip(weights, outs, ns)):
            U.expect_tensor(f"weight{i}", w, memory_layout=ttnn.TensorMemoryLayout.WIDTH_SHARDED,
                            shard_shape=(k, n // c))
            U.expect_tensor(f"out{i}", o, memory_layout=ttnn.TensorMemoryLayout.WIDTH_SHARDED, grid=grid_set,
                            shard_shape=(U.TILE, n // c), shape=xs[:-1] + [n])
        U.same_device(x=x, gamma=gamma, **{f"weight{i}": w for i, w in enumerate(weights)},
                      **{f"out{i}": o for i, o in enumerate(outs)})
        return core, grid, k, ns, mode, detail

    # -------------------------------------------------------------- descriptor
    @staticmethod
    def _program(x, gamma, weights, outs, *, epsilon, activations, fp32_dest_acc_en, math_fidelity, stream=None):
        if not 0.0 <= float(epsilon) < 1.0:
            raise U.InvalidInputError(f"epsilon {epsilon}: expected 0 <= epsilon < 1")
        F = _Fused
        nmm = len(weights)
        for a in activations:
            activation_code(a)
        # cached per tensor signature and config: validation runs on a miss only
        key = ("rmsnorm_matmul", nmm, tuple(activations), float(epsilon), bool(fp32_dest_acc_en), str(math_fidelity),
               stream, U.signature_key(x=x, gamma=gamma, **{f"weight{i}": w for i, w in enumerate(weights)},
                                       **{f"out{i}": o for i, o in enumerate(outs)}))

        def build():
            sender, grid, k, ns, mode, stream_blk = _Fused._validate(x, gamma, weights, outs, activations,
                                                                     fp32_dest_acc_en, stream)
            streamed = mode == "streamed"
            c = U.rect_size(grid)
            kt = k // U.TILE
            plan = McastPlan.make(x.device(), sender, grid)
            norm = RMSNormSingleCore.named_args(
                width=k, epsilon=epsilon, fp32_dest_acc_en=fp32_dest_acc_en, x_cb=F.CB_X, out_cb=F.CB_ACT,
                gamma_rm_cb=F.CB_GAMMA_RM, gamma_cb=F.CB_GAMMA, const_cb=F.CB_CONST, gram_cb=F.CB_GRAM,
                diag_cb=F.CB_DIAG, rinv_cb=F.CB_RINV, push_x=True, rows=math.prod(U.shape_list(x.shape)[:-1]),
                prefix="rms_")
            mms = [MatmulWidthSharded.matmul_args(in0_cb=F.CB_ACT, in1_cb=F.CB_W[i], out_cb=F.CB_OUT[i], kt=kt,
                                                  nt=ns[i] // (U.TILE * c), activation=activations[i],
                                                  fp32_dest_acc_en=fp32_dest_acc_en,
                                                  prefix="mm_" if i == 0 else "mm2_")
                   for i in range(nmm)]
            defines = {"DUAL_MATMUL": "1"} if nmm == 2 else {}
            if streamed:
                defines["STREAM_ACT"] = "1"
            n_blocks, blk = (kt // stream_blk, stream_blk) if streamed else (1, kt)

            def role_args(kind, *, is_sender):
                out = list(norm[kind]) if kind != "writer" else []
                for m in mms:
                    out += m[kind]
                if kind == "compute" and streamed:
                    out += [("ms_in0_block", blk)]
                if kind == "reader":
                    out += plan.reader_args(sender=is_sender, src_cb=F.CB_ACT, push_src=False, dst_cb=F.CB_ACT,
                                            num_blocks=n_blocks, block_tiles=blk, ready_sem=F.SEM_READY,
                                            valid_sem=F.SEM_VALID)
                elif kind == "writer":
                    out += plan.writer_args(sender=is_sender, src_cb=F.CB_ACT, dst_cb=F.CB_ACT,
                                            num_blocks=n_blocks, block_tiles=blk, slots=2 if streamed else 1,
                                            pop_src=streamed, tile_bytes=U.BF16_TILE_BYTES, ready_sem=F.SEM_READY,
                                            valid_sem=F.SEM_VALID, valid_src_sem=F.SEM_VALID_SRC)
                return out

            ccfg = RMSNormSingleCore.compute_config(fp32_dest_acc_en, math_fidelity)
            kernels = []

            def add(cores, config, named, flags):
                kernels.append(common.kernel_descriptor(F.KERNEL, cores, config, defines=defines,
                                                        named_compile_time_args=flags + named))

            s_flags = [("is_norm_core", 1), ("is_mm_core", int(plan.sender_in_grid))]
            add(plan.sender_set(), "reader", role_args("reader", is_sender=True), s_flags)
            add(plan.sender_set(), "writer", role_args("writer", is_sender=True), s_flags)
            add(plan.sender_set(), ccfg, role_args("compute", is_sender=True), s_flags)
            rx = plan.receiver_set()
            if rx is not None:
                r_flags = [("is_norm_core", 0), ("is_mm_core", 1)]
                add(rx, "reader", role_args("reader", is_sender=False), r_flags)
                add(rx, "writer", role_args("writer", is_sender=False), r_flags)
                add(rx, ccfg, role_args("compute", is_sender=False), r_flags)

            s_cores = plan.sender_set()
            cbs = RMSNormSingleCore.program_cbs(s_cores, fp32_dest_acc_en, gamma_cb=F.CB_GAMMA, const_cb=F.CB_CONST,
                                                gram_cb=F.CB_GRAM, diag_cb=F.CB_DIAG, rinv_cb=F.CB_RINV)
            cbs.append(U.cb(F.CB_ACT, ttnn.bfloat16, 2 * blk if streamed else kt, plan.all_set()))
            sems = plan.semaphores(F.SEM_READY, F.SEM_VALID, F.SEM_VALID_SRC)
            return kernels, cbs, sems

        kernels, cbs, sems = _CACHE.get_or_build(key, build)
        tensor_cbs = [ttnn.cb_descriptor_from_sharded_tensor(F.CB_X, x),
                      ttnn.cb_descriptor_from_sharded_tensor(F.CB_GAMMA_RM, gamma)]
        for i in range(nmm):
            tensor_cbs.append(ttnn.cb_descriptor_from_sharded_tensor(F.CB_W[i], weights[i]))
            tensor_cbs.append(ttnn.cb_descriptor_from_sharded_tensor(F.CB_OUT[i], outs[i]))
        return ttnn.ProgramDescriptor(kernels=kernels, semaphores=sems, cbs=tensor_cbs + cbs)


class RMSNormMatmul(_Fused):
    """One norm, one matmul: y = act(rmsnorm(x) @ w)."""

    @staticmethod
    def golden(x, gamma, weight, *, epsilon: float = 1e-6, activation=None, fp32_dest_acc_en: bool = True):
        """Composition of the two goldens with the kernel's rounding: the normalized rows are rounded to bf16
        (act_cb is bf16), then the matmul golden (fp32 or bf16 accumulation) and the activation."""
        h = rms_norm_reference(x, gamma, epsilon=epsilon, fp32_dest_acc_en=fp32_dest_acc_en)
        return matmul_reference(h, weight, activation=activation, fp32_dest_acc_en=fp32_dest_acc_en)

    @staticmethod
    def check(x_shape, gamma_shape, w_shape, *, num_cores: int, activation=None, fp32_dest_acc_en: bool = True,
              norm_core_in_grid: bool = False, x_dtype=ttnn.bfloat16, w_dtype=ttnn.bfloat16) -> str | None:
        """None if the op can run (resident or streamed act) on `num_cores` weight cores, else the reason."""
        return _Fused._check(x_shape, gamma_shape, [w_shape], num_cores=num_cores, activations=[activation],
                             fp32_dest_acc_en=fp32_dest_acc_en, norm_core_in_grid=norm_core_in_grid,
                             x_dtype=x_dtype, w_dtype=w_dtype)

    @staticmethod
    def program_descriptor(x, gamma, weight, out, *, epsilon: float = 1e-6, activation=None,
                           fp32_dest_acc_en: bool = True, math_fidelity=ttnn.MathFidelity.HiFi4,
                           stream: bool | None = None):
        return _Fused._program(x, gamma, [weight], [out], epsilon=epsilon, activations=[activation],
                               fp32_dest_acc_en=fp32_dest_acc_en, math_fidelity=math_fidelity, stream=stream)

    @staticmethod
    def op(x, gamma, weight, out, *, epsilon: float = 1e-6, activation=None, fp32_dest_acc_en: bool = True,
           math_fidelity=ttnn.MathFidelity.HiFi4, stream: bool | None = None):
        """Run on device into the pre-allocated `out`; returns `out`. stream: None = auto (see plan)."""
        program = RMSNormMatmul.program_descriptor(x, gamma, weight, out, epsilon=epsilon, activation=activation,
                                                   fp32_dest_acc_en=fp32_dest_acc_en, math_fidelity=math_fidelity,
                                                   stream=stream)
        return ttnn.generic_op([x, gamma, weight, out], program)


class RMSNormDualMatmul(_Fused):
    """One norm, two matmuls on the same weight grid: (act1(h @ w1), act3(h @ w3)), h = rmsnorm(x)."""

    @staticmethod
    def golden(x, gamma, w1, w3, *, epsilon: float = 1e-6, activation1=None, activation3=None,
               fp32_dest_acc_en: bool = True):
        h = rms_norm_reference(x, gamma, epsilon=epsilon, fp32_dest_acc_en=fp32_dest_acc_en)
        return (matmul_reference(h, w1, activation=activation1, fp32_dest_acc_en=fp32_dest_acc_en),
                matmul_reference(h, w3, activation=activation3, fp32_dest_acc_en=fp32_dest_acc_en))

    @staticmethod
    def check(x_shape, gamma_shape, w1_shape, w3_shape, *, num_cores: int, activation1=None, activation3=None,
              fp32_dest_acc_en: bool = True, norm_core_in_grid: bool = False, x_dtype=ttnn.bfloat16,
              w_dtype=ttnn.bfloat16) -> str | None:
        return _Fused._check(x_shape, gamma_shape, [w1_shape, w3_shape], num_cores=num_cores,
                             activations=[activation1, activation3], fp32_dest_acc_en=fp32_dest_acc_en,
                             norm_core_in_grid=norm_core_in_grid, x_dtype=x_dtype, w_dtype=w_dtype)

    @staticmethod
    def program_descriptor(x, gamma, w1, w3, out1, out3, *, epsilon: float = 1e-6, activation1=None,
                           activation3=None, fp32_dest_acc_en: bool = True, math_fidelity=ttnn.MathFidelity.HiFi4,
                           stream: bool | None = None):
        return _Fused._program(x, gamma, [w1, w3], [out1, out3], epsilon=epsilon,
                               activations=[activation1, activation3], fp32_dest_acc_en=fp32_dest_acc_en,
                               math_fidelity=math_fidelity, stream=stream)

    @staticmethod
    def op(x, gamma, w1, w3, out1, out3, *, epsilon: float = 1e-6, activation1=None, activation3=None,
           fp32_dest_acc_en: bool = True, math_fidelity=ttnn.MathFidelity.HiFi4, stream: bool | None = None):
        """Runs both matmuls in one program; returns (out1, out3). generic_op gets [x, gamma, w1, w3, out1,
        out3] and returns its last tensor (out3); out1 is written in place by the same program."""
        program = RMSNormDualMatmul.program_descriptor(x, gamma, w1, w3, out1, out3, epsilon=epsilon,
                                                       activation1=activation1, activation3=activation3,
                                                       fp32_dest_acc_en=fp32_dest_acc_en,
                                                       math_fidelity=math_fidelity, stream=stream)
        out3 = ttnn.generic_op([x, gamma, w1, w3, out1, out3], program)
        return out1, out3


# ---------------------------------------------------------------------------------------------
# device-level entries (fused-graph node targets)
# ---------------------------------------------------------------------------------------------

def _alloc_out(x, w):
    grid = U.single_rect(w.memory_config().shard_spec.grid, "weight")
    n = int(w.shape[-1])
    shape = U.shape_list(x.shape)[:-1] + [n]
    return ttnn.allocate_tensor_on_device(ttnn.Shape(shape), ttnn.bfloat16, ttnn.TILE_LAYOUT, x.device(),
                                          U.width_sharded(grid, (U.TILE, n // U.rect_size(grid))))


def rms_norm_matmul(x, gamma, weight, *, epsilon: float = 1e-6, activation=None, fp32_dest_acc_en: bool = True,
                    math_fidelity=ttnn.MathFidelity.HiFi4, stream: bool | None = None):
    """Device entry: y = act(rmsnorm(x, gamma) @ weight) in one program; allocates y width-sharded like weight."""
    U.expect_tensor("x", x, memory_layout=ttnn.TensorMemoryLayout.HEIGHT_SHARDED)
    U.expect_tensor("weight", weight, memory_layout=ttnn.TensorMemoryLayout.WIDTH_SHARDED)
    out = _alloc_out(x, weight)
    return RMSNormMatmul.op(x, gamma, weight, out, epsilon=epsilon, activation=activation,
                            fp32_dest_acc_en=fp32_dest_acc_en, math_fidelity=math_fidelity, stream=stream)


def rms_norm_dual_matmul(x, gamma, w1, w3, *, epsilon: float = 1e-6, activation1=None, activation3=None,
                         fp32_dest_acc_en: bool = True, math_fidelity=ttnn.MathFidelity.HiFi4,
                         stream: bool | None = None):
    """Device entry: (act1(h @ w1), act3(h @ w3)), h = rmsnorm(x, gamma), one program; returns a tuple."""
    U.expect_tensor("x", x, memory_layout=ttnn.TensorMemoryLayout.HEIGHT_SHARDED)
    for name, w in (("w1", w1), ("w3", w3)):
        U.expect_tensor(name, w, memory_layout=ttnn.TensorMemoryLayout.WIDTH_SHARDED)
    return RMSNormDualMatmul.op(x, gamma, w1, w3, _alloc_out(x, w1), _alloc_out(x, w3), epsilon=epsilon,
                                activation1=activation1, activation3=activation3,
                                fp32_dest_acc_en=fp32_dest_acc_en, math_fidelity=math_fidelity, stream=stream)


def _single_golden(x, gamma, weight, *, epsilon: float = 1e-6, activation=None, fp32_dest_acc_en: bool = True,
                   math_fidelity=None, stream=None):
    return RMSNormMatmul.golden(x, gamma, weight, epsilon=epsilon, activation=activation,
                                fp32_dest_acc_en=fp32_dest_acc_en)


def _dual_golden(x, gamma, w1, w3, *, epsilon: float = 1e-6, activation1=None, activation3=None,
                 fp32_dest_acc_en: bool = True, math_fidelity=None, stream=None):
    return RMSNormDualMatmul.golden(x, gamma, w1, w3, epsilon=epsilon, activation1=activation1,
                                    activation3=activation3, fp32_dest_acc_en=fp32_dest_acc_en)


def _single_shape(x_shape, gamma_shape, w_shape, **_):
    return list(x_shape)[:-1] + [list(w_shape)[-1]]


def _dual_shape(x_shape, gamma_shape, w1_shape, w3_shape, **_):
    return [list(x_shape)[:-1] + [list(w1_shape)[-1]], list(x_shape)[:-1] + [list(w3_shape)[-1]]]


rms_norm_matmul.golden = _single_golden
rms_norm_matmul.output_shape = _single_shape
rms_norm_matmul.check = RMSNormMatmul.check
rms_norm_dual_matmul.golden = _dual_golden
rms_norm_dual_matmul.output_shape = _dual_shape  # two outputs: a list of two shapes
rms_norm_dual_matmul.check = RMSNormDualMatmul.check

__all__ = ["ACTIVATIONS", "RMSNormDualMatmul", "RMSNormMatmul", "rms_norm_dual_matmul", "rms_norm_matmul"]
