"""Check a candidate rewrite before it is applied.

1. The replacement is traced with the matched input specs; its output specs must equal the
   original's (shape, dtype, layout, memory config).
2. On random inputs of the matched specs, the reference semantics of the original subgraph and
   of the replacement must agree: bit-exact when both are pure data movement, else PCC at or
   above the threshold (and equal shapes).
Results are cached per (pattern, spelling, input specs, captures): a 61-layer model verifies
each distinct case once.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx
import ttnn

from . import ttnn_ops
from .match import Candidate
from .reference import NoReference, ReferenceRunner, _TORCH_DTYPES, round_to
from .specs import TensorSpec, UnknownSpec
from .trace import trace_function


@dataclass
class Replacement:
    graph: torch.fx.Graph
    root: Any
    calls: list  # call_function nodes
    output_specs: list

    def __post_init__(self):
        out = next(n for n in self.graph.nodes if n.op == "output").args[0]
        self.outputs = list(out) if isinstance(out, (tuple, list)) else [out]  # replacement nodes
        self.placeholders = [n for n in self.graph.nodes if n.op == "placeholder"]
        self.constants = [n for n in self.graph.nodes if n.op == "get_attr"]
        self.dispatches = sum(ttnn_ops.dispatches(n.target) for n in self.calls)
        self.description = " -> ".join(
            ttnn_ops.op_name(n.target) for n in self.calls if not ttnn_ops.is_deallocate(n.target))


@dataclass
class Outcome:
    ok: bool
    text: str  # "bit-exact", "pcc=0.99998", or the refusal reason
    replacement: Replacement | None = None
    # what fuse() derives once per outcome, not per match: (saved dispatches, saved bytes),
    # the unprofitable reason if any, and what the report says of each rewrite
    savings: tuple | None = None
    unprofitable: str | None = None
    kind: Any = None  # the report's RewriteKind of the rewrites it allows


def build_replacement(c: Candidate) -> Replacement:
    graph, root = trace_function(c.pattern.replacement, dict(c.input_specs), dict(c.captures))
    calls = [n for n in graph.nodes if n.op == "call_function"]
    out = next(n for n in graph.nodes if n.op == "output").args[0]
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    specs = [o.meta.get("spec") if isinstance(o, torch.fx.Node) else None for o in outs]
    return Replacement(graph, root, calls, specs)


def pcc(a: torch.Tensor, b: torch.Tensor) -> float:
    a = a.detach().to(torch.float64).flatten()
    b = b.detach().to(torch.float64).flatten()
    if a.numel() == 0:
        return 1.0
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        same = torch.equal(torch.nan_to_num(a), torch.nan_to_num(b))
        return 1.0 if same else 0.0
    da, db = a - a.mean(), b - b.mean()
    na, nb = da.norm(), db.norm()
    if na == 0 or nb == 0:
        return 1.0 if torch.allclose(a, b, rtol=1e-2, atol=1e-3) else 0.0
    return float((da @ db) / (na * nb))


_POOL = 1_000_003  # prime: a tiled pool never lines up with tile, row or shape periods


def random_input(spec: TensorSpec, gen: torch.Generator) -> torch.Tensor:
    td = _TORCH_DTYPES.get(spec.dtype, torch.bfloat16)
    numel = spec.numel
    floating = td.is_floating_point or spec.dtype in (ttnn.bfloat8_b, ttnn.bfloat4_b)
    if numel > 4 * _POOL:
        # a 7168x18432 weight would take seconds to draw; tile a prime-length random pool instead
        # rounded once on the pool and kept in float32 (exact for bf16 values): no 100M-element casts
        pool = torch.randn(_POOL, generator=gen) if floating else torch.randint(0, 16, (_POOL,), generator=gen)
        pool = round_to(pool, spec.dtype)
        pool = pool.float() if floating else pool
        return pool.repeat(numel // _POOL + 1)[:numel].reshape(spec.shape)
    elif floating:
        t = torch.randn(spec.shape, generator=gen, dtype=torch.float32)
    else:
        t = torch.randint(0, 16, spec.shape, generator=gen)
    return round_to(t, spec.dtype)


def _seed(c: Candidate, key) -> int:
    # named, not by identity: the same case draws the same inputs in every process
    text = repr((c.pattern.name, c.spelling.name, tuple(c.inputs), key[1:]))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def _lookup_factory(env: dict, runner: ReferenceRunner, owner):
    def lookup(n: torch.fx.Node):
        if n in env:
            return env[n]
        if n.op == "get_attr":
            return runner.constant(n, owner)
        raise NoReference(f"value {n.name} is outside the subgraph")

    return lookup


def _run_original(c: Candidate, inputs: dict, gm) -> list:
    runner = ReferenceRunner(None)
    env = {c.inputs[k]: v for k, v in inputs.items()}
    lookup = _lookup_factory(env, runner, gm)
    for n in c.nodes:
        env[n] = runner.call(n, lookup)
    return [env[o] for o in c.outputs]


def _run_replacement(r: Replacement, inputs: dict) -> list:
    runner = ReferenceRunner(None)
    env = {}
    lookup = _lookup_factory(env, runner, r.root)
    for n in r.graph.nodes:
        if n.op == "placeholder":
            env[n] = inputs[n.target]
        elif n.op == "call_function":
            env[n] = runner.call(n, lookup)
        elif n.op == "output":
            out = n.args[0]
            outs = list(out) if isinstance(out, (tuple, list)) else [out]
            return [lookup(o) if isinstance(o, torch.fx.Node) else o for o in outs]
    return []


class Verifier:
    def __init__(self, pcc_threshold: float = 0.9999, trials: int = 2):
        self.pcc_threshold = pcc_threshold
        self.trials = trials
        self.cache: dict = {}
        self._quick: dict = {}  # (spelling, input spec hash, output spec hash) -> (spec keys, outcome)
        self.hits = 0
        self.runs = 0
        self.seconds = 0.0  # spent in reference checks (cache misses)

    def key(self, c: Candidate):
        """What a verification outcome depends on: the spelling (by identity: two patterns of one
        name are two cases), input and output specs, which inputs are one value, captures."""
        inputs = c.inputs
        outputs = c.outputs
        specs = tuple(n.meta.get("spec") for n in inputs.values())  # in the spelling's fixed input order
        # which inputs are one graph value (silu(x) * x) changes what is computed
        if len(inputs) > 1:
            first: dict = {}
            aliasing = tuple(first.setdefault(n, k) for k, n in inputs.items())
        else:
            aliasing = ()
        caps = tuple(sorted((k, _hashable(v)) for k, v in c.captures.items())) if c.captures else ()
        outs = tuple(n.meta.get("spec") for n in outputs)
        return (c.spelling, specs, aliasing, caps, outs)

    def verify(self, c: Candidate, gm) -> Outcome:
        inputs, outputs = c.inputs, c.outputs
        if len(inputs) == 1 and len(outputs) == 1 and not c.captures:
            # the common case, looked up without Python-level hashing: by the specs' precomputed
            # hashes, confirmed by the identity of their interned keys; a miss, a hash collision or
            # an equal key that is another object takes the full key below
            for n in inputs.values():
                a = n.meta.get("spec")
            b = outputs[0].meta.get("spec")
            if type(a) is TensorSpec and type(b) is TensorSpec:
                quick = (c.spelling, a._hash, b._hash)
                hit = self._quick.get(quick)
                if hit is not None and hit[0] is a._key and hit[1] is b._key:
                    self.hits += 1
                    return hit[2]
                outcome = self._verify_keyed(c, gm)
                self._quick[quick] = (a._key, b._key, outcome)
                return outcome
        return self._verify_keyed(c, gm)

    def _verify_keyed(self, c: Candidate, gm) -> Outcome:
        key = self.key(c)
        hit = self.cache.get(key)
        if hit is not None:
            self.hits += 1
            return hit
        self.runs += 1
        t = time.perf_counter()
        outcome = self._verify(c, gm, key)
        self.seconds += time.perf_counter() - t
        self.cache[key] = outcome
        return outcome

    def _verify(self, c: Candidate, gm, key) -> Outcome:
        try:
            r = build_replacement(c)
        except Exception as e:
            return Outcome(False, f"replacement failed to build: {type(e).__name__}: {e}")
        want = c.output_specs
        if len(r.output_specs) != len(want):
            return Outcome(False, f"replacement returns {len(r.output_specs)} values, the original {len(want)}", r)
        for i, (got, exp) in enumerate(zip(r.output_specs, want)):
            if isinstance(got, UnknownSpec):
                return Outcome(False, f"replacement output spec is unknown: {got.reason()}", r)
            if got != exp:
                return Outcome(False, f"replacement output {i} spec {got!r} differs from the original {exp!r}", r)
        exact = c.pattern.exact
        if exact is None:
            exact = all(ttnn_ops.is_data_movement(n.target) or ttnn_ops.is_deallocate(n.target) for n in c.nodes) and all(
                ttnn_ops.is_data_movement(n.target) or ttnn_ops.is_deallocate(n.target) for n in r.calls)
        gen = torch.Generator().manual_seed(_seed(c, key))
        worst = 1.0
        try:
            # bit-exact checks get every trial; a PCC over a whole tensor is settled by one
            for _ in range(self.trials if exact else 1):
                values: dict = {}  # one random tensor per graph value, shared by aliased inputs
                for n in c.inputs.values():
                    if n not in values:
                        values[n] = random_input(n.meta["spec"], gen)
                inputs = {k: values[n] for k, n in c.inputs.items()}
                expected = _run_original(c, inputs, gm)
                got = _run_replacement(r, inputs)
                for i, (e, g) in enumerate(zip(expected, got)):
                    if not isinstance(e, torch.Tensor) or not isinstance(g, torch.Tensor):
                        return Outcome(False, f"output {i} is not a tensor in the reference run", r)
                    if tuple(e.shape) != tuple(g.shape):
                        return Outcome(False, f"output {i} shape {tuple(g.shape)} differs from {tuple(e.shape)}", r)
                    if exact:
                        if e.dtype != g.dtype or not torch.equal(e, g):
                            bad = int((e != g).sum()) if e.dtype == g.dtype else e.numel()
                            return Outcome(False, f"not bit-exact: {bad} of {e.numel()} values differ", r)
                    else:
                        p = pcc(e, g)
                        worst = min(worst, p)
                        if not p >= self.pcc_threshold:
                            return Outcome(False, f"pcc {p:.6f} below {self.pcc_threshold}", r)
        except NoReference as e:
            return Outcome(False, f"no reference semantics: {e}", r)
        except Exception as e:
            return Outcome(False, f"reference run failed: {type(e).__name__}: {e}", r)
        return Outcome(True, "bit-exact" if exact else f"pcc={worst:.6f}", r)


def _hashable(v):
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    try:
        hash(v)
        return v
    except TypeError:
        return repr(v)
