"""Check a candidate rewrite before it is applied.

1. The replacement is traced with the matched input specs; its output specs must equal the
   original's (shape, dtype, layout, memory config).
2. A replacement may not write or free a buffer the original leaves alone (fusion/effects.py).
3. On inputs of the matched specs drawn from every input domain (fusion/numerics.py), the
   replacement's reference result must equal the original's bit for bit when the original
   only moves data, else stay within an error bound against the original evaluated in exact
   arithmetic, with NaN and inf where the original has them. PCC is reported, never sufficient.
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

from . import effects, keywords, normalize, numerics, ttnn_ops
from .match import Candidate
from .numerics import Measured, Tolerance, pcc  # noqa: F401  (pcc: re-exported for callers)
from .reference import NoReference, ReferenceRunner, _compute_form, compute_dtype, evaluate, round_to, shared_products
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
    text: str  # how it passed (Measured.short()), or the refusal reason
    replacement: Replacement | None = None
    measured: Measured | None = None  # errors, trials and PCC of the checks that ran
    # what fuse() derives once per outcome, not per match: (saved dispatches, saved bytes),
    # the unprofitable reason if any, and what the report says of each rewrite
    savings: tuple | None = None
    unprofitable: str | None = None
    kind: Any = None  # the report's RewriteKind of the rewrites it allows
    # a refusal that is not a failed check (a placement the replacement cannot take): reported as is
    plain: bool = False


def build_replacement(c: Candidate, fn=None, call_hook=None) -> Replacement:
    """The candidate's replacement traced on its input specs and captures (`fn` instead of the
    pattern's replacement, `call_hook` altering its calls: the mutation fuzzer's mutants), with
    the placement keywords the matched calls pass carried over (fusion/keywords.py; raises
    PlacementRefused when the replacement cannot take one)."""
    r = _traced_replacement(c, fn, call_hook)
    if c.keywords:
        where = keywords.plan(c.spelling, c.keywords, r.calls, r.outputs, r.description)
        if where:
            r = _traced_replacement(c, fn, keywords.hook(where, call_hook))
    return r


def _traced_replacement(c: Candidate, fn, call_hook) -> Replacement:
    graph, root = trace_function(fn or c.pattern.replacement, dict(c.input_specs), normalize.visible(c.captures),
                                 call_hook=call_hook)
    calls = [n for n in graph.nodes if n.op == "call_function"]
    out = next(n for n in graph.nodes if n.op == "output").args[0]
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    specs = [o.meta.get("spec") if isinstance(o, torch.fx.Node) else None for o in outs]
    return Replacement(graph, root, calls, specs)


_POOL = 1_000_003  # prime: a tiled pool never lines up with tile, row or shape periods


def random_input(spec: TensorSpec, gen: torch.Generator, domain: str = "normal", compute=torch.float64,
                 large: dict | None = None) -> torch.Tensor:
    """Values for `spec` from one input domain (fusion/numerics.py), rounded to its dtype and held
    in the reference runner's compute form (converted once, not per run).

    A tensor of more than 4M values (a weight) is tiled from a prime-length pool whose segments
    come from every domain but "special" (a NaN per 64 values would make every output NaN): one
    such tensor per spec, made once per verification (`large` holds them) and shared by its
    trials, whose other inputs follow the trial's domain. Building a 7168x18432 weight costs more
    than the trial that reads it."""
    numel = spec.numel
    if numel > 4 * _POOL:
        key = (spec.shape, spec.dtype)
        if large is not None and key in large:
            return large[key]
        doms = [d for d in numerics.domains_for([spec.dtype]) if d != "special"]
        cut = [_POOL * i // len(doms) for i in range(len(doms) + 1)]
        pool = torch.cat([numerics.draw((b - a,), spec.dtype, d, gen, compute) for d, a, b in zip(doms, cut, cut[1:])])
        pool = _compute_form(round_to(pool, spec.dtype), compute)
        t = pool.repeat(numel // _POOL + 1)[:numel].reshape(spec.shape)
        if large is not None:
            large[key] = t
        return t
    return _compute_form(round_to(numerics.draw(tuple(spec.shape), spec.dtype, domain, gen, compute), spec.dtype), compute)


def _seed(c: Candidate, key, salt: int = 0) -> int:
    # named, not by identity: the same case draws the same inputs in every process
    text = repr((c.pattern.name, c.spelling.name, tuple(c.inputs), key[1:], salt))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def _lookup_factory(env: dict, runner: ReferenceRunner, owner):
    def lookup(n: torch.fx.Node):
        if n in env:
            return env[n]
        if n.op == "get_attr":
            return runner.constant(n, owner)
        raise NoReference(f"value {n.name} is outside the subgraph")

    return lookup


def _run_original(c: Candidate, inputs: dict, gm, exact: bool, compute) -> tuple[list, list | None]:
    """(rounded outputs, exact outputs or None) of the matched subgraph. A call whose arguments are
    the same values in both semantics (the first calls, reading the inputs) is evaluated once."""
    rounded = ReferenceRunner(None, compute=compute)
    env_r = {c.inputs[k]: v for k, v in inputs.items()}
    lookup_r = _lookup_factory(env_r, rounded, gm)
    if not exact:
        for n in c.nodes:
            env_r[n] = rounded.call(n, lookup_r)
        return [env_r[o] for o in c.outputs], None
    precise = ReferenceRunner(None, exact=True, compute=compute)
    env_e = dict(env_r)
    lookup_e = _lookup_factory(env_e, precise, gm)
    for n in c.nodes:
        if all(lookup_r(a) is lookup_e(a) for a in n.all_input_nodes):
            out = evaluate(n, lookup_e, compute)
            env_e[n], env_r[n] = precise.finish(n, out), rounded.finish(n, out)
        else:
            env_e[n], env_r[n] = precise.call(n, lookup_e), rounded.call(n, lookup_r)
    return [env_r[o] for o in c.outputs], [env_e[o] for o in c.outputs]


def _run_replacement(r: Replacement, inputs: dict, compute) -> list:
    runner = ReferenceRunner(None, compute=compute)
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
            # an input returned as it is (a chain removed) is stored as its dtype, like any result
            return [(round_to(lookup(o), o.meta["spec"].dtype) if o.op == "placeholder" else lookup(o))
                    if isinstance(o, torch.fx.Node) else o for o in outs]
    return []


class Verifier:
    """Checks candidates (see the module text) and caches each outcome by what it depends on.

    tolerance: the error bound of compute rewrites (fusion.Tolerance). pcc: None (PCC is
    reported only), or a floor a rewrite must also reach; it never passes a rewrite by itself.
    """

    def __init__(self, pcc_threshold: float | None = None, tolerance: Tolerance | None = None, seed: int = 0):
        if pcc_threshold is not None and not (isinstance(pcc_threshold, (int, float)) and -1 <= pcc_threshold <= 1):
            raise ValueError(f"pcc must be None or a number in [-1, 1], got {pcc_threshold!r}")
        self.pcc_threshold = pcc_threshold
        self.tolerance = tolerance if tolerance is not None else Tolerance()
        self.seed = seed  # salts every case's input draws (tests run the catalog over many seeds)
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
        placed = tuple(sorted((k, _keyed(v)) for k, v in c.keywords.items())) if c.keywords else ()
        return (c.spelling, specs, aliasing, caps, outs, placed)

    def verify(self, c: Candidate, gm) -> Outcome:
        inputs, outputs = c.inputs, c.outputs
        if len(inputs) == 1 and len(outputs) == 1 and not c.captures and not c.keywords:
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

    def check(self, c: Candidate, gm, build) -> Outcome:
        """Verify `c` with the replacement `build()` returns, uncached (the mutation fuzzer)."""
        return self._verify(c, gm, self.key(c), build)

    def _verify(self, c: Candidate, gm, key, build=build_replacement) -> Outcome:
        try:
            r = build(c)
        except keywords.PlacementRefused as e:
            return Outcome(False, str(e), plain=True)
        except Exception as e:
            return Outcome(False, f"replacement failed to build: {type(e).__name__}: {e}")
        why = effects.replacement_problem(r.graph)
        if why:
            return Outcome(False, why, r)
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
            # an original that only moves data computes nothing: any replacement of it (however its
            # ops are declared) must give the same bits
            exact = ttnn_ops.only_moves_data(c.nodes)
        gen = torch.Generator().manual_seed(_seed(c, key, self.seed))
        measured = Measured(bit_exact=bool(exact))
        tol = self.tolerance
        out_dtypes = [s.dtype for s in want]
        in_dtypes = [n.meta["spec"].dtype for n in c.inputs.values()]
        values_in = sum(n.meta["spec"].numel for n in set(c.inputs.values()))
        compute = compute_dtype([*in_dtypes, *(n.meta["spec"].dtype for n in c.nodes if type(n.meta.get("spec")) is TensorSpec),
                                 *(s.dtype for s in r.output_specs)], values_in)
        reduces = any(numerics.reduces(n.target) for n in c.nodes)
        try:
            large: dict = {}
            for domain in numerics.domains_for(in_dtypes, values_in):
                values: dict = {}  # one random tensor per graph value, shared by aliased inputs
                for n in c.inputs.values():
                    if n not in values:
                        values[n] = random_input(n.meta["spec"], gen, domain, compute, large)
                inputs = {k: values[n] for k, n in c.inputs.items()}
                with shared_products():  # the original's and the replacement's matmuls of one operand pair
                    original, exact_out = _run_original(c, inputs, gm, not exact, compute)
                    got = _run_replacement(r, inputs, compute)
                measured.trials.append(domain)
                for i, (o, g) in enumerate(zip(original, got)):
                    where = f" (output {i}, {domain} inputs)" if len(original) > 1 else f" ({domain} inputs)"
                    if not isinstance(o, torch.Tensor) or not isinstance(g, torch.Tensor):
                        return Outcome(False, f"output {i} is not a tensor in the reference run", r)
                    if tuple(o.shape) != tuple(g.shape):
                        return Outcome(False, f"output {i} shape {tuple(g.shape)} differs from {tuple(o.shape)}", r)
                    if exact:
                        if not numerics.bits_equal(o, g):
                            bad = int((o != g).sum()) if o.dtype == g.dtype else o.numel()
                            return Outcome(False, f"not bit-exact{where}: {bad} of {o.numel()} values differ", r)
                        continue
                    why = numerics.check_output(exact_out[i], o, g, out_dtypes[i], tol, measured, where, reduces)
                    if why:
                        return Outcome(False, why, r, measured)
                    # PCC decides nothing unless asked to: reported from the normal trial alone
                    if o.is_floating_point() and (self.pcc_threshold is not None or domain == "normal"):
                        p = numerics.pcc(o, g)
                        measured.pcc = min(measured.pcc, p)
                        if self.pcc_threshold is not None and not p >= self.pcc_threshold:
                            return Outcome(False, f"pcc {p:.6f} below the required {self.pcc_threshold}{where}", r, measured)
        except NoReference as e:
            return Outcome(False, f"no reference semantics: {e}", r)
        except Exception as e:
            return Outcome(False, f"reference run failed: {type(e).__name__}: {e}", r)
        return Outcome(True, measured.short(), r, measured)


def compare_programs(original, fused, inputs: list, tolerance: Tolerance | None = None, expected=None,
                     got=None) -> str | None:
    """Why the fused GraphModule's rounded reference result is not within the error bound of
    the original's (fusion/numerics.py) on these inputs, or None. The same criterion as the
    verifier's, for whole programs: the fuzzer and fusion.testing use it. `expected` / `got`:
    the original's / the fused program's rounded results on these inputs, when the caller has them."""
    tol = tolerance if tolerance is not None else Tolerance()
    if expected is None:
        expected = ReferenceRunner(original).run(inputs)
    exact = ReferenceRunner(original, exact=True).run(inputs)
    if got is None:
        got = ReferenceRunner(fused).run(inputs)
    out = next(n for n in original.graph.nodes if n.op == "output").args[0]
    nodes = list(out) if isinstance(out, (tuple, list)) else [out]
    if not isinstance(expected, (tuple, list)):
        expected, exact, got = [expected], [exact], [got]
    if not isinstance(got, (tuple, list)) or len(got) != len(expected):
        return f"output structure differs: {len(expected)} values vs {got!r:.60}"
    measured = Measured()
    reduces = any(numerics.reduces(n.target) for n in original.graph.nodes if n.op == "call_function")
    for i, (o, e, g) in enumerate(zip(expected, exact, got)):
        if not isinstance(o, torch.Tensor):
            if o != g:
                return f"output {i}: {o!r} != {g!r}"
            continue
        if not isinstance(g, torch.Tensor) or o.shape != g.shape:
            return f"output {i}: shape {tuple(o.shape)} vs {tuple(getattr(g, 'shape', ()))}"
        spec = nodes[i].meta.get("spec") if i < len(nodes) and isinstance(nodes[i], torch.fx.Node) else None
        dtype = spec.dtype if isinstance(spec, TensorSpec) else ttnn.bfloat16
        why = numerics.check_output(e, o, g, dtype, tol, measured, f" (output {i})", reduces)
        if why:
            return why
    return None


def _keyed(v):
    """A keyword value as a cache key: equal for values ttnn treats alike, never an address."""
    from .ttnn_specs import literal_key

    try:
        return repr(literal_key(v))
    except Exception:
        return repr(v)


def _hashable(v):
    if isinstance(v, (list, ttnn.Shape)):  # a Shape hashes by identity: key it by its dims
        return tuple(_hashable(x) for x in v)
    try:
        hash(v)
        return v
    except TypeError:
        return repr(v)
