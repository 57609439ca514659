"""The tracer: ttnn ops become nodes, ttnn values stay exact, control flow on tensors is refused."""
import operator

import pytest
import torch
import ttnn

import fusion
from fusion import TensorSpec, TraceError


def _calls(gm):
    return [n for n in gm.graph.nodes if n.op == "call_function"]


def _literal(node_arg):
    return node_arg.meta["literal"] if hasattr(node_arg, "meta") else node_arg


def test_each_ttnn_call_is_a_node_on_the_real_op():
    def model(x):
        y = ttnn.reshape(x, (1, 1, 32, 64))
        return ttnn.to_layout(y, ttnn.ROW_MAJOR_LAYOUT)

    gm = fusion.trace(model, [TensorSpec((1, 1, 64, 32))]).graph_module
    assert [n.target for n in _calls(gm)] == [ttnn.reshape, ttnn.to_layout]


def test_ttnn_values_are_kept_exactly():
    mc = ttnn.MemoryConfig(ttnn.TensorMemoryLayout.INTERLEAVED, ttnn.BufferType.L1)

    def model(x):
        y = ttnn.repeat(x, ttnn.Shape((1, 1, 4, 1)))
        return ttnn.to_layout(y, ttnn.TILE_LAYOUT, dtype=ttnn.bfloat16, memory_config=mc)

    gm = fusion.trace(model, [TensorSpec((1, 1, 32, 8), layout=ttnn.ROW_MAJOR_LAYOUT)]).graph_module
    rep, tl = _calls(gm)
    shape = _literal(rep.args[1])
    assert isinstance(shape, ttnn.Shape) and list(shape) == [1, 1, 4, 1]
    assert tl.args[1] is ttnn.TILE_LAYOUT
    assert tl.kwargs["dtype"] is ttnn.bfloat16
    assert _literal(tl.kwargs["memory_config"]) == mc
    # and the graph module's code runs these same objects
    assert "memory_config" in gm.code


def test_kwargs_and_positional_spellings_both_trace():
    def model(x):
        a = ttnn.permute(x, dims=(0, 1, 3, 2))
        return ttnn.permute(a, (0, 1, 3, 2))

    gm = fusion.trace(model, [TensorSpec((1, 1, 32, 64))]).graph_module
    a, b = _calls(gm)
    assert a.kwargs == {"dims": (0, 1, 3, 2)} and b.args[1] == (0, 1, 3, 2)
    assert a.meta["spec"].shape == (1, 1, 64, 32) and b.meta["spec"].shape == (1, 1, 32, 64)


def test_modules_and_callable_objects_trace():
    class Block(torch.nn.Module):
        def forward(self, x):
            return ttnn.silu(x)

    class Obj:
        def __init__(self):
            self.w = ttnn.from_torch(torch.randn(64, 32), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT)

        def __call__(self, x):
            return ttnn.matmul(x, self.w)

    assert [n.target for n in _calls(fusion.trace(Block(), [TensorSpec((1, 1, 32, 64))]).graph_module)] == [ttnn.silu]
    traced = fusion.trace(Obj(), [TensorSpec((1, 1, 32, 64))])
    (mm,) = _calls(traced.graph_module)
    weight = mm.args[1]
    assert weight.op == "get_attr" and weight.meta["spec"].shape == (64, 32)
    assert mm.meta["spec"].shape == (1, 1, 32, 32)


def test_deallocate_stays_in_order():
    def model(x):
        a = ttnn.to_layout(x, ttnn.ROW_MAJOR_LAYOUT)
        b = ttnn.to_layout(a, ttnn.TILE_LAYOUT)
        ttnn.deallocate(a)
        return ttnn.silu(b)

    names = [n.target for n in _calls(fusion.trace(model, [TensorSpec((1, 1, 32, 32))]).graph_module)]
    assert names == [ttnn.to_layout, ttnn.to_layout, ttnn.deallocate, ttnn.silu]


def test_python_control_flow_on_shapes_and_arguments_runs():
    def model(x, use_silu):
        if x.shape[-1] > 32 and use_silu:  # shapes are concrete while tracing
            x = ttnn.silu(x)
        for _ in range(2):
            x = ttnn.to_layout(x, ttnn.TILE_LAYOUT)
        return x

    assert [n.target for n in _calls(fusion.trace(model, [TensorSpec((1, 1, 32, 64)), True]).graph_module)] == [
        ttnn.silu, ttnn.to_layout, ttnn.to_layout]
    assert [n.target for n in _calls(fusion.trace(model, [TensorSpec((1, 1, 32, 64)), False]).graph_module)] == [
        ttnn.to_layout, ttnn.to_layout]


def test_tensor_dependent_if_names_the_users_line():
    def model(x):
        y = ttnn.sum(x)
        if y:  # the offending line
            return ttnn.silu(x)
        return x

    with pytest.raises(TraceError) as err:
        fusion.trace(model, [TensorSpec((1, 1, 32, 32))])
    line = model.__code__.co_firstlineno + 2
    assert f"test_trace.py:{line}" in str(err.value)
    assert "control flow" in str(err.value) and "ttnn.where" in str(err.value)


@pytest.mark.parametrize("read", ["item", "loop"])
def test_host_reads_of_tensor_values_are_refused(read):
    def model(x):
        if read == "item":
            return x.item()
        return [ttnn.silu(v) for v in x]

    with pytest.raises(TraceError) as err:
        fusion.trace(model, [TensorSpec((1, 1, 32, 32))])
    assert "test_trace.py:" in str(err.value)


def test_every_node_keeps_its_source_location():
    def model(x):
        return ttnn.silu(x)

    (node,) = _calls(fusion.trace(model, [TensorSpec((1, 1, 32, 32))]).graph_module)
    assert node.meta["location"].endswith(f"test_trace.py:{model.__code__.co_firstlineno + 1}")
    assert node.meta["source_fn"] == "model"


def test_tensor_operators_become_ttnn_ops():
    def model(a, b):
        return a * b + a

    assert [n.target for n in _calls(fusion.trace(model, [TensorSpec((32, 32)), TensorSpec((32, 32))]).graph_module)] == [
        ttnn.multiply, ttnn.add]


def test_multiple_outputs_unpack():
    def model(x):
        values, indices = ttnn.topk(x, k=4, dim=-1)
        return values, indices

    gm = fusion.trace(model, [TensorSpec((1, 1, 32, 64))]).graph_module
    calls = _calls(gm)
    assert calls[0].target is ttnn.topk
    assert [c.target for c in calls[1:]] == [operator.getitem, operator.getitem]
    assert calls[1].meta["spec"].shape == (1, 1, 32, 4)


def test_example_inputs_that_do_not_fit_name_the_arguments():
    def model(x, y):
        return ttnn.add(x, y)

    with pytest.raises(fusion.InputError, match=r"\(x, y\).*1 items"):
        fusion.fuse(model, [TensorSpec((32, 32))])
    with pytest.raises(fusion.InputError, match="must be a list"):
        fusion.fuse(model, TensorSpec((32, 32)))


def test_a_fused_op_reached_through_a_closure_is_one_node():
    import torch

    def make():
        @fusion.fused_op(golden=lambda x: torch.relu(x) * 2, output_spec=lambda b: b["x"], dispatches=1,
                         name="tests.closure_relu2")
        def relu2(x):
            raise AssertionError("the entry's body must not run while tracing")

        def unfused(x):
            return ttnn.multiply(ttnn.relu(x), 2.0)

        return fusion.Pattern("closure_relu2", unfused, lambda x: relu2(x)), unfused

    pattern, unfused = make()
    fused = fusion.fuse(unfused, [TensorSpec((1, 1, 32, 64))], patterns=[pattern])
    assert [r.pattern for r in fused.report.rewrites] == ["closure_relu2"]
