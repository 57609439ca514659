"""What "computes the same thing" means for rounded arithmetic: error bounds against exact results.

Pearson correlation cannot tell `y` from `a * y + c`, so it decides nothing here. Instead the
original subgraph is evaluated twice on the same inputs: in exact arithmetic (float64, with only
the roundings the ops themselves define: a typecast rounds, integer tensors hold integers) and
with ttnn's rounded semantics (every result rounded to its node's dtype). A replacement's result
is accepted elementwise when

    |replacement - exact| <= max(factor * max(|original - exact|, rms over the row of |original - exact|),
                                 ulps * ulp(output dtype, exact))      (float32 results: float32_ulps)

(the row term only where the original contains a reduction: a matmul, a norm, a sum, ...)

and NaN and +-inf stand where the original has them. `factor` lets a replacement be as wrong as
the code it replaces (rounding in another order); the row's RMS (last dim) stands in where the
original happened to be right at one element of a reduction's output (its rounding errors
spread over the row); `ulps` allows the final rounding of a fused result that the original
happened to get exactly right. Integer outputs get no ulp allowance:
they must be as exact as the original. Pure data movement is compared bit for bit instead.

The defaults (factor 3, 2 ulps) were calibrated on the catalog. A fused op that rounds at other
points than the chain it replaces has errors of the same size but independent of the
original's; over a row of a matmul's output their elementwise maximum reaches about twice the
original's RMS error (measured: 1.9x for rmsnorm_matmul on tiny inputs). Factor 3 keeps every
built-in rewrite within two thirds of the bound over 20 seeds of every input domain
(tests/test_error_bounds.py pins that), while a dropped scale, offset or rounding exceeds it by
orders of magnitude.

Inputs come from several distributions per dtype (`FLOAT_DOMAINS`, `INT_DOMAINS`), so a
replacement wrong only for negative values, large magnitudes (wide: hundreds; scales: up to 2^40),
tiny magnitudes (tiny: 2^-20; scales: down to 2^-40) or special values is caught. (2^40 keeps
squares and their sums finite: a rewrite that avoids an intermediate overflow the original
has is not refused for it.)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import ttnn

# Block-float formats share one exponent per 16 values: their ulp follows the block's largest value
_MANTISSA_BITS = {ttnn.bfloat16: 7, ttnn.float32: 23, ttnn.bfloat8_b: 6, ttnn.bfloat4_b: 2}
_MIN_EXPONENT = -126  # bf16, fp32 and the block formats share fp32's exponent range
_BLOCK = {ttnn.bfloat8_b, ttnn.bfloat4_b}
INTEGER_DTYPES = frozenset(d for d in (getattr(ttnn, n, None) for n in ("uint8", "uint16", "uint32", "int32"))
                           if d is not None)


@dataclass(frozen=True)
class Tolerance:
    """How far a replacement may be from exact arithmetic (see the module text).

    ulps: the allowance every element gets, in units in the last place of the output dtype.
    float32_ulps: the same for float32 results. Goldens compute float32 in float32 themselves
        (ttnn's rms_norm golden rounds its variance), as a device does: a fused float32 op is a
        few ulps from exact (measured: up to 3.2 for rms_norm at widths 64-4096). 8 ulps of
        float32 is 2^-20 relative, 4096 times finer than a bfloat16 ulp.
    factor: how many times the original's own error (elementwise) a replacement may have.
    """

    ulps: float = 2.0
    factor: float = 3.0
    float32_ulps: float = 8.0

    def __post_init__(self):
        for name in ("ulps", "factor", "float32_ulps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 <= v < math.inf):
                raise ValueError(f"Tolerance.{name} must be a finite number >= 0, got {v!r}")


@dataclass
class Measured:
    """How close a replacement came, over every trial run."""

    trials: list = field(default_factory=list)  # input domains run
    max_abs: float = 0.0  # largest |replacement - exact| (or - original, for bit-exact checks)
    max_ulps: float = 0.0  # the same in ulps of the output dtype (at the exact value)
    bound_used: float = 0.0  # largest error / bound over all elements: <= 1 passes
    pcc: float = 1.0  # Pearson correlation with the original on normal inputs (reported, never sufficient)
    bit_exact: bool = False

    def short(self) -> str:
        """The report's check column: "bit-exact", or "error-bounded (12% of bound)"."""
        if self.bit_exact:
            return "bit-exact"
        return f"error-bounded ({self.bound_used:.0%} of bound)"

    def to_dict(self) -> dict:
        return {"check": "bit-exact" if self.bit_exact else "error-bounded", "trials": list(self.trials),
                "max_abs_error": self.max_abs, "max_ulp_error": self.max_ulps, "bound_used": self.bound_used,
                "pcc": self.pcc}


# ---------------------------------------------------------------------------
# ulps
# ---------------------------------------------------------------------------


def ulp(values: torch.Tensor, dtype) -> torch.Tensor:
    """The spacing of `dtype` at each of `values` (float64; block formats: at the block's largest)."""
    mant = _MANTISSA_BITS.get(dtype)
    if mant is None:
        if dtype in INTEGER_DTYPES:
            return torch.ones_like(values, dtype=torch.float64)
        mant = 7  # unknown float format: no finer than bf16
    mag = values.detach().abs().nan_to_num(0.0, posinf=0.0, neginf=0.0)
    if not mag.is_floating_point():
        mag = mag.to(torch.float64)
    if dtype in _BLOCK and mag.dim() >= 1 and mag.numel():
        last = mag.shape[-1]
        if last % 16 == 0:
            mag = mag.reshape(-1, 16).amax(dim=1, keepdim=True).expand(-1, 16).reshape(values.shape)
        else:
            mag = mag.amax(dim=-1, keepdim=True).expand_as(mag)
    _, exponent = torch.frexp(mag.clamp_min(2.0 ** _MIN_EXPONENT))  # mag = m * 2^exponent, m in [0.5, 1)
    return torch.ldexp(torch.ones_like(mag), exponent - 1 - mant)


# ---------------------------------------------------------------------------
# Comparing one output
# ---------------------------------------------------------------------------


def bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal bit for bit (NaN payloads and the sign of zero included)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point():
        view = {2: torch.int16, 4: torch.int32, 8: torch.int64}.get(a.element_size())
        if view is not None:
            return torch.equal(a.contiguous().view(view), b.contiguous().view(view))
    return torch.equal(a, b)


def check_output(exact: torch.Tensor, original: torch.Tensor, got: torch.Tensor, dtype, tol: Tolerance,
                 measured: Measured, where: str, reduces: bool = True) -> str | None:
    """None when `got` is within the bound, else why not (naming `where`). Works in the exact
    result's float precision (the reference's compute dtype: float32 when every value is a
    16-bit float, which is 2^16 times finer than their ulp), float64 for integers."""
    work = exact.dtype if exact.is_floating_point() and exact.dtype in (torch.float32, torch.float64) else torch.float64
    if dtype not in _MANTISSA_BITS or dtype == ttnn.float32:
        work = torch.float64
    e = exact.detach().to(work)
    o = original.detach().to(work)
    g = got.detach().to(work)
    finite = torch.isfinite(o)
    if bool(finite.all()) and bool(torch.isfinite(g).all()):  # the common case: nothing to place
        ref = e if bool(torch.isfinite(e).all()) else torch.where(torch.isfinite(e), e, o)
        err_o, err_g = (o - ref).abs(), (g - ref).abs()
        mag = torch.maximum(ref.abs(), o.abs())
    else:
        o_nan, g_nan = torch.isnan(o), torch.isnan(g)
        if not torch.equal(o_nan, g_nan):
            bad = int((o_nan != g_nan).sum())
            return f"NaN in {bad} other place(s) than the original{where}"
        o_inf, g_inf = torch.isinf(o), torch.isinf(g)
        if not torch.equal(o_inf, g_inf) or not torch.equal(o[o_inf], g[g_inf]):
            bad = int((o_inf != g_inf).sum()) or int((o[o_inf] != g[o_inf]).sum())
            return f"+-inf in {bad} other place(s) than the original{where}"
        # an exact result that overflows where the rounded one did not: measure from the original
        ref = torch.where(torch.isfinite(e), e, o)
        err_o = torch.where(finite, (o - ref).abs(), torch.zeros_like(o))
        err_g = torch.where(finite, (g - ref).abs(), torch.zeros_like(o))
        mag = torch.where(finite, torch.maximum(ref.abs(), o.abs()), ref)
    # the ulp where the rounded result lives: near a power of two the original may round into
    # the next binade, whose ulp is twice the exact value's; in a block format the replacement's
    # own block maximum may round up past one (63.94 -> 64), doubling its whole block's ulp
    if dtype in _BLOCK:
        mag = torch.maximum(mag, g.abs().nan_to_num(0.0, posinf=0.0, neginf=0.0))
    unit = ulp(mag, dtype)
    allow_ulps = 0.0 if dtype in INTEGER_DTYPES else tol.float32_ulps if dtype == ttnn.float32 else tol.ulps
    # rounding errors that pass through a reduction spread over its outputs: an element where the
    # original happened to be right still gets the original's typical error over its row. Only
    # where the original reduces: an elementwise error scales with its own element (a row of
    # 2^40-sized values must not lend its error to the row's small ones)
    if reduces and err_o.dim() and err_o.numel():
        row = err_o.pow(2).mean(dim=-1, keepdim=True).sqrt()
    else:
        row = err_o
    bound = torch.maximum(tol.factor * torch.maximum(err_o, row), allow_ulps * unit)
    if not err_g.numel():
        return None
    measured.max_abs = max(measured.max_abs, float(err_g.max()))
    measured.max_ulps = max(measured.max_ulps, float((err_g / unit).max()))
    used = err_g / bound.clamp_min(torch.finfo(work).tiny)  # a zero bound allows no error at all
    measured.bound_used = max(measured.bound_used, float(used.max()))
    over = used > 1
    if over.any():
        i = int(torch.argmax(used.flatten()))
        flat = lambda t: float(t.flatten()[i])  # noqa: E731
        return (f"{int(over.sum())} of {err_g.numel()} values exceed the error bound{where}: e.g. exact {flat(ref):.6g}, "
                f"original {flat(o):.6g} (error {flat(err_o):.3g}), replacement {flat(g):.6g} "
                f"(error {flat(err_g):.3g} = {flat(err_g / unit):.3g} ulp; bound {flat(bound):.3g} = "
                f"max({tol.factor:g} x the original's error there or over its row, {allow_ulps:g} ulp))")
    return None


def pcc(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation over the values finite in both (1.0 for an empty or constant pair that agrees)."""
    a = a.detach().flatten()
    b = b.detach().flatten()
    if not (a.is_floating_point() and a.dtype == b.dtype and a.element_size() >= 4):
        a, b = a.to(torch.float64), b.to(torch.float64)
    keep = torch.isfinite(a) & torch.isfinite(b)
    a, b = a[keep], b[keep]
    if a.numel() == 0:
        return 1.0
    da, db = a - a.mean(), b - b.mean()
    na, nb = da.norm(), db.norm()
    if na == 0 or nb == 0:
        return 1.0 if torch.equal(a, b) else 0.0
    return float((da @ db) / (na * nb))


# ---------------------------------------------------------------------------
# Input domains
# ---------------------------------------------------------------------------

# float inputs: each trial draws every float input from one of these
FLOAT_DOMAINS = ("normal", "wide", "tiny", "negative", "integers", "scales", "special")
# integer inputs: the dtype's whole range, and small values around zero
INT_DOMAINS = ("full", "small")

_INT_RANGE = {"uint8": (0, 2 ** 8), "uint16": (0, 2 ** 16), "uint32": (0, 2 ** 32), "int32": (-2 ** 31, 2 ** 31)}


def _int_range(dtype) -> tuple[int, int]:
    for name, rng in _INT_RANGE.items():
        if dtype == getattr(ttnn, name, None):
            return rng
    return (-2 ** 31, 2 ** 31)


# A case whose inputs hold more values than this runs LARGE_CASE_DOMAINS only: each trial reads
# every weight at memory bandwidth (a 7168x18432 linear: ~0.5 s per trial here), and these three
# catch a lost scale or offset (normal), a range-limited replacement (wide) and NaN/inf handling
LARGE_CASE_VALUES = 1 << 26
LARGE_CASE_DOMAINS = ("normal", "wide")


def domains_for(dtypes, values: int = 0) -> tuple[str, ...]:
    """The trials to run for inputs of these dtypes holding `values` values in all: every float
    domain when any input is a float, else the integer ones; special values only where every
    float input can hold them; LARGE_CASE_DOMAINS for very large cases."""
    floats = [d for d in dtypes if d not in INTEGER_DTYPES]
    if not floats:
        return INT_DOMAINS
    domains = LARGE_CASE_DOMAINS if values > LARGE_CASE_VALUES else FLOAT_DOMAINS
    if any(d in _BLOCK for d in floats):
        # bfloat8_b/bfloat4_b share exponents per block: inf and NaN poison their whole block
        return tuple(d for d in domains if d != "special")
    return domains


def draw(shape: tuple, dtype, domain: str, gen: torch.Generator, floats=torch.float64) -> torch.Tensor:
    """Values of `shape` from `domain` (`floats` for float dtypes, int64 for integers), before rounding."""
    if dtype in INTEGER_DTYPES:
        lo, hi = _int_range(dtype)
        if domain not in ("full", "wide", "scales"):  # (an integer input beside floats: their domain's spirit)
            lo, hi = max(lo, -64), min(hi, 64)
        # randint's bounds are int64: the uint32 range fits
        return torch.randint(lo, hi, shape, generator=gen, dtype=torch.int64)
    if domain == "normal":
        return torch.randn(shape, generator=gen, dtype=floats)
    if domain == "wide":  # hundreds, off centre: a lost offset or scale is visible against it
        return torch.rand(shape, generator=gen, dtype=floats) * 2000.0 - 700.0
    if domain == "tiny":
        return torch.randn(shape, generator=gen, dtype=floats) * 2.0 ** -20
    if domain == "negative":
        return -(torch.rand(shape, generator=gen, dtype=floats) * 8.0 + 2.0 ** -8)
    if domain == "scales":  # magnitudes log-uniform over 2^-40..2^40, random signs: every binade
        mag = torch.exp2(torch.rand(shape, generator=gen, dtype=floats) * 80.0 - 40.0)
        sign = torch.randint(0, 2, shape, generator=gen).to(floats) * 2.0 - 1.0
        return mag * sign
    if domain == "integers":
        return torch.randint(-64, 65, shape, generator=gen).to(floats)
    if domain == "special":
        t = torch.randn(shape, generator=gen, dtype=floats)
        flat = t.view(-1)
        if flat.numel():
            specials = torch.tensor([0.0, -0.0, math.inf, -math.inf, math.nan], dtype=floats)
            # about one value in 64, at random places; the rest stay ordinary
            k = max(1, flat.numel() // 64)
            where = torch.randint(0, flat.numel(), (k,), generator=gen)
            flat[where] = specials[torch.randint(0, len(specials), (k,), generator=gen)]
        return t
    raise ValueError(f"unknown input domain {domain!r}")


# ops that reduce (combine values across an axis): their outputs' rounding errors spread over a
# row (check_output's row term). Whole names, so that elementwise `maximum` is not `max`; and
# fragments for the families (`rms_norm`, `experimental.minimal_matmul`, `sdpa`, ...)
_REDUCING_NAMES = frozenset(("linear", "bmm", "mean", "sum", "max", "min", "var", "std", "prod", "cumsum", "cumprod",
                             "topk", "sort", "argmax", "argmin", "moe"))
_REDUCING_PARTS = ("matmul", "norm", "softmax", "reduce", "conv", "attention", "sdpa")


def reduces(target) -> bool:
    """Whether an op sums (or otherwise combines) values across an axis."""
    from .ttnn_ops import op_name

    name = op_name(target).rsplit(".", 1)[-1].lower()
    return name in _REDUCING_NAMES or any(k in name for k in _REDUCING_PARTS)
