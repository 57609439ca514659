"""Specs propagate through the ops the catalog needs; unknown ops get a named unknown spec."""
import pytest
import ttnn

import fusion
from fusion import TensorSpec
from fusion.specs import UnknownSpec


def _specs(model, inputs):
    gm = fusion.trace(model, inputs).graph_module
    return [n.meta["spec"] for n in gm.graph.nodes if n.op == "call_function"]


def test_expert_weight_chain_specs():
    def model(x):
        x = ttnn.reshape(x, (-1, 1, 1, 8))
        x = ttnn.to_layout(x, ttnn.ROW_MAJOR_LAYOUT)
        x = ttnn.repeat(x, ttnn.Shape((1, 1, 2880, 1)))
        x = ttnn.permute(x, (3, 1, 0, 2))
        return ttnn.to_layout(x, ttnn.TILE_LAYOUT)

    s = _specs(model, [TensorSpec((4, 1, 8, 8))])
    assert [x.shape for x in s] == [(32, 1, 1, 8), (32, 1, 1, 8), (32, 1, 2880, 8), (8, 1, 32, 2880), (8, 1, 32, 2880)]
    assert [x.layout for x in s] == [ttnn.TILE_LAYOUT] + [ttnn.ROW_MAJOR_LAYOUT] * 3 + [ttnn.TILE_LAYOUT]
    assert all(x.memory_config == ttnn.DRAM_MEMORY_CONFIG for x in s)


def test_memory_config_and_dtype_kwargs_change_the_spec():
    def model(x):
        y = ttnn.to_memory_config(x, ttnn.L1_MEMORY_CONFIG)
        return ttnn.typecast(y, ttnn.float32)

    a, b = _specs(model, [TensorSpec((32, 64))])
    assert a.memory_config == ttnn.L1_MEMORY_CONFIG and b.dtype == ttnn.float32 and b.memory_config == ttnn.L1_MEMORY_CONFIG


def test_matmul_broadcast_reduce_and_norm():
    def model(x, w, g, e):
        y = ttnn.rms_norm(x, weight=g, epsilon=1e-5)
        z = ttnn.linear(y, w)
        m = ttnn.multiply(e, ttnn.reshape(z, (1, 1, 32, 128)))
        return ttnn.sum(m, dim=0, keepdim=True)

    s = _specs(model, [TensorSpec((1, 1, 32, 4096)), TensorSpec((4096, 128)), TensorSpec((1, 1, 1, 4096)),
                       TensorSpec((8, 1, 32, 128))])
    assert [x.shape for x in s] == [(1, 1, 32, 4096), (1, 1, 32, 128), (1, 1, 32, 128), (8, 1, 32, 128), (1, 1, 32, 128)]


def test_an_op_without_a_rule_gets_an_unknown_spec_naming_it():
    def model(x):
        return ttnn.experimental.gelu_bw(x, x) if hasattr(ttnn.experimental, "gelu_bw") else ttnn.cumsum(x, 0)

    (s,) = _specs(model, [TensorSpec((32, 32))])
    assert isinstance(s, UnknownSpec) and "unknown spec for ttnn." in s.reason()


def test_bad_reshape_is_unknown_not_a_crash():
    def model(x):
        return ttnn.reshape(x, (3, 7))

    (s,) = _specs(model, [TensorSpec((32, 32))])
    assert isinstance(s, UnknownSpec) and "cannot reshape" in s.reason()


def test_tensor_spec_validates_and_measures():
    s = TensorSpec((2, 1, 33, 40))
    assert s.padded_shape == (2, 1, 64, 64) and s.nbytes == 2 * 64 * 64 * 2
    assert TensorSpec((2, 40), layout=ttnn.ROW_MAJOR_LAYOUT).nbytes == 160
    with pytest.raises(ValueError, match="shape"):
        TensorSpec((2, -1))
    with pytest.raises(ValueError, match="dtype"):
        TensorSpec((2, 2), dtype="bf16")
