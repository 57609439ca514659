"""Our kernels run in the Tensix emulator (emulator/): every micro-op variant matches its golden and the
unfused chain it replaces; the silicon bugs planted by hand when the emulator was asked for are each caught,
with a report that names the rule; a fixed sample of kernel mutants is caught; the kernels that run are
this checkout's. "Ran in emulation" is all this proves: no test here touches a device."""
from __future__ import annotations

from pathlib import Path

import pytest
import ttnn

import emulator
from emulator import cases as C
from emulator import mutants as MU

pytestmark = pytest.mark.mock_device

CASES = C.all_cases()
BY_NAME = {c.name: c for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_micro_op_runs_in_emulation_and_matches(mock_device, case):
    assert C.run_case(case, mock_device) is None


def _mutant(category: str, file: str, needle: str) -> MU.Mutant:
    found = [m for m in MU.derive() if m.category == category and m.file == file and needle in m.before]
    assert found, f"no {category} mutant of {file} at a line containing {needle!r}"
    return found[0]


def _run(m: MU.Mutant, case: str, device, tmp_path):
    root = tmp_path / "kernels"
    MU.apply(m, emulator.KERNELS, root)
    return C.run_case(BY_NAME[case], device, kernel_root=root, timeout=60)


def test_a_cb_push_one_page_short_is_a_deadlock_naming_the_waiter(mock_device, tmp_path):
    m = _mutant("cb-count", "unified/rmsnorm.hpp", "cb_push_back(CTArgs::const_cb, 2)")
    with pytest.raises(emulator.Deadlock) as e:
        _run(m, "rmsnorm-32x2048-fp32-dst", mock_device, tmp_path)
    assert "core (0,0) TRISC [rmsnorm_kernel.cpp] waits for cb_wait_front(cb 3, 2)" in e.value.report


def test_two_compile_time_args_swapped_give_a_wrong_result(mock_device, tmp_path):
    m = _mutant("ct-arg-order", "unified/rmsnorm.hpp", '"inv_width_bits"')
    reason = _run(m, "rmsnorm-32x2048-fp32-dst", mock_device, tmp_path)
    assert reason is not None and "exceed the error bound" in reason


def test_receivers_bumping_valid_instead_of_ready_is_a_deadlock(mock_device, tmp_path):
    m = _mutant("semaphore-target", "unified/matmul.hpp", "get_noc_addr(CTArgs::sender_x")
    with pytest.raises(emulator.Deadlock) as e:
        _run(m, "matmul-2048x1536-8cores-sender07-silu-fp32", mock_device, tmp_path)
    assert "BRISC" in e.value.report and "semaphore" in e.value.report


def test_a_dropped_srcb_reconfig_before_dest_reuse_is_a_format_error(mock_device, tmp_path):
    m = _mutant("missing-reconfig", "unified/rmsnorm.hpp", "reconfig_data_format_srcb(rinv_cb)")
    with pytest.raises(emulator.KernelError) as e:
        _run(m, "rmsnorm-32x2048-fp32-dst", mock_device, tmp_path)
    assert "srcB is configured for Float16_b but cb 6 holds Float32" in e.value.report
    assert "missing reconfig_data_format_srcb" in e.value.report


def test_a_dropped_flush_before_cb_pop_front_is_a_race(mock_device, tmp_path):
    m = _mutant("missing-barrier", "prepare_expert_weights/prepare_expert_weights.hpp", "noc_async_writes_flushed()")
    with pytest.raises(emulator.KernelError) as e:
        _run(m, "prepare_expert_weights-multi_core-2x1x48x32-h512", mock_device, tmp_path)
    assert "frees pages that a NOC write issued by BRISC still reads" in e.value.report


def test_a_fixed_sample_of_kernel_mutants_is_caught(mock_device):
    # the full run is `python -m emulator.mutants` (minutes); CI runs one mutant of each category
    sample = MU.sample(MU.derive(), len({m.category for m in MU.derive()}), seed=0)
    result = MU.run(sample, mock_device, log=lambda *_: None)
    assert not result["survived"], [(m.name, m.after) for m, _ in result["survived"]]
    assert len(result["caught"]) >= len(sample) - len(result["stillborn"])


def test_every_mutation_category_derives_mutants():
    cats = {m.category for m in MU.derive()}
    assert cats == {"cb-count", "missing-barrier", "missing-init", "missing-reconfig", "dst-protocol", "tile-index",
                    "face-index", "rt-arg-order", "ct-arg-order", "semaphore-target", "mcast-count"}


def test_a_kernel_that_never_returns_times_out(mock_device, tmp_path):
    import shutil

    root = tmp_path / "kernels"
    shutil.copytree(emulator.KERNELS, root)
    (root / "rmsnorm/rmsnorm_kernel.cpp").write_text(
        '#include "unified/kernel_op_api.hpp"\nKERNEL_ENTRY { volatile int spin = 0; while (spin == 0) {} }\n')
    with pytest.raises(emulator.Timeout):
        C.run_case(BY_NAME["rmsnorm-32x2048-fp32-dst"], mock_device, kernel_root=root, timeout=5)


def test_kernels_outside_this_checkout_are_refused(mock_device, tmp_path):
    # a ttfuse_kernels package installed from another checkout would hand us its sources
    src = tmp_path / "elsewhere_kernel.cpp"
    src.write_text("KERNEL_ENTRY {}\n")
    core = ttnn.CoreRangeSet([ttnn.CoreRange(ttnn.CoreCoord(0, 0), ttnn.CoreCoord(0, 0))])
    kd = ttnn.KernelDescriptor(kernel_source=str(src), core_ranges=core, config=ttnn.ReaderConfigDescriptor())
    program = ttnn.ProgramDescriptor(kernels=[kd], semaphores=[], cbs=[])
    with pytest.raises(emulator.EmulatorError, match="not one of this checkout's kernels"):
        emulator.run(program, [], mock_device, [])


def test_micro_ops_use_this_checkouts_kernels():
    from micro_ops import common

    for rel in ("rmsnorm/rmsnorm_kernel.cpp", "matmul/matmul_kernel.cpp", "rmsnorm_matmul/rmsnorm_matmul_kernel.cpp",
                "residual_rmsnorm/residual_rmsnorm_kernel.cpp",
                "prepare_expert_weights/prepare_expert_weights_kernel.cpp"):
        assert Path(common.kernel_path(rel)).resolve().is_relative_to(emulator.KERNELS), rel
