"""tt-metal's mock N150 device and the host compile check of kernels (micro_ops/mock_device.py).

Nothing here executes a kernel: the mock device validates descriptors and tt-metal's JIT build runs
the host g++ syntax/type check for every RISC. These tests prove both halves react to real errors.
"""
import os
import struct
import subprocess
import sys

import pytest
import torch

from micro_ops import _riscv_gxx_shim as shim
from micro_ops import common
from micro_ops import mock_device as md

ttnn = pytest.importorskip("ttnn")

DATAFLOW_OK = """
#include "api/dataflow/dataflow_api.h"
void kernel_main() {
    constexpr uint32_t cb = get_compile_time_arg_val(0);
    cb_reserve_back(cb, 1);
    cb_push_back(cb, 1);
}
"""

COMPUTE_OK = """
#include "api/compute/compute_kernel_api.h"
#include "api/compute/common.h"
#include "api/compute/tile_move_copy.h"
void kernel_main() {
    constexpr uint32_t cb_in = get_compile_time_arg_val(0);
    constexpr uint32_t cb_out = get_compile_time_arg_val(1);
    copy_tile_init(cb_in);
    cb_wait_front(cb_in, 1);
    cb_reserve_back(cb_out, 1);
    tile_regs_acquire();
    copy_tile(cb_in, 0, 0);
    tile_regs_commit();
    tile_regs_wait();
    pack_tile(0, cb_out);
    tile_regs_release();
    cb_push_back(cb_out, 1);
    cb_pop_front(cb_in, 1);
}
"""


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _tile_tensor(device, rows=32, cols=32, memory_config=None):
    return ttnn.from_torch(torch.zeros(rows, cols, dtype=torch.bfloat16), dtype=ttnn.bfloat16,
                           layout=ttnn.TILE_LAYOUT, device=device,
                           memory_config=memory_config or ttnn.DRAM_MEMORY_CONFIG)


def _program(kernels, cb_indices=(0, 1)):
    cr = common.single_core()
    cbs = [common.cb_descriptor(i, ttnn.bfloat16, 2, cr) for i in cb_indices]
    return ttnn.ProgramDescriptor(kernels=kernels, cbs=cbs, semaphores=[])


# --- host-side pieces (no device) ---------------------------------------------------------------


def test_shim_answers_the_sfpi_version_tt_metal_expects():
    compiler = md.build_runtime_root() / "runtime" / "sfpi" / "compiler" / "bin" / "riscv-tt-elf-g++"
    out = subprocess.run([str(compiler), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "riscv-tt-elf-g++ (tenstorrent/sfpi:7.89.0[1050]) 15.1.0"


def test_shim_refuses_what_it_does_not_know():
    out = subprocess.run([sys.executable, shim.__file__, "-S", "x.c"], capture_output=True, text=True)
    assert out.returncode != 0 and "unsupported invocation" in out.stderr


def test_shim_links_only_objects_it_checked(tmp_path):
    bogus = tmp_path / "k.o"
    bogus.write_bytes(b"not checked")
    out = subprocess.run([sys.executable, shim.__file__, str(bogus), "-o", str(tmp_path / "k.elf")],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "not produced by a successful syntax check" in out.stderr
    assert not (tmp_path / "k.elf").exists()


def test_placeholder_elf_is_a_well_formed_rv32_executable():
    elf = shim._placeholder_elf(0x5E20)
    assert elf[:4] == b"\x7fELF" and elf[4] == 1 and elf[5] == 1  # ELF32, little endian
    e_type, e_machine, _, e_entry = struct.unpack_from("<HHII", elf, 16)
    assert (e_type, e_machine, e_entry) == (2, 243, 0x5E20)  # ET_EXEC, EM_RISCV, entry = text start


def test_mirror_points_at_the_installed_wheel():
    root = md.build_runtime_root()
    pkg = md.ttnn_package_dir()
    assert (root / "tt_metal").resolve() == (pkg / "tt_metal").resolve()
    assert (root / "runtime" / "hw").resolve() == (pkg / "runtime" / "hw").resolve()
    assert (root / "runtime" / "sfpi" / "include" / "sfpi.h").exists()


def test_environment_is_configured_for_this_process():
    if md.has_tenstorrent_hardware():
        pytest.skip("Tenstorrent hardware present: the mock environment is not configured")
    env = md.configure_mock_environment()
    assert md.configure_mock_environment() is env  # idempotent
    assert os.environ[md.RUNTIME_ROOT_ENV] == str(env.runtime_root)
    assert os.environ[md.JIT_CACHE_ENV].startswith(str(env.jit_cache))
    assert os.path.isfile(os.environ[md.MOCK_CLUSTER_ENV])


# --- the mock device ------------------------------------------------------------------------------


@pytest.mark.mock_device
def test_mock_device_opens_as_an_n150(mock_device):
    assert common.worker_grid(mock_device) == (8, 8)
    assert mock_device.arch() == ttnn.Arch.WORMHOLE_B0


@pytest.mark.mock_device
def test_l1_height_sharded_tensor_allocates(mock_device):
    grid = ttnn.CoreRangeSet({ttnn.CoreRange(ttnn.CoreCoord(0, 0), ttnn.CoreCoord(0, 1))})
    spec = ttnn.ShardSpec(grid, (32, 64), ttnn.ShardOrientation.ROW_MAJOR)
    mc = ttnn.MemoryConfig(ttnn.TensorMemoryLayout.HEIGHT_SHARDED, ttnn.BufferType.L1, spec)
    t = _tile_tensor(mock_device, 64, 64, mc)
    assert t.is_sharded()
    assert t.memory_config().memory_layout == ttnn.TensorMemoryLayout.HEIGHT_SHARDED
    assert list(t.memory_config().shard_spec.shape) == [32, 64]
    cb = common.cb_descriptor_from_tensor(0, t)
    assert cb.total_size == 32 * 64 * 2  # one shard per core backs the CB


@pytest.mark.mock_device
def test_tt_metal_rejects_a_shard_on_a_core_without_l1_bank(mock_device):
    grid = ttnn.CoreRangeSet({ttnn.CoreRange(ttnn.CoreCoord(8, 0), ttnn.CoreCoord(9, 0))})
    spec = ttnn.ShardSpec(grid, (32, 64), ttnn.ShardOrientation.ROW_MAJOR)
    mc = ttnn.MemoryConfig(ttnn.TensorMemoryLayout.HEIGHT_SHARDED, ttnn.BufferType.L1, spec)
    with pytest.raises(RuntimeError, match="has no L1 bank"):
        _tile_tensor(mock_device, 64, 64, mc)


@pytest.mark.mock_device
def test_tt_metal_rejects_cb_index_32(mock_device, tmp_path):
    x, y = _tile_tensor(mock_device), _tile_tensor(mock_device)
    cr = common.single_core()
    fmt = ttnn.CBFormatDescriptor(buffer_index=32, data_format=ttnn.bfloat16, page_size=2048)
    bad_cb = ttnn.CBDescriptor(total_size=2048, core_ranges=cr, format_descriptors=[fmt])
    reader = common.reader_kernel(_write(tmp_path, "dm.cpp", DATAFLOW_OK), cr, compile_time_args=[0])
    with pytest.raises(RuntimeError, match=r"Buffer index \(32\) exceeds max number of circular buffers"):
        ttnn.generic_op([x, y], ttnn.ProgramDescriptor(kernels=[reader], cbs=[bad_cb], semaphores=[]))


@pytest.mark.mock_device
def test_tt_metal_rejects_cb_size_not_multiple_of_page(mock_device, tmp_path):
    x, y = _tile_tensor(mock_device), _tile_tensor(mock_device)
    cr = common.single_core()
    fmt = ttnn.CBFormatDescriptor(buffer_index=0, data_format=ttnn.bfloat16, page_size=2048)
    bad_cb = ttnn.CBDescriptor(total_size=3000, core_ranges=cr, format_descriptors=[fmt])
    reader = common.reader_kernel(_write(tmp_path, "dm.cpp", DATAFLOW_OK), cr, compile_time_args=[0])
    with pytest.raises(RuntimeError, match="must be divisible by page size"):
        ttnn.generic_op([x, y], ttnn.ProgramDescriptor(kernels=[reader], cbs=[bad_cb], semaphores=[]))


@pytest.mark.mock_device
def test_correct_kernels_pass_the_check_on_every_risc(mock_device, tmp_path):
    x, y = _tile_tensor(mock_device), _tile_tensor(mock_device)
    cr = common.single_core()
    dm = _write(tmp_path, "dm_ok.cpp", DATAFLOW_OK)
    comp = _write(tmp_path, "compute_ok.cpp", COMPUTE_OK)
    program = _program([
        common.reader_kernel(dm, cr, compile_time_args=[0]),
        common.writer_kernel(dm, cr, compile_time_args=[1]),
        common.compute_kernel(comp, cr, compile_time_args=[0, 1]),
    ])
    ttnn.generic_op([x, y], program)
    checks = md.assert_program_checked(program)
    assert sorted(c.risc for c in checks) == ["BRISC", "NCRISC", "TRISC0", "TRISC1", "TRISC2"]
    assert all(c.ok for c in checks)


@pytest.mark.mock_device
def test_dataflow_api_typo_fails_with_the_compilers_message(mock_device, tmp_path):
    x, y = _tile_tensor(mock_device), _tile_tensor(mock_device)
    cr = common.single_core()
    src = _write(tmp_path, "dm_typo.cpp", DATAFLOW_OK.replace("cb_push_back", "cb_push_bak"))
    program = _program([common.reader_kernel(src, cr, compile_time_args=[0])])
    with pytest.raises(RuntimeError) as err:
        ttnn.generic_op([x, y], program)
    assert "cb_push_bak" in str(err.value) and "was not declared" in str(err.value)
    failed = [c for c in md.failed_checks() if src in c.sources]
    assert [c.risc for c in failed] == ["NCRISC"]
    assert "did you mean" in failed[0].error and "cb_push_back" in failed[0].error


@pytest.mark.mock_device
def test_compute_api_typo_fails_on_the_triscs(mock_device, tmp_path):
    x, y = _tile_tensor(mock_device), _tile_tensor(mock_device)
    cr = common.single_core()
    src = _write(tmp_path, "compute_typo.cpp", COMPUTE_OK.replace("tile_regs_acquire", "tile_regs_aquire"))
    program = _program([common.compute_kernel(src, cr, compile_time_args=[0, 1])])
    with pytest.raises(RuntimeError, match="tile_regs_aquire"):
        ttnn.generic_op([x, y], program)
    assert {c.risc for c in md.failed_checks() if src in c.sources} <= {"TRISC0", "TRISC1", "TRISC2"}
    assert any(src in c.sources for c in md.failed_checks())


@pytest.mark.mock_device
def test_the_check_sees_the_descriptors_compile_time_args(mock_device, tmp_path):
    """The same source passes with one compile-time arg and fails with another: the host check
    compiles with exactly the args of the descriptor."""
    src = _write(tmp_path, "ct_arg.cpp", """
#include "api/dataflow/dataflow_api.h"
void kernel_main() {
    static_assert(get_compile_time_arg_val(1) == 7, "compile-time arg 1 must be 7");
}
""")
    x, y = _tile_tensor(mock_device), _tile_tensor(mock_device)
    cr = common.single_core()
    good = _program([common.reader_kernel(src, cr, compile_time_args=[0, 7])])
    ttnn.generic_op([x, y], good)
    md.assert_program_checked(good)
    bad = _program([common.reader_kernel(src, cr, compile_time_args=[0, 8])])
    with pytest.raises(RuntimeError, match="compile-time arg 1 must be 7"):
        ttnn.generic_op([x, y], bad)
    with pytest.raises(AssertionError, match="not host-checked"):
        md.assert_program_checked(bad)


@pytest.mark.mock_device
def test_defines_reach_the_check(mock_device, tmp_path):
    src = _write(tmp_path, "define.cpp", """
#include "api/dataflow/dataflow_api.h"
#ifndef TTFUSE_FLAG
#error "TTFUSE_FLAG not defined"
#endif
void kernel_main() {}
""")
    x, y = _tile_tensor(mock_device), _tile_tensor(mock_device)
    cr = common.single_core()
    good = _program([common.reader_kernel(src, cr, defines={"TTFUSE_FLAG": "1"})])
    ttnn.generic_op([x, y], good)
    assert "TTFUSE_FLAG=1" in md.checks_for(good.kernels[0])["NCRISC"].defines
    with pytest.raises(RuntimeError, match="TTFUSE_FLAG not defined"):
        ttnn.generic_op([x, y], _program([common.reader_kernel(src, cr)]))


@pytest.mark.mock_device
def test_identical_kernels_are_built_once_per_process(mock_device, tmp_path):
    """tt-metal's JIT cache keys a build by source + args: a second program with the same kernel
    does not call the compiler again (so the per-process record has one check per RISC)."""
    src = _write(tmp_path, "once.cpp", DATAFLOW_OK)
    x, y = _tile_tensor(mock_device), _tile_tensor(mock_device)
    cr = common.single_core()
    for _ in range(2):
        ttnn.generic_op([x, y], _program([common.reader_kernel(src, cr, compile_time_args=[0])]))
    assert len([c for c in md.kernel_checks() if src in c.sources]) == 1


@pytest.mark.mock_device
def test_pointer_to_uint32_casts_are_accepted_like_on_rv32(mock_device, tmp_path):
    """Kernels (and tt-metal's headers) cast L1 pointers to uint32_t: valid on the 32-bit RISC,
    an error only on the 64-bit host. The check tolerates exactly that error class."""
    src = _write(tmp_path, "ptr_cast.cpp", """
#include "api/dataflow/dataflow_api.h"
void kernel_main() {
    volatile tt_l1_ptr uint32_t* p = reinterpret_cast<volatile tt_l1_ptr uint32_t*>(get_write_ptr(0));
    uint32_t addr = reinterpret_cast<uint32_t>(p);
    p[0] = addr;
}
""")
    x, y = _tile_tensor(mock_device), _tile_tensor(mock_device)
    program = _program([common.reader_kernel(src, common.single_core())])
    ttnn.generic_op([x, y], program)
    assert md.assert_program_checked(program)[0].ok


@pytest.mark.mock_device
def test_errors_gcc_would_only_warn_about_under_fpermissive_fail(mock_device, tmp_path):
    """A missing cast from an L1 address to a pointer is a real kernel bug; the check runs without
    -fpermissive so it fails instead of being downgraded to a hidden warning."""
    src = _write(tmp_path, "missing_cast.cpp", """
#include "api/dataflow/dataflow_api.h"
void kernel_main() {
    uint32_t* p = get_write_ptr(0);
    p[0] = 1;
}
""")
    x, y = _tile_tensor(mock_device), _tile_tensor(mock_device)
    with pytest.raises(RuntimeError, match="invalid conversion from"):
        ttnn.generic_op([x, y], _program([common.reader_kernel(src, common.single_core())]))


@pytest.mark.mock_device
def test_environment_may_be_configured_after_import_ttnn(mock_device, tmp_path):
    """Measured contract: tt-metal reads the mock / runtime-root / cache variables when a device is
    opened, so configuring after `import ttnn` and after host-only TILE conversions works."""
    script = tmp_path / "late.py"
    script.write_text(f"""
import sys
sys.path.insert(0, {str(md._HERE.parent)!r})
import torch, ttnn
ttnn.from_torch(torch.zeros(32, 32, dtype=torch.bfloat16), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT)
from micro_ops import common, mock_device as md
md.configure_mock_environment()
with md.open_mock_device() as dev:
    x = ttnn.from_torch(torch.zeros(32, 32, dtype=torch.bfloat16), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT,
                        device=dev)
    cr = common.single_core()
    k = common.reader_kernel({_write(tmp_path, "late.cpp", DATAFLOW_OK)!r}, cr, compile_time_args=[0])
    p = ttnn.ProgramDescriptor(kernels=[k], cbs=[common.cb_descriptor(0, ttnn.bfloat16, 1, cr)], semaphores=[])
    ttnn.generic_op([x, x], p)
    print("CHECKED", [c.risc for c in md.assert_program_checked(p)])
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TT_METAL_", "TTFUSE_"))}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert "CHECKED ['NCRISC']" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
