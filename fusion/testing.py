"""Pattern unit tests for built-in and user patterns (also a pytest plugin: `-p fusion.testing`).

    from fusion.testing import assert_fuses, assert_not_fuses, check_near_misses

    assert_fuses(MY_PATTERN, model, [TensorSpec(...)])       # fires, and the rewrite verifies
    assert_not_fuses(MY_PATTERN, near_miss, [TensorSpec(...)])
    check_near_misses(MY_PATTERN)                             # every derived near-miss is safe

`near_misses(pattern)` derives variants from the pattern's own spellings: each literal of each
call changed, each capture changed and pushed outside its constraint, an intermediate made to escape, an
input's layout flipped. A variant passes when the pattern does not fire on it, or when it fires
and the fused program still computes what the variant computes (reference semantics).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.fx
import ttnn

from .api import fuse
from .pattern import FloatIn, IntIn, OneOf, Pattern
from .reference import ReferenceRunner
from .specs import TensorSpec
from .trace import TTTracer, recording_ttnn, trace
from . import numerics
from .verify import compare_programs, random_input


def _as_list(example_inputs) -> list:
    return list(example_inputs) if isinstance(example_inputs, (list, tuple)) else [example_inputs]


def assert_fuses(pattern: Pattern, fn: Callable, example_inputs, *, count: int | None = None):
    """`pattern` fires on `fn` (at least once, or exactly `count` times) and every rewrite verified.
    Returns the FusedModel."""
    fused = fuse(fn, _as_list(example_inputs), patterns=[pattern])
    hits = [r for r in fused.report.rewrites if r.pattern == pattern.name]
    mine = [r for r in fused.report.refusals if r.pattern == pattern.name]
    if not hits or (count is not None and len(hits) != count):
        why = "; ".join(f"{r.location}: {r.reason}" for r in mine) or "no structural match"
        raise AssertionError(f"{pattern.name} fired {len(hits)} time(s)"
                             + (f", expected {count}" if count is not None else "") + f" on {fn!r}: {why}")
    assert all(r.verified for r in hits)
    return fused


def assert_not_fuses(pattern: Pattern, fn: Callable, example_inputs):
    """`pattern` does not fire on `fn`. Returns the FusedModel (its report has any refusal)."""
    fused = fuse(fn, _as_list(example_inputs), patterns=[pattern])
    hits = [r for r in fused.report.rewrites if r.pattern == pattern.name]
    if hits:
        raise AssertionError(f"{pattern.name} fired on {fn!r} at {[r.location for r in hits]}; it must not")
    return fused


# ---------------------------------------------------------------------------
# Derived near-misses
# ---------------------------------------------------------------------------


@dataclass
class NearMiss:
    pattern: str
    spelling: str
    what: str  # e.g. "call 2 (ttnn.permute) literal dims (3, 1, 2, 0) -> (1, 3, 2, 0)"
    fused: bool  # did the pattern fire on it
    safe: bool  # not fired, or fired and computes the same
    detail: str = ""


def _instance(pattern: Pattern, rng: random.Random):
    from .fuzz import _draw_instance

    for _ in range(50):
        specs, caps = _draw_instance(pattern, rng)
        if all(isinstance(s, TensorSpec) for s in specs.values()):
            return specs, caps
    raise AssertionError(f"{pattern.name}: could not draw an instance; give the pattern an example=")


def _outside(constraint, value):
    """A value that violates the constraint, or None when none is known."""
    if isinstance(constraint, IntIn):
        if constraint.hi is not None:
            return constraint.hi + 1
        if constraint.lo is not None:
            return constraint.lo - 1
    if isinstance(constraint, FloatIn):
        return constraint.hi * 10 if constraint.hi > 0 else constraint.hi - 1.0
    if isinstance(constraint, OneOf):
        ints = [v for v in constraint.values if isinstance(v, int) and not isinstance(v, bool)]
        return (max(ints) + 1) if ints else None
    return None


def _program(fn, specs: dict, caps: dict, hook=None, escape: bool = False) -> torch.fx.GraphModule:
    tracer = TTTracer()
    kwargs = {}
    for name, spec in specs.items():
        p = tracer.create_proxy("placeholder", name, (), {})
        p.node.meta["spec"] = spec
        kwargs[name] = p
    kwargs.update(caps)
    with recording_ttnn(tracer):
        tracer.call_hook = hook
        try:
            out = fn(**kwargs)
        finally:
            tracer.call_hook = None
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        if escape:
            calls = [n for n in tracer.graph.nodes if n.op == "call_function"]
            if len(calls) > 1:
                outs.append(torch.fx.Proxy(calls[0], tracer))
    tracer.create_node("output", "output", (tracer.create_arg(tuple(outs)),), {})
    return torch.fx.GraphModule(tracer.root, tracer.graph, class_name="NearMiss")


def candidate_for(pattern: Pattern, specs: dict, captures: dict, spelling: int = 0):
    """(candidate, graph module): the pattern's own unfused code traced with these input specs
    and captures, and its match there (None when it does not match cleanly). For checking a
    pattern's verification directly, e.g. over many verifier seeds."""
    from .match import Catalog

    gm = trace(_program(pattern.spellings[spelling].fn, specs, captures), list(specs.values())).graph_module
    for c in Catalog([pattern]).find(gm.graph):
        if c.refusal is None:
            return c, gm
    return None, gm


def _try(pattern: Pattern, spelling, what: str, gm, specs: dict, seed: int) -> NearMiss | None:
    spec_list = list(specs.values())
    try:
        ref_gm = trace(gm, spec_list).graph_module
        ReferenceRunner(ref_gm).run([random_input(s, torch.Generator().manual_seed(seed)) for s in spec_list])
    except Exception:
        return None  # the variant is not a valid program (e.g. a shape that no longer fits): nothing to test
    fused = fuse(gm, spec_list, patterns=[pattern])
    fired = any(r.pattern == pattern.name for r in fused.report.rewrites)
    if not fired:
        return NearMiss(pattern.name, spelling.name, what, False, True)
    # the verifier's criterion, on every input domain
    for domain in numerics.domains_for([s.dtype for s in spec_list]):
        gen = torch.Generator().manual_seed(seed)
        why = compare_programs(ref_gm, fused.graph_module, [random_input(s, gen, domain) for s in spec_list])
        if why:
            return NearMiss(pattern.name, spelling.name, what, True, False, f"fused result differs from the variant's own: {why}")
    return NearMiss(pattern.name, spelling.name, what, True, True)


def _changed(value, salt: str):
    """Another value of the same kind (a few draws: some tweaks can land on the same value)."""
    from .fuzz import _tweak

    if value is None:
        return None
    for attempt in range(8):
        new = _tweak(value, random.Random(f"{salt}:{attempt}"))
        if not (new is value or new == value):
            return new
    return None


def near_misses(pattern: Pattern, seed: int = 0) -> list[NearMiss]:
    """Every derived near-miss of the pattern and whether it was handled safely."""
    from . import ttnn_ops

    rng = random.Random(seed)
    out: list[NearMiss] = []
    for spelling in pattern.spellings:
        specs, caps = _instance(pattern, rng)
        calls = [c for c in spelling.calls]
        # 1. each literal of each call changed
        for ci, pn in enumerate(calls):
            for key, _name, value in pn.fast_literals:
                if value is None:
                    continue
                new = _changed(value, f"{seed}:{ci}:{key}")
                if new is None:
                    continue
                state = {"n": 0}

                def hook(op, args, kwargs, ci=ci, key=key, new=new, state=state):
                    i = state["n"]
                    state["n"] += 1
                    if i != ci:
                        return op, args, kwargs
                    if isinstance(key, int):
                        args = tuple(new if j == key else v for j, v in enumerate(args))
                    else:
                        kwargs = {**kwargs, key: new}
                    return op, args, kwargs

                what = f"call {ci} ({ttnn_ops.op_name(pn.target)}) literal {key!r}: {value!r} -> {new!r}"
                r = _try(pattern, spelling, what, _program(spelling.fn, specs, caps, hook), specs, seed)
                if r:
                    out.append(r)
        # 2. each capture changed to another value: if the constraint admits it the pattern fires
        #    and must still compute the same (a wildcarded literal fails here), else it is refused
        for cname, value in caps.items():
            new = _changed(value, f"{seed}:{cname}")
            if new is None:
                continue
            r = _try(pattern, spelling, f"capture {cname}: {value!r} -> {new!r}",
                     _program(spelling.fn, specs, {**caps, cname: new}), specs, seed)
            if r:
                out.append(r)
        # 3. each capture outside its constraint
        for cname, constraint in pattern.captures.items():
            bad = _outside(constraint, caps.get(cname))
            if bad is None:
                continue
            r = _try(pattern, spelling, f"capture {cname}={bad!r} (outside its constraint)",
                     _program(spelling.fn, specs, {**caps, cname: bad}), specs, seed)
            if r:
                out.append(r)
        # 4. an intermediate escapes
        if len(calls) > 1:
            r = _try(pattern, spelling, "first intermediate also returned (escapes)",
                     _program(spelling.fn, specs, caps, escape=True), specs, seed)
            if r:
                out.append(r)
        # 5. a layout flipped on each input
        for name, spec in specs.items():
            flipped = spec.with_(layout=ttnn.ROW_MAJOR_LAYOUT if spec.layout == ttnn.TILE_LAYOUT else ttnn.TILE_LAYOUT)
            variant = {**specs, name: flipped}
            r = _try(pattern, spelling, f"input {name} layout flipped", _program(spelling.fn, variant, caps), variant, seed)
            if r:
                out.append(r)
    return out


def check_near_misses(pattern: Pattern, seed: int = 0, min_variants: int = 3) -> list[NearMiss]:
    """Assert every derived near-miss is safe, and that enough variants were derived to mean something."""
    results = near_misses(pattern, seed)
    bad = [r for r in results if not r.safe]
    if bad:
        raise AssertionError(f"{pattern.name}: unsafe near-misses:\n" + "\n".join(f"  [{r.spelling}] {r.what}: {r.detail}" for r in bad))
    if len(results) < min_variants:
        raise AssertionError(
            f"{pattern.name}: only {len(results)} near-miss variants could be derived (wanted {min_variants}): variants "
            f"come from the spellings' literals, the captures (changed, and outside their constraints), an escaping "
            f"intermediate and flipped input layouts; give the pattern an `example` whose programs trace, or pass "
            f"min_variants= for a pattern with little to vary")
    return results


# pytest plugin: `pytest -p fusion.testing` makes these fixtures available


def pytest_configure(config):  # pragma: no cover - exercised through pytest
    config.addinivalue_line("markers", "hardware: needs a real Tenstorrent device")
