"""tt-metal's mock Wormhole N150 device plus an honest host compile check of every kernel.

No Tenstorrent hardware is needed. What runs for real:

* tt-metal itself, on a mock cluster (a single Wormhole N150, 8x8 worker grid): tensor
  allocation with its validation (DRAM / L1 banks, shard specs), ``cb_descriptor_from_sharded_tensor``,
  and ``ttnn.generic_op``'s program validation (CB indices, CB sizes vs page sizes, kernels on
  dispatch cores, two kernels on one RISC, missing kernel files, runtime-arg limits ...).
* tt-metal's JIT kernel build: for every kernel of a ProgramDescriptor and every RISC it runs on
  (NCRISC / BRISC for data movement, TRISC0/1/2 for compute) it generates the wrapper sources, the
  compile-time-arg / named-arg / CB-descriptor headers and calls ``riscv-tt-elf-g++``. That compiler
  (SFPI) is downloaded by tt-metal and is not available here, so the runtime root we point tt-metal
  at carries ``micro_ops/_riscv_gxx_shim.py`` in its place. The shim runs the HOST
  ``g++ -fsyntax-only`` on the exact command tt-metal built (include paths, defines, generated
  headers, compile-time args), minus Tenstorrent-only flags, without ``-fpermissive``: the one
  tolerated error class is "cast from pointer to 32-bit int loses precision" (valid on the RV32
  target, an error only on the 64-bit host). A kernel error becomes a ``RuntimeError`` from
  ``generic_op`` carrying g++'s message. After the compile step tt-metal links
  (the shim writes a placeholder RV32 ELF only for objects it checked), reads the ELF, weakens /
  XIP-relocates it and stores the binary in the Program; on a mock device nothing is written to a
  chip and nothing executes (readback is zeros).

What it proves: the descriptors are accepted by tt-metal and every kernel parses and type-checks for
every RISC with that descriptor's compile-time args. What it cannot prove: that a kernel computes
the right values, its timing, or that it fits in the RISC's code memory. Only hardware proves that.

Compute kernels include LLK headers that need ``sfpi.h`` / ``lltt.h`` from the SFPI toolchain; the
runtime root carries our permissive host stand-ins (``micro_ops/_host_sfpi``), so SFPI internals are
parsed but not checked (see the header comment there).

Environment: tt-metal reads ``TT_METAL_MOCK_CLUSTER_DESC_PATH``, ``TT_METAL_RUNTIME_ROOT`` and
``TT_METAL_CACHE`` when the device is opened (measured: setting them after ``import ttnn`` and after
host-only tensor conversions works), and keeps them for the rest of the process. Call
:func:`configure_mock_environment` (idempotent) before the first ``open_device``;
:func:`open_mock_device` does it for you. Each process gets a fresh temporary ``TT_METAL_CACHE``, so
every kernel is compiled (and recorded) at least once per process; within a process tt-metal builds
a kernel once per distinct (source, compile-time args, defines, config) and reuses it afterwards.

Records: every compile step appends one JSON line to :func:`record_path`; :func:`kernel_checks` reads
them and :func:`assert_program_checked` proves that each RISC of each kernel of a descriptor was
checked with that descriptor's compile-time args.
"""
from __future__ import annotations

import atexit
import contextlib
import dataclasses
import glob
import hashlib
import importlib.util
import json
import logging
import os
import shlex
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

log = logging.getLogger(__name__)

MOCK_CLUSTER_ENV = "TT_METAL_MOCK_CLUSTER_DESC_PATH"
RUNTIME_ROOT_ENV = "TT_METAL_RUNTIME_ROOT"
JIT_CACHE_ENV = "TT_METAL_CACHE"
RECORD_ENV = "TTFUSE_SHIM_RECORD"
CACHE_DIR_ENV = "TTFUSE_CACHE_DIR"
TRUSTED_ROOT_ENV = "TTFUSE_SHIM_TRUSTED_ROOT"

#: What tt-metal 0.81.1 expects ``riscv-tt-elf-g++ --version`` to print (its sfpi-version file).
SFPI_VERSION_STRING = "riscv-tt-elf-g++ (tenstorrent/sfpi:7.89.0[1050]) 15.1.0"

#: A single Wormhole N150 (one chip, one row of the 8x10 Tensix grid harvested -> 8x8 workers); one
#: text shared with fusion.host, which uses it for host TILE conversions without a device.
from fusion.host import N150_CLUSTER_DESC  # noqa: E402

_HERE = Path(__file__).resolve().parent
_SHIM = _HERE / "_riscv_gxx_shim.py"
_HOST_SFPI = _HERE / "_host_sfpi"
# bump when the mirror's layout or the wrapper script changes
_MIRROR_LAYOUT = 3

DATA_MOVEMENT_RISCS = ("BRISC", "NCRISC")
COMPUTE_RISCS = ("TRISC0", "TRISC1", "TRISC2")


# --- hardware detection -----------------------------------------------------------------------


def has_tenstorrent_hardware() -> bool:
    """True when a Tenstorrent PCIe device node exists. Never touches tt-metal (asking tt-metal
    without a chip raises 'No chips detected'; with the mock cluster set it reports the mock)."""
    return bool(glob.glob("/dev/tenstorrent/*") or glob.glob("/dev/tenstorrent[0-9]*"))


# --- cache folder and runtime-root mirror -----------------------------------------------------


def cache_root() -> Path:
    """Where the mirror and the cluster descriptor live (fusion.host.cache_dir)."""
    from fusion.host import cache_dir

    return Path(cache_dir())


def ttnn_package_dir() -> Path:
    """The installed ttnn package folder (holds tt_metal/, ttnn/, runtime/hw) without importing it."""
    spec = importlib.util.find_spec("ttnn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("ttnn is not installed in this Python environment")
    return Path(list(spec.submodule_search_locations)[0]).resolve()


def _write_atomic(path: Path, text: str, mode: int | None = None) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)


def cluster_descriptor_path() -> Path:
    path = cache_root() / "mock_n150_cluster.yaml"
    if not path.exists() or path.read_text() != N150_CLUSTER_DESC:
        _write_atomic(path, N150_CLUSTER_DESC)
    return path


def _wrapper_script() -> str:
    # --version answered by the shell: tt-metal asks once per build and it must be exact
    return (
        "#!/bin/sh\n"
        "# ttfuse: host syntax-check stand-in for the SFPI compiler (see micro_ops/mock_device.py)\n"
        f'if [ "$1" = "--version" ]; then echo {shlex.quote(SFPI_VERSION_STRING)}; exit 0; fi\n'
        f"exec {shlex.quote(sys.executable)} -S {shlex.quote(str(_SHIM))} \"$@\"\n"
    )


def build_runtime_root() -> Path:
    """Create (once) a TT_METAL_RUNTIME_ROOT mirror: symlinks to the wheel's tt_metal, ttnn and
    runtime/hw, plus runtime/sfpi/compiler/bin/riscv-tt-elf-g++ (our shim) and runtime/sfpi/include
    (host stand-ins for sfpi.h / lltt.h). Keyed by the ttnn install, Python and shim location."""
    pkg = ttnn_package_dir()
    key = hashlib.sha1(f"{pkg}|{sys.executable}|{_SHIM}|{_MIRROR_LAYOUT}".encode()).hexdigest()[:12]
    root = cache_root() / f"mock-runtime-{key}"
    compiler = root / "runtime" / "sfpi" / "compiler" / "bin" / "riscv-tt-elf-g++"
    if compiler.exists() and compiler.read_text() == _wrapper_script():
        return root
    tmp = root.with_name(f"{root.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "runtime" / "sfpi" / "compiler" / "bin").mkdir(parents=True)
    (tmp / "runtime" / "sfpi" / "include").mkdir(parents=True)
    for name in ("tt_metal", "ttnn"):
        os.symlink(pkg / name, tmp / name)
    os.symlink(pkg / "runtime" / "hw", tmp / "runtime" / "hw")
    for header in sorted(_HOST_SFPI.glob("*.h")):
        os.symlink(header, tmp / "runtime" / "sfpi" / "include" / header.name)
    tmp_compiler = tmp / "runtime" / "sfpi" / "compiler" / "bin" / "riscv-tt-elf-g++"
    tmp_compiler.write_text(_wrapper_script())
    os.chmod(tmp_compiler, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    try:
        if root.exists():  # stale layout
            shutil.rmtree(root)
        os.rename(tmp, root)
    except OSError:
        # another process won the race; its mirror is equivalent
        shutil.rmtree(tmp, ignore_errors=True)
    return root


# --- environment -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MockEnvironment:
    cluster_descriptor: Path
    runtime_root: Path
    jit_cache: Path
    record: Path


_ENV: MockEnvironment | None = None


def configure_mock_environment() -> MockEnvironment:
    """Point tt-metal at the mock N150 and the shim compiler. Idempotent; call before the first
    ``open_device`` of the process. Refuses on a machine with Tenstorrent hardware, where the
    mock would shadow the real device for the whole process."""
    global _ENV
    if _ENV is not None:
        return _ENV
    if has_tenstorrent_hardware():
        raise RuntimeError("Tenstorrent hardware is present: not configuring tt-metal's mock device "
                           "(it would replace the real device for this whole process)")
    existing = os.environ.get(MOCK_CLUSTER_ENV)
    if existing and Path(existing).is_file():
        cluster = Path(existing)  # e.g. set by the root conftest; any N150 descriptor will do
    else:
        cluster = cluster_descriptor_path()
        os.environ[MOCK_CLUSTER_ENV] = str(cluster)
    root = build_runtime_root()
    previous_root = os.environ.get(RUNTIME_ROOT_ENV)
    if previous_root and Path(previous_root).resolve() != root.resolve():
        log.warning("replacing %s=%s by the mock runtime root %s", RUNTIME_ROOT_ENV, previous_root, root)
    os.environ[RUNTIME_ROOT_ENV] = str(root)
    # fresh per process: a kernel cached on disk by an earlier run would not be re-checked
    jit_cache = Path(tempfile.mkdtemp(prefix="ttfuse-tt-metal-cache-"))
    if os.environ.get("TTFUSE_KEEP_JIT_CACHE") != "1":  # keep it to inspect builds and records
        atexit.register(shutil.rmtree, jit_cache, True)
    os.environ[JIT_CACHE_ENV] = str(jit_cache) + os.sep
    record = jit_cache / "ttfuse_kernel_checks.jsonl"
    record.touch()
    os.environ[RECORD_ENV] = str(record)
    # tt-metal's own kernels (ttnn.linear, rms_norm, ...) build unchecked: they are not ours
    os.environ[TRUSTED_ROOT_ENV] = str(ttnn_package_dir())
    _ENV = MockEnvironment(cluster, root, jit_cache, record)
    return _ENV


def is_configured() -> bool:
    return _ENV is not None


@contextlib.contextmanager
def open_mock_device(device_id: int = 0, **open_device_kwargs: Any) -> Iterator[Any]:
    """``with open_mock_device() as device:`` a mock Wormhole N150 (8x8 workers). Extra keyword
    arguments go to ``ttnn.open_device`` (e.g. ``l1_small_size``)."""
    configure_mock_environment()
    import ttnn

    device = ttnn.open_device(device_id=device_id, **open_device_kwargs)
    try:
        yield device
    finally:
        ttnn.close_device(device)


# --- records ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class KernelCheck:
    """One host syntax check of one kernel for one RISC, as run by the shim."""

    risc: str
    sources: tuple[str, ...]
    compile_time_args: tuple[int, ...]
    named_compile_time_args: str
    defines: tuple[str, ...]
    ok: bool
    error: str
    kernel: str
    seconds: float

    @property
    def source(self) -> str:
        return self.sources[0] if self.sources else ""


def record_path() -> Path:
    if _ENV is None:
        raise RuntimeError("the mock environment is not configured (call configure_mock_environment())")
    return _ENV.record


def _parse_ints(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    return tuple(int(v, 0) for v in text.split(",") if v.strip())


def kernel_checks() -> list[KernelCheck]:
    """Every compile check recorded in this process, in completion order."""
    out = []
    with open(record_path()) as f:
        for line in f:
            e = json.loads(line)
            if e.get("kind") != "compile":
                continue
            out.append(KernelCheck(
                risc=e["risc"],
                sources=tuple(os.path.realpath(s) if not s.startswith("<") else s for s in e["sources"]),
                compile_time_args=_parse_ints(e.get("compile_time_args")),
                named_compile_time_args=e.get("named_compile_time_args") or "",
                defines=tuple(e.get("defines") or ()),
                ok=bool(e["ok"]),
                error=e.get("error", ""),
                kernel=e.get("kernel", ""),
                seconds=float(e.get("seconds", 0.0)),
            ))
    return out


def expected_riscs(kernel_descriptor: Any) -> tuple[str, ...]:
    """The RISCs tt-metal builds a KernelDescriptor for (Reader -> NCRISC, Writer -> BRISC,
    DataMovement RISCV_0 -> BRISC / RISCV_1 -> NCRISC, Compute -> TRISC0, 1, 2)."""
    import ttnn

    cfg = kernel_descriptor.config
    if isinstance(cfg, ttnn.ComputeConfigDescriptor):
        return COMPUTE_RISCS
    if isinstance(cfg, ttnn.ReaderConfigDescriptor):
        return ("NCRISC",)
    if isinstance(cfg, ttnn.WriterConfigDescriptor):
        return ("BRISC",)
    if isinstance(cfg, ttnn.DataMovementConfigDescriptor):
        return ("NCRISC",) if cfg.processor == ttnn.DataMovementProcessor.RISCV_1 else ("BRISC",)
    raise TypeError(f"unknown kernel config {type(cfg).__name__}")


def _define_strings(kernel_descriptor: Any) -> tuple[str, ...]:
    return tuple(f"{k}={v}" if v != "" else k for k, v in kernel_descriptor.defines)


def checks_for(kernel_descriptor: Any) -> dict[str, KernelCheck]:
    """RISC -> the latest successful check of this kernel source with this descriptor's
    compile-time args and defines (missing RISCs are absent from the dict)."""
    source = os.path.realpath(kernel_descriptor.kernel_source)
    ct_args = tuple(int(v) for v in kernel_descriptor.compile_time_args)
    defines = set(_define_strings(kernel_descriptor))
    found: dict[str, KernelCheck] = {}
    for check in kernel_checks():
        if check.ok and source in check.sources and check.compile_time_args == ct_args \
                and defines <= set(check.defines):
            found[check.risc] = check
    return found


def assert_program_checked(program_descriptor: Any) -> list[KernelCheck]:
    """Raise AssertionError unless every RISC of every kernel in the descriptor was host-checked
    with the descriptor's compile-time args. Returns the matching checks."""
    matched, missing = [], []
    for kernel in program_descriptor.kernels:
        checks = checks_for(kernel)
        for risc in expected_riscs(kernel):
            if risc in checks:
                matched.append(checks[risc])
            else:
                missing.append(f"{Path(kernel.kernel_source).name} on {risc} "
                               f"(compile-time args {list(kernel.compile_time_args)})")
    if missing:
        raise AssertionError("kernels not host-checked: " + "; ".join(missing))
    return matched


def failed_checks() -> list[KernelCheck]:
    return [c for c in kernel_checks() if not c.ok]


def describe_checks(checks: Sequence[KernelCheck]) -> str:
    return "\n".join(f"{c.risc:7s} {'OK ' if c.ok else 'ERR'} {Path(c.source).name} "
                     f"args={list(c.compile_time_args)} {c.seconds:.2f}s" for c in checks)
