"""In-place writes, output buffers, copies and reallocations are data flow: traced, honoured by
run_reference, and never crossed by a rewrite."""
import threading

import pytest
import torch
import ttnn

import fusion
from fusion import Pattern, TensorSpec
from fusion.verify import compare_programs

S = TensorSpec((1, 1, 32, 64))
W = TensorSpec((64, 64))


def _calls(fused):
    return [n for n in fused.graph_module.graph.nodes if n.op == "call_function"]


def _names(fused):
    return [getattr(n.target, "python_fully_qualified_name", getattr(n.target, "__name__", "?")) for n in _calls(fused)]


def _same_as_original(model, fused, *shapes):
    gen = torch.Generator().manual_seed(1)
    xs = [torch.randn(s, generator=gen).to(torch.bfloat16) for s in shapes]
    original = fusion.trace(model, [TensorSpec(tuple(s)) for s in shapes]).graph_module
    assert compare_programs(original, fused.graph_module, xs) is None


def silu_then_add_(a, b):
    s = ttnn.silu(a)
    ttnn.add_(a, b)
    return ttnn.multiply(s, b)


def silu_then_output_tensor(a, b):
    s = ttnn.silu(a)
    ttnn.add(a, b, output_tensor=a)
    return ttnn.multiply(s, b)


def silu_then_copy(a, b):
    s = ttnn.silu(a)
    ttnn.copy(b, a)
    return ttnn.multiply(s, b)


def silu_then_reallocate(a, b):
    s = ttnn.silu(a)
    ttnn.reallocate(a)
    return ttnn.multiply(s, b)


@pytest.mark.parametrize("model", [silu_then_add_, silu_then_output_tensor, silu_then_copy, silu_then_reallocate])
def test_a_write_between_matched_calls_puts_the_fused_op_before_it(model):
    fused = fusion.fuse(model, [S, S], patterns=["silu_mul"])
    assert [r.pattern for r in fused.report.rewrites] == ["silu_mul"]
    names = _names(fused)
    # the fused multiply reads `a` before the write (or free) changes it
    assert names[0] == "ttnn.multiply" and len(names) == 2, names
    _same_as_original(model, fused, (1, 1, 32, 64), (1, 1, 32, 64))


def test_a_write_that_cannot_be_avoided_is_refused_with_its_place():
    def model(a, b):
        s = ttnn.silu(a)
        c = ttnn.add(a, b)  # an input computed after the first matched call
        ttnn.add_(a, b)
        return ttnn.multiply(s, c)

    fused = fusion.fuse(model, [S, S], patterns=["silu_mul"])
    assert not fused.report.rewrites
    (why,) = [r.reason for r in fused.report.refusals]
    assert "ttnn.add_" in why and "writes input a" in why and "test_inplace.py" in why


def test_an_in_place_zeroing_of_the_matmul_input_is_not_moved_past():
    def model(x, w):
        y = ttnn.linear(x, w)
        ttnn.multiply_(x, 0.0)
        return ttnn.relu(y), x

    fused = fusion.fuse(model, [S, W], patterns=["matmul_activation"])
    assert len(fused.report.rewrites) == 1
    assert _names(fused)[:2] == ["ttnn.linear", "ttnn.multiply_"]
    _same_as_original(model, fused, (1, 1, 32, 64), (64, 64))


def test_reference_semantics_see_every_write():
    def model(x, w, bias):
        out = ttnn.linear(x, w)
        ttnn.add(out, bias, output_tensor=out)  # the gpt-oss bias add, written in place
        ttnn.add(out, 1.0, output_tensor=out)
        return out

    x, w, bias = torch.randn(1, 1, 32, 64), torch.randn(64, 64), torch.randn(1, 1, 32, 64)
    got = fusion.run_reference(model, x, w, bias)
    want = x.bfloat16().float() @ w.bfloat16().float() + bias.bfloat16().float() + 1.0
    assert torch.allclose(got.float(), want, atol=0.5, rtol=0.02)
    traced = fusion.trace(model, [S, W, S])
    writes = [n for n in traced.graph_module.graph.nodes if "writes" in n.meta]
    assert len(writes) == 2 and all(n.users for n in writes)  # nothing dropped


def test_a_write_to_a_weight_held_by_the_model_is_seen_by_later_reads():
    weight = ttnn.from_torch(torch.ones(1, 1, 32, 64), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT)

    def model(x):
        ttnn.multiply_(weight, 3.0)
        return ttnn.add(x, weight)

    got = fusion.run_reference(model, torch.zeros(1, 1, 32, 64))
    assert torch.equal(got.float(), torch.full((1, 1, 32, 64), 3.0))


def test_a_match_that_writes_its_own_input_is_refused():
    def unfused(x, y):
        ttnn.add_(x, y)
        return ttnn.relu(x)

    def replacement(x, y):
        return ttnn.relu(ttnn.add(x, y))

    p = Pattern("add_relu_inplace", unfused, replacement)
    fused = fusion.fuse(unfused, [S, S], patterns=[p])
    assert not fused.report.rewrites
    assert any("writes x, a buffer from outside the match" in r.reason for r in fused.report.refusals)


def test_a_view_read_after_its_base_was_written_is_never_fused():
    def model(a, b):
        v = ttnn.reshape(a, (1, 1, 32, 64))  # ttnn may return a view of a
        ttnn.add_(a, b)
        return ttnn.multiply(ttnn.silu(v), b)

    fused = fusion.fuse(model, [S, S], patterns=["silu_mul"])
    assert not fused.report.rewrites
    assert any("depends on whether ttnn made a view" in r.reason for r in fused.report.refusals)


def test_an_op_on_a_model_tensor_is_recorded_not_run_at_trace_time():
    # silu on a host tensor segfaults inside ttnn: tracing must not run it
    host = ttnn.from_torch(torch.randn(1, 1, 32, 64), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT)

    def model(x):
        return ttnn.multiply(ttnn.silu(host), x)

    traced = fusion.trace(model, [S])
    targets = [n.target for n in traced.graph_module.graph.nodes if n.op == "call_function"]
    assert targets == [ttnn.silu, ttnn.multiply]


def test_two_threads_fusing_at_once_both_succeed_and_ttnn_is_restored():
    original_call = type(ttnn.silu).__call__

    def model(a, b):
        return ttnn.multiply(ttnn.silu(a), b)

    results, errors = [], []

    def work(i):
        try:
            for _ in range(5):
                spec = TensorSpec((1, 1, 32, 64 * (i + 1)))
                results.append(len(fusion.fuse(model, [spec, spec]).report.rewrites))
        except Exception as e:  # pragma: no cover - the failure being tested for
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == [1] * 10
    assert type(ttnn.silu).__call__ is original_call


# --- writers beyond `*_` ops and output_tensor=, found by review -----------------------------

def _cache_update(cache, tok, b):
    s = ttnn.silu(cache)
    ttnn.update_cache(cache, tok, 3)
    return ttnn.multiply(s, b)


def _cache_fill(cache, tok, b):
    s = ttnn.silu(cache)
    ttnn.fill_cache(cache, tok, 0)
    return ttnn.multiply(s, b)


def _paged_update(cache, tok, b):
    s = ttnn.silu(cache)
    ttnn.experimental.paged_update_cache(cache, tok, update_idxs=[3])
    return ttnn.multiply(s, b)


def _assign(cache, tok, b):
    s = ttnn.silu(cache)
    ttnn.assign(b, cache)
    return ttnn.multiply(s, b)


@pytest.mark.parametrize("model", [_cache_update, _cache_fill, _paged_update, _assign])
def test_cache_updates_and_assign_are_writes(model):
    big = TensorSpec((1, 1, 64, 64))
    traced = fusion.trace(model, [big, S, big])
    assert any("writes" in n.meta for n in traced.graph_module.graph.nodes)
    fused = fusion.fuse(model, [big, S, big], patterns=["silu_mul"])
    assert [r.pattern for r in fused.report.rewrites] == ["silu_mul"]
    assert _names(fused)[0] == "ttnn.multiply"  # the fused op reads the cache before the write


def test_a_replacement_that_writes_or_frees_an_input_is_refused():
    relu = ttnn.UnaryWithParam(ttnn.UnaryOpType.RELU)

    def unfused(x, y):
        return ttnn.relu(ttnn.add(x, y))

    def clobbers(x, y):
        return ttnn.add_(x, y, activations=[relu])

    def frees(x, y):
        out = ttnn.add(x, y, activations=[relu])
        ttnn.deallocate(x)
        return out

    def model(a, b):
        return ttnn.relu(ttnn.add(a, b)), ttnn.multiply(a, 2.0)

    for replacement, what in ((clobbers, "writes x"), (frees, "frees x")):
        fused = fusion.fuse(model, [S, S], patterns=[Pattern(f"bad_{what[:5]}", unfused, replacement)])
        assert not fused.report.rewrites
        assert any(what in r.reason for r in fused.report.refusals), fused.report.refusals


def test_a_deallocate_through_a_view_is_not_crossed():
    def model(a, b):
        s = ttnn.silu(a)
        ttnn.deallocate(ttnn.reshape(a, (1, 1, 64, 32)))  # frees a's buffer through a view
        return ttnn.multiply(s, b)

    fused = fusion.fuse(model, [S, S], patterns=["silu_mul"])
    assert len(fused.report.rewrites) == 1
    x = torch.randn(1, 1, 32, 64)
    fusion.run_reference(fused, x, x)  # no use after free


def test_a_model_that_writes_in_place_refuses_one_tensor_passed_as_two_inputs():
    def model(a, b, c):
        s = ttnn.silu(b)
        ttnn.add_(a, c)  # the fused silu-multiply goes after this write to a: were a and b one
        return ttnn.multiply(s, c)  # tensor, it would read b after it changed

    fused = fusion.fuse(model, [S, S, S])
    run = fused.direct_forward()
    x = object()  # never reaches ttnn: the check comes first
    with pytest.raises(fusion.InputError, match="b is the same tensor as a"):
        run(x, x, object())

    weight = ttnn.from_torch(torch.ones(1, 1, 32, 64), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT)

    def holds_a_weight(x, b):
        s = ttnn.silu(weight)
        ttnn.add_(x, 1.0)
        return ttnn.multiply(s, b), x

    run = fusion.fuse(holds_a_weight, [S, S]).direct_forward()
    with pytest.raises(fusion.InputError, match="x is the same tensor as a tensor the model holds"):
        run(weight, object())


def _bernoulli_output(a, b, x):
    s = ttnn.silu(a)
    ttnn.bernoulli(x, output=a)
    return ttnn.multiply(s, b)


def _backward_grad(a, b, x):
    s = ttnn.silu(a)
    ttnn.mul_bw(x, x, x, input_grad=a)
    return ttnn.multiply(s, b)


def _batch_norm_training(a, b, x):
    s = ttnn.silu(a)
    ttnn.batch_norm(x, running_mean=a, running_var=b, training=True)
    return ttnn.multiply(s, x)


def _move(a, b, x):
    s = ttnn.silu(a)
    ttnn.move(a)
    return ttnn.multiply(s, b)


@pytest.mark.parametrize("model", [_bernoulli_output, _backward_grad, _batch_norm_training, _move])
def test_output_parameters_running_statistics_and_moves_are_effects(model):
    fused = fusion.fuse(model, [S, S, S], patterns=["silu_mul"])
    assert len(fused.report.rewrites) == 1
    assert _names(fused)[0] == "ttnn.multiply"  # placed before the write or the move


def test_a_pattern_that_writes_through_a_view_is_matched_by_the_general_matcher():
    def unfused(x, y):
        t = ttnn.add(x, y)
        v = ttnn.reshape(t, (1, 1, 64, 32))
        ttnn.multiply_(v, 2.0)
        return ttnn.relu(t)

    p = Pattern("writes_a_view", unfused, lambda x, y: ttnn.relu(ttnn.add(x, y)))
    assert all(s.compiled is None for s in p.spellings)
