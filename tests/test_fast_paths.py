"""The pass's fast paths give exactly the general paths' answers.

Pass speed comes from shortcuts: a generated scan over all anchors, a `clean` flag with which the
generated matcher vouches for the structural rules, a verification lookup by spec hashes, a
splice plan per replacement, counts read from FX's index. Each is checked here against the
general code it stands in for.
"""
import itertools

import pytest
import torch.fx
import ttnn

import fusion
from benchmarks.graphs import BENCH_PATTERN, synthetic_chain
from fusion import Pattern, TensorSpec, fuzz
from fusion.api import _count_calls, _scan_calls
from fusion.compiled_matcher import FALLBACK, NEAR, _in_graph_order
from fusion.match import Candidate, Catalog, _rules
from fusion.report import Refusal
from fusion.specs import UnknownSpec
from fusion.verify import Verifier


def _fuzzed_graphs(n=120):
    for i in range(n):
        gm, _specs = fuzz.build_program(fuzz.draw_program(23, i))
        yield gm


def _generated_spellings_and_anchors():
    """(pattern, spelling, its anchors) for every generated spelling on every fuzzed graph."""
    for gm in _fuzzed_graphs():
        for p in fusion.default_patterns():
            for s in p.spellings:
                if s.compiled is not None:
                    yield p, s, gm.graph.find_nodes(op="call_function", target=s.anchor.target)


def test_the_scan_answers_like_the_one_anchor_matcher_for_every_anchor():
    # the scan turns a clean answer into its candidate on the spot; anything else it passes on
    compared = clean = 0
    for p, s, anchors in _generated_spellings_and_anchors():
        expected = [(n, f) for n, f in ((n, s.compiled.fn(n)) for n in anchors) if f is not None]
        got = s.compiled.scan(anchors, p, s, 7)
        assert [x.last if type(x) is Candidate else x[0] for x in got] == [n for n, _ in expected]
        for item, (anchor, answer) in zip(got, expected):
            if answer is FALLBACK:
                assert item == (anchor, answer)
                continue
            if answer is NEAR:  # the scan hands on what it bound, for the near-miss report
                assert item[0] is anchor and item[1][0] is NEAR and len(item[1][1]) == s.size
                continue
            if not answer[3]:  # not clean: passed on for the general rules
                assert item[0] is anchor and item[1][:3] == answer[:3] and item[1][3] is False
                continue
            calls, inputs, captures, _clean = answer
            nodes = sorted(calls)
            assert (item.pattern, item.spelling, item.pattern_index) == (p, s, 7)
            assert list(item.nodes) == nodes and item.inputs == inputs and dict(item.captures) == dict(captures)
            assert list(item.outputs) == [anchor] and (item.first, item.last) == (nodes[0], anchor) and not item.absorbed
            assert item.location == nodes[0].meta.get("location", "<unknown>:0")
            assert item.contiguous == all(a.next is b for a, b in zip(nodes, nodes[1:]))
            assert item.refusal is None and item.outcome is None
            clean += 1
        compared += len(anchors)
    assert compared > 500 and clean > 100, (compared, clean)


def _two_branches(a, b):
    return ttnn.add(ttnn.relu(a), ttnn.neg(b))


@pytest.mark.parametrize("neg_first", [False, True])
def test_a_scanned_candidate_of_a_branching_pattern_has_its_calls_in_graph_order(neg_first):
    # relu and neg do not feed each other: the graph may hold them in either order
    p = Pattern("two_branches", _two_branches, lambda a, b: ttnn.add(ttnn.relu(a), ttnn.neg(b)))
    s = p.spellings[0]  # as written (the other spelling is the add's operands swapped)
    assert not _in_graph_order(s)  # the scan sorts what it found
    g = torch.fx.Graph()
    a, b = g.placeholder("a"), g.placeholder("b")
    first, second = ((ttnn.neg, b), (ttnn.relu, a)) if neg_first else ((ttnn.relu, a), (ttnn.neg, b))
    made = {t: g.call_function(t, (x,)) for t, x in (first, second)}
    out = g.call_function(ttnn.add, (made[ttnn.relu], made[ttnn.neg]))
    g.output(out)
    for n in g.nodes:
        n.meta["spec"] = TensorSpec((1, 1, 32, 32))
    (c,) = s.compiled.scan([out], p, s, 0)
    assert type(c) is Candidate and c.refusal is None
    assert list(c.nodes) == list(g.nodes)[2:5] and c.first is c.nodes[0] and c.contiguous
    assert c.inputs == {"a": a, "b": b}


def test_a_clean_match_passes_every_structural_rule():
    # clean=True lets a match skip _rules: whenever the generated matcher says clean, the rules
    # must find nothing to refuse (captures and the pattern's check aside, which still run)
    vouched = refused_unclean = 0
    for p, s, anchors in _generated_spellings_and_anchors():
        for anchor in anchors:
            found = s.compiled.fn(anchor)
            if found is FALLBACK or found is NEAR or found is None:
                continue
            calls, inputs, captures, clean = found
            nodes = sorted(calls)
            c = Candidate(p, s, 0, dict(captures), inputs, [anchor], nodes, [], nodes[0], anchor)
            # the structural part of _rules: run it without captures, check and guard
            saved = p.captures, p.check, s.guard
            p.captures, p.check, s.guard = {}, None, None
            try:
                why = _rules(c)
            finally:
                p.captures, p.check, s.guard = saved
            if clean:
                assert why is None and not c.absorbed, (p.name, s.name, why)
                vouched += 1
            elif why is not None or c.absorbed:
                refused_unclean += 1
    assert vouched > 100 and refused_unclean > 10, (vouched, refused_unclean)


def _chain_graph(*, escape=False, deallocate=False, unknown=False):
    g = torch.fx.Graph()
    x = g.placeholder("x")
    x.meta["spec"] = TensorSpec((1, 1, 32, 8))
    a = g.call_function(ttnn.to_layout, (x, ttnn.ROW_MAJOR_LAYOUT))
    b = g.call_function(ttnn.permute, (a, (3, 1, 2, 0)))
    c = g.call_function(ttnn.to_layout, (b, ttnn.TILE_LAYOUT))
    for n in (a, b, c):
        n.meta["spec"] = TensorSpec((1, 1, 32, 8))
    if unknown:
        b.meta["spec"] = UnknownSpec("ttnn.permute")
    outs = [c]
    if escape:
        outs.append(g.call_function(ttnn.relu, (a,)))
    if deallocate:
        g.call_function(ttnn.deallocate, (b,))
    g.output(tuple(outs) if len(outs) > 1 else c)
    return g, c


@pytest.mark.parametrize("kind", ["escape", "deallocate", "unknown"])
def test_the_generated_matcher_does_not_vouch_for_escapes_deallocates_or_unknown_specs(kind):
    g, anchor = _chain_graph(**{kind: True})
    calls, inputs, captures, clean = BENCH_PATTERN.spellings[0].compiled.fn(anchor)
    assert not clean
    g_ok, anchor_ok = _chain_graph()
    assert BENCH_PATTERN.spellings[0].compiled.fn(anchor_ok)[3] is True


def test_counts_from_fx_index_equal_a_walk_over_the_graph():
    for gm in itertools.chain(_fuzzed_graphs(40), [synthetic_chain(2000, seed=3)]):
        assert _count_calls(gm.graph) == _scan_calls(gm.graph)
    traced = fusion.trace(lambda x: ttnn.to_layout(ttnn.relu(x), ttnn.ROW_MAJOR_LAYOUT), [TensorSpec((32, 32))])
    assert _count_calls(traced.graph_module.graph) == _scan_calls(traced.graph_module.graph) == (2, 2)


def test_refusal_reasons_are_one_line_exactly_as_split_and_join_make_them():
    chars = ["a", " ", "\n", "\t", "\x0b", "\u2003", "\xa0", "\x1c", "b"]
    for length in range(1, 5):
        for t in itertools.product(chars, repeat=length):
            text = "".join(t)
            assert Refusal("p", "here", text).reason == " ".join(text.split()), repr(text)


def test_two_patterns_with_one_name_are_two_verification_cases():
    # the verifier's cache is keyed by the spelling itself: a pattern redefined under the same
    # name (a notebook cell run twice with another replacement) never reuses the old verdict
    def chain(x):
        return ttnn.to_layout(ttnn.to_layout(x, ttnn.ROW_MAJOR_LAYOUT), ttnn.TILE_LAYOUT)

    def good(x):
        return ttnn.to_memory_config(x, ttnn.DRAM_MEMORY_CONFIG)

    def bad(x):
        return ttnn.relu(x)

    verifier = Verifier()
    specs = [TensorSpec((32, 32))]
    first = fusion.fuse(chain, specs, patterns=[Pattern("round_trip", chain, good)], verifier=verifier)
    second = fusion.fuse(chain, specs, patterns=[Pattern("round_trip", chain, bad)], verifier=verifier)
    assert len(first.report.rewrites) == 1
    assert second.report.rewrites == []
    assert any("verification failed" in r.reason for r in second.report.refusals)


def test_equal_specs_share_one_interned_key():
    a = TensorSpec((1, 1, 32, 64), ttnn.bfloat16, ttnn.TILE_LAYOUT, ttnn.DRAM_MEMORY_CONFIG)
    b = TensorSpec((1, 1, 32, 64), ttnn.bfloat16, ttnn.TILE_LAYOUT, ttnn.DRAM_MEMORY_CONFIG)
    c = TensorSpec((1, 1, 32, 64), ttnn.bfloat16, ttnn.ROW_MAJOR_LAYOUT, ttnn.DRAM_MEMORY_CONFIG)
    assert a is not b and a._key is b._key and a == b and hash(a) == hash(b)
    assert c._key is not a._key and c != a


def test_a_hash_collision_in_the_quick_lookup_falls_back_to_the_full_key(monkeypatch):
    # two different specs forced onto one hash: the identity check on their keys must refuse the
    # quick hit, and the full key must verify the second case on its own
    gm = synthetic_chain(400, seed=9)
    catalog = Catalog([BENCH_PATTERN])
    verifier = Verifier()
    cands = [c for c in catalog.find(gm.graph) if c.refusal is None]
    first = cands[0]
    outcome = verifier.verify(first, gm)
    spec = first.inputs["x"].meta["spec"]
    other = TensorSpec((1, 1, 64, 8), spec.dtype, spec.layout, spec.memory_config)
    object.__setattr__(other, "_hash", spec._hash)  # the collision
    second = cands[1]
    second.inputs["x"].meta["spec"] = other
    runs = verifier.runs
    result = verifier.verify(second, gm)
    assert verifier.runs == runs + 1, "a colliding hash must not be taken as a hit"
    assert result is not outcome


def test_a_deallocate_moved_by_one_splice_moves_again_past_a_later_fused_op_that_reads_it():
    # two interleaved chains on one input, freed between them: the first splice moves the
    # deallocate after its fused op, which is still inside the second chain's span
    rm, tile, dims = ttnn.ROW_MAJOR_LAYOUT, ttnn.TILE_LAYOUT, (3, 1, 2, 0)

    def model(x):
        a1 = ttnn.to_layout(x, rm)
        b1 = ttnn.to_layout(x, rm)
        ttnn.deallocate(x)
        a2 = ttnn.permute(a1, dims)
        b2 = ttnn.permute(b1, dims)
        a3 = ttnn.to_layout(a2, tile)
        b3 = ttnn.to_layout(b2, tile)
        return a3, b3

    fused = fusion.fuse(model, [TensorSpec((1, 1, 32, 8))], patterns=[BENCH_PATTERN])
    assert len(fused.report.rewrites) == 2
    calls = [n for n in fused.graph_module.graph.nodes if n.op == "call_function"]
    names = [getattr(n.target, "__name__", str(n.target)) for n in calls]
    assert names == ["bench_fused", "bench_fused", "ttnn.deallocate"], names
