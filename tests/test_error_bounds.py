"""Verification by error bounds against exact arithmetic: a replacement that is wrong by a scale,
an offset, a lost rounding, or only on part of the input domain is refused; correct rewrites pass
on every input domain and every seed."""
import random

import pytest
import torch
import ttnn

import fusion
from fusion import FloatIn, Pattern, TensorSpec, Tolerance
from fusion import numerics
from fusion.verify import Verifier

X = TensorSpec((1, 1, 32, 64))


def _wrong(name, golden, unfused, captures=None, exact=None):
    """A pattern whose fused op's golden is `golden`: one dispatch for the two of `unfused`."""

    @fusion.fused_op(golden=golden, output_spec=lambda b: b["x"], dispatches=1, name=f"tests.{name}")
    def op(x):
        raise RuntimeError("never run on a device here")

    params = list(unfused.__code__.co_varnames[:unfused.__code__.co_argcount])
    replacement = eval(f"lambda {', '.join(params)}: op(x)", {"op": op})
    replacement.__name__ = f"{name}_fused"
    return Pattern(name, unfused, replacement, captures=captures or {}, exact=exact)


def _refused(pattern, model, inputs, strict=False):
    fused = fusion.fuse(model, inputs, patterns=[pattern], strict=strict)
    assert not fused.report.rewrites, fused.report
    reasons = [r.reason for r in fused.report.refusals if r.pattern == pattern.name]
    assert reasons and reasons[0].startswith("verification failed"), reasons
    return reasons[0]


def test_a_dropped_scale_is_refused_even_when_pcc_is_one():
    def unfused(x):
        return ttnn.multiply(ttnn.relu(x), 2.0)

    p = _wrong("drop_scale", lambda x: torch.relu(x), unfused)
    why = _refused(p, unfused, [X])
    assert "exceed the error bound" in why
    with pytest.raises(fusion.VerificationError, match="exceed the error bound"):
        fusion.fuse(unfused, [X], patterns=[p], strict=True)


def test_a_dropped_offset_is_refused():
    def unfused(x):
        return ttnn.relu(ttnn.add(x, 1.0))

    _refused(_wrong("drop_offset", lambda x: torch.relu(x), unfused), unfused, [X])


def test_a_lost_rounding_is_refused():
    def unfused(x):
        return ttnn.typecast(ttnn.typecast(x, ttnn.bfloat16), ttnn.float32)

    x32 = TensorSpec((1, 1, 32, 64), ttnn.float32)
    why = _refused(_wrong("drop_rounding", lambda x: x, unfused), unfused, [x32])
    assert "ulp" in why


def test_wrong_only_for_negative_integers_is_refused():
    def unfused(x):
        return ttnn.abs(ttnn.neg(x))

    i32 = TensorSpec((1, 1, 32, 64), ttnn.int32)
    _refused(_wrong("abs_is_identity", lambda x: x, unfused), unfused, [i32])


def test_wrong_only_for_large_magnitudes_is_refused():
    def unfused(x):
        return ttnn.clamp(ttnn.neg(x), -4.0, 4.0)

    # randn almost never leaves [-4, 4]: the wide domain does
    _refused(_wrong("clamp_dropped", lambda x: -x, unfused), unfused, [X])


def test_wrong_only_for_nan_is_refused():
    def unfused(x):
        return ttnn.relu(ttnn.neg(x))

    why = _refused(_wrong("nan_to_zero", lambda x: torch.where(-x > 0, -x, torch.zeros_like(x)), unfused), unfused, [X])
    assert "NaN" in why


def test_a_correct_replacement_passes_and_says_how_close():
    def unfused(x):
        return ttnn.multiply(ttnn.relu(x), 2.0)

    p = _wrong("scale_kept", lambda x: torch.relu(x) * 2.0, unfused)
    fused = fusion.fuse(unfused, [X], patterns=[p])
    (r,) = fused.report.rewrites
    errors = r.errors
    assert errors["check"] == "error-bounded"
    assert errors["trials"] == list(numerics.FLOAT_DOMAINS)
    assert errors["max_ulp_error"] <= 0.5 and errors["bound_used"] <= 0.5 and errors["pcc"] > 0.999
    assert '"max_ulp_error"' in fused.report.to_json() and "of bound" in str(fused.report)


def test_data_movement_is_compared_bit_for_bit_including_nan_and_negative_zero():
    a = torch.tensor([0.0, float("nan")])
    assert numerics.bits_equal(a, a.clone())
    assert not numerics.bits_equal(torch.tensor([0.0]), torch.tensor([-0.0]))


def test_bfloat8_silu_mul_verifies_on_every_seed():
    """PCC thresholds refused this correct rewrite at random (0.999898 < 0.9999)."""
    b8 = TensorSpec((1, 1, 32, 256), ttnn.bfloat8_b)

    def model(a, b):
        return ttnn.multiply(ttnn.silu(a), b)

    for seed in range(5):
        fused = fusion.fuse(model, [b8, b8], patterns=["silu_mul"], verifier=Verifier(seed=seed))
        assert len(fused.report.rewrites) == 1, fused.report


def test_pcc_is_an_extra_floor_never_a_pass():
    def unfused(x):
        return ttnn.multiply(ttnn.relu(x), 2.0)

    p = _wrong("drop_scale_pcc", lambda x: torch.relu(x), unfused)
    fused = fusion.fuse(unfused, [X], patterns=[p], pcc=0.5)
    assert not fused.report.rewrites
    with pytest.raises(fusion.InputError, match="pcc"):
        fusion.fuse(unfused, [X], pcc=2.0)


def test_tolerance_knob_loosens_the_bound():
    def unfused(x):
        return ttnn.relu(ttnn.add(x, 2.0 ** -12))

    # off by a tiny offset: outside the default bound, inside a loose one
    p = _wrong("tiny_offset", lambda x: torch.relu(x), unfused)
    assert not fusion.fuse(unfused, [X], patterns=[p]).report.rewrites
    loose = fusion.fuse(unfused, [X], patterns=[p], tolerance=Tolerance(ulps=2.0 ** 14, factor=2))
    assert loose.report.rewrites
    with pytest.raises(ValueError):
        Tolerance(ulps=-1)


def test_ulp_follows_the_dtype_and_block_formats():
    v = torch.tensor([1.0, 1000.0], dtype=torch.float64)
    assert numerics.ulp(v, ttnn.bfloat16).tolist() == [2.0 ** -7, 2.0 ** 2]
    assert numerics.ulp(v, ttnn.float32).tolist() == [2.0 ** -23, 2.0 ** -14]
    block = torch.ones(16, dtype=torch.float64)
    block[0] = 64.0
    assert set(numerics.ulp(block, ttnn.bfloat8_b).tolist()) == {2.0 ** 0}


def test_input_domains_cover_what_randn_never_reaches():
    g = torch.Generator().manual_seed(0)
    shape = (64, 64)
    assert numerics.draw(shape, ttnn.bfloat16, "wide", g).abs().max() > 100
    assert numerics.draw(shape, ttnn.bfloat16, "negative", g).max() < 0
    assert numerics.draw(shape, ttnn.bfloat16, "tiny", g).abs().max() < 1e-4
    special = numerics.draw(shape, ttnn.bfloat16, "special", g)
    assert torch.isnan(special).any() and torch.isinf(special).any()
    full = numerics.draw(shape, ttnn.int32, "full", g)
    assert full.min() < -2 ** 20 and full.max() > 2 ** 20
    assert numerics.domains_for([ttnn.int32]) == numerics.INT_DOMAINS
    assert "special" not in numerics.domains_for([ttnn.bfloat8_b])


# every catalog pattern, on its own example instance, over 20 verification seeds
def _catalog_instances():
    from fusion.fuzz import _draw_instance

    out = []
    for p in fusion.default_patterns():
        specs, caps = _draw_instance(p, random.Random(0))
        out.append(pytest.param(p, specs, caps, id=p.name))
    return out


@pytest.mark.parametrize("pattern,specs,caps", _catalog_instances())
def test_catalog_rewrites_verify_on_20_seeds_with_margin(pattern, specs, caps):
    from fusion.testing import candidate_for

    worst = 0.0
    for seed in range(20):
        v = Verifier(seed=seed)
        c, gm = candidate_for(pattern, specs, caps)
        assert c is not None, f"{pattern.name}: its example instance does not match its own unfused code"
        outcome = v.verify(c, gm)
        assert outcome.ok, f"seed {seed}: {outcome.text}"
        if outcome.measured and not outcome.measured.bit_exact:
            worst = max(worst, outcome.measured.bound_used)
    # the calibration the defaults rest on (fusion/numerics.py): at most two thirds of the bound
    assert worst <= 2 / 3, worst


def test_assert_fuses_fails_on_a_wrong_replacement_with_the_reason():
    from fusion.testing import assert_fuses

    def unfused(x):
        return ttnn.multiply(ttnn.relu(x), 2.0)

    p = _wrong("drop_scale_testing", lambda x: torch.relu(x), unfused)
    with pytest.raises(AssertionError, match="exceed the error bound"):
        assert_fuses(p, unfused, [X])


def test_correct_rewrites_in_float32_and_block_float_outputs_verify_on_every_seed():
    """rms_norm's golden computes float32 in float32 (float32_ulps); a block's shared exponent
    may round up in the fused result only (its ulp doubles)."""
    def rms(x, g):
        ms = ttnn.mean(ttnn.pow(x, 2), dim=-1, keepdim=True)
        return ttnn.multiply(ttnn.multiply(x, ttnn.rsqrt(ttnn.add(ms, 1e-5))), g)

    def mlp(x, w):
        return ttnn.silu(ttnn.linear(x, w, dtype=ttnn.bfloat8_b))

    cases = [(rms, [TensorSpec((2, 1, 32, 96), ttnn.float32), TensorSpec((1, 1, 1, 96), ttnn.float32)],
              "rmsnorm_decomposed"),
             (mlp, [TensorSpec((1, 1, 32, 1024)), TensorSpec((1024, 512), ttnn.bfloat8_b)], "matmul_activation")]
    for model, specs, name in cases:
        for seed in range(6):
            fused = fusion.fuse(model, specs, patterns=[name], verifier=Verifier(seed=seed))
            assert len(fused.report.rewrites) == 1, (name, seed, fused.report.refusals)


def test_wrong_only_far_outside_randn_is_refused():
    def unfused(x):
        return ttnn.multiply(ttnn.relu(x), 2.0)

    big = _wrong("zero_above_2000", lambda x: torch.where(x.abs() > 2000, 0.0, torch.relu(x) * 2), unfused)
    tiny = _wrong("flush_below_1e9", lambda x: torch.where(x.abs() < 1e-9, 0.0, torch.relu(x) * 2), unfused)
    for p in (big, tiny):
        assert "scales inputs" in _refused(p, unfused, [X])


def test_a_replacement_of_pure_data_movement_must_be_bit_exact_however_declared():
    def unfused(x):
        return ttnn.transpose(ttnn.transpose(x, -2, -1), -2, -1)

    one_ulp_up = _wrong("transpose_nudged", lambda x: x * (1 + 2.0 ** -7), unfused)
    assert "not bit-exact" in _refused(one_ulp_up, unfused, [X])


def test_exact_on_a_pattern_demands_the_same_bits_or_allows_a_bound():
    def unfused(x):
        return ttnn.multiply(ttnn.relu(x), 2.0)

    rounded_once = lambda x: (torch.relu(x) * 2.0).to(torch.bfloat16).float()  # noqa: E731
    strict = _wrong("scale_bits", rounded_once, unfused, exact=True)
    loose = _wrong("scale_bound", lambda x: torch.relu(x) * (2.0 + 2.0 ** -12), unfused, exact=False)
    assert len(fusion.fuse(unfused, [X], patterns=[strict]).report.rewrites) == 1  # the same bits
    nudged = _wrong("scale_bits_nudged", lambda x: torch.relu(x) * (2.0 + 2.0 ** -6), unfused, exact=True)
    assert "not bit-exact" in _refused(nudged, unfused, [X])
    assert fusion.fuse(unfused, [X], patterns=[loose]).report.rewrites[0].errors["check"] == "error-bounded"


def test_an_elementwise_replacement_wrong_on_a_magnitude_band_is_refused():
    """The row term (an element gets its row's typical error) is for reductions only: a row of
    2^40-sized values must not lend its error to the row's mid-sized ones."""
    def unfused(x):
        return ttnn.multiply(ttnn.neg(x), 1.1)

    def golden(x):
        v = -x * 1.1
        return torch.where((v.abs() > 3000) & (v.abs() < 1e7), 1.5 * v, v)

    assert "scales inputs" in _refused(_wrong("band_scaled", golden, unfused), unfused, [X])
