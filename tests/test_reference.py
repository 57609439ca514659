"""ttfuse's own reference for ttnn.matmul / ttnn.linear (it shares products between the runs of
one verification trial) computes what ttnn's golden functions compute, on every option."""
import itertools

import pytest
import torch
import ttnn

from fusion import reference


@pytest.mark.parametrize("op", [ttnn.matmul, ttnn.linear])
def test_matmul_reference_equals_ttnn_golden(op):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(1, 2, 32, 64, generator=g)
    b = torch.randn(64, 96, generator=g)
    options = itertools.product((False, True), (None, "relu", "silu"), (None, torch.randn(96, generator=g),
                                                                            torch.randn(1, 96, generator=g)))
    golden = ttnn.get_golden_function(op)
    ours = reference._golden(op)
    for transpose_b, activation, bias in options:
        w = b.transpose(-1, -2).contiguous() if transpose_b else b
        kw = dict(transpose_b=transpose_b, activation=activation)
        if op is ttnn.linear:
            kw["bias"] = bias
        want = golden(a, w, **kw)
        with reference.shared_products():
            got = ours(a, w, **kw)
            again = ours(a, w, **kw)  # the product comes from the memo the second time
        assert torch.equal(got, want) and torch.equal(again, want), kw


def test_products_are_shared_only_inside_a_trial():
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with reference.shared_products():
        p = reference._product(a, b, False, False)
        assert reference._product(a, b, False, False) is p
        c = torch.randn(3, 8)
        assert reference._product(a, c, False, True) is not reference._product(a, b, False, False)
    assert reference._product(a, b, False, False) is not p
