"""The bundled GPT-OSS MoE decode block fuses, and fused == original bit-exactly on the CPU."""
import pytest
import torch

import fusion
from examples.gpt_oss_moe import CONFIGS, GptOssMoEDecode


@pytest.mark.parametrize("chain", ["seed", "bcast"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"H{c['hidden_size']}_K{c['num_experts_per_tok']}")
def test_moe_block_fuses_bit_exactly(chain, cfg):
    model = GptOssMoEDecode(**cfg, weight_chain=chain)
    fused = fusion.fuse(model, model.example_inputs())
    (rw,) = fused.report.rewrites
    assert rw.pattern == "prepare_expert_weights" and rw.location.endswith(".py:" + rw.location.rsplit(":", 1)[1])
    assert "gpt_oss_moe.py" in rw.location
    x = model.random_inputs()
    ref, ref_idx = fusion.run_reference(model, *x)
    out, out_idx = fusion.run_reference(fused, *x)
    assert torch.equal(ref, out) and torch.equal(ref_idx, out_idx)
    assert out.shape == (1, 1, 32, cfg["hidden_size"])


def test_demo_runs():
    from examples import demo

    assert demo.main([]) == 0
