"""Descriptor helpers every micro-op reuses: tile sizes, core grids, work splits, CB and kernel
descriptors, tensor-accessor args, kernel source lookup, and a ProgramDescriptor cache.

Written against ttnn 0.81.1's descriptor API:
``KernelDescriptor(kernel_source, source_type, core_ranges, compile_time_args, named_compile_time_args,
defines, runtime_args, common_runtime_args, opt_level, config, compiler_include_paths)`` where
``runtime_args`` is a list of ``(CoreCoord, [args])`` pairs, and
``generic_op(io_tensors, program_descriptor)`` with the pre-allocated output last.
"""
from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Mapping, Sequence

import ttnn

# The kernels that go with this code: in a checkout the kernels/ folder beside micro_ops/ (never a
# ttfuse_kernels package installed from another checkout, which would build and test its kernels, not
# ours); installed from a wheel, the package ttfuse_kernels.
if (Path(__file__).resolve().parent.parent / "kernels" / "unified" / "kernel_op_api.hpp").is_file():
    import importlib.util as _ilu

    _spec = _ilu.spec_from_file_location("_ttfuse_checkout_kernels",
                                         Path(__file__).resolve().parent.parent / "kernels" / "__init__.py")
    _kernels = _ilu.module_from_spec(_spec)
    _spec.loader.exec_module(_kernels)
    _kernel_include_dir, _kernel_path = _kernels.include_dir, _kernels.kernel_path
else:
    from ttfuse_kernels import include_dir as _kernel_include_dir, kernel_path as _kernel_path

TILE_HEIGHT = 32
TILE_WIDTH = 32
FACE_HEIGHT = 16
FACE_WIDTH = 16
NUM_CIRCULAR_BUFFERS = 32  # CB indices 0..31 on Wormhole / Blackhole

# Bytes of one 32x32 tile per data type (bfp formats carry one shared-exponent byte per 16 values).
_TILE_BYTES = {
    ttnn.bfloat16: 2048,
    ttnn.float32: 4096,
    ttnn.bfloat8_b: 1088,
    ttnn.bfloat4_b: 576,
    ttnn.uint32: 4096,
    ttnn.int32: 4096,
    ttnn.uint16: 2048,
    ttnn.uint8: 1024,
}


# --- kernel sources ---------------------------------------------------------------------------


def kernel_path(relative: str) -> str:
    """Absolute path of a kernel under kernels/, e.g. ``kernel_path("rmsnorm/rmsnorm_kernel.cpp")``."""
    return _kernel_path(relative)


def kernel_include_dir() -> str:
    """Include root for shared kernel headers (``#include "unified/kernel_op_api.hpp"``)."""
    return _kernel_include_dir()


# --- sizes ------------------------------------------------------------------------------------


def tile_size(dtype: Any) -> int:
    """Bytes of one 32x32 tile of ``dtype`` (ttnn.DataType)."""
    try:
        return _TILE_BYTES[dtype]
    except KeyError:
        raise ValueError(f"no tile size known for dtype {dtype}") from None


def tiles(n: int, tile: int = TILE_HEIGHT) -> int:
    """ceil(n / tile): the number of tiles covering n elements."""
    return -(-int(n) // tile)


def round_up(n: int, multiple: int) -> int:
    return tiles(n, multiple) * multiple


# --- cores ------------------------------------------------------------------------------------


def core(x: int, y: int) -> Any:
    return ttnn.CoreCoord(int(x), int(y))


def core_range_set(cores: Iterable[Any]) -> Any:
    """CoreRangeSet of single-core ranges from CoreCoords or (x, y) pairs (merged by tt-metal)."""
    ranges = []
    for c in cores:
        cc = c if isinstance(c, ttnn.CoreCoord) else core(*c)
        ranges.append(ttnn.CoreRange(cc, cc))
    if not ranges:
        raise ValueError("core_range_set needs at least one core")
    return ttnn.CoreRangeSet(set(ranges))


def single_core(x: int = 0, y: int = 0) -> Any:
    return ttnn.CoreRangeSet({ttnn.CoreRange(core(x, y), core(x, y))})


def cores_of(core_ranges: Any, row_major: bool = True) -> list[Any]:
    """The cores of a CoreRangeSet (or CoreRange), row-major (y outer) or column-major."""
    ranges = core_ranges.ranges() if hasattr(core_ranges, "ranges") else [core_ranges]
    out = []
    for r in ranges:
        xs = range(r.start.x, r.end.x + 1)
        ys = range(r.start.y, r.end.y + 1)
        out += [core(x, y) for y in ys for x in xs] if row_major else [core(x, y) for x in xs for y in ys]
    key = (lambda c: (c.y, c.x)) if row_major else (lambda c: (c.x, c.y))
    return sorted(out, key=key)


def worker_grid(device: Any) -> tuple[int, int]:
    """(columns, rows) of the device's compute-with-storage worker grid (8x8 on an N150)."""
    g = device.compute_with_storage_grid_size()
    return int(g.x), int(g.y)


def grid_cores(num_cores: int, grid: tuple[int, int], row_major: bool = True) -> list[Any]:
    """The first ``num_cores`` cores of a ``grid`` = (columns, rows), row-major by default."""
    cols, rows = grid
    if not 1 <= num_cores <= cols * rows:
        raise ValueError(f"need 1..{cols * rows} cores of a {cols}x{rows} grid, asked for {num_cores}")
    if row_major:
        return [core(i % cols, i // cols) for i in range(num_cores)]
    return [core(i // rows, i % rows) for i in range(num_cores)]


def split_work(total: int, parts: int) -> list[tuple[int, int]]:
    """Split ``total`` units into ``parts`` contiguous (start, count) ranges whose sizes differ by at
    most one (the first ``total % parts`` ranges get one more)."""
    if parts < 1:
        raise ValueError("split_work needs at least one part")
    base, extra = divmod(int(total), parts)
    out, start = [], 0
    for i in range(parts):
        n = base + (1 if i < extra else 0)
        out.append((start, n))
        start += n
    return out


# --- memory configs ---------------------------------------------------------------------------


def is_sharded(memory_config: Any) -> bool:
    return memory_config is not None and memory_config.memory_layout != ttnn.TensorMemoryLayout.INTERLEAVED


def describe_memory_config(memory_config: Any) -> str:
    """Short human form, e.g. 'DRAM interleaved' or 'L1 HEIGHT_SHARDED shard [32, 7168] on 8 cores'."""
    if memory_config is None:
        return "none"
    where = "DRAM" if memory_config.buffer_type == ttnn.BufferType.DRAM else "L1"
    if not is_sharded(memory_config):
        return f"{where} interleaved"
    layout = str(memory_config.memory_layout).split(".")[-1]
    spec = memory_config.shard_spec
    if spec is None:
        return f"{where} {layout} (no shard spec)"
    return f"{where} {layout} shard {list(spec.shape)} on {spec.grid.num_cores()} cores"


def tensor_signature(tensor: Any) -> tuple:
    """Hashable description of everything about a device tensor that a program's compile-time
    structure may depend on (not its address). DataType, Layout and MemoryConfig hash by value and
    are kept as objects (~10 us in all, against ~18 us when everything is turned into strings);
    ttnn.Shape hashes by identity, so shapes become tuples."""
    return (tuple(tensor.shape), tuple(tensor.padded_shape), tensor.dtype, tensor.layout, tensor.memory_config(),
            tuple(tensor.tile.tile_shape))


# --- descriptors ------------------------------------------------------------------------------


def cb_descriptor(cb_index: int, dtype: Any, num_pages: int, core_ranges: Any, page_size: int | None = None,
                  tile: Any = None) -> Any:
    """A circular buffer of ``num_pages`` pages of ``page_size`` bytes (default: one tile of
    ``dtype``) on ``core_ranges``."""
    if not 0 <= cb_index < NUM_CIRCULAR_BUFFERS:
        raise ValueError(f"CB index must be in 0..{NUM_CIRCULAR_BUFFERS - 1}, got {cb_index}")
    if num_pages < 1:
        raise ValueError(f"a CB needs at least one page, got {num_pages}")
    page = tile_size(dtype) if page_size is None else int(page_size)
    fmt = ttnn.CBFormatDescriptor(buffer_index=cb_index, data_format=dtype, page_size=page, tile=tile)
    return ttnn.CBDescriptor(total_size=page * num_pages, core_ranges=core_ranges, format_descriptors=[fmt])


def cb_descriptor_from_tensor(cb_index: int, tensor: Any) -> Any:
    """A CB backed by a sharded L1 tensor's shard (no copy: kernels see the shard as CB pages)."""
    mc = tensor.memory_config()
    if not is_sharded(mc) or mc.buffer_type != ttnn.BufferType.L1:
        raise ValueError(f"a CB can only be backed by an L1-sharded tensor, got {describe_memory_config(mc)}")
    return ttnn.cb_descriptor_from_sharded_tensor(cb_index, tensor)


def runtime_args(per_core: Mapping[Any, Sequence[int]] | Sequence[tuple[Any, Sequence[int]]]) -> list:
    """Normalise per-core runtime args to the 0.81.1 form: a list of (CoreCoord, [uint32 args])."""
    items = per_core.items() if isinstance(per_core, Mapping) else per_core
    out = []
    for c, args in items:
        cc = c if isinstance(c, ttnn.CoreCoord) else core(*c)
        out.append((cc, [int(a) for a in args]))
    return out


def compute_config(*, math_fidelity: Any = None, fp32_dest_acc_en: bool = False, math_approx_mode: bool = False,
                   dst_full_sync_en: bool = False) -> Any:
    return ttnn.ComputeConfigDescriptor(
        math_fidelity=ttnn.MathFidelity.HiFi4 if math_fidelity is None else math_fidelity,
        math_approx_mode=math_approx_mode,
        fp32_dest_acc_en=fp32_dest_acc_en,
        dst_full_sync_en=dst_full_sync_en,
    )


_CONFIGS: dict[str, Callable[[], Any]] = {
    "reader": ttnn.ReaderConfigDescriptor,  # NCRISC
    "writer": ttnn.WriterConfigDescriptor,  # BRISC
}


def kernel_descriptor(source: str, core_ranges: Any, kind: str | Any, *, compile_time_args: Sequence[int] = (),
                      runtime_args_per_core: Mapping | Sequence = (), common_runtime_args: Sequence[int] = (),
                      defines: Mapping[str, Any] | Sequence[tuple[str, Any]] = (),
                      named_compile_time_args: Mapping[str, int] | Sequence[tuple[str, int]] = (),
                      include_paths: Sequence[str] = ()) -> Any:
    """A KernelDescriptor for a kernel file.

    ``source``: a path relative to kernels/ or absolute. ``kind``: "reader" (NCRISC), "writer"
    (BRISC), "compute" (TRISC0/1/2 with default :func:`compute_config`) or a ready config
    descriptor (e.g. ``compute_config(fp32_dest_acc_en=True)``). The kernels folder is always on
    the include path so unified kernels can include ``unified/kernel_op_api.hpp``.
    """
    path = source if source.startswith("/") else kernel_path(source)
    if isinstance(kind, str):
        if kind == "compute":
            config = compute_config()
        elif kind in _CONFIGS:
            config = _CONFIGS[kind]()
        else:
            raise ValueError(f"kernel kind must be reader, writer or compute, got {kind!r}")
    else:
        config = kind
    defs = list(defines.items()) if isinstance(defines, Mapping) else list(defines)
    named = list(named_compile_time_args.items()) if isinstance(named_compile_time_args, Mapping) \
        else list(named_compile_time_args)
    return ttnn.KernelDescriptor(
        kernel_source=path,
        source_type=ttnn.KernelDescriptor.SourceType.FILE_PATH,
        core_ranges=core_ranges,
        compile_time_args=[int(a) for a in compile_time_args],
        named_compile_time_args=[(str(k), int(v)) for k, v in named],
        defines=[(str(k), str(v)) for k, v in defs],
        runtime_args=runtime_args(runtime_args_per_core),
        common_runtime_args=[int(a) for a in common_runtime_args],
        config=config,
        compiler_include_paths=[kernel_include_dir(), *include_paths],
    )


def reader_kernel(source: str, core_ranges: Any, **kwargs: Any) -> Any:
    return kernel_descriptor(source, core_ranges, "reader", **kwargs)


def writer_kernel(source: str, core_ranges: Any, **kwargs: Any) -> Any:
    return kernel_descriptor(source, core_ranges, "writer", **kwargs)


def compute_kernel(source: str, core_ranges: Any, config: Any = None, **kwargs: Any) -> Any:
    return kernel_descriptor(source, core_ranges, config if config is not None else "compute", **kwargs)


def tensor_accessor_args(tensor: Any) -> list[int]:
    """Compile-time args of a TensorAccessor for a device tensor (append them to a kernel's
    compile-time args; the kernel reads them with ``TensorAccessorArgs<offset>()``). Raises when the
    accessor would also need common runtime args, which callers here do not place."""
    args = ttnn.TensorAccessorArgs(tensor)
    if list(args.get_common_runtime_args()):
        raise ValueError("this tensor's accessor needs common runtime args; not supported by these helpers")
    return [int(a) for a in args.get_compile_time_args()]


def buffer_address(tensor: Any) -> int:
    return int(tensor.buffer_address())


# --- program descriptor cache ------------------------------------------------------------------


def stable_hash(key: Hashable) -> int:
    """A 63-bit hash of ``repr(key)`` that is the same in every process (for custom_program_hash)."""
    return int.from_bytes(hashlib.blake2b(repr(key).encode(), digest_size=8).digest(), "little") >> 1


class DescriptorCache:
    """LRU cache of built program descriptors (or anything else) keyed by a hashable key.

    Rebuilding a ProgramDescriptor costs 19-97 us per call in Python; ops cache it per
    (variant, shapes, memory configs) and only patch buffer addresses per call.
    """

    def __init__(self, max_entries: int = 256):
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get_or_build(self, key: Hashable, build: Callable[[], Any]) -> Any:
        if key in self._entries:
            self.hits += 1
            self._entries.move_to_end(key)
            return self._entries[key]
        self.misses += 1
        value = build()
        self._entries[key] = value
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        self._entries.clear()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)


def prod(values: Iterable[int]) -> int:
    return math.prod(int(v) for v in values)
