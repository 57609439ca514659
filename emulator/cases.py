"""Every micro-op variant as an emulator case: descriptor built on the mock device, inputs, and what its
outputs must be. Shared by tests/test_emulator.py and the kernel mutation script (emulator/mutants.py).

A case's outputs are checked twice with fusion.numerics.check_output (the bound the verifier uses):
against the micro-op's golden and against the unfused ttnn chain it replaces, both measured from exact
float64 arithmetic. Data movement is compared bit for bit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import ttnn

EPS = 1e-5
_ACT64 = {None: lambda t: t, "silu": torch.nn.functional.silu, "sigmoid": torch.sigmoid, "relu": torch.relu}


@dataclass
class Built:
    program: object
    tensors: list
    inputs: list
    expect: Callable  # (outputs) -> None or the reason they are wrong
    pad_value: float = 0.0


@dataclass
class Case:
    name: str
    build: Callable  # device -> Built


def _bf(t):
    return t.to(torch.bfloat16)


# The verifier's bound (fusion.numerics) with 4 ulp instead of 2: the emulator rounds fp32 operands to TF32 in srcA / srcB as
# Wormhole does, while the goldens, like ttnn's golden functions for the unfused ops, compute in fp32 (both
# sides idealised alike, so the verifier compares like with like). Measured: up to 3.0 ulp apart on isolated
# elements; every kernel mutant the cases catch is off by far more (NaN, wrong scale, hundreds of ulp).
def _tolerance():
    from fusion.numerics import Tolerance

    return Tolerance(ulps=4.0)


def _compare(got, golden, unfused, exact, where) -> str | None:
    """Within the verifier's bound against the golden and, when given, against the unfused chain.
    bf16-DST variants pass no `unfused`: they accumulate in bf16 by design and are less accurate than the
    unfused ttnn chain (measured here: 22 ulp at K=4096); their goldens say so and the verifier refuses them
    where that matters (the catalog uses fp32 DST)."""
    from fusion.numerics import Measured, check_output

    for ref, what in ((golden, "golden"), (unfused, "unfused chain")):
        if ref is None:
            continue
        why = check_output(exact, ref.float(), got.float(), ttnn.bfloat16, _tolerance(), Measured(),
                           f" ({where}, against the {what})")
        if why:
            return why
    return None


def _rms64(x, gamma):
    x = x.double()
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + EPS) * gamma.double().reshape(-1)


def _rms_unfused(x, gamma):
    return ttnn.get_golden_function(ttnn.rms_norm)(_bf(x), weight=_bf(gamma), epsilon=EPS).to(torch.bfloat16)


def rmsnorm(rows: int, width: int, fp32: bool, pad_value: float = 0.0, seed: int = 0) -> Case:
    def build(dev):
        from micro_ops.rmsnorm import RMSNormSingleCore, prepare_gamma, x_memory_config

        g = torch.Generator().manual_seed(seed)
        x = _bf(torch.randn(1, 1, rows, width, generator=g))
        gamma = _bf(1 + 0.1 * torch.randn(width, generator=g))
        tx = ttnn.from_torch(x, layout=ttnn.TILE_LAYOUT, device=dev, memory_config=x_memory_config(width))
        tg = prepare_gamma(gamma, dev)
        out = ttnn.allocate_tensor_on_device(tx.spec, dev)
        program = RMSNormSingleCore.program_descriptor(tx, tg, out, epsilon=EPS, fp32_dest_acc_en=fp32)

        def expect(outs):
            return _compare(outs[2], RMSNormSingleCore.golden(x, gamma, epsilon=EPS, fp32_dest_acc_en=fp32),
                            _rms_unfused(x, gamma) if fp32 else None, _rms64(x, gamma), "y")
        return Built(program, [tx, tg, out], [x, gamma.reshape(list(tg.shape)), None], expect, pad_value)
    return Case(f"rmsnorm-{rows}x{width}-{'fp32' if fp32 else 'bf16'}-dst{'-nanpad' if pad_value != 0 else ''}", build)


def residual_rmsnorm(rows: int, width: int, fp32: bool, seed: int = 0) -> Case:
    def build(dev):
        from micro_ops.residual_rmsnorm import ResidualRMSNormSingleCore
        from micro_ops.rmsnorm import prepare_gamma, x_memory_config

        g = torch.Generator().manual_seed(seed)
        x = _bf(torch.randn(1, 1, rows, width, generator=g))
        res = _bf(torch.randn(1, 1, rows, width, generator=g))
        gamma = _bf(1 + 0.1 * torch.randn(width, generator=g))
        mc = x_memory_config(width)
        tx = ttnn.from_torch(x, layout=ttnn.TILE_LAYOUT, device=dev, memory_config=mc)
        tr = ttnn.from_torch(res, layout=ttnn.TILE_LAYOUT, device=dev, memory_config=mc)
        tg = prepare_gamma(gamma, dev)
        s_out = ttnn.allocate_tensor_on_device(tx.spec, dev)
        y_out = ttnn.allocate_tensor_on_device(tx.spec, dev)
        program = ResidualRMSNormSingleCore.program_descriptor(tx, tr, tg, s_out, y_out, epsilon=EPS,
                                                               fp32_dest_acc_en=fp32)

        def expect(outs):
            s, y = ResidualRMSNormSingleCore.golden(x, res, gamma, epsilon=EPS, fp32_dest_acc_en=fp32)
            if not torch.equal(outs[3], s):
                return "the sum s differs from bf16(x + residual)"
            return _compare(outs[4], y, _rms_unfused(s, gamma) if fp32 else None, _rms64(s, gamma), "y")
        return Built(program, [tx, tr, tg, s_out, y_out], [x, res, gamma.reshape(list(tg.shape)), None, None], expect)
    return Case(f"residual_rmsnorm-{rows}x{width}-{'fp32' if fp32 else 'bf16'}-dst", build)


def _mm_unfused(a, w, act):
    y = ttnn.get_golden_function(ttnn.matmul)(_bf(a), _bf(w)).to(torch.bfloat16)
    return _bf(_ACT64[act](y.float()))


def matmul(k: int, n: int, cores: int, sender: tuple, act, fp32: bool, seed: int = 0) -> Case:
    def build(dev):
        from micro_ops.matmul import MatmulWidthSharded, a_memory_config, out_memory_config, prepare_weight
        from micro_ops.rmsnorm import _util as U

        g = torch.Generator().manual_seed(seed)
        a = _bf(torch.randn(1, 1, 32, k, generator=g))
        w = _bf(torch.randn(k, n, generator=g) / k ** 0.5)
        grid = U.grid_rect(cores)
        ta = ttnn.from_torch(a, layout=ttnn.TILE_LAYOUT, device=dev, memory_config=a_memory_config(k, ttnn.CoreCoord(*sender)))
        tw = prepare_weight(w, dev, grid)
        out = ttnn.allocate_tensor_on_device(ttnn.Shape([1, 1, 32, n]), ttnn.bfloat16, ttnn.TILE_LAYOUT, dev,
                                             out_memory_config(n, grid))
        program = MatmulWidthSharded.program_descriptor(ta, tw, out, activation=act, fp32_dest_acc_en=fp32)

        def expect(outs):
            return _compare(outs[2], MatmulWidthSharded.golden(a, w, activation=act, fp32_dest_acc_en=fp32),
                            _mm_unfused(a, w, act) if fp32 else None, _ACT64[act](a.double() @ w.double()), "out")
        return Built(program, [ta, tw, out], [a, w.reshape(list(tw.shape)), None], expect)
    return Case(f"matmul-{k}x{n}-{cores}cores-sender{sender[0]}{sender[1]}-{act}-{'fp32' if fp32 else 'bf16'}", build)


def rmsnorm_matmul(k: int, ns: list, cores: int, sender: tuple, acts: list, stream=None, seed: int = 0) -> Case:
    def build(dev):
        from micro_ops.matmul import out_memory_config, prepare_weight
        from micro_ops.rmsnorm import _util as U
        from micro_ops.rmsnorm import prepare_gamma, x_memory_config
        from micro_ops.rmsnorm_matmul import RMSNormDualMatmul, RMSNormMatmul

        g = torch.Generator().manual_seed(seed)
        x = _bf(torch.randn(1, 1, 32, k, generator=g))
        gamma = _bf(1 + 0.1 * torch.randn(k, generator=g))
        ws = [_bf(torch.randn(k, n, generator=g) / k ** 0.5) for n in ns]
        grid, s = U.grid_rect(cores), ttnn.CoreCoord(*sender)
        tx = ttnn.from_torch(x, layout=ttnn.TILE_LAYOUT, device=dev, memory_config=x_memory_config(k, s))
        tg = prepare_gamma(gamma, dev, s)
        tws = [prepare_weight(w, dev, grid) for w in ws]
        outs_t = [ttnn.allocate_tensor_on_device(ttnn.Shape([1, 1, 32, n]), ttnn.bfloat16, ttnn.TILE_LAYOUT, dev,
                                                 out_memory_config(n, grid)) for n in ns]
        if len(ns) == 1:
            kw = dict(epsilon=EPS, activation=acts[0])
            program = RMSNormMatmul.program_descriptor(tx, tg, tws[0], outs_t[0], stream=stream, **kw)
            goldens = [RMSNormMatmul.golden(x, gamma, ws[0], **kw)]
        else:
            kw = dict(epsilon=EPS, activation1=acts[0], activation3=acts[1])
            program = RMSNormDualMatmul.program_descriptor(tx, tg, *tws, *outs_t, stream=stream, **kw)
            goldens = list(RMSNormDualMatmul.golden(x, gamma, *ws, **kw))

        def expect(outs):
            normed = _rms_unfused(x, gamma)
            for i, (w, act) in enumerate(zip(ws, acts)):
                why = _compare(outs[2 + len(ws) + i], goldens[i], _mm_unfused(normed, w, act),
                               _ACT64[act](_rms64(x, gamma) @ w.double()), f"output {i}")
                if why:
                    return why
            return None
        return Built(program, [tx, tg, *tws, *outs_t],
                     [x, gamma.reshape(list(tg.shape)), *[w.reshape(list(t.shape)) for w, t in zip(ws, tws)],
                      *[None] * len(ns)], expect)
    kind = "dual" if len(ns) == 2 else "single"
    return Case(f"rmsnorm_matmul-{kind}-{k}x{'+'.join(map(str, ns))}-{cores}cores-sender{sender[0]}{sender[1]}"
                f"{'-streamed' if stream else ''}", build)


def prepare_expert_weights(shape: tuple, h: int, variant: str, sharded_out: bool = False, out_cores: int = 8,
                           **opts) -> Case:
    def build(dev):
        from micro_ops.prepare_expert_weights import VARIANTS, golden, last_descriptor

        k, bs = shape[-1], math.prod(shape[:-1])
        x = torch.randn(shape, generator=torch.Generator().manual_seed(k * 7 + bs)).to(torch.bfloat16)
        xt = ttnn.from_torch(x, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=dev)
        if sharded_out:
            # one expert per core, or the whole output on one core (the seed's single-core placement)
            grid = ttnn.CoreRangeSet({ttnn.CoreRange(ttnn.CoreCoord(0, 0), ttnn.CoreCoord(out_cores - 1, 0))})
            mc = ttnn.MemoryConfig(ttnn.TensorMemoryLayout.HEIGHT_SHARDED, ttnn.BufferType.L1,
                                   ttnn.ShardSpec(grid, (k * 32 // out_cores, h), ttnn.ShardOrientation.ROW_MAJOR))
        else:
            mc = ttnn.DRAM_MEMORY_CONFIG
        out = ttnn.allocate_tensor_on_device(ttnn.Shape([k, 1, bs, h]), ttnn.bfloat16, ttnn.TILE_LAYOUT, dev, mc)
        VARIANTS[variant].op(xt, out, k, h, **opts)

        def expect(outs):
            return None if torch.equal(outs[1], golden(x, k, h)) else "output differs from the golden (bit exact)"
        # NaN padding: a kernel that reads the input's padding shows it
        return Built(last_descriptor(), [xt, out], [x, None], expect, float("nan"))
    return Case(f"prepare_expert_weights-{variant}-{'x'.join(map(str, shape))}-h{h}"
                f"{f'-sharded{out_cores}' if sharded_out else ''}"
                + "".join(f"-{k}{v}" for k, v in opts.items()), build)


def all_cases() -> list[Case]:
    """Every micro-op variant over a grid of shapes, placements and compute configs."""
    return [
        rmsnorm(32, 2048, True), rmsnorm(7, 4096, False), rmsnorm(1, 7168, True),
        rmsnorm(7, 2048, True, pad_value=float("nan")), rmsnorm(3, 1024, False, pad_value=float("nan")),
        residual_rmsnorm(32, 2048, True), residual_rmsnorm(5, 4096, False),
        matmul(2048, 1536, 8, (0, 7), "silu", True), matmul(2048, 64, 1, (0, 0), "relu", True),
        matmul(4096, 1536, 16, (3, 1), None, False), matmul(1024, 256, 4, (0, 1), "sigmoid", True),
        rmsnorm_matmul(2048, [1536], 8, (0, 7), ["silu"]), rmsnorm_matmul(2048, [64], 1, (0, 0), ["sigmoid"]),
        rmsnorm_matmul(2048, [512, 512], 8, (0, 7), ["silu", "sigmoid"], stream=True),
        rmsnorm_matmul(2048, [1536, 1536], 16, (0, 0), ["silu", None]),
        rmsnorm_matmul(1024, [128, 256], 4, (0, 7), ["relu", None], stream=True),
        prepare_expert_weights((1, 1, 1, 4), 256, "single_core"),
        prepare_expert_weights((8, 1, 1, 8), 2880, "pipelined"),
        prepare_expert_weights((4, 1, 25, 8), 100, "multi_core"),
        prepare_expert_weights((2, 1, 48, 32), 512, "multi_core"),
        prepare_expert_weights((1, 1, 32, 20), 96, "pipelined", tiles_per_block=3),
        prepare_expert_weights((1, 1, 32, 8), 256, "multi_core", sharded_out=True),
        prepare_expert_weights((4, 1, 8, 8), 7168, "multi_core"),
        prepare_expert_weights((1, 1, 1024, 4), 2880, "multi_core"),
        prepare_expert_weights((1, 1, 32, 8), 256, "pipelined", sharded_out=True, out_cores=1),
    ]


def mutation_cases() -> list[Case]:
    """One case per kernel path, cheapest first: what each mutant is run against (a mutant stops at the first
    case that catches it). Padded rows, both DST modes, multicast with the sender outside and inside the
    grid, streamed and dual matmuls, every expert-weight variant."""
    return [
        rmsnorm(7, 1024, True, pad_value=float("nan")), rmsnorm(3, 1024, False), residual_rmsnorm(5, 1024, True),
        prepare_expert_weights((1, 1, 1, 4), 256, "single_core"),
        prepare_expert_weights((4, 1, 25, 8), 100, "multi_core"),
        prepare_expert_weights((1, 1, 32, 20), 96, "pipelined", tiles_per_block=3),
        prepare_expert_weights((1, 1, 32, 8), 256, "multi_core", sharded_out=True),
        matmul(1024, 256, 4, (0, 1), "sigmoid", True), matmul(512, 64, 1, (0, 0), "relu", False),
        matmul(1024, 512, 8, (2, 0), "silu", True),
        rmsnorm_matmul(1024, [256], 4, (0, 7), ["silu"]), rmsnorm_matmul(1024, [64], 1, (0, 0), ["sigmoid"]),
        rmsnorm_matmul(2048, [512, 512], 8, (0, 7), ["silu", "sigmoid"], stream=True),
        rmsnorm_matmul(1024, [256, 256], 4, (1, 0), ["silu", None]),
        rmsnorm_matmul(1024, [128, 256], 4, (0, 7), ["relu", None], stream=True),  # second weight wider
        matmul(1024, 1536, 8, (0, 7), "silu", True),  # 6 output tiles per core in DST subblocks of 3
    ]


def run_case(case: Case, device, *, kernel_root=None, timeout: float = 120.0) -> str | None:
    """None when the case's outputs are right, else why not (an EmulatorError propagates)."""
    import emulator

    built = case.build(device)
    try:
        outs = emulator.run(built.program, built.tensors, device, built.inputs, pad_value=built.pad_value,
                            timeout=timeout, kernel_root=kernel_root)
        return built.expect(outs)
    finally:
        for t in built.tensors:
            ttnn.deallocate(t)
