"""The host compile check is calibrated: it accepts tt-metal's own production kernels (built by real ttnn ops on
the mock N150 with their real compile-time args) with no false alarm, and still rejects kernels that misuse the
kernel API. Runs in a fresh process: tt-metal's JIT cache and the check's production-kernel switch are per process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.mock_device
def test_production_kernels_pass_and_api_misuse_is_rejected():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TT_LOGGER_LEVEL": "error", "LOGURU_LEVEL": "WARNING"}
    proc = subprocess.run([sys.executable, "-m", "micro_ops.calibrate_compile_check", "--quick"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    out = proc.stdout
    assert "false alarms: 0" in out, out[-3000:]
    assert "API misuse probes rejected: 5/5" in out, out[-3000:]
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    checked = int(out.split("production kernel builds checked: ")[1].split()[0])
    assert checked >= 20  # matmul, norm, eltwise, reduce and data-movement kernels, every RISC
