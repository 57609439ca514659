"""fusion.testing: pattern unit-test helpers, used on the whole built-in catalog."""
import pytest
import ttnn

import fusion
from fusion import TensorSpec
from fusion.testing import assert_fuses, assert_not_fuses, check_near_misses, near_misses

_SEEN = {}
for _p in fusion.default_patterns():
    _SEEN.setdefault(id(_p), _p)
CATALOG = list(_SEEN.values())


@pytest.mark.parametrize("pattern", CATALOG, ids=lambda p: f"{p.name}-{p.spellings[0].name}")
def test_every_builtin_pattern_handles_its_derived_near_misses(pattern):
    # a pattern of wildcard captures (a reshard, a movement pair) has little to vary but its inputs
    loose = all(type(c).__name__ in ("AnyValue", "function") for c in pattern.captures.values())
    results = check_near_misses(pattern, min_variants=1 if loose else 3)
    if pattern.spellings[0].size > 1:
        assert any("escapes" in r.what or "literal" in r.what for r in results)


def test_assert_fuses_and_assert_not_fuses():
    from patterns.silu_mul import PATTERNS

    (silu_mul,) = PATTERNS

    def good(a, b):
        return ttnn.multiply(ttnn.silu(a), b)

    def near(a, b):
        return ttnn.multiply(ttnn.relu(a), b)

    s = TensorSpec((1, 1, 32, 64))
    assert_fuses(silu_mul, good, [s, s], count=1)
    assert_not_fuses(silu_mul, near, [s, s])
    with pytest.raises(AssertionError, match="fired 0 time"):
        assert_fuses(silu_mul, near, [s, s])
    with pytest.raises(AssertionError, match="must not"):
        assert_not_fuses(silu_mul, good, [s, s])


def test_near_misses_catch_a_pattern_that_fires_where_it_should_not(monkeypatch):
    # a pattern that wildcards the permutation (Inductor's worst bug class), with the verifier off
    from fusion import api
    from fusion.verify import Outcome, Verifier, build_replacement

    def unfused(x, dims):
        return ttnn.permute(ttnn.to_layout(x, ttnn.ROW_MAJOR_LAYOUT), dims)

    def replacement(x, dims):
        return ttnn.permute(x, (0, 1, 3, 2))  # assumes one permutation

    sloppy = fusion.Pattern("sloppy_transpose", unfused, replacement,
                            captures={"dims": lambda d: True},
                            example=lambda rng: ({"x": TensorSpec((1, 1, 32, 64))}, {"dims": (0, 1, 3, 2)}))
    monkeypatch.setattr(Verifier, "verify", lambda self, c, gm: Outcome(True, "skipped", build_replacement(c)))
    monkeypatch.setattr(api, "_SHARED_VERIFIER", None)
    results = near_misses(sloppy)
    assert any(r.fused and not r.safe for r in results)
    with pytest.raises(AssertionError, match="unsafe near-misses"):
        check_near_misses(sloppy)
