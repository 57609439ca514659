"""Direct-call replay (fusion/replay.py): a fused graph calls ttnn ops' C++ functions itself
when ttnn's run-time modes allow it, and the real ops otherwise."""
import pytest
import torch
import ttnn

import fusion
from fusion import replay


def _host(shape=(32, 64)):
    return ttnn.from_torch(torch.randn(*shape), dtype=ttnn.bfloat16, layout=ttnn.ROW_MAJOR_LAYOUT)


def eight_reshapes(x):
    for shape in ((1, 32, 64), (64, 32), (1, 1, 64, 32), (2048,), (32, 64), (4, 8, 64), (1, 2048), (32, 64)):
        x = ttnn.reshape(x, shape)
    return x


def two_reshapes(x):
    y = ttnn.reshape(x, (1, 1, 32, 64))
    return ttnn.reshape(y, (32, 64))


def _by_hand(x):
    return ttnn.reshape(x, (32, 64))


DOUBLE_RESHAPE = fusion.Pattern("double_reshape_replay", two_reshapes, _by_hand)


@pytest.fixture
def wrapped_calls(monkeypatch):
    """Counts the calls of ttnn.reshape that go through the op (FastOperation.__call__, fast or
    slow path). A direct forward built before this fixture holds the C++ function itself, so its
    calls are not counted: request it after the first call."""
    calls = []
    real = ttnn.reshape.function

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ttnn.reshape, "function", counted)
    # the slow path (logging, comparison mode) builds its Operation from `function` once
    monkeypatch.setattr(ttnn.reshape, "_slow_operation", None)
    return calls


def _equal(a, b) -> bool:
    return torch.equal(ttnn.to_torch(a), ttnn.to_torch(b))


@pytest.mark.parametrize("model,patterns", [(eight_reshapes, []), (two_reshapes, [DOUBLE_RESHAPE])])
def test_direct_forward_gives_the_graphs_outputs_without_the_op_wrappers(model, patterns, request):
    x = _host()
    fused = fusion.fuse(model, [x], patterns=patterns)
    direct = fused.direct_forward()
    calls = request.getfixturevalue("wrapped_calls")
    out = direct(x)
    assert calls == [], "the default run-time modes must take the direct calls"
    assert _equal(out, fused.graph_module.forward(x))
    assert _equal(out, model(x))
    assert _equal(fused(x), out)
    # the graph module the user sees keeps the real ops
    assert all(type(n.target) is ttnn.decorators.FastOperation
               for n in fused.graph_module.graph.nodes if n.op == "call_function")


@pytest.mark.parametrize("setting", ["enable_logging", "enable_comparison_mode", "fast_runtime_off",
                                     "python_io_recording"])
def test_the_guard_falls_back_to_the_ops_when_a_run_time_mode_needs_them(setting, request):
    x = _host()
    lazy = fusion.fuse(eight_reshapes, patterns=[])  # (movement_chain would merge the reshapes)
    first = lazy(x)  # traces, fuses, builds the direct forward
    wrapped_calls = request.getfixturevalue("wrapped_calls")
    if setting == "python_io_recording":
        ttnn.graph.enable_python_io_recording()
        try:
            out = lazy(x)
        finally:
            ttnn.graph.disable_python_io_recording()
    else:
        name, value = ("enable_fast_runtime_mode", False) if setting == "fast_runtime_off" else (setting, True)
        with ttnn.manage_config(name, value):
            out = lazy(x)
    assert len(wrapped_calls) == 8, "each op must go through its wrapper"
    assert _equal(out, first)
    wrapped_calls.clear()
    lazy(x)  # modes restored: direct again
    assert wrapped_calls == []


def test_a_call_given_a_command_queue_keeps_the_op():
    def queued(x):
        y = ttnn.reshape(x, (1, 32, 64), queue_id=0)
        z = ttnn.reshape(y, (64, 32), cq_id=0)
        return ttnn.reshape(z, (32, 64))

    fused = fusion.fuse(queued, [_host()])
    direct_graph = fused.direct_forward().__self__.graph
    kept = [n for n in direct_graph.nodes if n.op == "call_function" and n.target is ttnn.reshape]
    assert [sorted(n.kwargs) for n in kept] == [["queue_id"], ["cq_id"]]
    swapped = [n for n in direct_graph.nodes if n.op == "call_function" and n.target is not ttnn.reshape]
    assert len(swapped) == 1 and swapped[0].target.func is ttnn.reshape.function


def test_a_lazy_fused_model_called_inside_a_ttfuse_trace_records_its_ops():
    x = _host()
    for patterns, ops in (([], 2), ([DOUBLE_RESHAPE], 1)):
        inner = fusion.fuse(two_reshapes, patterns=patterns)
        inner(x)  # the signature is known and its direct forward built

        def outer(x):
            return ttnn.reshape(inner(x), (64, 32))

        fused = fusion.fuse(outer, [x], patterns=[])
        recorded = [n for n in fused.graph_module.graph.nodes if n.op == "call_function"]
        # the tracer patches FastOperation.__call__, so the guard sends traced values to the ops
        assert [n.target for n in recorded] == [ttnn.reshape] * (ops + 1)
        assert len(inner.fused) == 1, "a traced value with a known spec reuses its signature"
        assert _equal(fused(x), ttnn.reshape(x, (64, 32)))


def test_an_edited_graph_module_runs_its_new_forward():
    x = _host()
    fused = fusion.fuse(two_reshapes, [x], patterns=[])
    fused(x)
    last = [n for n in fused.graph_module.graph.nodes if n.op == "call_function"][-1]
    last.args = (last.args[0], (64, 32))
    fused.graph_module.recompile()
    assert tuple(fused(x).shape) == (64, 32)


def test_a_replaced_fast_operation_call_is_not_pristine(monkeypatch):
    assert replay._pristine_call() is ttnn.decorators.FastOperation.__call__
    original = ttnn.decorators.FastOperation.__call__

    def tracked(self, *args, **kwargs):  # as ttnn's allocation tracking wraps it
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ttnn.decorators.FastOperation, "__call__", tracked)
    assert replay._pristine_call() is None
