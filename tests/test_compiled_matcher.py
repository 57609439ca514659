"""The generated matchers give the interpretive matcher's answer, or defer to it."""
import contextlib

import pytest
import ttnn

import fusion
from fusion.effects import OUTPUT_KEYWORDS
from benchmarks.graphs import BENCH_PATTERN, synthetic_chain
from fusion import fuzz
from fusion.compiled_matcher import FALLBACK, NEAR, definitely_differs
from fusion.match import Catalog


def _summary(cands):
    return sorted((c.pattern.name, c.spelling.name, tuple(n.name for n in c.nodes), repr(sorted(c.captures.items())),
                   tuple(sorted((k, n.name) for k, n in c.inputs.items())), tuple(n.name for n in c.absorbed),
                   c.first.name, c.last.name, c.refusal or "") for c in cands)


@contextlib.contextmanager
def interpretive_only(patterns):
    saved = [(s, s.compiled) for p in patterns for s in p.spellings]
    for s, _ in saved:
        s.compiled = None
    try:
        yield
    finally:
        for s, c in saved:
            s.compiled = c


@contextlib.contextmanager
def counting_decisions(patterns, counts):
    saved = [(s, s.compiled.scan) for p in patterns for s in p.spellings if s.compiled is not None]

    def wrap(scan):
        def counted(nodes, *where):
            out = scan(nodes, *where)
            # anchors that write an output buffer (`output_tensor=`, the fuzzer's in-place writes)
            # are keyword calls, which go to the interpretive matcher by design: not counted
            plain = {n for n in nodes if not any(k in n.kwargs for k in OUTPUT_KEYWORDS)}
            deferred = sum(1 for item in out if type(item) is tuple and item[1] is FALLBACK and item[0] in plain)
            counts["fallback"] += deferred
            counts["decided"] += len(plain) - deferred
            return out
        return counted

    for s, scan in saved:
        s.compiled.scan = wrap(scan)
    try:
        yield
    finally:
        for s, scan in saved:
            s.compiled.scan = scan


def test_fuzzed_programs_match_the_same_with_and_without_generated_matchers():
    patterns = fusion.default_patterns()
    catalog = Catalog(patterns)
    counts = {"decided": 0, "fallback": 0}
    compared = 0
    for i in range(250):
        gm, _specs = fuzz.build_program(fuzz.draw_program(11, i))
        with counting_decisions(patterns, counts):
            fast = _summary(catalog.find(gm.graph))
        with interpretive_only(patterns):
            slow = _summary(catalog.find(gm.graph))
        assert fast == slow, f"program 11:{i}"
        compared += len(slow)
    assert compared > 200, "the programs must contain candidates to compare"
    # fuzzed programs spell calls many ways (keywords, mutations): those go to the interpretive
    # matcher; the generated one must still decide most anchors itself
    assert counts["decided"] > counts["fallback"], counts


def test_synthetic_graph_matches_the_same_with_and_without_generated_matchers():
    gm = synthetic_chain(3000, seed=5)
    catalog = Catalog([BENCH_PATTERN])
    fast = _summary(catalog.find(gm.graph))
    with interpretive_only([BENCH_PATTERN]):
        slow = _summary(catalog.find(gm.graph))
    assert fast == slow
    assert sum(1 for c in fast if not c[-1]) > 100
    assert any("also used by" in c[-1] for c in fast), "escapes must be among the candidates"


def _chain(x):
    return ttnn.to_layout(ttnn.permute(ttnn.to_layout(x, ttnn.ROW_MAJOR_LAYOUT), (3, 1, 2, 0)), ttnn.TILE_LAYOUT)


def test_a_call_written_with_keywords_is_left_to_the_interpretive_matcher():
    def kw_chain(x):
        a = ttnn.to_layout(x, layout=ttnn.ROW_MAJOR_LAYOUT)
        return ttnn.to_layout(ttnn.permute(a, (3, 1, 2, 0)), ttnn.TILE_LAYOUT)

    traced = fusion.trace(kw_chain, [fusion.TensorSpec((1, 1, 32, 8))])
    anchor = [n for n in traced.graph_module.graph.nodes if n.op == "call_function"][-1]
    assert BENCH_PATTERN.spellings[0].compiled.fn(anchor) is FALLBACK
    # and the interpretive matcher still finds it
    assert len(Catalog([BENCH_PATTERN]).find(traced.graph_module.graph)) == 1


def test_a_wrong_permutation_is_rejected_by_the_generated_matcher_itself():
    def other_perm(x):
        return ttnn.to_layout(ttnn.permute(ttnn.to_layout(x, ttnn.ROW_MAJOR_LAYOUT), (3, 1, 0, 2)), ttnn.TILE_LAYOUT)

    traced = fusion.trace(other_perm, [fusion.TensorSpec((1, 1, 32, 8))])
    anchor = [n for n in traced.graph_module.graph.nodes if n.op == "call_function"][-1]
    # decided without the interpretive matcher: no match (NEAR: the chain may be a near miss)
    assert BENCH_PATTERN.spellings[0].compiled.fn(anchor) is NEAR
    found = Catalog([BENCH_PATTERN]).find(traced.graph_module.graph, near_misses=True)
    assert [c.near_miss for c in found] == [True]
    assert "ttnn.permute dims=(3, 1, 0, 2) where the pattern has (3, 1, 2, 0)" in found[0].refusal


@pytest.mark.parametrize("p,g,differs", [
    (1, 2, True), (1, 1, False), (1, True, False), ("a", "b", True), (None, None, False),
    (ttnn.TILE_LAYOUT, ttnn.ROW_MAJOR_LAYOUT, True), (ttnn.TILE_LAYOUT, ttnn.TILE_LAYOUT, False),
    ((3, 1, 2, 0), (3, 1, 0, 2), True), ((3, 1, 2, 0), (3, 1, 2), True),
    ((-1, 1, 1, 8), (32, 1, 1, 8), False),  # reshape's -1 may stand for 32
    ((-1, 1, 1, 8), (32, 1, 1, 4), True),
    ((1, 2), [1, 2], False),  # list vs tuple: normalizing may make them equal
    ((1, 2), (1, 2.0), False),
])
def test_definitely_differs_only_for_plain_literals_no_normalizing_can_equate(p, g, differs):
    assert definitely_differs(p, g) is differs


def test_multi_output_and_value_constructor_spellings_use_the_interpretive_matcher():
    by_name = {(p.name, s.name): s for p in fusion.default_patterns() for s in p.spellings}
    assert by_name[("rmsnorm_matmul", "norm_two_linears")].compiled is None  # two outputs
    assert by_name[("prepare_expert_weights", "seed_chain")].compiled is None  # ttnn.Shape((1, 1, H, 1))
    assert by_name[("silu_mul", "silu_mul")].compiled is not None


def _hand_chain(dims, layout_in=ttnn.ROW_MAJOR_LAYOUT):
    import torch.fx

    g = torch.fx.Graph()
    x = g.placeholder("x")
    a = g.call_function(ttnn.to_layout, (x, layout_in))
    b = g.call_function(ttnn.permute, (a, dims))
    c = g.call_function(ttnn.to_layout, (b, ttnn.TILE_LAYOUT))
    g.output(c)
    return c


@pytest.mark.parametrize("dims,expected", [
    ((3, 1, 2, 0), "match"),
    ((3, 1, 0, 2), NEAR),  # another permutation: no match, decided without the interpretive matcher
    ((3, True, 2, 0), FALLBACK),  # equal under ==, but a bool: the full comparison decides
    ((3.0, 1, 2, 0), FALLBACK),
    ([3, 1, 2, 0], FALLBACK),  # a list: normalizing decides
])
def test_generated_literal_checks_decide_only_plain_cases(dims, expected):
    out = BENCH_PATTERN.spellings[0].compiled.fn(_hand_chain(dims))
    if expected == "match":
        assert isinstance(out, tuple) and len(out[0]) == 3
    else:
        assert out is expected


def test_another_layout_of_the_same_enum_is_rejected_outright():
    assert BENCH_PATTERN.spellings[0].compiled.fn(_hand_chain((3, 1, 2, 0), layout_in=ttnn.TILE_LAYOUT)) is NEAR
