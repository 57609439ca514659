"""A GPT-OSS-style MoE decode block, written the way TT-NN model authors write it.

Router -> top-k expert selection -> softmax of the selected logits -> the routing-weight
preparation chain -> weighted sum of the experts' outputs. The expert MLPs and the
all_to_all dispatch/combine around them are multi-device CCL ops; the block takes their
combined output ([K, 1, tokens, H], one slice per selected expert) as an input, exactly where
tt-metal's gpt-oss code applies the routing weights.

Two spellings of the weight chain occur in the wild and both are here:
  "seed":  reshape -> to_layout(RM) -> repeat over H -> permute(3,1,0,2) -> to_layout(TILE)
  "bcast": to_layout(RM) -> permute(3,1,2,0) -> to_layout(TILE), broadcast by the multiply
"""
from __future__ import annotations

import torch
import ttnn

from fusion import TensorSpec


class GptOssMoEDecode:
    def __init__(self, hidden_size: int = 2880, num_experts: int = 32, num_experts_per_tok: int = 4,
                 batch: int = 32, weight_chain: str = "seed", device=None, seed: int = 0):
        if weight_chain not in ("seed", "bcast"):
            raise ValueError("weight_chain is 'seed' or 'bcast'")
        self.hidden_size = hidden_size
        self.num_experts = num_experts
        self.num_experts_per_tok = num_experts_per_tok
        self.batch = batch
        self.weight_chain = weight_chain
        g = torch.Generator().manual_seed(seed)
        router = torch.randn(hidden_size, num_experts, generator=g) / hidden_size**0.5
        # host tensor without a device; on hardware pass device= and it lands in DRAM
        self.router_weight = ttnn.from_torch(router, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device)

    def __call__(self, hidden_states, expert_outputs):
        # hidden_states: [1, 1, tokens, H]; expert_outputs: [K, 1, tokens, H] (post-combine)
        router_logits = ttnn.linear(hidden_states, self.router_weight)
        topk_logits, topk_indices = ttnn.topk(router_logits, k=self.num_experts_per_tok, dim=-1)
        ttnn.deallocate(router_logits)
        topk_expert_weights = ttnn.softmax(topk_logits, dim=-1)
        ttnn.deallocate(topk_logits)

        if self.weight_chain == "seed":
            w = ttnn.reshape(topk_expert_weights, (-1, 1, 1, self.num_experts_per_tok))
            w_rm = ttnn.to_layout(w, ttnn.ROW_MAJOR_LAYOUT)
            w_rm = ttnn.repeat(w_rm, ttnn.Shape((1, 1, self.hidden_size, 1)))
            w_rm = ttnn.permute(w_rm, (3, 1, 0, 2))
            routing = ttnn.to_layout(w_rm, ttnn.TILE_LAYOUT)
            ttnn.deallocate(w_rm)
            weighted = ttnn.mul(expert_outputs, routing)
        else:
            w_rm = ttnn.to_layout(topk_expert_weights, ttnn.ROW_MAJOR_LAYOUT)
            ttnn.deallocate(topk_expert_weights)
            w_rm = ttnn.permute(w_rm, (3, 1, 2, 0))  # [K, 1, tokens, 1]
            routing = ttnn.to_layout(w_rm, ttnn.TILE_LAYOUT)
            ttnn.deallocate(w_rm)
            weighted = ttnn.mul(expert_outputs, routing, memory_config=ttnn.DRAM_MEMORY_CONFIG)
        ttnn.deallocate(routing)
        output = ttnn.sum(weighted, dim=0, keepdim=True)
        ttnn.deallocate(weighted)
        return output, topk_indices

    def example_inputs(self) -> list:
        t, h, k = self.batch, self.hidden_size, self.num_experts_per_tok
        return [TensorSpec((1, 1, t, h)), TensorSpec((k, 1, t, h))]

    def random_inputs(self, seed: int = 1) -> list:
        g = torch.Generator().manual_seed(seed)
        t, h, k = self.batch, self.hidden_size, self.num_experts_per_tok
        return [torch.randn(1, 1, t, h, generator=g), torch.randn(k, 1, t, h, generator=g)]


# the sizes the demo and tests use: gpt-oss (H 2880) and DeepSeek-V3 (H 7168) decode, batch 32
CONFIGS = [
    dict(hidden_size=2880, num_experts=32, num_experts_per_tok=4),
    dict(hidden_size=2880, num_experts=128, num_experts_per_tok=8),
    dict(hidden_size=7168, num_experts=64, num_experts_per_tok=8),
]
