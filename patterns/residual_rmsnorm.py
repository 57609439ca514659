"""Residual add feeding RMSNorm.

* The sum has no other user: `ttnn.rms_norm(x, residual_input_tensor=residual)` (TT-NN's own fused op).
* The sum is kept (it is the next residual, as in every decoder layer): the ResidualRMSNorm
  micro-op writes both the sum and its norm in one program. It needs x and residual L1
  HEIGHT_SHARDED on one core ([32, W] shards) and gamma ROW_MAJOR on that core.
"""
import ttnn

from fusion import FloatIn, Pattern, TensorSpec, declare_fused_op
from micro_ops.residual_rmsnorm import ResidualRMSNormSingleCore, residual_rms_norm
from patterns import placement as P
from fusion.specs import same_memory_config


def add_norm(x, residual, gamma, eps):
    return ttnn.rms_norm(ttnn.add(x, residual), weight=gamma, epsilon=eps)


def fused(x, residual, gamma, eps):
    return ttnn.rms_norm(x, residual_input_tensor=residual, weight=gamma, epsilon=eps)


def _check(m):
    if m.x.shape != m.residual.shape:
        return f"residual shape {list(m.residual.shape)} differs from {list(m.x.shape)}: rms_norm's residual input does not broadcast"
    if m.x.dtype != m.residual.dtype:
        return "x and residual differ in dtype"
    return None


def _example(rng):
    shape = (1, 1, rng.choice([32, 64]), rng.choice([32, 64, 128]))
    return ({"x": TensorSpec(shape), "residual": TensorSpec(shape), "gamma": TensorSpec((1, 1, 1, shape[-1]))},
            {"eps": rng.choice([1e-5, 1e-6])})


declare_fused_op(residual_rms_norm, golden=residual_rms_norm.golden, dispatches=1, name="micro_ops.residual_rms_norm",
                 output_spec=lambda b: (b["x"], b["x"]))


def add_norm_keep(x, residual, gamma, eps):
    s = ttnn.add(x, residual)
    return ttnn.rms_norm(s, weight=gamma, epsilon=eps), s


def fused_keep(x, residual, gamma, eps):
    s, y = residual_rms_norm(x, residual, gamma, epsilon=eps)
    return y, s


def _check_keep(m):
    why = _check(m)
    if why:
        return why
    if not P.is_height_sharded_rows(m.x) or not same_memory_config(m.residual.memory_config, m.x.memory_config):
        mc = m.x.memory_config
        where = (f"{str(mc.memory_layout).split('.')[-1]} {str(mc.buffer_type).split('.')[-1]}"
                 + (f" over {P.grid_cores(mc)} cores" if mc.is_sharded() and P.grid_cores(mc) else "")) if mc else "unknown"
        return (f"the sum is kept (the next residual) and lives {where}: only the ResidualRMSNorm micro-op writes "
                f"both the sum and its norm, for x and residual L1 HEIGHT_SHARDED on one core ([32, W] shards); "
                f"ttnn.rms_norm(residual_input_tensor=) returns the norm only")
    why = P.gamma_reason(m.gamma, P.first_core(m.x.memory_config))
    if why:
        return why
    return ResidualRMSNormSingleCore.check(m.x.shape, m.residual.shape, m.gamma.shape)


def _example_keep(rng):
    w = rng.choice([256, 512])
    core = ttnn.CoreCoord(0, 0)
    x = TensorSpec((1, 1, 32, w), memory_config=P.height_sharded_on(core, (32, w)))
    g = TensorSpec((1, 1, 1, w), layout=ttnn.ROW_MAJOR_LAYOUT, memory_config=P.height_sharded_on(core, (1, w)))
    return {"x": x, "residual": x, "gamma": g}, {"eps": 1e-6}


PATTERNS = [
    # the sum-keeping form first: with the sum used again it is the one that can apply
    Pattern("residual_rmsnorm", add_norm_keep, fused_keep,
            captures={"eps": FloatIn(0.0, 1e-2)}, check=_check_keep, example=_example_keep,
            becomes="ResidualRMSNorm micro-op (sum and norm in one program)"),
    Pattern("residual_rmsnorm", add_norm, fused, captures={"eps": FloatIn(0.0, 1e-2)},
            check=_check, example=_example, becomes="ttnn.rms_norm(x, residual_input_tensor=residual)"),
]
