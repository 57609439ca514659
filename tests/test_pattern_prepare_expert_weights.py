"""prepare_expert_weights: both spellings fuse and stay bit-exact; every near-miss is left alone."""
import pytest
import torch
import ttnn

import fusion
from fusion import TensorSpec

K, H, T = 8, 2880, 32


def seed_chain(topk, experts):
    w = ttnn.reshape(topk, (-1, 1, 1, K))
    w = ttnn.to_layout(w, ttnn.ROW_MAJOR_LAYOUT)
    w = ttnn.repeat(w, ttnn.Shape((1, 1, H, 1)))
    w = ttnn.permute(w, (3, 1, 0, 2))
    w2 = ttnn.to_layout(w, ttnn.TILE_LAYOUT)
    ttnn.deallocate(w)
    return ttnn.multiply(experts, w2)


def bcast_chain(topk, experts):
    w = ttnn.to_layout(topk, ttnn.ROW_MAJOR_LAYOUT)
    ttnn.deallocate(topk)
    w = ttnn.permute(w, (3, 1, 2, 0))
    w2 = ttnn.to_layout(w, ttnn.TILE_LAYOUT)
    ttnn.deallocate(w)
    return ttnn.multiply(experts, w2, memory_config=ttnn.DRAM_MEMORY_CONFIG)


def bcast_commuted(topk, experts):
    w = ttnn.to_layout(topk, ttnn.ROW_MAJOR_LAYOUT)
    w = ttnn.permute(w, (3, 1, 2, 0))
    w = ttnn.to_layout(w, ttnn.TILE_LAYOUT)
    return w * experts


INPUTS = [TensorSpec((1, 1, T, K)), TensorSpec((K, 1, T, H))]


def _torch_inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(1, 1, T, K, generator=g), torch.randn(K, 1, T, H, generator=g)]


def _targets(fused):
    return [n.target for n in fused.graph_module.graph.nodes if n.op == "call_function"]


@pytest.mark.parametrize("model,spelling", [(seed_chain, "seed_chain"), (bcast_chain, "bcast_chain"),
                                            (bcast_commuted, "bcast_chain")])
def test_fuses_and_agrees_bit_exactly(model, spelling):
    fused = fusion.fuse(model, INPUTS)
    (rw,) = fused.report.rewrites
    assert rw.pattern == "prepare_expert_weights" and rw.spelling == spelling and rw.verified
    assert ttnn.permute not in _targets(fused) and ttnn.to_layout not in _targets(fused)
    x = _torch_inputs()
    assert torch.equal(fusion.run_reference(model, *x), fusion.run_reference(fused, *x))


def test_seed_chain_alone_with_input_shape_b1s():
    def model(topk):
        w = ttnn.reshape(topk, (-1, 1, 1, 4))
        w = ttnn.to_layout(w, ttnn.ROW_MAJOR_LAYOUT)
        w = ttnn.repeat(w, (1, 1, 256, 1))  # a plain tuple spells the same repeat
        w = ttnn.permute(w, (3, 1, 0, 2))
        return ttnn.to_layout(w, ttnn.TILE_LAYOUT)

    fused = fusion.fuse(model, [TensorSpec((4, 1, 8, 4))], patterns=["prepare_expert_weights"])
    (rw,) = fused.report.rewrites
    assert rw.nodes_replaced == 5 and rw.saved_dispatches == 4 and rw.check == "bit-exact"
    assert rw.captures == {"K": 4, "H": 256}
    x = torch.randn(4, 1, 8, 4)
    out = fusion.run_reference(fused, x)
    assert out.shape == (4, 1, 32, 256)
    assert torch.equal(out[:, 0, :, 0], x.bfloat16().reshape(32, 4).t())


def test_input_deallocated_inside_the_chain_is_freed_after_the_fused_op():
    fused = fusion.fuse(bcast_chain, INPUTS)
    order = [n for n in fused.graph_module.graph.nodes if n.op == "call_function"]
    fused_op = next(i for i, n in enumerate(order) if getattr(n.target, "ttfuse_name", "").endswith("prepare_expert_weights"))
    dealloc = next(i for i, n in enumerate(order) if n.target is ttnn.deallocate)
    assert dealloc > fused_op and order[dealloc].args[0].op == "placeholder"


# --- near-misses -------------------------------------------------------------------------


def _seed_variant(perm=(3, 1, 0, 2), repeat=(1, 1, H, 1), final=ttnn.TILE_LAYOUT, escape=False):
    def model(topk, experts):
        w = ttnn.reshape(topk, (-1, 1, 1, K))
        w = ttnn.to_layout(w, ttnn.ROW_MAJOR_LAYOUT)
        r = ttnn.repeat(w, ttnn.Shape(repeat))
        p = ttnn.permute(r, perm)
        w2 = ttnn.to_layout(p, final)
        out = ttnn.multiply(experts, w2) if final == ttnn.TILE_LAYOUT and not escape else w2
        return (out, r) if escape else out

    return model


def test_other_permutation_does_not_fuse():
    fused = fusion.fuse(_seed_variant(perm=(3, 1, 2, 0)), [TensorSpec((1, 1, T, K)), TensorSpec((K, 1, H, T))], patterns=["prepare_expert_weights"])
    assert fused.report.rewrites == []


def test_repeat_on_another_dim_does_not_fuse():
    fused = fusion.fuse(_seed_variant(repeat=(1, H, 1, 1)), [TensorSpec((1, 1, T, K)), TensorSpec((K, H, T, 1))], patterns=["prepare_expert_weights"])
    assert fused.report.rewrites == []


def test_final_layout_not_tile_does_not_fuse():
    fused = fusion.fuse(_seed_variant(final=ttnn.ROW_MAJOR_LAYOUT), [TensorSpec((1, 1, T, K)), TensorSpec((K, 1, T, H))], patterns=["prepare_expert_weights"])
    assert fused.report.rewrites == []


def test_escaping_intermediate_is_refused_with_the_reason():
    model = _seed_variant(escape=True)
    fused = fusion.fuse(model, [TensorSpec((1, 1, T, K)), TensorSpec((K, 1, T, H))], patterns=["prepare_expert_weights"])
    assert fused.report.rewrites == []
    (ref,) = [r for r in fused.report.refusals if r.spelling == "seed_chain"]
    assert "is also used by output" in ref.reason and "fusing would lose it" in ref.reason
    assert ref.location.endswith(f"test_pattern_prepare_expert_weights.py:{model.__code__.co_firstlineno + 1}")


def test_size_outside_every_variant_is_refused_with_the_reason():
    k = 40  # experts per token beyond one tile width: no variant covers it

    def model(topk):
        w = ttnn.reshape(topk, (-1, 1, 1, k))
        w = ttnn.to_layout(w, ttnn.ROW_MAJOR_LAYOUT)
        w = ttnn.repeat(w, ttnn.Shape((1, 1, 64, 1)))
        w = ttnn.permute(w, (3, 1, 0, 2))
        return ttnn.to_layout(w, ttnn.TILE_LAYOUT)

    fused = fusion.fuse(model, [TensorSpec((1, 1, 32, k))], patterns=["prepare_expert_weights"])
    assert fused.report.rewrites == []
    (ref,) = [r for r in fused.report.refusals if r.spelling == "seed_chain"]
    assert "40" in ref.reason and "32" in ref.reason


def test_non_constant_hidden_size_is_refused():
    # H comes from a tensor whose spec is unknown at trace time, so the graph computes it at run time
    def model(topk, other):
        h = ttnn.cumsum(other, 0).shape[-1]
        w = ttnn.reshape(topk, (-1, 1, 1, K))
        w = ttnn.to_layout(w, ttnn.ROW_MAJOR_LAYOUT)
        w = ttnn.repeat(w, (1, 1, h, 1))
        w = ttnn.permute(w, (3, 1, 0, 2))
        return ttnn.to_layout(w, ttnn.TILE_LAYOUT)

    fused = fusion.fuse(model, [TensorSpec((1, 1, T, K)), TensorSpec((32, 64))], patterns=["prepare_expert_weights"])
    assert fused.report.rewrites == []
    assert any("capture H is not a constant" in r.reason for r in fused.report.refusals)


def test_reshape_that_mixes_tokens_and_experts_is_refused():
    # (-1,1,1,4) of [.., 8] regroups the weights: the same ops, another meaning
    def model(topk):
        w = ttnn.reshape(topk, (-1, 1, 1, 4))
        w = ttnn.to_layout(w, ttnn.ROW_MAJOR_LAYOUT)
        w = ttnn.repeat(w, ttnn.Shape((1, 1, 64, 1)))
        w = ttnn.permute(w, (3, 1, 0, 2))
        return ttnn.to_layout(w, ttnn.TILE_LAYOUT)

    fused = fusion.fuse(model, [TensorSpec((1, 1, 16, 8))], patterns=["prepare_expert_weights"])
    # the whole chain is refused; its last four ops alone do prepare the reshaped weights (index map)
    assert [r.spelling for r in fused.report.rewrites] in ([], ["layout_repeat_permute_layout"])
    assert "not K=4" in [r for r in fused.report.refusals if r.spelling == "seed_chain"][0].reason


def test_row_major_input_is_refused():
    fused = fusion.fuse(seed_chain, [TensorSpec((1, 1, T, K), layout=ttnn.ROW_MAJOR_LAYOUT), TensorSpec((K, 1, T, H))], patterns=["prepare_expert_weights"])
    assert fused.report.rewrites == []
    assert all("TILE" in r.reason for r in fused.report.refusals) and fused.report.refusals


def test_bcast_spelling_needs_a_single_batch_row():
    # [B,1,S,K] with B > 1: permute (3,1,2,0) gives [K,1,S,B], not per-token weights
    fused = fusion.fuse(bcast_chain, [TensorSpec((2, 1, 16, K)), TensorSpec((K, 1, 16, 2))], patterns=["prepare_expert_weights"])
    assert fused.report.rewrites == []
    assert "[1, 1, T, K]" in fused.report.refusals[0].reason


def test_bcast_spelling_with_a_consumer_that_is_not_a_multiply_does_not_fuse():
    def model(topk, experts):
        w = ttnn.to_layout(topk, ttnn.ROW_MAJOR_LAYOUT)
        w = ttnn.permute(w, (3, 1, 2, 0))
        w = ttnn.to_layout(w, ttnn.TILE_LAYOUT)
        return ttnn.add(experts, w)

    assert fusion.fuse(model, INPUTS, patterns=["prepare_expert_weights"]).report.rewrites == []


# --- the verifier ------------------------------------------------------------------------


def _wrong_pattern():
    from patterns.prepare_expert_weights import seed_chain as unfused

    def wrong(x, K, H):
        w = ttnn.reshape(x, (-1, 1, 1, K))
        w = ttnn.to_layout(w, ttnn.ROW_MAJOR_LAYOUT)
        w = ttnn.repeat(w, ttnn.Shape((1, 1, H, 1)))
        w = ttnn.permute(w, (3, 1, 0, 2))
        w = ttnn.multiply(w, 1.01)  # a "harmless" 1% scale: the spec matches, the values do not
        return ttnn.to_layout(w, ttnn.TILE_LAYOUT)

    return fusion.Pattern("wrong_on_purpose", unfused, wrong, captures={"K": fusion.IntIn(1), "H": fusion.IntIn(1)},
                          exact=True)


def test_a_wrong_replacement_is_refused_by_the_verifier():
    fused = fusion.fuse(seed_chain, INPUTS, patterns=[_wrong_pattern()])
    assert fused.report.rewrites == []
    (ref,) = fused.report.refusals
    assert ref.pattern == "wrong_on_purpose" and ref.reason.startswith("verification failed: not bit-exact")


def test_strict_mode_raises_on_a_failed_verification():
    with pytest.raises(fusion.VerificationError, match="wrong_on_purpose"):
        fusion.fuse(seed_chain, INPUTS, patterns=[_wrong_pattern()], strict=True)


def test_a_replacement_with_another_output_spec_is_refused():
    from patterns.prepare_expert_weights import seed_chain as unfused

    def to_l1(x, K, H):
        w = ttnn.reshape(x, (-1, 1, 1, K))
        w = ttnn.to_layout(w, ttnn.ROW_MAJOR_LAYOUT)
        w = ttnn.repeat(w, ttnn.Shape((1, 1, H, 1)))
        w = ttnn.permute(w, (3, 1, 0, 2))
        return ttnn.to_layout(w, ttnn.TILE_LAYOUT, memory_config=ttnn.L1_MEMORY_CONFIG)

    p = fusion.Pattern("l1_output", unfused, to_l1, captures={"K": fusion.IntIn(1), "H": fusion.IntIn(1)})
    (ref,) = fusion.fuse(seed_chain, INPUTS, patterns=[p]).report.refusals
    assert "spec" in ref.reason and "differs from the original" in ref.reason


def test_verification_runs_once_per_distinct_specs():
    def two_chains(a, b, e):
        return seed_chain(a, e), seed_chain(b, e)

    v = fusion.verify.Verifier() if hasattr(fusion, "verify") else None
    from fusion.verify import Verifier

    v = Verifier()
    spec = TensorSpec((1, 1, T, K))
    from patterns.prepare_expert_weights import SEED

    fused = fusion.fuse(two_chains, [spec, spec, TensorSpec((K, 1, T, H))], verifier=v, patterns=[SEED])
    assert len(fused.report.rewrites) == 2
    assert (fused.report.verifications_run, fused.report.verifications_cached) == (1, 1)


@pytest.mark.parametrize("reps,dims,fuses", [
    ((64, 1, 1, 1), (3, 1, 2, 0), True),    # DeepSeek-V3's literals
    ((1, 1, 1, 64), (3, 1, 0, 2), False),   # repeats along K: another map
    ((64, 1, 1, 1), (3, 1, 0, 2), False),   # H and T swapped
])
def test_deepseek_spelling_is_recognised_by_its_index_map(reps, dims, fuses):
    def deepseek(topk):  # models/demos/deepseek_v3/tt/moe.py: _fwd_moe's weight preparation
        w = ttnn.to_layout(topk, ttnn.ROW_MAJOR_LAYOUT)
        w = ttnn.repeat(w, repeat_dims=reps)
        w = ttnn.permute(w, dims)
        return ttnn.to_layout(w, ttnn.TILE_LAYOUT)

    spec = fusion.TensorSpec((1, 1, 32, 8))
    f = fusion.fuse(deepseek, [spec], patterns=["prepare_expert_weights"])
    assert [r.pattern for r in f.report.rewrites] == (["prepare_expert_weights"] if fuses else [])
    if not fuses:
        assert any("index map" in r.reason for r in f.report.refusals), f.report.refusals


def test_gpt_oss_older_spelling_is_refused_saying_why():
    # models/demos/gpt_oss/tt/experts/decode.py: permute(w, (1, 0)) -> reshape((B, E, 1)) -> mul in place
    def older(w, states):
        rw = ttnn.reshape(ttnn.permute(w, (1, 0)), (1, 32, 1))
        return ttnn.mul(states, rw, output_tensor=states)

    f = fusion.fuse(older, [TensorSpec((1, 32)), TensorSpec((1, 32, 64))], patterns=["prepare_expert_weights"])
    assert f.report.rewrites == []
    assert any("not expert-major" in r.reason for r in f.report.refusals), f.report.refusals


def test_an_expert_major_permute_reshape_fuses():
    def expert_major(w, experts):
        return ttnn.multiply(experts, ttnn.reshape(ttnn.permute(w, (3, 1, 2, 0)), (K, 1, T, 1)))

    f = fusion.fuse(expert_major, INPUTS, patterns=["prepare_expert_weights"])
    assert [r.spelling for r in f.report.rewrites] == ["permute_reshape_mul"]
    x = _torch_inputs()
    assert torch.equal(fusion.run_reference(expert_major, *x), fusion.run_reference(f, *x))
