"""Shared helpers for corpus forwards: the device, weights with their host values, and a driver.

Model code in tt-metal receives a ``mesh_device`` and builds weights with ``ttnn.as_tensor`` /
``ttnn.from_torch`` and mesh mappers; the corpus does the same on a 1x1 mesh (a mock N150 when no
hardware is present), so each forward runs eagerly here: tt-metal validates every op's arguments,
program configs and memory configs and computes the output specs (on the mock device nothing
executes: values read back as zeros).
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch


# Eight Wormhole chips on four N300 boards, linked as tt-metal's T3K mock descriptor
# (tests/tt_metal/tt_fabric/custom_mock_cluster_descriptors/t3k_cluster_desc.yaml) links them.
# One harvested row per chip (8x8 workers, as on an N150), so CCL ops place their workers as they
# do on the common T3K parts.
_T3K_CHIPS = {0: (1, 0), 1: (1, 1), 2: (2, 0), 3: (2, 1), 4: (0, 0), 5: (0, 1), 6: (3, 0), 7: (3, 1)}
_T3K_LINKS = [(0, 6, 2, 6), (0, 7, 2, 7), (0, 8, 4, 0), (0, 9, 4, 1), (0, 14, 1, 14), (0, 15, 1, 15),
              (1, 0, 3, 0), (1, 1, 3, 1), (1, 8, 5, 0), (1, 9, 5, 1), (2, 8, 6, 0), (2, 9, 6, 1),
              (2, 14, 3, 14), (2, 15, 3, 15), (3, 8, 7, 0), (3, 9, 7, 1), (4, 6, 5, 6), (4, 7, 5, 7),
              (6, 6, 7, 6), (6, 7, 7, 7)]
_T3K_BOARDS = [(72058994491928619, (4, 0)), (72058994491928729, (5, 1)), (72058994491928743, (6, 2)),
               (72058994491928746, (7, 3))]


def t3k_cluster_descriptor() -> str:
    lines = ["arch: {" + ", ".join(f"{c}: wormhole_b0" for c in _T3K_CHIPS) + "}",
             "chips: {" + ", ".join(f"{c}: [{x}, {y}, 0, 0]" for c, (x, y) in _T3K_CHIPS.items()) + "}",
             "ethernet_connections:"]
    lines += [f"  - [{{chip: {a}, chan: {ca}}}, {{chip: {b}, chan: {cb}}}]" for a, ca, b, cb in _T3K_LINKS]
    lines.append("chips_with_mmio: [{0: 0}, {1: 1}, {2: 3}, {3: 2}]")
    lines.append("harvesting: {" + ", ".join(
        f"{c}: {{noc_translation: true, harvest_mask: 64, dram_harvesting_mask: 0, eth_harvesting_mask: 0, "
        f"pcie_harvesting_mask: 0}}" for c in _T3K_CHIPS) + "}")
    lines.append("chip_to_boardtype: {" + ", ".join(f"{c}: n300" for c in _T3K_CHIPS) + "}")
    lines.append("boards:")
    lines += [f"  - [{{board_id: {b}}}, {{board_type: n300}}, {{chips: [{x}, {y}]}}]" for b, (x, y) in _T3K_BOARDS]
    return "\n".join(lines) + "\n"


def select_device(kind: str) -> None:
    """Point tt-metal at the mock cluster of `kind` ("n150" or "t3k"). Once per process, before
    any ttnn device work: tt-metal reads the cluster descriptor once."""
    import os

    from micro_ops.mock_device import MOCK_CLUSTER_ENV, cache_root, configure_mock_environment, has_tenstorrent_hardware

    if has_tenstorrent_hardware():
        return
    if kind == "t3k":
        path = cache_root() / "mock_t3k_cluster.yaml"
        text = t3k_cluster_descriptor()
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        current = os.environ.get(MOCK_CLUSTER_ENV)
        if current and current != str(path) and _cluster_in_use():
            raise RuntimeError("this process already uses another mock cluster; run t3k forwards in their own process")
        os.environ[MOCK_CLUSTER_ENV] = str(path)
    elif kind != "n150":
        raise ValueError(f"unknown corpus device {kind!r}")
    configure_mock_environment()


def _cluster_in_use() -> bool:
    from micro_ops.mock_device import is_configured

    return is_configured()


@contextlib.contextmanager
def corpus_device(kind: str = "n150", mesh_shape: tuple = (1, 1)) -> Iterator[Any]:
    """A MeshDevice of `mesh_shape` on the mock `kind` cluster when no hardware is present
    (tt-metal's own kernels build unchecked). "t3k" turns on 1D fabric, as CCL ops need."""
    select_device(kind)
    import ttnn

    if kind == "t3k":
        ttnn.set_fabric_config(ttnn.FabricConfig.FABRIC_1D)
    device = ttnn.open_mesh_device(ttnn.MeshShape(*mesh_shape))
    try:
        yield device
    finally:
        ttnn.close_mesh_device(device)
        if kind == "t3k":
            ttnn.set_fabric_config(ttnn.FabricConfig.DISABLED)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(shape, gen: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    """bfloat16 normal values (weights scaled like a trained layer's, so activations stay O(1))."""
    return (torch.randn(*shape, generator=gen) * scale).to(torch.bfloat16)


def _flat(value) -> list:
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _flat(v)]
    return [value]


def run_eagerly(name: str) -> Any:
    """Build one forward on the corpus device and run it as written (no tracing): the check that
    its calls and configs are ones ttnn accepts."""
    import corpus

    entry = corpus.entries()[name]
    with corpus_device(entry.device, entry.mesh_shape) as device:
        fwd = corpus.build(name, device)
        return fwd.model(*fwd.example_inputs)


if __name__ == "__main__":
    import sys

    import corpus

    for n in sys.argv[1:] or corpus.all_forwards():
        out = run_eagerly(n)
        print(n, "ran:", [tuple(o.shape) for o in _flat(out) if hasattr(o, "shape")])
