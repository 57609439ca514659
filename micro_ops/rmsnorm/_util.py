"""Validation and placement helpers shared by the rmsnorm, matmul, rmsnorm_matmul and residual_rmsnorm
micro-ops. Generic descriptor pieces (kernel paths, CB / kernel descriptors, the descriptor cache) come from
micro_ops.common.
"""
from __future__ import annotations

import math
import struct
from typing import Iterable

import ttnn

from micro_ops import common
from micro_ops.common import DescriptorCache, kernel_path  # noqa: F401 (re-exported)

TILE = 32
L1_BYTES_PER_CORE = 1_392_640  # measured on the mock N150: L1 allocatable range 106496..1499136 per worker core
DST_TILES_BF16 = 8  # DST half (dst_full_sync_en=False) holds 8 bf16 tiles ...
DST_TILES_FP32 = 4  # ... or 4 fp32 tiles

BF16_TILE_BYTES = 2 * TILE * TILE
FP32_TILE_BYTES = 4 * TILE * TILE


class InvalidInputError(ValueError):
    """An input tensor does not have the layout / dtype / placement the micro-op was built for.

    Raised on the host before anything reaches ttnn.generic_op (a bad descriptor can hang a device).
    """


def fp32_bits(value: float) -> int:
    return struct.unpack("<I", struct.pack("<f", float(value)))[0]


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def core_set(*ranges: ttnn.CoreRange) -> ttnn.CoreRangeSet:
    return ttnn.CoreRangeSet(set(ranges))


def single_core(core: ttnn.CoreCoord) -> ttnn.CoreRangeSet:
    return core_set(ttnn.CoreRange(core, core))


def rect_cores(rng: ttnn.CoreRange) -> list[ttnn.CoreCoord]:
    """Cores of a rectangle in row-major order (the order ROW_MAJOR shards are laid out in)."""
    return [ttnn.CoreCoord(x, y) for y in range(rng.start.y, rng.end.y + 1) for x in range(rng.start.x, rng.end.x + 1)]


def rect_size(rng: ttnn.CoreRange) -> int:
    return (rng.end.x - rng.start.x + 1) * (rng.end.y - rng.start.y + 1)


def in_rect(core: ttnn.CoreCoord, rng: ttnn.CoreRange) -> bool:
    return rng.start.x <= core.x <= rng.end.x and rng.start.y <= core.y <= rng.end.y


def grid_rect(n_cores: int, grid_x: int = 8, grid_y: int = 8, start: tuple[int, int] = (0, 0)) -> ttnn.CoreRange:
    """A rectangle of exactly n_cores cores starting at `start`: full rows of up to grid_x cores."""
    sx, sy = start
    width = min(n_cores, grid_x - sx)
    if width <= 0 or n_cores % width:
        raise ValueError(f"{n_cores} cores do not form a rectangle of rows <= {grid_x - sx} wide")
    rows = n_cores // width
    if sy + rows > grid_y:
        raise ValueError(f"{n_cores} cores from {start} do not fit a {grid_x}x{grid_y} grid")
    return ttnn.CoreRange(ttnn.CoreCoord(sx, sy), ttnn.CoreCoord(sx + width - 1, sy + rows - 1))


def height_sharded(core: ttnn.CoreCoord, shard_shape: tuple[int, int]) -> ttnn.MemoryConfig:
    spec = ttnn.ShardSpec(single_core(core), list(shard_shape), ttnn.ShardOrientation.ROW_MAJOR)
    return ttnn.MemoryConfig(ttnn.TensorMemoryLayout.HEIGHT_SHARDED, ttnn.BufferType.L1, spec)


def width_sharded(grid: ttnn.CoreRange, shard_shape: tuple[int, int]) -> ttnn.MemoryConfig:
    spec = ttnn.ShardSpec(core_set(grid), list(shard_shape), ttnn.ShardOrientation.ROW_MAJOR)
    return ttnn.MemoryConfig(ttnn.TensorMemoryLayout.WIDTH_SHARDED, ttnn.BufferType.L1, spec)


def cb(index: int, fmt, n_tiles: int, cores: ttnn.CoreRangeSet) -> ttnn.CBDescriptor:
    """A program-allocated CB of n_tiles 32x32 tiles of `fmt`."""
    return common.cb_descriptor(index, fmt, n_tiles, cores)


def tile_bytes(fmt) -> int:
    return FP32_TILE_BYTES if fmt == ttnn.float32 else BF16_TILE_BYTES


def shape_list(shape) -> list[int]:
    return [int(d) for d in shape]


def rows_and_width(shape: Iterable[int]) -> tuple[int, int] | None:
    """(rows, width) of a [..., rows, width] shape whose leading dims are all 1; None otherwise."""
    s = list(shape)
    if len(s) < 2 or any(d != 1 for d in s[:-2]):
        return None
    return s[-2], s[-1]


# ---------------------------------------------------------------------------------------------
# runtime validation of device tensors (host side, before generic_op)
# ---------------------------------------------------------------------------------------------

def expect_tensor(
    name: str,
    t,
    *,
    layout=ttnn.TILE_LAYOUT,
    dtype=ttnn.bfloat16,
    memory_layout=None,
    grid: ttnn.CoreRangeSet | None = None,
    shard_shape: tuple[int, int] | None = None,
    shape: list[int] | None = None,
) -> None:
    if not isinstance(t, ttnn.Tensor):
        raise InvalidInputError(f"{name}: expected a ttnn.Tensor on device, got {type(t).__name__}")
    if t.storage_type() != ttnn.StorageType.DEVICE:
        raise InvalidInputError(f"{name}: expected a device tensor, got a host tensor")
    if t.layout != layout:
        raise InvalidInputError(f"{name}: expected layout {layout}, got {t.layout}")
    if t.dtype != dtype:
        raise InvalidInputError(f"{name}: expected dtype {dtype}, got {t.dtype}")
    if shape is not None and shape_list(t.shape) != list(shape):
        raise InvalidInputError(f"{name}: expected shape {list(shape)}, got {shape_list(t.shape)}")
    mc = t.memory_config()
    if memory_layout is not None:
        if mc.buffer_type != ttnn.BufferType.L1 or mc.memory_layout != memory_layout:
            raise InvalidInputError(
                f"{name}: expected an L1 {memory_layout} tensor, got {mc.memory_layout} in {mc.buffer_type}"
            )
        spec = mc.shard_spec
        if spec is None:
            raise InvalidInputError(f"{name}: expected a shard spec, got none")
        if spec.orientation != ttnn.ShardOrientation.ROW_MAJOR:
            raise InvalidInputError(f"{name}: expected ROW_MAJOR shard orientation, got {spec.orientation}")
        if grid is not None and spec.grid != grid:
            raise InvalidInputError(f"{name}: expected shard grid {grid}, got {spec.grid}")
        if shard_shape is not None and list(spec.shape) != list(shard_shape):
            raise InvalidInputError(f"{name}: expected shard shape {list(shard_shape)}, got {list(spec.shape)}")


def single_rect(grid: ttnn.CoreRangeSet, name: str) -> ttnn.CoreRange:
    ranges = list(grid.ranges())
    if len(ranges) != 1:
        raise InvalidInputError(f"{name}: expected a shard grid that is one rectangle of cores, got {grid}")
    return ranges[0]


def same_device(**tensors) -> None:
    devs = {name: t.device() for name, t in tensors.items()}
    first = next(iter(devs.values()))
    for name, d in devs.items():
        if d is not first and d != first:
            raise InvalidInputError(f"{name}: on a different device than the other inputs")


def noc_xy(device, core: ttnn.CoreCoord) -> tuple[int, int]:
    c = device.worker_core_from_logical_core(core)
    return int(c.x), int(c.y)


def pcc(a, b) -> float:
    import torch

    a = a.detach().double().flatten()
    b = b.detach().double().flatten()
    if torch.equal(a, b):
        return 1.0
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum()) / den if den else 0.0


# ---------------------------------------------------------------------------------------------
# mock-device check records: named compile-time args
# ---------------------------------------------------------------------------------------------

_NAMED_ARG = None


def _parse_named(text: str) -> dict[str, int]:
    import re

    global _NAMED_ARG
    if _NAMED_ARG is None:
        _NAMED_ARG = re.compile(r'\{"([^"]+)",\s*(-?\w+)\}')
    return {k: int(v, 0) for k, v in _NAMED_ARG.findall(text or "")}


def assert_program_checked_named(program: ttnn.ProgramDescriptor) -> int:
    """Like micro_ops.mock_device.assert_program_checked, but also matches the NAMED compile-time args
    (our kernels take all their arguments by name, so positional args alone cannot tell the variants
    apart). Returns the number of (kernel, RISC) checks matched; raises AssertionError naming the misses."""
    import os

    from micro_ops import mock_device as md

    checks = [c for c in md.kernel_checks() if c.ok]
    missing, matched = [], 0
    for k in program.kernels:
        src = os.path.realpath(k.kernel_source)
        want = {str(n): int(v) for n, v in k.named_compile_time_args}
        for risc in md.expected_riscs(k):
            if any(c.risc == risc and src in c.sources and _parse_named(c.named_compile_time_args) == want
                   for c in checks):
                matched += 1
            else:
                missing.append(f"{os.path.basename(src)} on {risc} with {sorted(want.items())}")
    if missing:
        raise AssertionError("kernels not host-checked with these named args: " + "; ".join(missing))
    return matched


def signature_key(**tensors) -> tuple:
    """Hashable key of everything validation and the program depend on except buffer addresses
    (shapes, dtypes, layouts, memory configs, devices). A descriptor cache hit on it means these exact
    tensors' properties were validated before, so only the cheap per-call checks run again."""
    out = []
    for name, t in tensors.items():
        if not isinstance(t, ttnn.Tensor):
            raise InvalidInputError(f"{name}: expected a ttnn.Tensor on device, got {type(t).__name__}")
        if t.storage_type() != ttnn.StorageType.DEVICE:
            raise InvalidInputError(f"{name}: expected a device tensor, got a host tensor")
        out.append((name, common.tensor_signature(t), t.device().id()))
    return tuple(out)
