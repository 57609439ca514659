"""Checks and configs for the L1 placements the norm/matmul micro-ops need (shared by patterns)."""
from __future__ import annotations

import ttnn

TILE = 32


def _layout(mc) -> str:
    return str(mc.memory_layout).split(".")[-1] if mc is not None else "unknown"


def grid_cores(mc) -> int | None:
    """Cores of a sharded config's grid when it is one rectangle, else None."""
    grid = mc.shard_spec.grid
    ranges = grid.ranges()
    if len(ranges) != 1:
        return None
    r = ranges[0]
    return (r.end.x - r.start.x + 1) * (r.end.y - r.start.y + 1)


def first_core(mc):
    return mc.shard_spec.grid.ranges()[0].start


def height_sharded_on(core, shard_shape) -> ttnn.MemoryConfig:
    grid = ttnn.CoreRangeSet({ttnn.CoreRange(core, core)})
    return ttnn.MemoryConfig(ttnn.TensorMemoryLayout.HEIGHT_SHARDED, ttnn.BufferType.L1,
                             ttnn.ShardSpec(grid, list(shard_shape), ttnn.ShardOrientation.ROW_MAJOR))


def width_sharded_like(weight_mc, n: int) -> ttnn.MemoryConfig:
    """The output config of a matmul whose weight is width-sharded by `weight_mc` over N columns."""
    cores = grid_cores(weight_mc)
    return ttnn.MemoryConfig(ttnn.TensorMemoryLayout.WIDTH_SHARDED, ttnn.BufferType.L1,
                             ttnn.ShardSpec(weight_mc.shard_spec.grid, [TILE, n // cores], ttnn.ShardOrientation.ROW_MAJOR))


def weight_reason(name: str, w) -> str | None:
    mc = w.memory_config
    if mc is None or not mc.is_sharded() or _layout(mc) != "WIDTH_SHARDED" or mc.buffer_type != ttnn.BufferType.L1:
        return (f"{name} is {_layout(mc)} in {str(getattr(mc, 'buffer_type', '?')).split('.')[-1]}: the fused op needs "
                f"weights already WIDTH_SHARDED in L1 (moving a weight per call would cost more than the fusion saves)")
    if grid_cores(mc) is None:
        return f"{name}'s shard grid is not one rectangle of cores"
    if w.layout != ttnn.TILE_LAYOUT or w.dtype != ttnn.bfloat16:
        return f"{name} must be bfloat16 TILE"
    return None


def gamma_reason(gamma, x_mc_core) -> str | None:
    mc = gamma.memory_config
    if gamma.layout != ttnn.ROW_MAJOR_LAYOUT or mc is None or _layout(mc) != "HEIGHT_SHARDED":
        return "gamma must already be ROW_MAJOR and HEIGHT_SHARDED in L1 on the norm core (placed once, like a weight)"
    if x_mc_core is not None and first_core(mc) != x_mc_core:
        return "gamma is not on the norm core"
    return None


def is_height_sharded_rows(spec) -> bool:
    """x as the norm micro-ops read it: L1 HEIGHT_SHARDED on one core, shard [32, width]."""
    mc = spec.memory_config
    return (mc is not None and _layout(mc) == "HEIGHT_SHARDED" and mc.buffer_type == ttnn.BufferType.L1
            and grid_cores(mc) == 1 and list(mc.shard_spec.shape) == [TILE, spec.shape[-1]])
