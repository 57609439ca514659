"""Graphs for the pass-speed benchmark.

* `synthetic_chain(n, ...)`: a traced-like FX graph of about n nodes: a chain with a controllable
  density of matches of a 3-node layout chain, near-misses (another permutation) and escapes
  (an intermediate used outside), separated by filler ops. Every node carries its spec.
* `DeepSeekDecode`: a DeepSeek-V3-shaped decode model (hidden 7168, 61 layers: 3 dense, 58 MoE
  with the expert-weight chain), written as TT-NN model code; attention is opaque (projections
  and a softmax, nothing fusable). Weights are inputs given as TensorSpecs, so nothing is allocated.
"""
from __future__ import annotations

import random

import torch.fx
import ttnn

import fusion
from fusion import TensorSpec, declare_fused_op
from fusion import specs as specs_mod
from fusion.trace import spec_of

RM, TILE = ttnn.ROW_MAJOR_LAYOUT, ttnn.TILE_LAYOUT
MATCH_DIMS = (3, 1, 2, 0)
MISS_DIMS = (3, 1, 0, 2)


def bench_fused(x):
    """Stand-in fused op for the synthetic race: one node replacing the 3-node chain."""
    raise RuntimeError("benchmark graphs are not run on a device")


def _bench_golden(x):
    return x.permute(*MATCH_DIMS).contiguous()


def _bench_spec(b):
    x = b["x"]
    return TensorSpec(tuple(x.shape[d] for d in MATCH_DIMS), x.dtype, TILE, x.memory_config)


declare_fused_op(bench_fused, golden=_bench_golden, output_spec=_bench_spec, dispatches=1, data_movement=True,
                 name="benchmarks.bench_fused")


def chain3(x):
    a = ttnn.to_layout(x, RM)
    b = ttnn.permute(a, MATCH_DIMS)
    return ttnn.to_layout(b, TILE)


def bench_replacement(x):
    return bench_fused(x)


BENCH_PATTERN = fusion.Pattern("bench_chain3", chain3, bench_replacement)


def synthetic_chain(n_nodes: int, match_density: float = 0.3, miss_density: float = 0.1,
                    escape_density: float = 0.05, seed: int = 0) -> torch.fx.GraphModule:
    """About n_nodes call nodes. Densities are the fractions of 4-node segments of each kind."""
    rng = random.Random(seed)
    g = torch.fx.Graph()
    x = g.placeholder("x")
    x.meta["spec"] = TensorSpec((1, 1, 32, 8))
    cur = x
    escapes = []
    count = 0

    def call(target, args):
        nonlocal count
        node = g.call_function(target, args)
        node.meta["spec"] = specs_mod.infer(target, node.args, node.kwargs, spec_of)
        node.meta["location"] = f"synthetic:{count}"
        count += 1
        return node

    while count < n_nodes:
        r = rng.random()
        if r < match_density + miss_density + escape_density:
            dims = MISS_DIMS if match_density <= r < match_density + miss_density else MATCH_DIMS
            a = call(ttnn.to_layout, (cur, RM))
            b = call(ttnn.permute, (a, dims))
            c = call(ttnn.to_layout, (b, TILE))
            if r >= match_density + miss_density:
                escapes.append(call(ttnn.neg, (b,)))
            cur = call(ttnn.reshape, (c, (1, 1, 32, 8)))
        else:
            cur = call(ttnn.silu, (cur,))
    g.output((cur, *escapes) if escapes else cur)
    return torch.fx.GraphModule(torch.nn.Module(), g, class_name="SyntheticChain")


def traced_of(gm: torch.fx.GraphModule):
    """A fusion.trace.Traced wrapper around an already-built graph (the trace-free pipeline)."""
    import inspect

    from fusion.trace import Traced

    names = [n.target for n in gm.graph.find_nodes(op="placeholder")]  # FX's index: no walk over the graph
    sig = inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names])
    return Traced(gm, names, {}, sig, type(gm).__name__)


# ---------------------------------------------------------------------------
# DeepSeek-V3-shaped decode model
# ---------------------------------------------------------------------------


class DeepSeekDecode:
    def __init__(self, layers: int = 61, dense_layers: int = 3, hidden: int = 7168, ffn: int = 18432,
                 moe_ffn: int = 2048, experts_per_tok: int = 8, n_experts: int = 256, batch: int = 32,
                 q_lora: int = 1536, eps: float = 1e-6):
        self.layers, self.dense_layers, self.hidden, self.ffn, self.moe_ffn = layers, dense_layers, hidden, ffn, moe_ffn
        self.k, self.n_experts, self.batch, self.q_lora, self.eps = experts_per_tok, n_experts, batch, q_lora, eps

    def weight_specs(self) -> list:
        h, out = self.hidden, []
        for i in range(self.layers):
            out += [TensorSpec((1, 1, 1, h)), TensorSpec((h, self.q_lora)), TensorSpec((self.q_lora, h)),
                    TensorSpec((1, 1, 1, h))]
            if i < self.dense_layers:
                out += [TensorSpec((h, self.ffn)), TensorSpec((h, self.ffn)), TensorSpec((self.ffn, h))]
            else:
                out += [TensorSpec((h, self.n_experts)), TensorSpec((h, self.moe_ffn)), TensorSpec((h, self.moe_ffn)),
                        TensorSpec((self.moe_ffn, h))]
        return out

    def example_inputs(self) -> list:
        return [TensorSpec((1, 1, self.batch, self.hidden)), self.weight_specs()]

    def __call__(self, x, weights):
        w = iter(weights)
        for i in range(self.layers):
            attn_norm, wq, wo, ff_norm = next(w), next(w), next(w), next(w)
            # attention: opaque here (projections around a softmax), nothing to fuse inside
            h = ttnn.rms_norm(x, weight=attn_norm, epsilon=self.eps)
            q = ttnn.linear(h, wq)
            a = ttnn.linear(ttnn.softmax(q, dim=-1), wo)
            x = ttnn.add(x, a)
            f = ttnn.rms_norm(x, weight=ff_norm, epsilon=self.eps)
            if i < self.dense_layers:
                w1, w3, w2 = next(w), next(w), next(w)
                m = ttnn.linear(ttnn.multiply(ttnn.silu(ttnn.linear(f, w1)), ttnn.linear(f, w3)), w2)
            else:
                router, w1, w3, w2 = next(w), next(w), next(w), next(w)
                logits = ttnn.linear(f, router)
                vals, _idx = ttnn.topk(logits, k=self.k, dim=-1)
                weights_k = ttnn.softmax(vals, dim=-1)
                r = ttnn.reshape(weights_k, (-1, 1, 1, self.k))
                r = ttnn.to_layout(r, ttnn.ROW_MAJOR_LAYOUT)
                r = ttnn.repeat(r, ttnn.Shape((1, 1, self.hidden, 1)))
                r = ttnn.permute(r, (3, 1, 0, 2))
                routing = ttnn.to_layout(r, ttnn.TILE_LAYOUT)
                ttnn.deallocate(r)
                expert = ttnn.linear(ttnn.multiply(ttnn.silu(ttnn.linear(f, w1)), ttnn.linear(f, w3)), w2)
                experts = ttnn.repeat(expert, ttnn.Shape((self.k, 1, 1, 1)))  # stands in for dispatch/combine
                m = ttnn.sum(ttnn.multiply(experts, routing), dim=0, keepdim=True)
            x = ttnn.add(x, m)
        return x
