"""The real-model corpus traces faithfully: every op with a spec from ttnn, every write in the
graph, the traced outputs shaped as the eager run's, and reference semantics for the whole graph.

All forwards are checked once per session (corpus/check.py; one process per mock cluster) and
each assertion below is per forward, so a failure names the forward and what went wrong.
"""
import pytest

import corpus
from corpus.check import check_all

NAMES = corpus.all_forwards()


@pytest.fixture(scope="session")
def records():
    return {r["name"]: r for r in check_all(NAMES)}


def test_the_corpus_covers_five_families_and_twelve_forwards():
    entries = corpus.entries()
    families = {e.family for e in entries.values()}
    assert len(entries) >= 12, sorted(entries)
    assert {"tt_transformers", "gpt_oss", "deepseek_v3", "falcon7b"} <= families
    assert families - {"tt_transformers", "gpt_oss", "deepseek_v3", "falcon7b"}, "no non-LLM family"
    for e in entries.values():
        # tt-metal's model files; the PyTorch-first port cites the Hugging Face module it ports
        assert e.follows.startswith(("models/", "transformers/")) and ": " in e.follows, \
            f"{e.name} does not cite the file it follows"


def test_decode_and_prefill_where_the_model_has_both():
    modes = {}
    for e in corpus.entries().values():
        modes.setdefault(e.family, set()).add(e.mode)
    assert {"decode", "prefill"} <= modes["tt_transformers"]
    assert {"decode", "prefill"} <= modes["falcon7b"]


@pytest.mark.parametrize("name", NAMES)
def test_forward_traces_with_every_spec_known(records, name):
    r = records[name]
    assert "error" not in r, r.get("traceback", r.get("error"))
    assert r["unknown_specs"] == [], r["unknown_specs"]
    assert r["rejected"] == [], r["rejected"]


@pytest.mark.parametrize("name", NAMES)
def test_forward_keeps_every_in_place_write(records, name):
    r = records[name]
    assert "error" not in r, r.get("error")
    assert r["graph_writes"] >= r["calls_with_writes"]
    # independent of the table of writing ops: a call nothing reads that writes and frees nothing
    # would be a write the graph lost (the bug this corpus was built to catch)
    assert r["dead_calls"] == []


@pytest.mark.parametrize("name", NAMES)
def test_traced_outputs_are_what_the_eager_run_returns(records, name):
    r = records[name]
    assert "error" not in r, r.get("error")
    assert r["output_specs_match"], r.get("output_specs")


@pytest.mark.parametrize("name", NAMES)
def test_every_op_has_reference_semantics(records, name):
    r = records[name]
    assert "error" not in r, r.get("error")
    assert r["ops_without_reference"] == []


@pytest.mark.parametrize("name", NAMES)
def test_reference_semantics_run_the_whole_graph(records, name):
    r = records[name]
    assert "error" not in r, r.get("error")
    # a forward whose weights over all devices exceed the host's memory is stated as such (its
    # ops' semantics are still checked above and in tests/test_goldens.py, tests/test_ccl.py)
    assert r["reference"] == "ok" or r["reference"].startswith("too large:"), r["reference"]


# --- what the default catalog does to real code ---------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_the_default_catalog_runs_on_every_forward(records, name):
    f = records[name]["fusion"]
    assert f["dispatches_after"] <= records[name]["dispatches"]
    for r in f["refusals"]:
        assert r["reason"] and not r["reason"].startswith("check raised"), r


def test_a_pytorch_first_llama_layer_loses_at_least_30_percent_of_its_dispatches(records):
    r = records["llama_pytorch_first.decoder.prefill.llama3_2_1b"]
    before, after = r["dispatches"], r["fusion"]["dispatches_after"]
    assert after <= 0.7 * before, (before, after, r["fusion"]["rewrites"])
    fused = {x["pattern"] for x in r["fusion"]["rewrites"]}
    assert {"rmsnorm_decomposed", "reshard_into_producer"} <= fused


def test_real_decode_code_fuses(records):
    # tt_transformers' decode MLP: the SiLU-gated multiply and the w2 output fold their reshards,
    # the same-shape reshape goes
    r = records["tt_transformers.mlp.decode.llama3_8b"]
    assert r["fusion"]["dispatches_after"] < r["dispatches"]
    assert {x["pattern"] for x in r["fusion"]["rewrites"]} >= {"reshard_into_producer", "movement_chain"}
    # DeepSeek-V3's and gpt-oss's routing-weight chains
    for name in ("gpt_oss.experts_throughput.decode.gpt_oss_20b_2x4", "deepseek_v3.moe.decode.deepseek_v3_2x4"):
        fused = records[name]["fusion"]
        assert "prepare_expert_weights" in {x["pattern"] for x in fused["rewrites"]} | {
            x["pattern"] for x in fused["refusals"]}, (name, fused)
