"""Host-only ttnn support on machines without Tenstorrent hardware.

ttnn looks up tile sizes through tt-metal's cluster, so even host-side TILE conversion
(`ttnn.from_torch(..., layout=TILE)`) fails with "No chips detected" on a machine without a
device. Pointing tt-metal at a mock cluster descriptor (a single Wormhole N150) makes those
host conversions work. This never touches a machine that has a device.
"""
from __future__ import annotations

import glob
import os
import tempfile

N150_CLUSTER_DESC = """\
arch: {0: wormhole_b0}
chips: {0: [0, 0, 0, 0]}
ethernet_connections: []
chips_with_mmio: [{0: 0}]
harvesting: {0: {noc_translation: true, harvest_mask: 64, dram_harvesting_mask: 0, eth_harvesting_mask: 0, pcie_harvesting_mask: 0}}
chip_to_boardtype: {0: n150}
boards: [[{board_id: 72059269368820857}, {board_type: n150}, {chips: [0]}]]
"""

MOCK_ENV = "TT_METAL_MOCK_CLUSTER_DESC_PATH"


CACHE_DIR_ENV = "TTFUSE_CACHE_DIR"


def cache_dir() -> str:
    """ttfuse's cache (mock runtime, cluster descriptors, ttnn's spec answers): ``$TTFUSE_CACHE_DIR``,
    else ``.cache/ttfuse`` in a writable checkout, else ``$XDG_CACHE_HOME/ttfuse`` (``~/.cache/ttfuse``)."""
    root = os.environ.get(CACHE_DIR_ENV)
    if not root:
        checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        if os.path.exists(os.path.join(checkout, "pyproject.toml")) and os.access(checkout, os.W_OK):
            root = os.path.join(checkout, ".cache", "ttfuse")
        else:
            base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
            root = os.path.join(base, "ttfuse")
    os.makedirs(root, exist_ok=True)
    return root


def has_tenstorrent_device() -> bool:
    return bool(glob.glob("/dev/tenstorrent*"))


def mock_cluster_desc_path() -> str:
    folder = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.join(tempfile.gettempdir())), "ttfuse")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "mock_n150_cluster.yaml")
    if not os.path.exists(path) or open(path).read() != N150_CLUSTER_DESC:
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(N150_CLUSTER_DESC)
        os.replace(tmp, path)
    return path


def use_mock_cluster_if_no_hardware() -> bool:
    """Make host TILE conversions work without hardware. Returns True when the mock is in use.

    Call before the first TILE conversion of the process (tt-metal reads the variable once).
    """
    if os.environ.get(MOCK_ENV):
        return True
    if has_tenstorrent_device():
        return False
    os.environ[MOCK_ENV] = mock_cluster_desc_path()
    return True
