"""PrepareExpertWeights: MoE routing weights [..., K] -> [K, 1, BS, H], broadcast over H, in ONE program.

Replaces the 5-dispatch chain (reshape -> to_layout RM -> repeat over H -> permute -> to_layout TILE)
and its 4 intermediate tensors:

    out[k, 0, bs, h] = in_flat[bs, k]      BS = product of all input dims but the last (row-major)

Device contract (checked in Python before anything reaches ``generic_op``):

* input: a device tensor in TILE layout with 32x32 tiles, **bfloat16**, last dim K with 1 <= K <= 32,
  interleaved (DRAM or L1) or sharded in L1/DRAM (what ``ttnn.topk`` returns). It is read in place:
  a weight at (bs, k) sits in face ((bs%32)/16)*2 + (k%32)/16, element ((bs%16)*16 + k%16) of its tile.
  Refused: ROW_MAJOR (the seed's 1x32-tile RM input), other tile shapes, float32 and the block
  floats bfloat8_b / bfloat4_b (the kernel copies 16-bit values), K > 32 (more than one tile column).
* output: pre-allocated [K, 1, BS, H], TILE 32x32, same dtype, any memory config tt-metal can
  allocate (DRAM / L1 interleaved, or sharded: written through a TensorAccessor, so a shard that
  lives on the writing core is a local write). Padding rows (bs >= BS) are zero; when H % 32 != 0
  the columns past H are zero too, as ``to_layout(TILE)`` leaves them.

Variants (same unified kernel, kernels/prepare_expert_weights/; NCRISC gathers and builds each
output tile row once in L1, BRISC writes it ceil(H/32) times):

* :class:`PrepareExpertWeightsSingleCore` -- one core, one tile row per CB handshake. Reference /
  debugging variant. BS <= 32.
* :class:`PrepareExpertWeightsPipelined` -- one core, ``tiles_per_block`` tile rows built per CB
  reservation and written with one flush per block (fewer handshakes). BS <= 32.
* :class:`PrepareExpertWeightsMultiCore` -- output pages split into contiguous ranges over the worker
  grid (or, for a height-sharded output with full-width shards, one range per shard on the core
  holding it); no inter-core communication. Limits: K <= 32, tiles_per_block <= 8, any BS / H whose
  output tt-metal can allocate, at most one core per output page.

What was verified without hardware (tests/test_prepare_expert_weights_op.py): golden == the
unfused chain's ttnn golden functions, and on tt-metal's mock N150 every variant's descriptor is
accepted by tt-metal and both RISCs' kernels pass the host syntax/type check with each
descriptor's compile-time args. The kernels' numerical behaviour is only proven on hardware
(the hardware tests are written and skip without a device).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import ttnn

from micro_ops import common

KERNEL = "prepare_expert_weights/prepare_expert_weights_kernel.cpp"
OUT_CB = 0  # broadcast output tiles, NCRISC -> BRISC
GATHER_CB = 1  # NCRISC scratch: the half-tiles of the input holding one 32-token block
MAX_K = 32
MAX_TILES_PER_BLOCK = 8
SINGLE_CORE_MAX_BS = 32
SUPPORTED_DTYPES = (ttnn.bfloat16,)
# below this many output pages one core is as fast as many (dispatch dominates); see choose_variant
SINGLE_CORE_MAX_PAGES = 32


# --- golden and shape rule ----------------------------------------------------------------------


def golden(topk_expert_weights: torch.Tensor, num_experts_per_tok: int, hidden_size: int) -> torch.Tensor:
    """CPU reference: [..., K] -> [K, 1, BS, H] with out[k, 0, bs, h] = in_flat[bs, k]. Bit-exact
    (pure data movement, dtype preserved)."""
    x = topk_expert_weights
    k, h = int(num_experts_per_tok), int(hidden_size)
    if x.dim() < 1 or x.shape[-1] != k:
        raise ValueError(f"routing weights must have last dim K={k}, got shape {list(x.shape)}")
    if h < 1:
        raise ValueError(f"hidden_size must be >= 1, got {h}")
    flat = x.reshape(-1, k)
    bs = flat.shape[0]
    return flat.transpose(0, 1).reshape(k, 1, bs, 1).expand(k, 1, bs, h).contiguous()


def output_shape(input_shape: Any, num_experts_per_tok: int, hidden_size: int) -> tuple[int, int, int, int]:
    """Spec rule: the output shape for an input of ``input_shape`` = [..., K]."""
    dims = [int(d) for d in input_shape]
    k = int(num_experts_per_tok)
    if not dims or dims[-1] != k:
        raise ValueError(f"routing weights must have last dim K={k}, got shape {dims}")
    return (k, 1, math.prod(dims[:-1]), int(hidden_size))


# --- validation ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Everything the descriptor needs about the shapes."""

    bs: int  # tokens
    k: int  # experts per token
    h: int  # hidden size
    bst: int  # ceil(BS / 32): output tile rows per expert
    ht: int  # ceil(H / 32): output tiles per row
    rows_per_slice: int  # input dim -2 (tokens per 2-D slice of the TILE input)
    tiles_per_slice: int  # ceil(rows_per_slice / 32)

    @property
    def pages(self) -> int:
        return self.k * self.bst * self.ht

    @property
    def h_mod_32(self) -> int:
        return self.h % 32


def _check_tensor(t: Any, name: str) -> None:
    if not isinstance(t, ttnn.Tensor):
        raise TypeError(f"{name} must be a ttnn.Tensor, got {type(t).__name__}")
    if not ttnn.is_tensor_storage_on_device(t):
        raise ValueError(f"{name} must be on a device (got a host tensor); move it with ttnn.to_device")
    if t.layout != ttnn.TILE_LAYOUT:
        raise ValueError(f"{name} must be TILE layout (as ttnn.topk returns it), got {t.layout}")
    if t.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{name} must be bfloat16, got {t.dtype}: float32 and block floats "
                        f"(bfloat8_b, bfloat4_b) are not supported by this micro-op")
    if tuple(t.tile.tile_shape) != (32, 32):
        raise ValueError(f"{name} must use 32x32 tiles, got {list(t.tile.tile_shape)}")
    mc = t.memory_config()
    if mc.buffer_type not in (ttnn.BufferType.DRAM, ttnn.BufferType.L1):
        raise ValueError(f"{name} must live in DRAM or L1, got {mc.buffer_type}")


def geometry(input_shape: Any, num_experts_per_tok: int, hidden_size: int) -> Geometry:
    dims = [int(d) for d in input_shape]
    k, h = int(num_experts_per_tok), int(hidden_size)
    if not isinstance(num_experts_per_tok, int) or not isinstance(hidden_size, int):
        raise TypeError("num_experts_per_tok and hidden_size must be Python ints")
    if not dims or dims[-1] != k:
        raise ValueError(f"input's last dim must be K=num_experts_per_tok={k}, got shape {dims}")
    if not 1 <= k <= MAX_K:
        raise ValueError(f"K=num_experts_per_tok must be in 1..{MAX_K} (one tile column of the input), got {k}")
    if h < 1:
        raise ValueError(f"hidden_size must be >= 1, got {h}")
    bs = math.prod(dims[:-1])
    if bs < 1:
        raise ValueError(f"input has no tokens: shape {dims}")
    rows = dims[-2] if len(dims) >= 2 else 1
    return Geometry(bs=bs, k=k, h=h, bst=common.tiles(bs), ht=common.tiles(h), rows_per_slice=rows,
                    tiles_per_slice=common.tiles(rows))


def validate(input_tensor: Any, output_tensor: Any, num_experts_per_tok: int, hidden_size: int) -> Geometry:
    """Check the pair of device tensors against the kernel's contract; raise TypeError/ValueError
    naming the expectation. Returns the shape geometry."""
    _check_tensor(input_tensor, "input_tensor")
    geo = geometry(input_tensor.shape, num_experts_per_tok, hidden_size)
    padded = [int(d) for d in input_tensor.padded_shape]
    if padded[-1] != 32 or (len(padded) >= 2 and padded[-2] != geo.tiles_per_slice * 32):
        raise ValueError(f"input_tensor's padded shape {padded} is not the TILE padding of {list(input_tensor.shape)}")
    _check_tensor(output_tensor, "output_tensor")
    want = output_shape(input_tensor.shape, geo.k, geo.h)
    if tuple(int(d) for d in output_tensor.shape) != want:
        raise ValueError(f"output_tensor must have shape {list(want)} = [K, 1, BS, H], "
                         f"got {list(output_tensor.shape)}")
    if output_tensor.dtype != input_tensor.dtype:
        raise TypeError(f"output_tensor dtype {output_tensor.dtype} must equal the input's {input_tensor.dtype}")
    if output_tensor.device() != input_tensor.device():
        raise ValueError("input_tensor and output_tensor must be on the same device")
    return geo


# --- descriptor ---------------------------------------------------------------------------------


_CACHE = common.DescriptorCache()
_LAST: list = [None]  # the _Program of the latest op() call (tests, debugging)


def descriptor_cache() -> common.DescriptorCache:
    """The ProgramDescriptor cache shared by all variants (hits / misses / clear())."""
    return _CACHE


def _shard_ranges(output_tensor: Any, geo: Geometry) -> list[tuple[Any, int, int]] | None:
    """One page range per shard when the output is height-sharded with full-width shards, so each
    core writes the shard it holds; None otherwise."""
    mc = output_tensor.memory_config()
    if mc.memory_layout != ttnn.TensorMemoryLayout.HEIGHT_SHARDED or mc.shard_spec is None:
        return None
    spec = mc.shard_spec
    shard_h, shard_w = (int(v) for v in spec.shape)
    if shard_w != geo.ht * 32 or shard_h % 32:
        return None
    pages_per_shard = (shard_h // 32) * geo.ht
    cores = common.cores_of(spec.grid, row_major=spec.orientation == ttnn.ShardOrientation.ROW_MAJOR)
    out, page = [], 0
    for c in cores:
        n = min(pages_per_shard, geo.pages - page)
        if n <= 0:
            break
        out.append((c, page, n))
        page += n
    return out if page == geo.pages else None


def _assign(variant: str, output_tensor: Any, geo: Geometry, core: tuple[int, int] | None,
            max_cores: int | None) -> list[tuple[Any, int, int]]:
    device = output_tensor.device()
    cols, rows = common.worker_grid(device)
    if variant != "multi_core":
        if core is None:
            mc = output_tensor.memory_config()
            # the seed's layout: output sharded on one core -> run there, every write is local
            if common.is_sharded(mc) and mc.shard_spec is not None and mc.shard_spec.grid.num_cores() == 1:
                start = mc.shard_spec.grid.ranges()[0].start
                core = (start.x, start.y)
            else:
                core = (0, 0)
        x, y = core
        if not (0 <= x < cols and 0 <= y < rows):
            raise ValueError(f"core {core} is outside the device's {cols}x{rows} worker grid")
        return [(common.core(x, y), 0, geo.pages)]
    by_shard = _shard_ranges(output_tensor, geo)
    if by_shard is not None and (max_cores is None or len(by_shard) <= max_cores):
        return by_shard
    n = min(geo.pages, cols * rows, max_cores or cols * rows)
    cores = common.grid_cores(n, (cols, rows))
    return [(c, start, count) for c, (start, count) in zip(cores, common.split_work(geo.pages, n))]


def _build(variant: str, input_tensor: Any, output_tensor: Any, geo: Geometry, tiles_per_block: int,
           core: tuple[int, int] | None, max_cores: int | None, key: tuple) -> _Program:
    assignment = _assign(variant, output_tensor, geo, core, max_cores)
    core_ranges = common.core_range_set(c for c, _, _ in assignment)
    per_core = [(c, [first, count]) for c, first, count in assignment]
    tiles_per_row = 2 if geo.h_mod_32 else 1
    gather_page_bytes = 512 if geo.k <= 16 else 1024
    tile_bytes = common.tile_size(input_tensor.dtype)
    reader = common.reader_kernel(
        KERNEL, core_ranges,
        compile_time_args=[OUT_CB, GATHER_CB, tiles_per_block, gather_page_bytes,
                           *common.tensor_accessor_args(input_tensor)],
        runtime_args_per_core=per_core,
        common_runtime_args=[0, geo.bs, geo.k, geo.ht, geo.bst, geo.h_mod_32, geo.rows_per_slice,
                             geo.tiles_per_slice],
    )
    writer = common.writer_kernel(
        KERNEL, core_ranges,
        compile_time_args=[OUT_CB, tiles_per_block, *common.tensor_accessor_args(output_tensor)],
        runtime_args_per_core=per_core,
        common_runtime_args=[0, geo.ht, geo.h_mod_32],
    )
    cbs = [
        # double-buffered: NCRISC builds the next block while BRISC writes this one
        common.cb_descriptor(OUT_CB, input_tensor.dtype, 2 * tiles_per_block * tiles_per_row, core_ranges,
                             page_size=tile_bytes),
        common.cb_descriptor(GATHER_CB, input_tensor.dtype, 32, core_ranges, page_size=gather_page_bytes),
    ]
    descriptor = ttnn.ProgramDescriptor(kernels=[reader, writer], cbs=cbs, semaphores=[])
    # every compile-time aspect of the program is in the key: let generic_op skip hashing the descriptor
    descriptor.custom_program_hash = common.stable_hash(("ttfuse.prepare_expert_weights", key))
    return _Program(descriptor, assignment, geo)


@dataclasses.dataclass
class _Program:
    descriptor: Any
    cores: list  # [(CoreCoord, first_page, num_pages)]
    geo: Geometry


def _key(variant: str, input_tensor: Any, output_tensor: Any, k: Any, h: Any, tiles_per_block: Any,
         core: Any, max_cores: Any) -> tuple:
    # everything validation and the program depend on, except buffer addresses
    return (variant, k, h, tiles_per_block, core, max_cores, common.tensor_signature(input_tensor),
            common.tensor_signature(output_tensor), input_tensor.device().id(), output_tensor.device().id())


def _validated_build(variant: str, input_tensor: Any, output_tensor: Any, num_experts_per_tok: int,
                     hidden_size: int, tiles_per_block: int, core: tuple[int, int] | None,
                     max_cores: int | None, key: tuple) -> _Program:
    geo = validate(input_tensor, output_tensor, num_experts_per_tok, hidden_size)
    if not isinstance(tiles_per_block, int) or not 1 <= tiles_per_block <= MAX_TILES_PER_BLOCK:
        raise ValueError(f"tiles_per_block must be an int in 1..{MAX_TILES_PER_BLOCK}, got {tiles_per_block!r}")
    if variant != "multi_core" and geo.bs > SINGLE_CORE_MAX_BS:
        raise ValueError(f"{variant} needs BS <= {SINGLE_CORE_MAX_BS} tokens (one output tile row per expert), "
                         f"got BS={geo.bs}: use PrepareExpertWeightsMultiCore")
    if max_cores is not None and (not isinstance(max_cores, int) or max_cores < 1):
        raise ValueError(f"max_cores must be an int >= 1, got {max_cores!r}")
    return _build(variant, input_tensor, output_tensor, geo, tiles_per_block, core, max_cores, key)


def _program_for(variant: str, input_tensor: Any, output_tensor: Any, num_experts_per_tok: int, hidden_size: int,
                 tiles_per_block: int, core: tuple[int, int] | None, max_cores: int | None) -> _Program:
    # storage is not part of the signature: check it on every call (a host tensor has no buffer)
    for t, name in ((input_tensor, "input_tensor"), (output_tensor, "output_tensor")):
        if not isinstance(t, ttnn.Tensor):
            raise TypeError(f"{name} must be a ttnn.Tensor, got {type(t).__name__}")
        if not ttnn.is_tensor_storage_on_device(t):
            raise ValueError(f"{name} must be on a device (got a host tensor); move it with ttnn.to_device")
    if core is not None:
        core = tuple(core)
    key = _key(variant, input_tensor, output_tensor, num_experts_per_tok, hidden_size, tiles_per_block, core,
               max_cores)
    # a hit means this exact signature was validated before: the full validation runs on misses only
    return _CACHE.get_or_build(key, lambda: _validated_build(variant, input_tensor, output_tensor,
                                                             num_experts_per_tok, hidden_size, tiles_per_block,
                                                             core, max_cores, key))


def _run(variant: str, input_tensor: Any, output_tensor: Any, num_experts_per_tok: int, hidden_size: int,
         tiles_per_block: int, core: tuple[int, int] | None = None, max_cores: int | None = None) -> Any:
    program = _program_for(variant, input_tensor, output_tensor, num_experts_per_tok, hidden_size,
                           tiles_per_block, core, max_cores)
    geo = program.geo
    reader, writer = program.descriptor.kernels[0], program.descriptor.kernels[1]
    # only the buffer addresses change between calls with the same key
    reader.common_runtime_args = [input_tensor.buffer_address(), geo.bs, geo.k, geo.ht, geo.bst,
                                  geo.h_mod_32, geo.rows_per_slice, geo.tiles_per_slice]
    writer.common_runtime_args = [output_tensor.buffer_address(), geo.ht, geo.h_mod_32]
    _LAST[0] = program
    return ttnn.generic_op([input_tensor, output_tensor], program.descriptor)


def last_descriptor() -> Any:
    """The ProgramDescriptor handed to generic_op by the latest op() call in this process."""
    return _LAST[0].descriptor if _LAST[0] is not None else None


def last_work_split() -> list[tuple[Any, int, int]]:
    """(core, first output page, number of pages) per core of the latest op() call."""
    return list(_LAST[0].cores) if _LAST[0] is not None else []


def build_descriptor(variant: str, input_tensor: Any, output_tensor: Any, num_experts_per_tok: int,
                     hidden_size: int, **kwargs: Any) -> Any:
    """The (cached) ProgramDescriptor a variant's op() would run for these tensors, without running it
    (buffer addresses are those of the latest op() call with the same signature)."""
    tpb = kwargs.get("tiles_per_block", 1 if variant == "single_core" else 4)
    return _program_for(variant, input_tensor, output_tensor, num_experts_per_tok, hidden_size, tpb,
                        kwargs.get("core"), kwargs.get("max_cores")).descriptor


# --- variants -----------------------------------------------------------------------------------


class PrepareExpertWeightsSingleCore:
    """One core, one output tile row per CB handshake. Needs BS <= 32 and K <= 32."""

    variant_name = "single_core"
    golden = staticmethod(golden)

    @staticmethod
    def op(input_tensor: Any, output_tensor: Any, num_experts_per_tok: int, hidden_size: int, *,
           core: tuple[int, int] | None = None) -> Any:
        """Run on ``core`` (default: the output's shard core if it is sharded on one core, else (0, 0))."""
        return _run("single_core", input_tensor, output_tensor, num_experts_per_tok, hidden_size, 1, core=core)


class PrepareExpertWeightsPipelined:
    """One core, ``tiles_per_block`` output tile rows built per CB reservation and written with one
    NoC flush per block. Needs BS <= 32 and K <= 32."""

    variant_name = "pipelined"
    golden = staticmethod(golden)

    @staticmethod
    def op(input_tensor: Any, output_tensor: Any, num_experts_per_tok: int, hidden_size: int,
           tiles_per_block: int = 4, *, core: tuple[int, int] | None = None) -> Any:
        return _run("pipelined", input_tensor, output_tensor, num_experts_per_tok, hidden_size, tiles_per_block,
                    core=core)


class PrepareExpertWeightsMultiCore:
    """Output pages split into contiguous ranges across the worker grid (one per shard for a
    height-sharded output with full-width shards); no inter-core communication. K <= 32, any BS."""

    variant_name = "multi_core"
    golden = staticmethod(golden)

    @staticmethod
    def op(input_tensor: Any, output_tensor: Any, num_experts_per_tok: int, hidden_size: int,
           tiles_per_block: int = 4, *, max_cores: int | None = None) -> Any:
        return _run("multi_core", input_tensor, output_tensor, num_experts_per_tok, hidden_size, tiles_per_block,
                    max_cores=max_cores)


VARIANTS = {cls.variant_name: cls for cls in
            (PrepareExpertWeightsSingleCore, PrepareExpertWeightsPipelined, PrepareExpertWeightsMultiCore)}


def choose_variant(bs: int, k: int, h: int, memory_config: Any = None) -> tuple[type, dict]:
    """Pick the variant for BS tokens, K experts per token, hidden size H and the OUTPUT memory
    config (None = DRAM interleaved). Returns (variant class, op kwargs); raises ValueError naming
    the limit when no variant covers the case.

    Policy: one core when the whole output is small (BS <= 32 and at most 32 output tiles: a
    multi-core launch would not pay off) or when the output is sharded on a single core (the seed's
    layout: every write stays local); the multi-core variant otherwise.
    """
    bs, k, h = int(bs), int(k), int(h)
    if bs < 1 or h < 1 or k < 1:
        raise ValueError(f"BS, K and H must be >= 1, got BS={bs}, K={k}, H={h}")
    if k > MAX_K:
        raise ValueError(f"K={k} > {MAX_K}: every variant reads the weights of a token from one 32-wide "
                         f"tile column of the input (K <= {MAX_K})")
    if memory_config is not None:
        if not isinstance(memory_config, ttnn.MemoryConfig):
            raise ValueError(f"memory_config must be a ttnn.MemoryConfig or None, got {type(memory_config).__name__}")
        if memory_config.buffer_type not in (ttnn.BufferType.DRAM, ttnn.BufferType.L1):
            raise ValueError(f"the output must live in DRAM or L1, got {memory_config.buffer_type}")
        if common.is_sharded(memory_config) and memory_config.shard_spec is None:
            raise ValueError("a sharded output memory_config needs a shard spec (ND sharding is not handled here)")
    pages = k * common.tiles(bs) * common.tiles(h)
    tiles_per_block = max(1, min(4, k))
    sharded_one_core = (memory_config is not None and common.is_sharded(memory_config)
                        and memory_config.shard_spec.grid.num_cores() == 1)
    if bs <= SINGLE_CORE_MAX_BS and (pages <= SINGLE_CORE_MAX_PAGES or sharded_one_core):
        return PrepareExpertWeightsPipelined, {"tiles_per_block": tiles_per_block}
    return PrepareExpertWeightsMultiCore, {"tiles_per_block": tiles_per_block}


# --- device entry point -------------------------------------------------------------------------


def _variant_class(variant: Any) -> type:
    if isinstance(variant, type) and variant in VARIANTS.values():
        return variant
    if isinstance(variant, str) and variant in VARIANTS:
        return VARIANTS[variant]
    raise ValueError(f"variant must be 'auto' or one of {sorted(VARIANTS)}, got {variant!r}")


def _output_memory_config_reason(memory_config: Any, out_shape: tuple[int, int, int, int]) -> str | None:
    if memory_config is None or not common.is_sharded(memory_config):
        return None
    spec = memory_config.shard_spec
    if spec is None:
        return "a sharded memory_config needs a shard spec"
    k, _, bs, h = out_shape
    rows, width = k * common.round_up(bs, 32), common.round_up(h, 32)
    sh, sw = (int(v) for v in spec.shape)
    if sh % 32 or sw % 32:
        return f"shard shape {[sh, sw]} is not a multiple of the 32x32 tile"
    needed = common.tiles(rows, sh) * common.tiles(width, sw)
    if needed > spec.grid.num_cores():
        return (f"shard shape {[sh, sw]} over the output's {rows}x{width} (K*BS padded x H padded) needs "
                f"{needed} shards but the shard grid has {spec.grid.num_cores()} cores: the memory_config "
                f"must describe the [K, 1, BS, H] output, not the input")
    return None


def prepare_expert_weights(input_tensor: Any, num_experts_per_tok: int, hidden_size: int, *,
                           variant: str = "auto", memory_config: Any = None) -> Any:
    """Device entry: routing weights [..., K] (TILE, bf16, on device) -> new tensor [K, 1, BS, H]
    (TILE, same dtype) in ``memory_config`` (default DRAM interleaved), one program dispatch.

    ``variant``: "auto" (see :func:`choose_variant`), "single_core", "pipelined" or "multi_core"
    (a variant class works too). Raises TypeError / ValueError naming the expectation before
    anything reaches ``generic_op``. CPU reference: ``prepare_expert_weights.golden``.
    """
    _check_tensor(input_tensor, "input_tensor")
    geo = geometry(input_tensor.shape, num_experts_per_tok, hidden_size)
    out_shape = output_shape(input_tensor.shape, geo.k, geo.h)
    mc = ttnn.DRAM_MEMORY_CONFIG if memory_config is None else memory_config
    if not isinstance(mc, ttnn.MemoryConfig):
        raise TypeError(f"memory_config must be a ttnn.MemoryConfig or None, got {type(mc).__name__}")
    why = _output_memory_config_reason(mc, out_shape)
    if why:
        raise ValueError(f"output memory_config {common.describe_memory_config(mc)}: {why}")
    if variant == "auto":
        cls, kwargs = choose_variant(geo.bs, geo.k, geo.h, mc)
    else:
        cls, kwargs = _variant_class(variant), {}
        if cls is not PrepareExpertWeightsSingleCore:
            kwargs = {"tiles_per_block": max(1, min(4, geo.k))}
    if cls is not PrepareExpertWeightsMultiCore and geo.bs > SINGLE_CORE_MAX_BS:
        raise ValueError(f"variant {cls.variant_name} needs BS <= {SINGLE_CORE_MAX_BS}, got BS={geo.bs}")
    output = ttnn.allocate_tensor_on_device(ttnn.Shape(list(out_shape)), input_tensor.dtype, ttnn.TILE_LAYOUT,
                                            input_tensor.device(), mc)
    return cls.op(input_tensor, output, geo.k, geo.h, **kwargs)


def entry_golden(input_tensor: torch.Tensor, num_experts_per_tok: int, hidden_size: int, *,
                 variant: str = "auto", memory_config: Any = None) -> torch.Tensor:
    """:func:`golden` with the device entry's signature (variant and memory_config do not change
    values): the CPU reference attached as ``prepare_expert_weights.golden``."""
    return golden(input_tensor, num_experts_per_tok, hidden_size)


def _attach() -> None:
    prepare_expert_weights.golden = entry_golden
    prepare_expert_weights.output_shape = output_shape
    prepare_expert_weights.choose_variant = choose_variant


_attach()
