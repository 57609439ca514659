"""MoE routing weights -> per-expert weights broadcast over the hidden dim, in one program.

Matches the seed's 5-op chain (reshape -> to_layout RM -> repeat over H -> permute -> to_layout
TILE) and gpt-oss's newer form (to_layout RM -> permute (3,1,2,0) -> to_layout TILE, consumed
by a multiply that broadcasts over H). Both become the PrepareExpertWeights micro-op, which
reads the TILE routing weights directly and writes [K, 1, B*S, H] in the original output's
memory config: no conversion ops are needed around it.
"""
import math

import ttnn

from fusion import IntIn, Pattern, TensorSpec, declare_fused_op
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


# the multiply's memory_config passes through unchanged: any value, including none given
_MC = {"mc": lambda v: v is None or isinstance(v, ttnn.MemoryConfig)}

BCAST = Pattern("prepare_expert_weights", bcast_chain, bcast_fused, captures=_MC, check=_bcast_check, example=_bcast_example,
                becomes="PrepareExpertWeights micro-op + multiply without broadcast")
PATTERNS = [SEED, BCAST]
