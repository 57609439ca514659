"""The report says what fused, where, what it saves, how it was checked, and what was refused."""
import json

import ttnn

import fusion
from fusion import TensorSpec, numerics
from tests.test_pattern_prepare_expert_weights import INPUTS, _seed_variant, seed_chain


def test_rewrite_fields():
    fused = fusion.fuse(seed_chain, INPUTS)
    (rw,) = fused.report.rewrites
    assert rw.location.endswith(f"test_pattern_prepare_expert_weights.py:{seed_chain.__code__.co_firstlineno + 1}")
    assert rw.verified and rw.check == "bit-exact"
    assert rw.nodes_replaced == 5 and rw.saved_dispatches == 4
    # the RM [32,1,1,8], repeated [32,1,2880,8] and permuted [8,1,32,2880] intermediates, plus the reshape output
    rm = 32 * 8 * 2 + 32 * 2880 * 8 * 2 + 8 * 32 * 2880 * 2
    assert rw.saved_bytes == rm + 32 * 32 * 32 * 2
    assert rw.replaced_ops == "ttnn.reshape -> ttnn.to_layout -> ttnn.repeat -> ttnn.permute -> ttnn.to_layout"
    assert rw.replacement == "micro_ops.prepare_expert_weights"
    r = fused.report
    assert (r.dispatches_before, r.dispatches_after) == (6, 2)
    assert r.saved_dispatches == 4


def test_text_and_json():
    fused = fusion.fuse(seed_chain, INPUTS)
    text = str(fused.report)
    assert "prepare_expert_weights [seed_chain]" in text and "bit-exact" in text and "dispatches 6 -> 2" in text
    data = json.loads(fused.report.to_json())
    assert data["rewrites"][0]["saved_dispatches"] == 4 and data["refusals"] == []
    assert set(data["seconds"]) >= {"trace", "match", "verify", "rewrite"}
    (rw,) = fused.report.rewrites
    assert data["rewrites"][0] == json.loads(json.dumps(rw.to_dict())) and set(data["rewrites"][0]) == {
        "pattern", "location", "verified", "nodes_replaced", "saved_dispatches", "saved_bytes", "spelling",
        "replaced_ops", "replacement", "check", "captures", "errors"}
    assert data["rewrites"][0]["errors"]["check"] == "bit-exact" and data["rewrites"][0]["errors"]["trials"] == list(numerics.FLOAT_DOMAINS)


def test_rewrites_of_one_outcome_share_their_kind_and_keep_their_own_place():
    def two_chains(t1, e1, t2, e2):
        return seed_chain(t1, e1), seed_chain(t2, e2)

    fused = fusion.fuse(two_chains, INPUTS + INPUTS)
    a, b = fused.report.rewrites
    assert a.kind is b.kind and a.location == b.location and a.captures == b.captures == {"K": 8, "H": 2880}
    a.captures["K"] = 0  # a copy: the report is not changed through it
    assert a.captures["K"] == 8 and a == b and "saved_dispatches=4" in repr(a)


def test_refusals_are_listed_with_reasons():
    fused = fusion.fuse(_seed_variant(escape=True), INPUTS)
    text = str(fused.report)
    assert "Refused:" in text and "fusing would lose it" in text
    data = json.loads(fused.report.to_json())
    assert data["refusals"][0]["pattern"] == "prepare_expert_weights"
