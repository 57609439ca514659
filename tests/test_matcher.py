"""Matching rules: exact literals, canonical argument binding, overlaps, deterministic results."""
import pytest
import torch
import ttnn

import fusion
from fusion import IntIn, Pattern, PatternError, TensorSpec


def _two_layouts(x):
    y = ttnn.to_layout(x, ttnn.ROW_MAJOR_LAYOUT)
    return ttnn.to_layout(y, ttnn.TILE_LAYOUT)


def _identity(x):
    return ttnn.clone(x) if False else ttnn.to_memory_config(x, ttnn.DRAM_MEMORY_CONFIG)


ROUND_TRIP = Pattern("layout_round_trip", _two_layouts, _identity)


def test_keyword_spelling_matches_positional_pattern():
    def model(x):
        y = ttnn.to_layout(x, layout=ttnn.ROW_MAJOR_LAYOUT)
        return ttnn.to_layout(tensor=y, layout=ttnn.TILE_LAYOUT)

    fused = fusion.fuse(model, [TensorSpec((32, 32))], patterns=[ROUND_TRIP])
    assert len(fused.report.rewrites) == 1


def test_an_extra_keyword_the_pattern_does_not_have_blocks_the_match():
    def model(x):
        y = ttnn.to_layout(x, ttnn.ROW_MAJOR_LAYOUT, memory_config=ttnn.L1_MEMORY_CONFIG)
        return ttnn.to_layout(y, ttnn.TILE_LAYOUT)

    assert fusion.fuse(model, [TensorSpec((32, 32))], patterns=[ROUND_TRIP]).report.rewrites == []


def test_overlaps_resolve_to_the_earlier_match_and_report_the_other():
    def model(x):
        a = ttnn.to_layout(x, ttnn.ROW_MAJOR_LAYOUT)
        b = ttnn.to_layout(a, ttnn.TILE_LAYOUT)
        return ttnn.to_layout(b, ttnn.ROW_MAJOR_LAYOUT)

    # matches at (a,b) and, with the inverse pattern, at (b,c): they share b
    def inverse(x):
        y = ttnn.to_layout(x, ttnn.TILE_LAYOUT)
        return ttnn.to_layout(y, ttnn.ROW_MAJOR_LAYOUT)

    def ident_rm(x):
        return ttnn.to_memory_config(x, ttnn.DRAM_MEMORY_CONFIG)

    pats = [ROUND_TRIP, Pattern("inverse_round_trip", inverse, ident_rm)]
    for order in (pats, pats[::-1]):
        fused = fusion.fuse(model, [TensorSpec((32, 32))], patterns=order)
        assert [r.pattern for r in fused.report.rewrites] == ["layout_round_trip"]
        assert any("overlaps layout_round_trip" in r.reason for r in fused.report.refusals)


def test_fusing_is_deterministic_and_idempotent():
    from tests.test_pattern_prepare_expert_weights import INPUTS, seed_chain

    a = fusion.fuse(seed_chain, INPUTS)
    b = fusion.fuse(seed_chain, INPUTS)
    assert a.graph_module.code == b.graph_module.code
    again = fusion.fuse(a, INPUTS)
    assert again.graph_module.code == a.graph_module.code


def test_fuse_does_not_touch_the_users_model():
    class M:
        def __init__(self):
            self.w = ttnn.from_torch(torch.ones(32, 32), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT)

        def __call__(self, x):
            return ttnn.matmul(_two_layouts(x), self.w)

    m = M()
    w = m.w
    before = ttnn.to_torch(w).clone()
    fusion.fuse(m, [TensorSpec((32, 32))], patterns=[ROUND_TRIP])
    assert m.w is w and torch.equal(ttnn.to_torch(m.w), before)
    assert ttnn.to_layout is not None and ttnn.to_layout.__class__.__name__ == "FastOperation"  # patch undone


# --- pattern definitions are checked when written --------------------------------------------


def test_replacement_signature_mismatch_is_an_error_at_definition():
    with pytest.raises(PatternError, match="same parameters"):
        Pattern("bad", _two_layouts, lambda x, y: x)


def test_capture_never_used_is_an_error_at_definition():
    def unfused(x, K):
        return ttnn.to_layout(x, ttnn.ROW_MAJOR_LAYOUT)

    with pytest.raises(PatternError, match="capture 'K' is never used"):
        Pattern("bad", unfused, lambda x, K: x, captures={"K": IntIn(1)})


def test_constraint_on_unknown_name_is_an_error_at_definition():
    with pytest.raises(PatternError, match="unknown name 'H'"):
        Pattern("bad", _two_layouts, _identity, captures={"H": IntIn(1)})


def test_pattern_that_matches_no_op_is_an_error():
    with pytest.raises(PatternError):
        Pattern("bad", lambda x: x, lambda x: x)


def test_unknown_builtin_name_is_an_input_error():
    with pytest.raises(fusion.InputError, match="no built-in pattern named 'nope'"):
        fusion.fuse(_two_layouts, [TensorSpec((32, 32))], patterns=["nope"])


def test_builtin_subset_by_name():
    from tests.test_pattern_prepare_expert_weights import INPUTS, seed_chain

    assert len(fusion.fuse(seed_chain, INPUTS, patterns=["prepare_expert_weights"]).report.rewrites) == 1
    assert fusion.fuse(seed_chain, INPUTS, patterns=[]).report.rewrites == []


def test_two_pattern_inputs_may_be_the_same_value():
    def model(x):
        return ttnn.multiply(ttnn.silu(x), x)

    fused = fusion.fuse(model, [TensorSpec((1, 1, 32, 64))], patterns=["silu_mul"])
    assert [r.pattern for r in fused.report.rewrites] == ["silu_mul"]
