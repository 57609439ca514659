"""The pass-speed benchmark races fairly: its graphs are what they say, and every engine finds
and makes the same rewrites. Nothing here is timed."""
import collections

import pytest
import ttnn

import fusion
from benchmarks import engines
from benchmarks.graphs import MATCH_DIMS, MISS_DIMS, DeepSeekDecode, bench_fused, synthetic_chain
from fusion.specs import TensorSpec


def _calls(gm):
    return [n for n in gm.graph.nodes if n.op == "call_function"]


@pytest.mark.parametrize("n", [1000, 5000])
def test_synthetic_chain_has_about_n_calls_each_with_a_spec(n):
    gm = synthetic_chain(n, seed=1)
    calls = _calls(gm)
    assert n <= len(calls) <= n + 4
    assert all(isinstance(c.meta["spec"], TensorSpec) for c in calls)
    gm.graph.lint()


def test_synthetic_chain_densities_control_matches_near_misses_and_escapes():
    gm = synthetic_chain(20000, match_density=0.3, miss_density=0.1, escape_density=0.05, seed=2)
    perms = collections.Counter(c.args[1] for c in _calls(gm) if c.target is ttnn.permute)
    escapes = sum(1 for c in _calls(gm) if c.target is ttnn.neg)
    segments = len(_calls(gm)) / (0.45 * 4 + 0.55 * 1 + 0.05 * 1)  # mean calls per draw
    assert perms[MATCH_DIMS] - escapes == pytest.approx(0.3 * segments, rel=0.1)
    assert perms[MISS_DIMS] == pytest.approx(0.1 * segments, rel=0.15)
    assert escapes == pytest.approx(0.05 * segments, rel=0.2)
    none = synthetic_chain(3000, match_density=0.0, miss_density=0.0, escape_density=0.0, seed=2)
    assert {c.target for c in _calls(none)} == {ttnn.silu}


def test_synthetic_chain_is_reproducible_from_its_seed():
    a, b = synthetic_chain(2000, seed=9), synthetic_chain(2000, seed=9)
    assert a.code == b.code
    assert synthetic_chain(2000, seed=10).code != a.code


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_engine_makes_the_same_rewrites_on_small_graphs(seed):
    base = synthetic_chain(600, seed=seed)
    results = {}
    for name, run in [("ttfuse", engines.run_ttfuse), ("inductor", engines.run_inductor), ("fx", engines.run_fx),
                      ("handwritten", engines.run_handwritten)]:
        gm = engines.copy_graph(base)
        count = run(gm)
        gm.graph.lint()
        results[name] = (count, engines.call_targets(gm))
    counts = {k: v[0] for k, v in results.items()}
    assert len(set(counts.values())) == 1 and counts["ttfuse"] > 20, counts
    graphs = {k: v[1] for k, v in results.items()}
    assert all(g == graphs["ttfuse"] for g in graphs.values())
    assert graphs["ttfuse"].count(bench_fused.__name__) == counts["ttfuse"]


def test_escapes_and_near_misses_are_left_alone_by_every_engine():
    base = synthetic_chain(800, match_density=0.0, miss_density=0.5, escape_density=0.3, seed=4)
    for run in (engines.run_ttfuse, engines.run_inductor, engines.run_fx, engines.run_handwritten):
        assert run(engines.copy_graph(base)) == 0


def test_deepseek_decode_graph_is_61_layers_with_the_expert_chain_in_each_moe_layer():
    model = DeepSeekDecode()
    traced = fusion.trace(model, model.example_inputs())
    calls = _calls(traced.graph_module)
    by_target = collections.Counter(c.target for c in calls)
    assert by_target[ttnn.rms_norm] == 2 * 61
    assert by_target[ttnn.topk] == 58  # 3 dense layers, 58 MoE layers
    assert by_target[ttnn.permute] == 58 and by_target[ttnn.repeat] == 2 * 58
    assert all(c.meta["spec"].shape[-1] in (7168, 1536, 18432, 2048, 256, 8) or c.target is ttnn.deallocate
               for c in calls if isinstance(c.meta.get("spec"), TensorSpec))
