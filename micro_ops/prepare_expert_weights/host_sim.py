"""Run the REAL PrepareExpertWeights kernel source on the host, with a descriptor's exact
compile-time and runtime args, and return what it would write.

The kernel (kernels/prepare_expert_weights/) is compiled with the host g++ against a small
simulation of the dataflow API (host_sim/api/dataflow/dataflow_api.h): NCRISC and BRISC run as two
threads per core sharing simulated CBs (blocking reserve/wait, contiguity and overflow checks), L1
is mapped below 4 GiB so the kernel's uint32 L1 addresses work, and tensors are arrays of pages
(the kernel addresses pages by id; how tt-metal maps a page id to a DRAM bank or an L1 shard is
not simulated). What this proves: the kernel's indexing (TILE faces of the input, output pages per
core, edge tiles, padding) and its CB protocol give the golden result for that descriptor. What it
does not prove: NoC behaviour, alignment rules, timing, or anything about the real RISC-V build.
"""
from __future__ import annotations

import hashlib
import math
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Sequence

import torch

from micro_ops import common

_HERE = Path(__file__).resolve().parent / "host_sim"
L1_BYTES = 1464 * 1024  # Wormhole worker L1 available to CBs (upper bound used for the overflow check)
_INPUT_PAD = 0x7FC1  # a NaN: if the kernel read padding of the input tiles it would show
_OUTPUT_FILL = 0xFFFF  # pages the kernel never writes keep this pattern


def tilize_bf16(rows: torch.Tensor) -> torch.Tensor:
    """[R, C] (multiples of 32) int16 view -> 1-D, tile by tile (row-major tiles), faces 0..3 of
    16x16 in each tile, row-major inside a face: ttnn's TILE layout for 32x32 tiles."""
    r, c = rows.shape
    t = rows.reshape(r // 32, 2, 16, c // 32, 2, 16).permute(0, 3, 1, 4, 2, 5)
    return t.contiguous().reshape(-1)


def untilize_bf16(flat: torch.Tensor, r: int, c: int) -> torch.Tensor:
    t = flat.reshape(r // 32, c // 32, 2, 2, 16, 16).permute(0, 2, 4, 1, 3, 5)
    return t.contiguous().reshape(r, c)


def input_pages(x: torch.Tensor) -> torch.Tensor:
    """Routing weights [..., R, K] (bf16) as the TILE pages of a device tensor: each 2-D slice padded to
    32 x 32-multiples (padding filled with a NaN pattern), slices one after the other."""
    dims = list(x.shape) if x.dim() >= 2 else [1, x.shape[-1]]
    rows, k = dims[-2], dims[-1]
    slices = x.reshape(-1, rows, k).view(torch.int16)
    rp, kp = common.round_up(rows, 32), common.round_up(k, 32)
    padded = torch.full((slices.shape[0], rp, kp), _INPUT_PAD, dtype=torch.int16)
    padded[:, :rows, :k] = slices
    return torch.cat([tilize_bf16(s) for s in padded])


def _stamp(paths) -> list:
    return [(str(p), p.stat().st_mtime_ns) for p in sorted(paths) if p.is_file()]


def _compile(args: list[str], out: Path) -> Path:
    if not out.exists():
        tmp = out.with_name(f"{out.name}.{os.getpid()}")
        proc = subprocess.run(["g++", *args, "-o", str(tmp)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"host simulation build failed: {proc.stderr[-4000:]}")
        os.replace(tmp, out)
    return out


def _build(reader_ct: Sequence[int], writer_ct: Sequence[int], kernel_source: str, include_dir: str) -> Path:
    """Build (cached by args and source timestamps) the simulator executable for one pair of
    compile-time args; the driver object is shared by all pairs."""
    out_dir = Path(tempfile.gettempdir()) / "ttfuse-host-sim"
    out_dir.mkdir(exist_ok=True)
    flags = ["-std=c++17", "-O1", "-pthread", f"-I{_HERE}", f"-I{include_dir}"]
    sim_files = _stamp(_HERE.rglob("*"))
    driver_key = hashlib.sha1(repr(sim_files).encode()).hexdigest()[:16]
    driver = _compile([*flags, "-DKERNEL_COMPILE_TIME_ARGS=0", "-c", str(_HERE / "driver.cpp")],
                      out_dir / f"driver-{driver_key}.o")
    key = hashlib.sha1(repr((list(reader_ct), list(writer_ct), kernel_source, sim_files,
                             _stamp(Path(include_dir).rglob("*.[ch]pp")))).encode()).hexdigest()[:16]
    objs = []
    for risc, ct, entry in (("NCRISC", reader_ct, "ttfuse_ncrisc_main"), ("BRISC", writer_ct, "ttfuse_brisc_main")):
        objs.append(str(_compile([*flags, f"-DCOMPILE_FOR_{risc}",
                                  f"-DKERNEL_COMPILE_TIME_ARGS={','.join(map(str, ct))}",
                                  f"-Dkernel_main={entry}", "-c", kernel_source], out_dir / f"pew-{key}-{risc}.o")))
    return _compile(["-pthread", *objs, str(driver)], out_dir / f"pew-{key}")


def simulate(descriptor: Any, work_split: Sequence[tuple[Any, int, int]], x: torch.Tensor, k: int, h: int,
             timeout: float = 60.0) -> torch.Tensor:
    """Run the descriptor's kernels on the host for routing weights ``x`` (torch bf16) and return the
    padded output [K, 1, BS_pad, H_pad] exactly as the kernel wrote it (int16 view decoded to bf16)."""
    reader, writer = descriptor.kernels[0], descriptor.kernels[1]
    bs = math.prod(x.shape[:-1])
    bs_pad, h_pad = common.round_up(bs, 32), common.round_up(h, 32)
    out_pages = k * (bs_pad // 32) * (h_pad // 32)
    with tempfile.TemporaryDirectory(prefix="ttfuse-sim-") as tmp:
        tmp = Path(tmp)
        pages = input_pages(x)
        (tmp / "in.bin").write_bytes(pages.numpy().tobytes())
        lines = [f"l1 {L1_BYTES}",
                 f"tensor 0 2048 {pages.numel() * 2 // 2048} {tmp / 'in.bin'}",
                 f"tensor 1 2048 {out_pages} -"]
        for cb in descriptor.cbs:
            fmt = cb.format_descriptors[0]
            lines.append(f"cb {fmt.buffer_index} {fmt.page_size} {cb.total_size // fmt.page_size}")
        rc = [0, *list(reader.common_runtime_args)[1:]]  # address -> simulated tensor id
        wc = [1, *list(writer.common_runtime_args)[1:]]
        lines.append(f"reader_common {len(rc)} {' '.join(map(str, rc))}")
        lines.append(f"writer_common {len(wc)} {' '.join(map(str, wc))}")
        for _, first, count in work_split:
            lines.append(f"core 2 {first} {count}")
        (tmp / "job.txt").write_text("\n".join(lines) + "\n")
        exe = _build(list(reader.compile_time_args), list(writer.compile_time_args), reader.kernel_source,
                     common.kernel_include_dir())
        proc = subprocess.run([str(exe), str(tmp / "job.txt"), str(tmp / "out.bin")], capture_output=True,
                              text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"host simulation failed ({proc.returncode}): {proc.stderr.strip()}")
        raw = torch.frombuffer(bytearray((tmp / "out.bin").read_bytes()), dtype=torch.int16)
    rows = untilize_bf16(raw, k * bs_pad, h_pad)
    return rows.reshape(k, 1, bs_pad, h_pad).view(torch.bfloat16)
