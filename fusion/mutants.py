"""Replacement mutation: how many wrong replacements does the verifier refuse?

    python -m fusion.fuzz --mutate [--seeds 2]

Every spelling of every catalog pattern, on its example instance, gets its replacement traced
with one change at a time:

* at an output: scaled (x1.5, x(1 + 2^-5)), offset (+0.25), transposed (last two dims);
* at each call: dropped (its first tensor argument passed on), its first two tensor operands
  swapped, one literal argument changed, the op swapped for a sibling (silu -> relu, add ->
  subtract, ...).

Each mutant is verified like a rewrite (fusion/verify.py). A mutant the verifier accepts is a
survivor. A survivor whose reference result equals the unmutated replacement's bit for bit on
every input domain over several seeds is an equivalent mutant (operands of a commutative op
swapped, a literal that changes nothing) and does not count; any other survivor is a miss.
A mutant that cannot even be traced (a dropped call whose two outputs are unpacked) is not
counted. Score = refused / (refused + misses). The last line is
`N mutants, R refused, E equivalent, M missed`.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch
from torch.fx.proxy import Proxy

from .trace import has_proxy

OUTPUT_MUTATIONS = ("scale", "scale_small", "offset", "transpose")
CALL_MUTATIONS = ("drop", "swap_operands", "literal", "sibling_op")


@dataclass
class Result:
    pattern: str
    spelling: str
    mutant: str
    refused: bool
    equivalent: bool = False
    why: str = ""
    applicable: bool = True  # False: the mutant could not even be traced (e.g. a dropped two-output call)


@dataclass
class Totals:
    results: list = field(default_factory=list)

    @property
    def refused(self) -> int:
        return sum(r.refused for r in self.results if r.applicable)

    @property
    def not_applicable(self) -> int:
        return sum(not r.applicable for r in self.results)

    @property
    def equivalent(self) -> int:
        return sum(r.equivalent for r in self.results)

    @property
    def missed(self) -> list:
        return [r for r in self.results if r.applicable and not r.refused and not r.equivalent]

    @property
    def score(self) -> float:
        changing = self.refused + len(self.missed)
        return self.refused / changing if changing else 1.0


def _output_mutant(replacement, kind: str):
    import ttnn

    def mutated(**kw):
        out = replacement(**kw)
        many = isinstance(out, (tuple, list))
        first = out[0] if many else out
        if kind == "scale":
            first = ttnn.multiply(first, 1.5)
        elif kind == "scale_small":
            first = ttnn.multiply(first, 1.0 + 2.0 ** -5)
        elif kind == "offset":
            first = ttnn.add(first, 0.25)
        elif kind == "transpose":
            first = ttnn.transpose(first, -2, -1)
        return (first, *out[1:]) if many else first

    mutated.__name__ = f"{getattr(replacement, '__name__', 'replacement')}_{kind}"
    mutated.__wrapped__ = replacement  # traced with the replacement module's names (its fused-op entries)
    return mutated


def _tensor_slots(args, kwargs) -> list:
    return [("a", i) for i, v in enumerate(args) if isinstance(v, Proxy)] + \
           [("k", k) for k, v in kwargs.items() if isinstance(v, Proxy)]


def _call_hook(kind: str, at: int, seed: int, applied: list):
    """A trace hook that changes the `at`-th recorded call; `applied` gets what it did."""
    import ttnn

    from .fuzz import _siblings, _tweak

    state = {"n": 0}
    rng = random.Random(seed)

    def get(args, kwargs, slot):
        return args[slot[1]] if slot[0] == "a" else kwargs[slot[1]]

    def put(args, kwargs, slot, value):
        if slot[0] == "a":
            args = tuple(value if i == slot[1] else v for i, v in enumerate(args))
        else:
            kwargs = {k: (value if k == slot[1] else v) for k, v in kwargs.items()}
        return args, kwargs

    def hook(op, args, kwargs):
        i = state["n"]
        state["n"] += 1
        if i != at:
            return op, args, kwargs
        tensors = _tensor_slots(args, kwargs)
        if kind == "drop" and tensors:
            applied.append(f"call {at} dropped")
            return ttnn.clone, (get(args, kwargs, tensors[0]),), {}
        if kind == "swap_operands" and len(tensors) >= 2:
            a, b = get(args, kwargs, tensors[0]), get(args, kwargs, tensors[1])
            args, kwargs = put(args, kwargs, tensors[0], b)
            args, kwargs = put(args, kwargs, tensors[1], a)
            applied.append(f"call {at} operands swapped")
            return op, args, kwargs
        if kind == "literal":
            slots = [("a", j) for j, v in enumerate(args) if not has_proxy(v) and v is not None] + \
                    [("k", k) for k, v in kwargs.items() if not has_proxy(v) and v is not None]
            rng.shuffle(slots)
            for slot in slots:
                old = get(args, kwargs, slot)
                new = _tweak(old, rng)
                if new is not old and not _same(new, old):
                    args, kwargs = put(args, kwargs, slot, new)
                    applied.append(f"call {at} literal {slot[1]!r}: {old!r} -> {new!r}")
                    return op, args, kwargs
        if kind == "sibling_op":
            sibs = _siblings().get(op)
            if sibs:
                new_op = rng.choice(sibs)
                applied.append(f"call {at} {getattr(op, '__name__', op)} -> {getattr(new_op, '__name__', new_op)}")
                return new_op, args, kwargs
        return op, args, kwargs

    return hook


def _same(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return False


def _equivalent(c, gm, base, mutant, seeds: int) -> str | None:
    """None when the mutant's reference result equals the base replacement's bit for bit on every
    input domain over `seeds` seeds, else what differed."""
    from . import numerics
    from .verify import _run_replacement, random_input

    dtypes = [n.meta["spec"].dtype for n in c.inputs.values()]
    for seed in range(seeds):
        for domain in numerics.domains_for(dtypes):
            gen = torch.Generator().manual_seed(1000 + seed)
            values = {n: random_input(n.meta["spec"], gen, domain) for n in set(c.inputs.values())}
            inputs = {k: values[n] for k, n in c.inputs.items()}
            try:
                a = _run_replacement(base, inputs, torch.float64)
                b = _run_replacement(mutant, inputs, torch.float64)
            except Exception as e:
                return f"reference run failed: {type(e).__name__}: {e}"
            for x, y in zip(a, b):
                if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and numerics.bits_equal(x, y)):
                    return f"differs on {domain} inputs (seed {seed})"
    return None


def run(seeds: int = 2, patterns=None, progress=print) -> Totals:
    from .api import default_patterns
    from .fuzz import _draw_instance
    from .testing import candidate_for
    from .verify import Verifier, build_replacement

    totals = Totals()
    for p in (patterns if patterns is not None else default_patterns()):
        for si, spelling in enumerate(p.spellings):
            specs, caps = _draw_instance(p, random.Random(0))
            c, gm = candidate_for(p, specs, caps, spelling=si)
            if c is None:
                progress(f"{p.name} [{spelling.name}]: its example does not match its own unfused code; skipped")
                continue
            verifier = Verifier()
            base = build_replacement(c)
            mutants = [(f"output {k}", lambda c, k=k: build_replacement(c, fn=_output_mutant(p.replacement, k)))
                       for k in OUTPUT_MUTATIONS]
            for at in range(len(base.calls)):
                for kind in CALL_MUTATIONS:
                    mutants.append((f"{kind} @{at}", (kind, at)))
            for name, how in mutants:
                applied: list = []
                if isinstance(how, tuple):
                    kind, at = how
                    hook = _call_hook(kind, at, hash((p.name, spelling.name, name)) & 0xFFFF, applied)

                    def build(c, hook=hook):
                        return build_replacement(c, call_hook=hook)
                else:
                    build = how
                try:
                    mutant = build(c)
                except Exception as e:  # a mutant that cannot be traced is no program: not counted
                    totals.results.append(Result(p.name, spelling.name, name, False, why=f"cannot be traced: {e}",
                                                 applicable=False))
                    continue
                if isinstance(how, tuple) and not applied:
                    continue  # this call had nothing to mutate that way
                what = "; ".join(applied) or name
                outcome = verifier.check(c, gm, lambda _c, m=mutant: m)
                if not outcome.ok:
                    totals.results.append(Result(p.name, spelling.name, what, True, why=outcome.text))
                    continue
                differs = _equivalent(c, gm, base, mutant, seeds)
                totals.results.append(Result(p.name, spelling.name, what, False, equivalent=differs is None,
                                             why="bit-identical to the replacement" if differs is None else differs))
    return totals


def report(totals: Totals, progress=print) -> None:
    by = {}
    for r in totals.results:
        if not r.applicable:
            continue
        k = (r.pattern, r.spelling)
        a = by.setdefault(k, [0, 0, 0])
        a[0] += r.refused
        a[1] += r.equivalent
        a[2] += (not r.refused and not r.equivalent)
    for (pat, sp), (ref, eq, miss) in by.items():
        progress(f"  {pat} [{sp}]: {ref} refused, {eq} equivalent, {miss} missed")
    for r in totals.results:
        if r.applicable and not r.refused:
            tag = "equivalent" if r.equivalent else "MISSED"
            progress(f"  survivor ({tag}): {r.pattern} [{r.spelling}] {r.mutant}: {r.why}")
    progress(f"score: {totals.score:.2%} of result-changing mutants refused")
    progress(f"({totals.not_applicable} mutants could not be traced and are not counted)")
    progress(f"{len(totals.results) - totals.not_applicable} mutants, {totals.refused} refused, "
             f"{totals.equivalent} equivalent, {len(totals.missed)} missed")
