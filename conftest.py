# Root conftest: runs before any test module imports ttnn tensors. Without hardware, tt-metal
# needs a (mock) cluster descriptor even for host TILE conversions.
from fusion.host import use_mock_cluster_if_no_hardware

use_mock_cluster_if_no_hardware()

import os

# tests check graph consistency after every fuse (fuse() skips this O(graph) check in production)
os.environ.setdefault("TTFUSE_LINT", "1")
