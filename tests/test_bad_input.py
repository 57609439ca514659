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
