"""RMSNorm feeding linear/matmul -> one program (RMSNormMatmul micro-op); one norm feeding two
matmuls (an MLP's w1 and w3) -> the two-output form (RMSNormDualMatmul).

The micro-ops norm on one core and multicast the normed rows to the weight's cores, so the
weights must already be WIDTH_SHARDED in L1 (a decode model's placement) and gamma ROW_MAJOR
on the norm core; x is moved to the norm core when it is not there (counted), and each result
is converted back to the memory config the original matmul produced when that differs
(counted). A rewrite whose conversions cost more than it saves is refused.
"""
import ttnn

from fusion import FloatIn, OneOf, Pattern, TensorSpec, declare_fused_op
from micro_ops.rmsnorm_matmul import RMSNormDualMatmul, RMSNormMatmul, rms_norm_dual_matmul, rms_norm_matmul
from patterns import placement as P
from fusion.specs import same_memory_config

_ACTS = (None, "silu", "sigmoid", "relu")


def _out_spec(x, w):
    return TensorSpec(tuple(x.shape[:-1]) + (w.shape[-1],), ttnn.bfloat16, ttnn.TILE_LAYOUT,
                      P.width_sharded_like(w.memory_config, w.shape[-1]))


declare_fused_op(rms_norm_matmul, golden=rms_norm_matmul.golden, dispatches=1, name="micro_ops.rms_norm_matmul",
                 output_spec=lambda b: _out_spec(b["x"], b["weight"]))
declare_fused_op(rms_norm_dual_matmul, golden=rms_norm_dual_matmul.golden, dispatches=1,
                 name="micro_ops.rms_norm_dual_matmul",
                 output_spec=lambda b: (_out_spec(b["x"], b["w1"]), _out_spec(b["x"], b["w3"])))


def _x_on_norm_core(x, w):
    """x placed where the micro-op norms it (the first core of the weight grid); a move if needed."""
    if P.is_height_sharded_rows(x.spec):
        return x
    core = P.first_core(w.memory_config())
    return ttnn.to_memory_config(x, P.height_sharded_on(core, (P.TILE, x.shape[-1])))


def _back(y, x, mc):
    """The fused result in the memory config the original matmul would have produced."""
    if mc is None:  # what ttnn.linear gives without memory_config= (as the spec rule says)
        mc = x.memory_config() if not x.memory_config().is_sharded() else ttnn.DRAM_MEMORY_CONFIG
    return y if same_memory_config(y.memory_config(), mc) else ttnn.to_memory_config(y, mc)


# --- one norm, one matmul -------------------------------------------------------------------


def norm_linear(x, gamma, w, eps, act, mc):
    h = ttnn.rms_norm(x, weight=gamma, epsilon=eps)
    return ttnn.linear(h, w, activation=act, memory_config=mc)


def norm_matmul(x, gamma, w, eps, act, mc):
    h = ttnn.rms_norm(x, weight=gamma, epsilon=eps)
    return ttnn.matmul(h, w, activation=act, memory_config=mc)


def fused_one(x, gamma, w, eps, act, mc):
    y = rms_norm_matmul(_x_on_norm_core(x, w), gamma, w, epsilon=eps, activation=act)
    return _back(y, x, mc)


def _norm_core_in_grid(x, w) -> bool:
    """Where the norm runs: x's own core when x is already placed, else the weight grid's first core.
    Outside the grid the micro-op can stream the activation (what K=7168 needs)."""
    if not P.is_height_sharded_rows(x):
        return True
    core = P.first_core(x.memory_config)
    r = w.memory_config.shard_spec.grid.ranges()[0]
    return r.start.x <= core.x <= r.end.x and r.start.y <= core.y <= r.end.y


def _common_reason(m, weights):
    for name, w in weights:
        why = P.weight_reason(name, w)
        if why:
            return why
    core = P.first_core(m.x.memory_config) if P.is_height_sharded_rows(m.x) else P.first_core(weights[0][1].memory_config)
    for name, w in weights[1:]:
        if repr(w.memory_config.shard_spec.grid) != repr(weights[0][1].memory_config.shard_spec.grid):
            return f"{name} is sharded over other cores than {weights[0][0]}: one program needs one weight grid"
    return P.gamma_reason(m.gamma, core)


def _check_one(m):
    why = _common_reason(m, [("w", m.w)])
    if why:
        return why
    return RMSNormMatmul.check(m.x.shape, m.gamma.shape, m.w.shape, num_cores=P.grid_cores(m.w.memory_config),
                               activation=m.act, norm_core_in_grid=_norm_core_in_grid(m.x, m.w))


def _example(rng):
    k, n, cores = rng.choice([256, 512]), rng.choice([256, 512]), 8
    grid = ttnn.CoreRangeSet({ttnn.CoreRange(ttnn.CoreCoord(0, 0), ttnn.CoreCoord(cores - 1, 0))})
    w_mc = ttnn.MemoryConfig(ttnn.TensorMemoryLayout.WIDTH_SHARDED, ttnn.BufferType.L1,
                             ttnn.ShardSpec(grid, [k, n // cores], ttnn.ShardOrientation.ROW_MAJOR))
    core = ttnn.CoreCoord(0, 0)
    x = TensorSpec((1, 1, 32, k), memory_config=P.height_sharded_on(core, (32, k)))
    gamma = TensorSpec((1, 1, 1, k), layout=ttnn.ROW_MAJOR_LAYOUT, memory_config=P.height_sharded_on(core, (1, k)))
    w = TensorSpec((k, n), memory_config=w_mc)
    return {"x": x, "gamma": gamma, "w": w}, {"eps": 1e-6, "act": None, "mc": P.width_sharded_like(w_mc, n)}


# --- one norm, two matmuls (w1, w3) ----------------------------------------------------------


def norm_two_linears(x, gamma, w1, w3, eps, act1, act3, mc1, mc3):
    h = ttnn.rms_norm(x, weight=gamma, epsilon=eps)
    return ttnn.linear(h, w1, activation=act1, memory_config=mc1), ttnn.linear(h, w3, activation=act3, memory_config=mc3)


def fused_two(x, gamma, w1, w3, eps, act1, act3, mc1, mc3):
    y1, y3 = rms_norm_dual_matmul(_x_on_norm_core(x, w1), gamma, w1, w3, epsilon=eps, activation1=act1,
                                  activation3=act3)
    return _back(y1, x, mc1), _back(y3, x, mc3)


def _check_two(m):
    why = _common_reason(m, [("w1", m.w1), ("w3", m.w3)])
    if why:
        return why
    return RMSNormDualMatmul.check(m.x.shape, m.gamma.shape, m.w1.shape, m.w3.shape,
                                   num_cores=P.grid_cores(m.w1.memory_config), activation1=m.act1,
                                   activation3=m.act3, norm_core_in_grid=_norm_core_in_grid(m.x, m.w1))


def _example_two(rng):
    specs, caps = _example(rng)
    specs = {"x": specs["x"], "gamma": specs["gamma"], "w1": specs["w"], "w3": specs["w"]}
    return specs, {"eps": 1e-6, "act1": None, "act3": None, "mc1": caps["mc"], "mc3": caps["mc"]}


_EPS = FloatIn(1e-12, 1e-2)
# the matmul's output memory config: any, the result is converted to it when it differs (counted)
_MC = lambda v: v is None or isinstance(v, ttnn.MemoryConfig)  # noqa: E731
PATTERNS = [
    # the two-output form first: it is larger, and it keeps the norm from being computed twice
    Pattern("rmsnorm_matmul", norm_two_linears, fused_two,
            captures={"eps": _EPS, "act1": OneOf(_ACTS), "act3": OneOf(_ACTS), "mc1": _MC, "mc3": _MC}, check=_check_two,
            example=_example_two, becomes="RMSNormDualMatmul micro-op (norm once, multicast, two matmuls)"),
    Pattern("rmsnorm_matmul", [norm_linear, norm_matmul], fused_one,
            captures={"eps": _EPS, "act": OneOf(_ACTS), "mc": _MC}, check=_check_one, example=_example,
            becomes="RMSNormMatmul micro-op (norm on one core, multicast, matmul on the weight's cores)"),
]
