"""Device fixtures.

``mock_device``: tt-metal's mock Wormhole N150 with the host compile check of every kernel
(micro_ops/mock_device.py); module-scoped: each test module gets a freshly opened device, so L1
left allocated by one module cannot exhaust another's (reopening takes well under a second and does
not rebuild kernels: tt-metal's JIT cache lives for the whole process).
``device``: a REAL Tenstorrent device; skipped with a reason when there is none.

Without hardware the mock environment is configured at import (cheap: no device is opened) so that
any device opened later in the session, by whichever test, gets the mock cluster and the shim
compiler; host-only tests are unaffected (the runtime-root mirror links to the installed wheel).
"""
import pytest

from micro_ops import mock_device as _md

if not _md.has_tenstorrent_hardware():
    _md.configure_mock_environment()


@pytest.fixture(scope="module")
def mock_device():
    if _md.has_tenstorrent_hardware():
        pytest.skip("Tenstorrent hardware present: tt-metal's mock cluster would replace it for the whole "
                    "process, so mock-device tests run only on machines without hardware")
    with _md.open_mock_device() as dev:
        yield dev


@pytest.fixture(scope="session")
def device():
    if not _md.has_tenstorrent_hardware():
        pytest.skip("no Tenstorrent hardware: /dev/tenstorrent has no device")
    import ttnn

    dev = ttnn.open_device(device_id=0)
    try:
        yield dev
    finally:
        ttnn.close_device(dev)
