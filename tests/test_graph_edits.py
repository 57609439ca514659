"""The splicer's direct FX edits leave a graph exactly as FX's public edits do, and are used
only where that is known."""
import warnings

import pytest
import torch.fx

import fusion
from benchmarks.graphs import BENCH_PATTERN, synthetic_chain, traced_of
from fusion import fuzz, graph_edits, rewrite
from fusion.graph_edits import DirectEdits, PublicEdits, edits_for
from fusion.match import Catalog
from fusion.verify import Verifier


def _state(gm: torch.fx.GraphModule) -> tuple:
    def text(v):
        return torch.fx.node.map_arg(v, lambda n: n.name)

    g = gm.graph
    # meta by repr (some ttnn values compare by identity), without caches (they hold nodes)
    nodes = [(n.name, n.op, n.target, text(n.args), text(n.kwargs), [u.name for u in n.users],
              {k: repr(v) for k, v in n.meta.items() if not k.startswith("_")}) for n in g.nodes]
    table = {k: [n.name for n in v] for k, v in g._find_nodes_lookup_table.table.items()}
    return nodes, table, g._len


def _fused_state(build, monkeypatch, edits_class) -> tuple:
    with monkeypatch.context() as m:
        if edits_class is not None:
            m.setattr(rewrite, "edits_for", edits_class)
        gm = build()
        _f, report = fusion.fuse_traced(traced_of(gm), Catalog(fusion.default_patterns() + [BENCH_PATTERN]),
                                        Verifier())
        gm.graph.lint()
        return _state(gm), len(report.rewrites)


def test_the_direct_edits_are_in_use_on_the_pinned_torch():
    g = torch.fx.GraphModule(torch.nn.Module(), torch.fx.Graph()).graph
    assert graph_edits._direct_edits_agree()
    assert isinstance(edits_for(g), DirectEdits)


@pytest.mark.parametrize("index", range(40))
def test_fusing_with_direct_edits_gives_the_graph_public_edits_give(index, monkeypatch):
    desc = fuzz.draw_program(11, index)
    build = lambda: fuzz.build_program(desc)[0]  # noqa: E731
    direct, n_direct = _fused_state(build, monkeypatch, None)
    public, n_public = _fused_state(build, monkeypatch, PublicEdits)
    assert n_direct == n_public
    assert direct == public


def test_a_synthetic_chain_fuses_to_the_same_graph_either_way(monkeypatch):
    direct, n = _fused_state(lambda: synthetic_chain(3000, seed=3), monkeypatch, None)
    public, _ = _fused_state(lambda: synthetic_chain(3000, seed=3), monkeypatch, PublicEdits)
    assert n > 300
    assert direct == public


def test_a_module_with_erase_hooks_gets_the_public_edits_and_its_hooks_run():
    gm = synthetic_chain(200, seed=1)
    erased = []
    gm._register_erase_node_hook(erased.append)
    assert isinstance(edits_for(gm.graph), PublicEdits)
    _f, report = fusion.fuse_traced(traced_of(gm), Catalog([BENCH_PATTERN]), Verifier())
    assert report.rewrites and len(erased) == 2 * len(report.rewrites)


def test_when_the_self_test_disagrees_the_public_edits_are_used(monkeypatch):
    def forgetful_erase(self, nodes):  # an FX whose internals moved: the table is not updated
        for node in nodes:
            node._remove_from_list()
            self.graph._len -= 1

    monkeypatch.setattr(DirectEdits, "erase_all", forgetful_erase)
    monkeypatch.setattr(graph_edits, "_AGREE", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert not graph_edits._direct_edits_agree()
    assert isinstance(edits_for(synthetic_chain(10).graph), PublicEdits)


def test_erasing_a_node_that_still_has_users_is_refused_like_fx_refuses_it():
    gm = synthetic_chain(20, seed=0)
    used = next(n for n in gm.graph.nodes if n.op == "call_function" and n.users)
    for edits in (DirectEdits(gm.graph), PublicEdits(gm.graph)):
        with pytest.raises(RuntimeError, match="still had"):
            edits.erase_all((used,))
