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


def _host(shape, dtype=ttnn.bfloat16):
    return ttnn.from_torch(torch.randn(*shape), dtype=dtype, layout=ttnn.ROW_MAJOR_LAYOUT)


def _reshaped_by_hand(x):
    return ttnn.reshape(x, (32, 64))


DOUBLE_RESHAPE = fusion.Pattern("double_reshape", host_model, _reshaped_by_hand)


def test_later_calls_with_a_known_signature_neither_trace_nor_fuse_again(monkeypatch):
    from fusion import api

    fuses = []
    real = api.fuse
    monkeypatch.setattr(api, "fuse", lambda *a, **k: fuses.append(1) or real(*a, **k))
    lazy = fusion.fuse(host_model)
    for _ in range(5):
        lazy(_host((32, 64)))
    assert len(fuses) == 1
    lazy(_host((32, 64), dtype=ttnn.float32))  # another dtype is another signature
    assert len(fuses) == 2 and len(lazy.fused) == 2


def test_a_signature_with_nothing_fused_replays_its_graph_not_the_model():
    # trace-replay semantics for every signature: the model's Python code runs once, at trace
    # time, whether or not anything fused
    calls = []

    def counted(x):
        calls.append(1)
        return host_model(x)

    lazy = fusion.fuse(counted, patterns=[])  # nothing to fuse (the catalog would merge its reshapes)
    a = _host((32, 64))
    first = lazy(a)
    assert lazy.reports[0].rewrites == []
    assert len(calls) == 1  # the trace
    for _ in range(3):
        out = lazy(a)
    assert len(calls) == 1, "later calls must replay the traced graph"
    assert torch.equal(ttnn.to_torch(out), ttnn.to_torch(first))
    assert torch.equal(ttnn.to_torch(out), ttnn.to_torch(a))


def test_a_fused_signature_runs_the_fused_graph_not_the_model():
    calls = []

    def counted(x):
        calls.append(1)
        return host_model(x)

    pattern = fusion.Pattern("double_reshape_counted", host_model, _reshaped_by_hand)
    lazy = fusion.fuse(counted, patterns=[pattern])
    a = _host((32, 64))
    first = lazy(a)
    assert len(calls) == 1  # the trace
    for _ in range(3):
        out = lazy(a)
    assert len(calls) == 1, "later calls must run the fused graph"
    assert len(lazy.reports[0].rewrites) == 1
    assert torch.equal(ttnn.to_torch(out), ttnn.to_torch(first))
    assert torch.equal(ttnn.to_torch(out), ttnn.to_torch(a))


def test_constants_and_tensor_lists_key_signatures_by_type_and_value():
    def scaled(xs, k):
        return ttnn.reshape(xs[0], (k, 64)) if k else xs[1]

    lazy = fusion.fuse(scaled)
    xs = [_host((32, 64)), _host((32, 64))]
    assert ttnn.to_torch(lazy(xs, 32)).shape == (32, 64)
    lazy(xs, 32)
    assert len(lazy.fused) == 1 and len(lazy._fast) == 1
    lazy(xs, 0)
    lazy(xs, False)  # equal to 0, but another type: its own signature
    assert len(lazy.fused) == 3
    lazy([_host((32, 64))] * 2, 32)  # other tensors, same specs: no new signature
    assert len(lazy.fused) == 3


def test_alternating_signatures_each_run_their_own_graph():
    def transposed_shape(x):
        return ttnn.reshape(x, (x.shape[1], x.shape[0]))  # the shape is baked into each graph

    lazy = fusion.fuse(transposed_shape)
    wide, tall = _host((32, 64)), _host((64, 32))
    for _ in range(3):
        assert tuple(lazy(wide).shape) == (64, 32)
        assert tuple(lazy(tall).shape) == (32, 64)
    assert len(lazy.fused) == 2


def test_a_lazy_model_has_the_report_of_its_one_signature_as_the_readme_reads_it():
    lazy = fusion.fuse(host_model)
    with pytest.raises(AttributeError, match="has not been called yet"):
        lazy.report
    a = ttnn.from_torch(torch.randn(32, 64), dtype=ttnn.bfloat16, layout=ttnn.ROW_MAJOR_LAYOUT)
    lazy(a)
    assert lazy.report is lazy.reports[0]
    lazy(ttnn.from_torch(torch.randn(64, 32), dtype=ttnn.bfloat16, layout=ttnn.ROW_MAJOR_LAYOUT))
    with pytest.raises(AttributeError, match="2 input signatures: read `.reports`"):
        lazy.report
