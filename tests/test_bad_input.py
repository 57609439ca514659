"""Bad input gets a clear error, never a crash or a wrong result."""
import pytest
import ttnn

import fusion
from fusion import TensorSpec
from fusion._version_check import TTNNVersionError, check_ttnn


def test_ttnn_missing_or_another_version_is_one_clear_line():
    with pytest.raises(TTNNVersionError) as err:
        check_ttnn("0.80.0")
    msg = str(err.value)
    assert "\n" not in msg and "0.81.1" in msg and "0.80.0 is installed" in msg and "scripts/setup.sh" in msg
    with pytest.raises(TTNNVersionError, match="not installed"):
        _missing()


def _missing():
    from fusion import _version_check as vc

    orig = vc.installed_ttnn
    vc.installed_ttnn = lambda: None
    try:
        vc.check_ttnn()
    finally:
        vc.installed_ttnn = orig


def test_unknown_op_still_fuses_elsewhere_and_refusals_name_it():
    def model(x, topk):
        y = ttnn.cumsum(x, 0)  # no spec rule
        z = ttnn.silu(y)
        out = ttnn.multiply(z, y)  # silu_mul would match, but its specs are unknown
        w = ttnn.reshape(topk, (-1, 1, 1, 8))
        w = ttnn.to_layout(w, ttnn.ROW_MAJOR_LAYOUT)
        w = ttnn.repeat(w, ttnn.Shape((1, 1, 64, 1)))
        w = ttnn.permute(w, (3, 1, 0, 2))
        return out, ttnn.to_layout(w, ttnn.TILE_LAYOUT)

    fused = fusion.fuse(model, [TensorSpec((32, 32)), TensorSpec((1, 1, 32, 8))])
    assert [r.pattern for r in fused.report.rewrites] == ["prepare_expert_weights"]
    assert any("unknown spec for ttnn.cumsum" in r.reason for r in fused.report.refusals)


def test_wrong_call_arguments_of_a_fused_model_name_the_argument():
    from tests.test_pattern_prepare_expert_weights import INPUTS, seed_chain

    def model(topk, experts, scale=1):
        return seed_chain(topk, experts)

    fused = fusion.fuse(model, INPUTS + [2])
    with pytest.raises(fusion.InputError, match="scale=3 differs from the value it was fused with"):
        fusion.run_reference(fused, None, None, 3)
    with pytest.raises(fusion.InputError):
        fused(1, 2, 3, 4, 5)


def test_lazy_fuse_traces_once_per_input_signature():
    import torch

    from tests.test_pattern_prepare_expert_weights import seed_chain

    lazy = fusion.fuse(seed_chain)
    a = lazy.for_inputs(torch.zeros(1, 1, 32, 8), torch.zeros(8, 1, 32, 2880))
    b = lazy.for_inputs(torch.ones(1, 1, 32, 8), torch.ones(8, 1, 32, 2880))
    c = lazy.for_inputs(torch.zeros(1, 1, 16, 8), torch.zeros(8, 1, 16, 2880))
    assert a is b and c is not a and len(lazy.fused) == 2
    assert len(a.report.rewrites) == 1 and len(c.report.rewrites) == 1


def test_example_input_of_the_wrong_rank_names_the_argument_and_the_line():
    def model(x):
        b, _, s, k = x.shape  # expects rank 4
        return ttnn.reshape(x, (b * s, k))

    with pytest.raises(fusion.InputError) as err:
        fusion.fuse(model, [TensorSpec((32, 8))])
    msg = str(err.value)
    assert "x=[32,8]" in msg and "test_bad_input.py:" in msg and "rank" in msg


# --- signatures, constants and inputs a model author writes -----------------------------------

_S = TensorSpec((1, 1, 32, 64))


def _silu_mul_scaled(a, b, *, scale=1.0):
    return ttnn.multiply(ttnn.silu(a), ttnn.multiply(b, scale))


def test_keyword_only_parameters_take_their_defaults_or_a_dict():
    assert len(fusion.fuse(_silu_mul_scaled, [_S, _S]).report.rewrites) == 1
    fused = fusion.fuse(_silu_mul_scaled, {"a": _S, "b": _S, "scale": 2.0})
    assert len(fused.report.rewrites) == 1
    with pytest.raises(fusion.InputError, match="scale=3.0 differs"):
        fused.tensor_arguments((None, None), {"scale": 3.0})
    with pytest.raises(fusion.InputError, match="no parameter 'nope'"):
        fusion.fuse(_silu_mul_scaled, {"a": _S, "b": _S, "nope": 1})


def test_star_args_and_kwargs_and_partial_trace():
    import functools

    import torch

    def model(a, *rest, **options):
        out = ttnn.silu(a)
        for r in rest:
            out = ttnn.multiply(out, r)
        return out

    fused = fusion.fuse(model, [_S, _S, _S])
    assert len(fused.report.rewrites) == 1
    x = torch.randn(1, 1, 32, 64)
    assert fusion.run_reference(fused, x, x, x).shape == (1, 1, 32, 64)
    assert len(fusion.fuse(functools.partial(_silu_mul_scaled, scale=3.0), [_S, _S]).report.rewrites) == 1


def test_a_constant_list_is_copied_when_fused():
    import torch

    def model(a, shape):
        return ttnn.reshape(a, tuple(shape))

    shape = [1, 1, 32, 64]
    fused = fusion.fuse(model, [_S, shape])
    shape.append(1)  # the caller's list changes after fusing
    with pytest.raises(fusion.InputError, match="differs from the value it was fused with"):
        fusion.run_reference(fused, torch.randn(1, 1, 32, 64), shape)
    assert fusion.run_reference(fused, torch.randn(1, 1, 32, 64), [1, 1, 32, 64]).shape == (1, 1, 32, 64)


def test_none_example_input_is_a_clear_error_unless_the_parameter_defaults_to_none():
    with pytest.raises(fusion.InputError, match="example input for b is None"):
        fusion.fuse(_silu_mul_scaled, [_S, None])

    def model(a, bias=None):
        return ttnn.silu(a) if bias is None else ttnn.add(a, bias)

    assert fusion.fuse(model, [_S, None]).report is not None


def test_malformed_constraints_and_checks_are_pattern_errors():
    with pytest.raises(fusion.PatternError, match="accepts nothing"):
        fusion.FloatIn(1, 0)
    with pytest.raises(fusion.PatternError, match="accepts nothing"):
        fusion.IntIn(5, 1)
    with pytest.raises(fusion.PatternError, match="accepts nothing"):
        fusion.OneOf(())

    def unfused(a, b):
        return ttnn.multiply(ttnn.silu(a), b)

    p = fusion.Pattern("check_true", unfused, lambda a, b: ttnn.multiply(a, b), check=lambda m: True)
    with pytest.raises(fusion.PatternError, match="check must return None"):
        fusion.fuse(unfused, [_S, _S], patterns=[p])


def test_a_call_with_other_variadic_arguments_than_fused_is_an_error():
    import torch

    def total(*xs, **options):
        out = xs[0]
        for x in xs[1:]:
            out = ttnn.add(out, x)
        return out

    fused = fusion.fuse(total, [_S, _S])
    one = torch.ones(1, 1, 32, 64)
    with pytest.raises(fusion.InputError, match="3 extra positional arguments"):
        fusion.run_reference(fused, one, one, one)
    with pytest.raises(fusion.InputError, match="keyword arguments"):
        fusion.run_reference(fused, one, one, scale=5.0)
    with pytest.raises(fusion.InputError, match=r"xs\[1\] is None"):
        fusion.fuse(total, [_S, None])


def test_value_objects_are_copied_and_compared_by_value():
    import dataclasses

    import numpy as np
    import torch

    @dataclasses.dataclass
    class Cfg:
        scale: float

    def model(a, cfg, table):
        return ttnn.multiply(a, cfg.scale * float(table[0]))

    cfg, table = Cfg(2.0), np.array([1.0, 3.0])
    fused = fusion.fuse(model, [_S, cfg, table])
    x = torch.ones(1, 1, 32, 64)
    assert fusion.run_reference(fused, x, Cfg(2.0), np.array([1.0, 3.0])).shape == (1, 1, 32, 64)
    cfg.scale = 5.0  # mutated after fusing: the fused graph was traced with 2.0
    with pytest.raises(fusion.InputError, match="differs from the value it was fused with"):
        fusion.run_reference(fused, x, cfg, table)
