"""Trace-time fusing: fuse(model) without inputs fuses per input signature, then just runs."""
import pytest
import torch
import ttnn

import fusion
from fusion import TensorSpec


def host_model(x):
    y = ttnn.reshape(x, (1, 1, 32, 64))
    return ttnn.reshape(y, (32, 64))


def test_lazy_fused_runs_host_tensors_and_keeps_one_graph_per_signature():
    lazy = fusion.fuse(host_model)
    a = ttnn.from_torch(torch.randn(32, 64), dtype=ttnn.bfloat16, layout=ttnn.ROW_MAJOR_LAYOUT)
    out = lazy(a)
    assert torch.equal(ttnn.to_torch(out), ttnn.to_torch(a))
    lazy(ttnn.from_torch(torch.randn(32, 64), dtype=ttnn.bfloat16, layout=ttnn.ROW_MAJOR_LAYOUT))
    assert len(lazy.fused) == 1
    lazy(ttnn.from_torch(torch.randn(64, 32), dtype=ttnn.bfloat16, layout=ttnn.ROW_MAJOR_LAYOUT))
    assert len(lazy.fused) == 2


@pytest.mark.hardware
def test_fused_model_inside_trace_capture(device):
    # written as it runs on an N150: capture the fused model once, replay it, compare to eager
    from examples.gpt_oss_moe import GptOssMoEDecode

    model = GptOssMoEDecode(device=device)
    fused = fusion.fuse(model, model.example_inputs())
    x, e = model.random_inputs()
    tx = ttnn.from_torch(x, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device)
    te = ttnn.from_torch(e, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=device)
    eager, _ = fused(tx, te)
    trace_id = ttnn.begin_trace_capture(device, cq_id=0)
    traced_out, _ = fused(tx, te)
    ttnn.end_trace_capture(device, trace_id, cq_id=0)
    ttnn.execute_trace(device, trace_id, cq_id=0, blocking=True)
    assert torch.equal(ttnn.to_torch(traced_out), ttnn.to_torch(eager))
    ttnn.release_trace(device, trace_id)
