"""The Llama-style decoder layer: every applicable fusion fires, fused == original at PCC >= 0.999."""
import pytest

import fusion
from examples.llama_decoder import CONFIGS, LlamaDecoderLayer
from fusion.verify import pcc


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c['mode']}_h{c['hidden']}")
def test_decoder_layer_fuses_and_agrees(cfg):
    model = LlamaDecoderLayer(**cfg)
    fused = fusion.fuse(model, model.example_inputs())
    patterns = [r.pattern for r in fused.report.rewrites]
    assert "matmul_activation" in patterns
    for r in fused.report.rewrites:
        assert "llama_decoder.py:" in r.location and r.verified and r.saved_dispatches >= 1
    # the residual sum feeds the next residual add, so the plain rms_norm(residual_input_tensor=)
    # rewrite is refused for it, with the reason
    assert any(f.pattern == "residual_rmsnorm" and "fusing would lose it" in f.reason for f in fused.report.refusals)
    x = model.random_inputs()
    assert pcc(fusion.run_reference(model, *x), fusion.run_reference(fused, *x)) >= 0.999
