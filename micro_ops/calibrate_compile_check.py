"""Calibrate the host compile check (micro_ops/_riscv_gxx_shim.py) on tt-metal's own kernels.

A check that rejects kernels known to run on silicon says little when it accepts ours. This runs real ttnn
ops on the mock N150 with the check switched on for tt-metal's production kernels too (normally they are
recorded unchecked), so tt-metal's JIT builds each kernel with the compile-time args its op really uses
and our check judges it. Then it compiles small kernels that misuse the kernel API, which it must reject.

    python -m micro_ops.calibrate_compile_check           # every op below
    python -m micro_ops.calibrate_compile_check --quick   # one op per family (what the test suite runs)

Exit status 0 when every production kernel passed and every misuse was rejected.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path


def _ops(ttnn, torch, dev):
    """(family, name, thunk) for real ops; each builds tt-metal's own kernels for its program."""
    t = lambda *shape, layout=None, mc=None: ttnn.from_torch(  # noqa: E731
        torch.randn(*shape), dtype=ttnn.bfloat16, layout=layout or ttnn.TILE_LAYOUT, device=dev,
        memory_config=mc or ttnn.DRAM_MEMORY_CONFIG)
    a, b = t(64, 128), t(128, 96)
    x = t(1, 1, 32, 256)
    return [
        ("matmul", "matmul", lambda: ttnn.matmul(a, b)),
        ("matmul", "linear+bias", lambda: ttnn.linear(a, b, bias=t(1, 96))),
        ("matmul", "matmul 1d mcast", lambda: ttnn.matmul(
            x, t(256, 512), program_config=ttnn.MatmulMultiCoreReuseMultiCast1DProgramConfig(
                compute_with_storage_grid_size=ttnn.CoreCoord(8, 2), in0_block_w=2, out_subblock_h=1,
                out_subblock_w=1, per_core_M=1, per_core_N=1, fuse_batch=True, fused_activation=None,
                mcast_in0=True))),
        ("norm", "rms_norm", lambda: ttnn.rms_norm(x, epsilon=1e-5)),
        ("norm", "layer_norm", lambda: ttnn.layer_norm(x, epsilon=1e-5)),
        ("norm", "softmax", lambda: ttnn.softmax(x, dim=-1)),
        ("eltwise", "add", lambda: ttnn.add(a, a)),
        ("eltwise", "multiply", lambda: ttnn.multiply(x, x)),
        ("eltwise", "silu", lambda: ttnn.silu(x)),
        ("eltwise", "exp", lambda: ttnn.exp(x)),
        ("eltwise", "rsqrt", lambda: ttnn.rsqrt(x)),
        ("eltwise", "typecast", lambda: ttnn.typecast(x, ttnn.float32)),
        ("reduce", "sum", lambda: ttnn.sum(x, dim=-1)),
        ("reduce", "max", lambda: ttnn.max(x, dim=-1)),
        ("data movement", "permute", lambda: ttnn.permute(a, (1, 0))),
        ("data movement", "transpose", lambda: ttnn.transpose(x, -2, -1)),
        ("data movement", "untilize", lambda: ttnn.to_layout(x, ttnn.ROW_MAJOR_LAYOUT)),
        ("data movement", "tilize", lambda: ttnn.to_layout(t(1, 1, 32, 256, layout=ttnn.ROW_MAJOR_LAYOUT),
                                                           ttnn.TILE_LAYOUT)),
        ("data movement", "concat", lambda: ttnn.concat([x, x], dim=-1)),
        ("data movement", "repeat", lambda: ttnn.repeat(x, (1, 1, 2, 1))),
        ("data movement", "slice", lambda: ttnn.slice(x, (0, 0, 0, 0), (1, 1, 32, 128))),
        ("data movement", "to_memory_config", lambda: ttnn.to_memory_config(x, ttnn.L1_MEMORY_CONFIG)),
    ]


# kernels that misuse the 0.81.1 kernel API: the check must reject each (source, RISC kind)
MISUSE = [
    ("wrong argument count", "reader", '#include "api/dataflow/dataflow_api.h"\nvoid kernel_main() { cb_wait_front(0); }\n'),
    ("API that does not exist", "writer",
     '#include "api/dataflow/dataflow_api.h"\nvoid kernel_main() { noc_async_write_tile_fast(0, 0, 0); }\n'),
    ("compute call with a missing operand", "compute",
     '#include "api/compute/matmul.h"\nvoid kernel_main() { matmul_tiles(0, 1, 0, 0); }\n'),
    ("older API spelling (seed-era compute entry)", "compute",
     '#include "compute_kernel_api.h"\nnamespace NAMESPACE { void MAIN { } }\n'),
    ("compile-time arg past the end", "reader",
     '#include "api/dataflow/dataflow_api.h"\nvoid kernel_main() { constexpr uint32_t v = get_compile_time_arg_val(3); '
     '(void)v; }\n'),
]


def _misuse(ttnn, dev, tmp: Path) -> list[tuple[str, bool, str]]:
    from micro_ops import common
    from micro_ops import mock_device as md

    out = []
    core = common.single_core()
    for i, (what, kind, text) in enumerate(MISUSE):
        src = tmp / f"misuse_{i}.cpp"
        src.write_text(text)
        config = {"reader": ttnn.ReaderConfigDescriptor(), "writer": ttnn.WriterConfigDescriptor(),
                  "compute": ttnn.ComputeConfigDescriptor()}[kind]
        kd = ttnn.KernelDescriptor(kernel_source=str(src), core_ranges=core, config=config, compile_time_args=[1])
        program = ttnn.ProgramDescriptor(kernels=[kd], semaphores=[], cbs=[])
        io = [ttnn.allocate_tensor_on_device(ttnn.Shape([32, 32]), ttnn.bfloat16, ttnn.TILE_LAYOUT, dev)
              for _ in range(2)]
        before = len(md.kernel_checks())
        try:
            ttnn.generic_op(io, program)
            out.append((what, False, "accepted"))
        except RuntimeError:
            # rejected by the compile check itself, not by anything before it
            failed = [c for c in md.kernel_checks()[before:] if not c.ok and str(src) in " ".join(c.sources)]
            first = next((line for c in failed for line in c.error.splitlines()
                          if "error:" in line and "loses precision" not in line), "")
            out.append((what, bool(failed), first.split("error:", 1)[-1].strip()[:120] or "rejected before the check"))
    return out


def calibrate(quick: bool = False, log=print) -> dict:
    from micro_ops import mock_device as md

    md.configure_mock_environment()
    os.environ.pop(md.TRUSTED_ROOT_ENV, None)  # judge tt-metal's own kernels too
    import torch
    import ttnn

    ops_run, seen = [], set()
    with md.open_mock_device() as dev, tempfile.TemporaryDirectory(prefix="ttfuse-calibrate-") as tmp:
        before = len(md.kernel_checks())
        for family, name, thunk in _ops(ttnn, torch, dev):
            if quick and family in seen:
                continue
            seen.add(family)
            try:
                thunk()
                ops_run.append((family, name, None))
            except Exception as e:  # a failed check surfaces as tt-metal's build error
                ops_run.append((family, name, str(e).splitlines()[0][:160]))
        checks = [c for c in md.kernel_checks()[before:] if c.sources and "ttnn" in c.sources[-1]]
        misuse = _misuse(ttnn, dev, Path(tmp))
    production = [(c.risc, Path(c.sources[-1]).name, c.ok) for c in checks]
    for family, name, err in ops_run:
        log(f"{family:14s} {name:18s} {'ok' if err is None else 'FAILED: ' + err}")
    kernels = sorted({(risc, name) for risc, name, _ in production})
    bad = sorted({(risc, name) for risc, name, ok in production if not ok})
    log(f"\ntt-metal production kernel builds checked: {len(production)} ({len(kernels)} distinct kernel/RISC), "
        f"false alarms: {len(bad)}")
    for risc, name in bad:
        log(f"  FALSE ALARM {risc} {name}")
    log(f"API misuse probes rejected: {sum(ok for _, ok, _ in misuse)}/{len(misuse)}")
    for what, ok, msg in misuse:
        log(f"  {'rejected' if ok else 'ACCEPTED'}: {what} ({msg})")
    return {"ops": ops_run, "production": production, "false_alarms": bad, "misuse": misuse}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m micro_ops.calibrate_compile_check", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one op per family")
    args = ap.parse_args(argv)
    r = calibrate(args.quick)
    ok = not r["false_alarms"] and all(ok for _, ok, _ in r["misuse"]) and all(e is None for *_, e in r["ops"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
