"""Decode matmul micro-op: act [M <= 32, K] @ weight [K, N], weight width-sharded in L1 over a rectangle of
cores, act multicast from the one core that holds it, optional fused activation (silu / sigmoid / relu).

Placement (the single variant, MatmulWidthSharded):
  a    [..., M, K]  bfloat16, TILE, L1 HEIGHT_SHARDED on ONE core S, shard [32, K]; M <= 32, leading dims 1
  w    [..., K, N]  bfloat16, TILE, L1 WIDTH_SHARDED over a rectangle G of C cores, shard [K, N/C]
                    (ROW_MAJOR orientation: core i of G in row-major order holds columns [i*N/C, (i+1)*N/C))
  out  [..., M, N]  bfloat16, TILE, L1 WIDTH_SHARDED over G, shard [32, N/C]
N/C must be a multiple of 32. S may be inside or outside G.

in0 distribution: multicast (not replication). S's BRISC waits until every other core of G has reserved
room and counted itself in on S's `ready` semaphore, writes the K/32 act tiles to the same L1 address on all
of G in one NOC multicast, then multicasts VALID into their `valid` semaphore. When S is in G it computes
from its own shard and is not a multicast destination. Each core of G then runs act @ its weight shard.

Kernel: kernels/matmul/matmul_kernel.cpp -> kernels/unified/matmul.hpp (Mcast::Op, Matmul::Op).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import ttnn

from micro_ops import common
from micro_ops.rmsnorm import _util as U

ACTIVATIONS = {None: 0, "silu": 1, "sigmoid": 2, "relu": 3}
_TORCH_ACT = {None: lambda t: t, "silu": torch.nn.functional.silu, "sigmoid": torch.sigmoid, "relu": torch.relu}
MAX_CORES = 64  # 8x8 worker grid of an N150

_CACHE = U.DescriptorCache()


def subblock_width(nt: int, fp32_dest_acc_en: bool) -> int:
    """Largest divisor of nt that fits one DST half."""
    cap = U.DST_TILES_FP32 if fp32_dest_acc_en else U.DST_TILES_BF16
    return max(d for d in range(1, cap + 1) if nt % d == 0)


def activation_code(activation) -> int:
    if activation not in ACTIVATIONS:
        raise U.InvalidInputError(f"activation {activation!r}: expected one of {sorted(map(str, ACTIVATIONS))}")
    return ACTIVATIONS[activation]


# ---------------------------------------------------------------------------------------------
# multicast plan (shared with rmsnorm_matmul)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class McastPlan:
    """Roles of the cores in one sender -> rectangle multicast."""

    sender: ttnn.CoreCoord
    grid: ttnn.CoreRange
    sender_noc: tuple[int, int]
    start_noc: tuple[int, int]
    end_noc: tuple[int, int]

    @staticmethod
    def make(device, sender: ttnn.CoreCoord, grid: ttnn.CoreRange) -> "McastPlan":
        return McastPlan(sender, grid, U.noc_xy(device, sender), U.noc_xy(device, grid.start),
                         U.noc_xy(device, grid.end))

    @property
    def sender_in_grid(self) -> bool:
        return U.in_rect(self.sender, self.grid)

    @property
    def num_dests(self) -> int:
        return U.rect_size(self.grid) - (1 if self.sender_in_grid else 0)

    def sender_set(self) -> ttnn.CoreRangeSet:
        return U.single_core(self.sender)

    def grid_set(self) -> ttnn.CoreRangeSet:
        return U.core_set(self.grid)

    def receivers(self) -> list[ttnn.CoreRange]:
        """G minus the sender, as row segments (empty when G is just the sender)."""
        out = []
        g = self.grid
        for y in range(g.start.y, g.end.y + 1):
            xs = [x for x in range(g.start.x, g.end.x + 1) if not (x == self.sender.x and y == self.sender.y)]
            # split the row where the sender was removed
            seg = []
            for x in xs:
                if seg and x != seg[-1] + 1:
                    out.append(ttnn.CoreRange(ttnn.CoreCoord(seg[0], y), ttnn.CoreCoord(seg[-1], y)))
                    seg = []
                seg.append(x)
            if seg:
                out.append(ttnn.CoreRange(ttnn.CoreCoord(seg[0], y), ttnn.CoreCoord(seg[-1], y)))
        return out

    def receiver_set(self) -> ttnn.CoreRangeSet | None:
        r = self.receivers()
        return U.core_set(*r) if r else None

    def all_set(self) -> ttnn.CoreRangeSet:
        if self.sender_in_grid:
            return self.grid_set()
        return U.core_set(self.grid, ttnn.CoreRange(self.sender, self.sender))

    def reader_args(self, *, sender: bool, src_cb: int, push_src: bool, dst_cb: int, num_blocks: int,
                    block_tiles: int, ready_sem: int, valid_sem: int) -> list[tuple[str, int]]:
        return [("mc_src_cb", src_cb), ("mc_push_src", int(sender and push_src)), ("mc_dst_cb", dst_cb),
                ("mc_num_blocks", num_blocks), ("mc_block_tiles", block_tiles), ("mc_sender_x", self.sender_noc[0]),
                ("mc_sender_y", self.sender_noc[1]), ("mc_ready_sem", ready_sem), ("mc_valid_sem", valid_sem),
                ("mc_is_receiver", int(not sender))]

    def writer_args(self, *, sender: bool, src_cb: int, dst_cb: int, num_blocks: int, block_tiles: int, slots: int,
                    pop_src: bool, tile_bytes: int, ready_sem: int, valid_sem: int,
                    valid_src_sem: int) -> list[tuple[str, int]]:
        return [("mc_src_cb", src_cb), ("mc_dst_cb", dst_cb), ("mc_num_blocks", num_blocks),
                ("mc_block_tiles", block_tiles), ("mc_slots", slots), ("mc_pop_src", int(pop_src)),
                ("mc_tile_bytes", tile_bytes), ("mc_start_x", self.start_noc[0]), ("mc_start_y", self.start_noc[1]),
                ("mc_end_x", self.end_noc[0]), ("mc_end_y", self.end_noc[1]), ("mc_num_dests", self.num_dests),
                ("mc_ready_sem", ready_sem), ("mc_valid_sem", valid_sem), ("mc_valid_src_sem", valid_src_sem),
                ("mc_is_sender", int(sender))]

    def semaphores(self, ready_sem: int, valid_sem: int, valid_src_sem: int) -> list[ttnn.SemaphoreDescriptor]:
        cores = self.all_set()
        return [ttnn.SemaphoreDescriptor(id=i, core_ranges=cores, initial_value=0)
                for i in (ready_sem, valid_sem, valid_src_sem)]


# ---------------------------------------------------------------------------------------------
# op
# ---------------------------------------------------------------------------------------------

class MatmulWidthSharded:
    CB_IN0_SRC = 0   # a's shard on S
    CB_IN1 = 1       # weight shard on each core of G
    CB_IN0 = 2       # multicast destination on G (and S, for the common address)
    CB_OUT = 16      # output shard on G
    SEM_READY, SEM_VALID, SEM_VALID_SRC = 0, 1, 2
    KERNEL = "matmul/matmul_kernel.cpp"

    @staticmethod
    def golden(a: torch.Tensor, w: torch.Tensor, *, activation=None, fp32_dest_acc_en: bool = True) -> torch.Tensor:
        """act(a @ w) with the kernel's rounding: bf16 inputs; fp32_dest_acc_en=True accumulates in fp32 and
        rounds once; False adds each 32-deep K-tile partial (exact in the FPU) into a bf16 running sum and
        applies the activation to that bf16 value. Returns bf16 [..., M, N]."""
        return matmul_reference(a, w, activation=activation, fp32_dest_acc_en=fp32_dest_acc_en)

    @staticmethod
    def check(a_shape, w_shape, *, num_cores: int, activation=None,
              a_dtype=ttnn.bfloat16, w_dtype=ttnn.bfloat16, fp32_dest_acc_en: bool = True,
              check_l1: bool = True) -> str | None:
        """None if the variant runs these shapes on `num_cores` weight cores, else the reason.
        check_l1=False skips this op's own L1 budget (fused ops compute theirs)."""
        rw = U.rows_and_width(a_shape)
        if rw is None:
            return f"a shape {list(a_shape)}: expected [..., M, K] with all leading dims 1"
        m, k = rw
        if not 1 <= m <= U.TILE:
            return f"a has {m} rows: the decode variant handles 1..32 rows"
        kn = U.rows_and_width(w_shape)
        if kn is None:
            return f"weight shape {list(w_shape)}: expected [..., K, N] with all leading dims 1"
        wk, n = kn
        if wk != k:
            return f"inner dims differ: a is [.., {k}], weight is [{wk}, ..]"
        if k % U.TILE:
            return f"K={k} is not a multiple of 32"
        if activation not in ACTIVATIONS:
            return f"activation {activation!r} is not fused (have: silu, sigmoid, relu)"
        if a_dtype != ttnn.bfloat16 or w_dtype != ttnn.bfloat16:
            return f"dtypes {a_dtype}/{w_dtype}: only bfloat16"
        if not 1 <= num_cores <= MAX_CORES:
            return f"{num_cores} cores: expected 1..{MAX_CORES}"
        if n % (U.TILE * num_cores):
            return f"N={n} does not split into {num_cores} shards of whole tiles"
        need = MatmulWidthSharded.l1_bytes(k, n // num_cores)
        if check_l1 and need > U.L1_BYTES_PER_CORE:
            return (f"a weight core needs {need} B of L1 (K={k}, {n // num_cores} columns per core), more than "
                    f"{U.L1_BYTES_PER_CORE} B: use more cores")
        return None

    @staticmethod
    def l1_bytes(k: int, n_per_core: int) -> int:
        """L1 address range the op needs. tt-metal gives a sharded buffer the same address range on every
        core (banks are allocated in lockstep), so the act shard, the weight shard, the output shard and the
        program CB all count on every core, wherever they physically live."""
        kt, nct = k // U.TILE, n_per_core // U.TILE
        t = U.BF16_TILE_BYTES
        return 2 * kt * t + kt * nct * t + nct * t

    @staticmethod
    def validate(a, w, out):
        """Raise InvalidInputError naming the expectation. Returns (sender core, grid rect, m, k, n)."""
        U.expect_tensor("a", a, memory_layout=ttnn.TensorMemoryLayout.HEIGHT_SHARDED)
        U.expect_tensor("weight", w, memory_layout=ttnn.TensorMemoryLayout.WIDTH_SHARDED)
        a_shape, w_shape = U.shape_list(a.shape), U.shape_list(w.shape)
        a_grid = a.memory_config().shard_spec.grid
        a_rng = U.single_rect(a_grid, "a")
        if U.rect_size(a_rng) != 1:
            raise U.InvalidInputError(f"a: expected a shard on exactly one core, got grid {a_grid}")
        w_grid = w.memory_config().shard_spec.grid
        g = U.single_rect(w_grid, "weight")
        c = U.rect_size(g)
        reason = MatmulWidthSharded.check(a_shape, w_shape, num_cores=c)
        if reason:
            raise U.InvalidInputError(reason)
        m, k = U.rows_and_width(a_shape)
        n = w_shape[-1]
        U.expect_tensor("a", a, memory_layout=ttnn.TensorMemoryLayout.HEIGHT_SHARDED, shard_shape=(U.TILE, k))
        U.expect_tensor("weight", w, memory_layout=ttnn.TensorMemoryLayout.WIDTH_SHARDED, shard_shape=(k, n // c))
        U.expect_tensor("out", out, memory_layout=ttnn.TensorMemoryLayout.WIDTH_SHARDED, grid=w_grid,
                        shard_shape=(U.TILE, n // c), shape=a_shape[:-1] + [n])
        U.same_device(a=a, weight=w, out=out)
        return a_rng.start, g, m, k, n

    @staticmethod
    def compute_config(fp32_dest_acc_en: bool, math_fidelity) -> ttnn.ComputeConfigDescriptor:
        return ttnn.ComputeConfigDescriptor(math_fidelity=math_fidelity, math_approx_mode=False,
                                            fp32_dest_acc_en=fp32_dest_acc_en, dst_full_sync_en=False)

    @staticmethod
    def matmul_args(*, in0_cb: int, in1_cb: int, out_cb: int, kt: int, nt: int, activation,
                    fp32_dest_acc_en: bool, prefix: str = "mm_") -> dict[str, list[tuple[str, int]]]:
        p = prefix
        return {
            "reader": [(p + "in1_cb", in1_cb), (p + "in1_tiles", kt * nt)],
            "writer": [(p + "out_cb", out_cb), (p + "out_tiles", nt)],
            "compute": [(p + "in0_cb", in0_cb), (p + "in1_cb", in1_cb), (p + "out_cb", out_cb), (p + "kt", kt),
                        (p + "nt", nt), (p + "subblock", subblock_width(nt, fp32_dest_acc_en)),
                        (p + "act", activation_code(activation))],
        }

    @staticmethod
    def op(a, w, out, *, activation=None, fp32_dest_acc_en: bool = True, math_fidelity=ttnn.MathFidelity.HiFi4):
        """Run on device into the pre-allocated `out`; returns `out`."""
        program = MatmulWidthSharded.program_descriptor(a, w, out, activation=activation,
                                                        fp32_dest_acc_en=fp32_dest_acc_en,
                                                        math_fidelity=math_fidelity)
        return ttnn.generic_op([a, w, out], program)

    @staticmethod
    def program_descriptor(a, w, out, *, activation=None, fp32_dest_acc_en: bool = True,
                           math_fidelity=ttnn.MathFidelity.HiFi4) -> ttnn.ProgramDescriptor:
        """Validate the tensors and build the ProgramDescriptor op() runs. Cached per tensor signature and
        config: validation runs on a miss only (a hit means these exact properties were validated before)."""
        act_code = activation_code(activation)
        S = MatmulWidthSharded
        key = ("matmul", act_code, bool(fp32_dest_acc_en), str(math_fidelity), U.signature_key(a=a, weight=w, out=out))

        def build():
            sender, grid, m, k, n = MatmulWidthSharded.validate(a, w, out)
            c = U.rect_size(grid)
            kt, nt = k // U.TILE, n // (U.TILE * c)
            plan = McastPlan.make(a.device(), sender, grid)
            kernels = []

            def mm(in0_cb):
                return S.matmul_args(in0_cb=in0_cb, in1_cb=S.CB_IN1, out_cb=S.CB_OUT, kt=kt, nt=nt,
                                     activation=activation, fp32_dest_acc_en=fp32_dest_acc_en)

            def mc_reader(is_sender):
                return plan.reader_args(sender=is_sender, src_cb=S.CB_IN0_SRC, push_src=True, dst_cb=S.CB_IN0,
                                        num_blocks=1, block_tiles=kt, ready_sem=S.SEM_READY, valid_sem=S.SEM_VALID)

            def mc_writer(is_sender):
                return plan.writer_args(sender=is_sender, src_cb=S.CB_IN0_SRC, dst_cb=S.CB_IN0, num_blocks=1,
                                        block_tiles=kt, slots=1, pop_src=False, tile_bytes=U.BF16_TILE_BYTES,
                                        ready_sem=S.SEM_READY, valid_sem=S.SEM_VALID, valid_src_sem=S.SEM_VALID_SRC)

            def add(cores, config, named):
                kernels.append(common.kernel_descriptor(S.KERNEL, cores, config, named_compile_time_args=named))

            ccfg = S.compute_config(fp32_dest_acc_en, math_fidelity)
            # the sender core: computes from its own shard when it is in G
            s_mm = mm(S.CB_IN0_SRC)
            s_is_mm = [("is_mm_core", int(plan.sender_in_grid))]
            add(plan.sender_set(), ttnn.ReaderConfigDescriptor(), s_is_mm + mc_reader(True) + s_mm["reader"])
            add(plan.sender_set(), ttnn.WriterConfigDescriptor(), s_is_mm + mc_writer(True) + s_mm["writer"])
            if plan.sender_in_grid:
                add(plan.sender_set(), ccfg, s_is_mm + s_mm["compute"])
            # the other cores of G: multicast receivers
            rx = plan.receiver_set()
            if rx is not None:
                r_mm = mm(S.CB_IN0)
                on = [("is_mm_core", 1)]
                add(rx, ttnn.ReaderConfigDescriptor(), on + mc_reader(False) + r_mm["reader"])
                add(rx, ttnn.WriterConfigDescriptor(), on + mc_writer(False) + r_mm["writer"])
                add(rx, ccfg, on + r_mm["compute"])
            cbs = [U.cb(S.CB_IN0, ttnn.bfloat16, kt, plan.all_set())]
            sems = plan.semaphores(S.SEM_READY, S.SEM_VALID, S.SEM_VALID_SRC)
            return kernels, cbs, sems

        kernels, cbs, sems = _CACHE.get_or_build(key, build)
        tensor_cbs = [
            ttnn.cb_descriptor_from_sharded_tensor(S.CB_IN0_SRC, a),
            ttnn.cb_descriptor_from_sharded_tensor(S.CB_IN1, w),
            ttnn.cb_descriptor_from_sharded_tensor(S.CB_OUT, out),
        ]
        return ttnn.ProgramDescriptor(kernels=kernels, semaphores=sems, cbs=tensor_cbs + cbs)


# ---------------------------------------------------------------------------------------------
# golden, placement helpers, device entry
# ---------------------------------------------------------------------------------------------

def _bf16(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.bfloat16).float()


def matmul_reference(a: torch.Tensor, w: torch.Tensor, *, activation=None, fp32_dest_acc_en: bool = True) -> torch.Tensor:
    if activation not in _TORCH_ACT:
        raise ValueError(f"activation {activation!r} not supported")
    ab, wb = _bf16(a), _bf16(w)
    k = ab.shape[-1]
    w2 = wb.reshape(wb.shape[-2], wb.shape[-1])
    if fp32_dest_acc_en:
        y = ab @ w2
    else:
        if k % U.TILE:
            raise ValueError("K must be a multiple of 32")
        kt, n = k // U.TILE, w2.shape[-1]
        # one exact (fp32) partial per 32-deep K tile, then the bf16 running sum DST would hold
        parts = torch.einsum("...tk,tkn->...tn", ab.reshape(*ab.shape[:-1], kt, U.TILE), w2.reshape(kt, U.TILE, n))
        y = torch.zeros(*ab.shape[:-1], n)
        for i in range(kt):
            y = _bf16(y + _bf16(parts[..., i, :]))
    return _TORCH_ACT[activation](y).to(torch.bfloat16)


def a_memory_config(k: int, core: ttnn.CoreCoord = ttnn.CoreCoord(0, 0)) -> ttnn.MemoryConfig:
    """L1 height-sharded [32, K] on one core: where the activation must live."""
    return U.height_sharded(core, (U.TILE, k))


def weight_memory_config(k: int, n: int, grid: ttnn.CoreRange) -> ttnn.MemoryConfig:
    return U.width_sharded(grid, (k, n // U.rect_size(grid)))


def out_memory_config(n: int, grid: ttnn.CoreRange) -> ttnn.MemoryConfig:
    return U.width_sharded(grid, (U.TILE, n // U.rect_size(grid)))


def prepare_weight(w: torch.Tensor, device, grid: ttnn.CoreRange):
    """Place a torch [K, N] weight width-sharded over `grid` (TILE, bfloat16)."""
    w2 = w.reshape(w.shape[-2], w.shape[-1]).to(torch.bfloat16)
    k, n = w2.shape
    return ttnn.from_torch(w2, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device,
                           memory_config=weight_memory_config(k, n, grid))


def allocate_output(a, w):
    """Pre-allocate [..., M, N] width-sharded like the weight."""
    grid = U.single_rect(w.memory_config().shard_spec.grid, "weight")
    n = int(w.shape[-1])
    shape = U.shape_list(a.shape)[:-1] + [n]
    return ttnn.allocate_tensor_on_device(ttnn.Shape(shape), ttnn.bfloat16, ttnn.TILE_LAYOUT, a.device(),
                                          out_memory_config(n, grid))


def matmul(a, w, *, activation=None, fp32_dest_acc_en: bool = True, math_fidelity=ttnn.MathFidelity.HiFi4):
    """Device entry: allocates out width-sharded like `w` and runs MatmulWidthSharded.op."""
    U.expect_tensor("weight", w, memory_layout=ttnn.TensorMemoryLayout.WIDTH_SHARDED)
    U.expect_tensor("a", a, memory_layout=ttnn.TensorMemoryLayout.HEIGHT_SHARDED)
    out = allocate_output(a, w)
    return MatmulWidthSharded.op(a, w, out, activation=activation, fp32_dest_acc_en=fp32_dest_acc_en,
                                 math_fidelity=math_fidelity)


def _matmul_golden(a, w, *, activation=None, fp32_dest_acc_en: bool = True, math_fidelity=None):
    return matmul_reference(a, w, activation=activation, fp32_dest_acc_en=fp32_dest_acc_en)


def _matmul_output_shape(a_shape, w_shape, **_):
    return list(a_shape)[:-1] + [list(w_shape)[-1]]


matmul.golden = _matmul_golden
matmul.output_shape = _matmul_output_shape
matmul.check = MatmulWidthSharded.check
