"""MoE routing weights -> per-expert weights broadcast over the hidden dim, in one program.

Matches the seed's 5-op chain (reshape -> to_layout RM -> repeat over H -> permute -> to_layout
TILE) and gpt-oss's newer form (to_layout RM -> permute (3,1,2,0) -> to_layout TILE, consumed
by a multiply that broadcasts over H). Both become the PrepareExpertWeights micro-op, which
reads the TILE routing weights directly and writes [K, 1, B*S, H] in the original output's
memory config: no conversion ops are needed around it.
"""
import functools
import math

import torch
import ttnn

from fusion import AnyValue, IntIn, Pattern, TensorSpec, declare_fused_op
from fusion.index_maps import chain_map
from micro_ops.prepare_expert_weights import choose_variant, prepare_expert_weights
from micro_ops.prepare_expert_weights import golden as expert_weights_golden


def _output_spec(b):
    x = b["input_tensor"]
    bs = math.prod(list(x.shape)[:-1])
    return TensorSpec((b["num_experts_per_tok"], 1, bs, b["hidden_size"]), x.dtype, ttnn.TILE_LAYOUT,
                      b.get("memory_config") or ttnn.DRAM_MEMORY_CONFIG)


def _golden(input_tensor, num_experts_per_tok, hidden_size, *, variant="auto", memory_config=None):
    # the variant and the output memory config place the result; they do not change its values
    return expert_weights_golden(input_tensor, num_experts_per_tok, hidden_size)


declare_fused_op(prepare_expert_weights, golden=_golden, output_spec=_output_spec,
                 dispatches=1, data_movement=True, name="micro_ops.prepare_expert_weights")


def _variant(bs: int, k: int, h: int, memory_config):
    """(variant name, None) or (None, reason)."""
    try:
        chosen = choose_variant(bs, k, h, memory_config)
    except ValueError as e:
        return None, str(e)
    name = chosen[0] if isinstance(chosen, tuple) else chosen
    return getattr(name, "variant_name", name), None


def _input_reason(x: TensorSpec, k: int) -> str | None:
    if x.shape[-1] != k:
        return f"routing weights' last dim is {x.shape[-1]}, not K={k}: the chain mixes tokens and experts"
    if x.layout != ttnn.TILE_LAYOUT:
        return "routing weights must be TILE layout (the micro-op reads tiles)"
    if x.dtype != ttnn.bfloat16:
        return f"routing weights must be bfloat16, got {x.dtype}"
    if x.memory_config is None:
        return "routing weights' memory config is unknown"
    if x.memory_config.is_sharded():
        # the chain's output config would be a reshaped shard spec that ttnn derives per op
        return "sharded routing weights: the chain's output memory config is not known here"
    return None


# --- the seed's spelling ------------------------------------------------------------------


def seed_chain(x, K, H):
    x = ttnn.reshape(x, (-1, 1, 1, K))
    x = ttnn.to_layout(x, ttnn.ROW_MAJOR_LAYOUT)
    x = ttnn.repeat(x, ttnn.Shape((1, 1, H, 1)))
    x = ttnn.permute(x, (3, 1, 0, 2))
    return ttnn.to_layout(x, ttnn.TILE_LAYOUT)


def seed_fused(x, K, H):
    bs = math.prod(list(x.shape)[:-1])
    variant, _ = _variant(bs, K, H, x.memory_config())
    return prepare_expert_weights(x, K, H, variant=variant, memory_config=x.memory_config())


def _seed_check(m):
    why = _input_reason(m.x, m.K)
    if why:
        return why
    return _variant(math.prod(m.x.shape[:-1]), m.K, m.H, m.x.memory_config)[1]


def _seed_example(rng):
    k, h, b, sq = rng.choice([1, 2, 4, 8]), rng.choice([32, 64, 96, 2880]), rng.choice([1, 2]), rng.choice([1, 8, 16])
    return {"x": TensorSpec((b, 1, sq, k))}, {"K": k, "H": h}


def _bcast_example(rng):
    k, h, t = rng.choice([1, 4, 8]), rng.choice([32, 64, 96]), rng.choice([8, 32])
    return {"x": TensorSpec((1, 1, t, k)), "experts": TensorSpec((k, 1, t, h))}, {"mc": None}


SEED = Pattern(
    "prepare_expert_weights", seed_chain, seed_fused, example=_seed_example,
    captures={"K": IntIn(1), "H": IntIn(1)},
    check=_seed_check,
    becomes="PrepareExpertWeights micro-op (SingleCore / Pipelined / MultiCore by shape)",
)


# --- any chain of these ops, recognised by the index map it computes (DeepSeek-V3's spelling) ---
#
# DeepSeek-V3 (moe.py, _fwd_moe) writes to_layout(RM) -> repeat((H, 1, 1, 1)) -> permute((3, 1, 2, 0))
# -> to_layout(TILE): the same [K, 1, T, H] weights as the seed's chain, in other literals. The
# literals are captures here; the check accepts them when the chain's index map (fusion/index_maps.py)
# is the expert-weight map out[k, 0, t, h] = x[t, k]: a proof over every position.


def layout_repeat_permute_layout(x, rm, reps, dims, tile):
    w = ttnn.to_layout(x, rm)
    w = ttnn.repeat(w, reps)
    w = ttnn.permute(w, dims)
    return ttnn.to_layout(w, tile)


def _chain_shape_and_map(x_shape, reps, dims):
    return chain_map(tuple(x_shape), [(ttnn.repeat, (reps,), {}), (ttnn.permute, (dims,), {})])


def _expert_weight_map(x_shape, h: int):
    """out[k, 0, t, h] = (t * K + k): the element numbers of x = [..., T, K] (T the leading dims)."""
    k = x_shape[-1]
    t = math.prod(x_shape[:-1])
    ids = torch.arange(t * k, dtype=torch.float64).reshape(t, k)
    return ids.t().reshape(k, 1, t, 1).expand(k, 1, t, h)


@functools.lru_cache(maxsize=1024)
def _map_reason(x_shape: tuple, reps: tuple, dims: tuple) -> tuple:
    """(H, None) when repeat(reps) -> permute(dims) of x is the expert-weight broadcast, else
    (None, why); remembered per shapes (61 layers ask once)."""
    try:
        got = _chain_shape_and_map(x_shape, reps, dims)
    except (RuntimeError, TypeError, ValueError, IndexError) as e:
        return None, f"the chain's index map cannot be computed: {e}"
    if got.dim() != 4 or got.shape[1] != 1:
        return None, f"the chain gives {list(got.shape)}, not [K, 1, T, H]"
    h = got.shape[3]
    want = _expert_weight_map(x_shape, h)
    if tuple(got.shape) != tuple(want.shape) or not torch.equal(got, want):
        return None, "the chain's index map is not the expert-weight broadcast out[k, 0, t, h] = x[t, k]"
    return h, None


def _mapped_check(m):
    if m.rm != ttnn.ROW_MAJOR_LAYOUT or m.tile != ttnn.TILE_LAYOUT:
        return "the chain does not go to ROW_MAJOR and back to TILE"
    try:
        h, why = _map_reason(tuple(m.x.shape), tuple(int(d) for d in m.reps), tuple(int(d) for d in m.dims))
    except (TypeError, ValueError) as e:
        return f"the chain's literals are not shapes: {e}"
    if why:
        return why
    why = _input_reason(m.x, m.x.shape[-1])
    if why:
        return why
    return _variant(math.prod(m.x.shape[:-1]), m.x.shape[-1], h, m.x.memory_config)[1]


def mapped_fused(x, rm, reps, dims, tile):
    k = x.shape[-1]
    h, _why = _map_reason(tuple(x.shape), tuple(int(d) for d in reps), tuple(int(d) for d in dims))
    variant, _ = _variant(math.prod(list(x.shape)[:-1]), k, h, x.memory_config())
    return prepare_expert_weights(x, k, h, variant=variant, memory_config=x.memory_config())


def _mapped_example(rng):
    k, h, t = rng.choice([4, 8]), rng.choice([32, 64, 96]), rng.choice([8, 32])
    return {"x": TensorSpec((1, 1, t, k))}, {"rm": ttnn.ROW_MAJOR_LAYOUT, "reps": (h, 1, 1, 1), "dims": (3, 1, 2, 0),
                                            "tile": ttnn.TILE_LAYOUT}


_ANY = {name: AnyValue() for name in ("rm", "reps", "dims", "tile")}
MAPPED = Pattern("prepare_expert_weights", layout_repeat_permute_layout, mapped_fused, captures=_ANY,
                 check=_mapped_check, example=_mapped_example,
                 becomes="PrepareExpertWeights micro-op (the chain's index map is the expert-weight broadcast)")


# --- gpt-oss's newer spelling: [1,1,T,K] -> [K,1,T,1], broadcast by the multiply -------------


def bcast_chain(x, experts, mc):
    w = ttnn.to_layout(x, ttnn.ROW_MAJOR_LAYOUT)
    w = ttnn.permute(w, (3, 1, 2, 0))
    w = ttnn.to_layout(w, ttnn.TILE_LAYOUT)
    return ttnn.multiply(experts, w, memory_config=mc)


def _weights(x, experts):
    k, h = x.shape[-1], experts.shape[-1]
    variant, _ = _variant(math.prod(list(x.shape)[:-1]), k, h, x.memory_config())
    return prepare_expert_weights(x, k, h, variant=variant, memory_config=x.memory_config())


def bcast_fused(x, experts, mc):
    return ttnn.multiply(experts, _weights(x, experts), memory_config=mc)


def _bcast_check(m):
    x, e = m.x, m.experts
    if x.rank != 4 or x.shape[0] != 1 or x.shape[1] != 1:
        return f"routing weights must be [1, 1, T, K] for permute (3,1,2,0) to give [K, 1, T, 1], got {list(x.shape)}"
    k, t = x.shape[3], x.shape[2]
    if e.rank != 4 or e.shape[0] != k or e.shape[1] != 1 or e.shape[2] != t:
        return f"expert outputs must be [K={k}, 1, T={t}, H] so the multiply broadcasts over H, got {list(e.shape)}"
    why = _input_reason(x, k)
    if why:
        return why
    return _variant(t, k, e.shape[3], x.memory_config)[1]


# --- a permute + reshape then the multiply (gpt-oss's older experts/decode.py spelling) ---------
#
# gpt-oss's dense-experts decode writes permute(w, (1, 0)) -> reshape((B, E, 1)) -> multiply in
# place (output_tensor=next_states). Compared by index map against the expert-major [K, 1, T, 1]
# weights: where it is that (any literals), the multiply gets the micro-op's weights; its
# token-major [B, E, 1] form is another layout, refused saying so (and an in-place multiply writes
# a buffer from outside the match: refused by the memory-effects rule).


def permute_reshape_mul(x, experts, dims, shape):
    w = ttnn.reshape(ttnn.permute(x, dims), shape)
    return ttnn.multiply(experts, w)


def permute_reshape_mul_in_place(x, experts, dims, shape):
    w = ttnn.reshape(ttnn.permute(x, dims), shape)
    return ttnn.multiply(experts, w, output_tensor=experts)


def permute_reshape_fused(x, experts, dims, shape):
    return ttnn.multiply(experts, _weights(x, experts))


def _permute_reshape_check(m):
    try:
        got = chain_map(tuple(m.x.shape), [(ttnn.permute, (tuple(m.dims),), {}), (ttnn.reshape, (tuple(m.shape),), {})])
    except (RuntimeError, TypeError, ValueError, IndexError) as e:
        return f"the chain's index map cannot be computed: {e}"
    k, t = m.x.shape[-1], math.prod(m.x.shape[:-1])
    want = _expert_weight_map(tuple(m.x.shape), 1)
    if tuple(got.shape) != tuple(want.shape) or not torch.equal(got, want):
        return (f"the weights come out {list(got.shape)}, not expert-major [K={k}, 1, T={t}, 1]: another layout "
                f"than PrepareExpertWeights writes")
    return _bcast_check(m)


PERMUTE_RESHAPE = Pattern("prepare_expert_weights", [permute_reshape_mul, permute_reshape_mul_in_place],
                          permute_reshape_fused, captures={"dims": AnyValue(), "shape": AnyValue()},
                          check=_permute_reshape_check,
                          example=lambda rng: ({"x": TensorSpec((1, 1, 32, 4)), "experts": TensorSpec((4, 1, 32, 64))},
                                               {"dims": (3, 1, 2, 0), "shape": (4, 1, 32, 1)}),
                          becomes="PrepareExpertWeights micro-op + multiply without broadcast")


# the multiply's memory_config passes through unchanged: any value, including none given
_MC = {"mc": lambda v: v is None or isinstance(v, ttnn.MemoryConfig)}

BCAST = Pattern("prepare_expert_weights", bcast_chain, bcast_fused, captures=_MC, check=_bcast_check, example=_bcast_example,
                becomes="PrepareExpertWeights micro-op + multiply without broadcast")
PATTERNS = [SEED, MAPPED, BCAST, PERMUTE_RESHAPE]
