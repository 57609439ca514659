"""fuse(): trace -> specs -> match -> verify -> rewrite -> report."""
from __future__ import annotations

import collections
import gc
import operator
import os
import time
from typing import Any, Iterable

import torch
import torch.fx

from . import effects, normalize, ttnn_ops
from .errors import InputError, VerificationError
from .log import logger
from .match import Catalog, in_anchor_order, resolve_overlaps
from .numerics import Tolerance
from .pattern import Pattern
from .reference import ReferenceRunner
from .report import FusionReport, Refusal, Rewrite, RewriteKind
from .rewrite import Splicer
from .specs import TensorSpec
from .trace import Traced, trace
from .verify import Verifier

_SHARED_VERIFIER: Verifier | None = None


# the built-in catalog is found by module name, when first asked for: fusion/ never imports
# patterns/ at module level (the patterns import fusion to define themselves)
CATALOG_MODULE = "patterns"


def default_patterns() -> list[Pattern]:
    """The built-in catalog, in priority order."""
    import importlib

    try:
        module = importlib.import_module(CATALOG_MODULE)
    except ImportError as e:
        raise InputError(f"the built-in catalog ({CATALOG_MODULE!r}) cannot be imported: {e}") from e
    return list(module.CATALOG)


def resolve_patterns(spec: Iterable | None) -> list[Pattern]:
    if spec is None:
        return default_patterns()
    if isinstance(spec, (Pattern, str)):
        spec = [spec]
    out: list[Pattern] = []
    builtin = None
    for item in spec:
        if isinstance(item, Pattern):
            out.append(item)
        elif isinstance(item, str):
            builtin = builtin if builtin is not None else default_patterns()
            chosen = [p for p in builtin if p.name == item]
            if not chosen:
                names = sorted({p.name for p in builtin})
                raise InputError(f"no built-in pattern named {item!r}; the catalog has {names}")
            out.extend(chosen)
        else:
            raise InputError(f"patterns= takes Pattern objects or built-in names, got {type(item).__name__}")
    return out


_TARGET = operator.attrgetter("target")


def _count_calls(graph: torch.fx.Graph) -> tuple[int, int]:
    """(ops, device dispatches) of a graph's calls."""
    index = getattr(getattr(graph, "_find_nodes_lookup_table", None), "table", None)
    if isinstance(index, dict):
        # FX keeps every node indexed by (op, target) (its find_nodes index): one entry per
        # distinct call target, so counting costs nothing per node. Private, so read defensively:
        # any surprise in its shape falls through to the scan below
        ops = total = 0
        try:
            for (op, target), nodes in index.items():
                if op == "call_function" and callable(target):
                    ops += len(nodes)
                    total += len(nodes) * ttnn_ops.dispatches(target)
        except (TypeError, ValueError):
            pass
        else:
            return ops, total
    return _scan_calls(graph)


def _scan_calls(graph: torch.fx.Graph) -> tuple[int, int]:
    """_count_calls by walking the graph (public API only)."""
    # counted per distinct target with C-level loops: hashing a ttnn op runs Python code, so
    # targets are told apart by id (they stay alive in the graph meanwhile); only
    # call_function nodes have callable targets (the others' are strings)
    targets = list(map(_TARGET, graph.nodes))
    by_id = dict(zip(map(id, targets), targets))
    ops = total = 0
    for i, k in collections.Counter(map(id, targets)).items():
        t = by_id[i]
        if callable(t):
            ops += k
            total += k * ttnn_ops.dispatches(t)
    return ops, total


class FusedModel:
    """The rewritten model: call it like the original (same signature, same outputs)."""

    def __init__(self, traced: Traced, report: FusionReport, model: Any):
        self.graph_module: torch.fx.GraphModule = traced.graph_module
        self.report = report
        self._traced = traced
        self._model = model
        self._runner: ReferenceRunner | None = None
        self._direct = None  # see direct_forward()

    @property
    def input_specs(self) -> dict:
        return {n.target: n.meta.get("spec") for n in self.graph_module.graph.nodes if n.op == "placeholder"}

    def _bind(self, args, kwargs) -> dict:
        try:
            bound = self._traced.signature.bind(*args, **kwargs)
        except TypeError as e:
            raise InputError(f"{self._traced.model_name}: {e}") from None
        bound.apply_defaults()
        return bound.arguments

    def tensor_arguments(self, args, kwargs) -> list:
        values = self._bind(args, kwargs)
        for name, traced in self._traced.variadic.items():
            given = values.get(name, ())
            now = len(given) if isinstance(traced, int) else tuple(sorted(given))
            if now != traced:
                what = "positional arguments" if isinstance(traced, int) else "keyword arguments"
                raise InputError(f"{self._traced.model_name}: {now} extra {what} for {name} ({traced} when it was fused); "
                                 f"fuse again for this call")
        for key, traced_value in self._traced.constants.items():
            value = _argument(values, key)
            if value is not _ABSENT and not _same_constant(value, traced_value):
                raise InputError(
                    f"argument {_key_text(key)}={value!r} differs from the value it was fused with "
                    f"({traced_value!r}); fuse again for this value")
        out = []
        for key in self._traced.input_names:
            value = _argument(values, key)
            if value is _ABSENT:
                raise InputError(f"argument {_key_text(key)} is missing: it was a tensor when the model was fused")
            out.append(value)
        return out

    def __call__(self, *args, **kwargs):
        fast = self._fast_positions
        if not kwargs and fast is not None and len(args) == fast[0]:
            n, tensor_pos, const_pos = fast
            for i, value in const_pos:
                a = args[i]
                if a is not value and not _same_constant(a, value):
                    break
            else:
                return (self._direct or self.direct_forward())(*[args[i] for i in tensor_pos])
        return (self._direct or self.direct_forward())(*self.tensor_arguments(args, kwargs))

    def direct_forward(self):
        """The graph's forward that calls ttnn ops' C++ functions directly when ttnn's run-time
        modes allow it (fusion/replay.py); built on first use."""
        if self._direct is None:
            from .replay import direct_forward

            run = direct_forward(self.graph_module)
            graph = self.graph_module.graph
            if effects.has_effects(graph):
                held = [n.meta["value"] for n in graph.nodes if n.op == "get_attr" and n.meta.get("tensor_constant")]
                run = _distinct_tensors(run, [n.target for n in graph.nodes if n.op == "placeholder"], held,
                                        self._traced.model_name)
            self._direct = run
        return self._direct

    @property
    def _fast_positions(self):
        """(arity, tensor positions, (position, constant)) for plain positional calls, else None."""
        cached = self.__dict__.get("_fast_cache", False)
        if cached is not False:
            return cached
        sig = self._traced.signature.parameters
        params = list(sig)
        names = self._traced.input_names
        result = None
        plain = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in sig.values())
        if plain and all(isinstance(n, str) for n in names) and set(names) | set(self._traced.constants) == set(params):
            result = (len(params), [params.index(n) for n in names],
                      [(params.index(k), v) for k, v in self._traced.constants.items()])
        self.__dict__["_fast_cache"] = result
        return result

    def reference_runner(self) -> ReferenceRunner:
        if self._runner is None:
            self._runner = ReferenceRunner(self.graph_module)
        return self._runner

    def __repr__(self) -> str:
        return f"FusedModel({self._traced.model_name}, {len(self.report.rewrites)} rewrites)"


_ABSENT = object()


def _distinct_tensors(run, names: list, held: list, model: str):
    """`run`, refusing a call that passes one tensor as two inputs, or a tensor the model itself
    holds (a weight) as an input: the graph writes buffers in place, and it was traced (and its
    rewrites checked) with every input a buffer of its own. Tensors are told apart by identity
    (a view of an input passed as another input is not seen)."""
    held_ids = {id(t): "a tensor the model holds" for t in held}

    def checked(*tensors):
        ids = set(map(id, tensors))
        if len(ids) != len(tensors) or not ids.isdisjoint(held_ids):
            seen = dict(held_ids)
            for name, t in zip(names, tensors):
                if id(t) in seen:
                    raise InputError(f"{model}: {name} is the same tensor as {seen[id(t)]}; this model writes tensors "
                                     f"in place and was fused with them distinct. Pass distinct tensors, or call the "
                                     f"original model")
                seen[id(t)] = name
        return run(*tensors)

    return checked


def _argument(values: dict, key):
    """A bound argument by name, or an item of a list / *args / **kwargs argument by (name, index or key)."""
    if not isinstance(key, tuple):
        return values.get(key, _ABSENT)
    name, item = key
    container = values.get(name, _ABSENT)
    try:
        return container[item]
    except (TypeError, IndexError, KeyError):
        return _ABSENT


def _key_text(key) -> str:
    return key if not isinstance(key, tuple) else f"{key[0]}[{key[1]!r}]"


def _same_constant(a, b) -> bool:
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and a != a and b != b:  # NaN, as fused
        return True
    try:
        same = a == b
        if hasattr(same, "all"):  # an array compares elementwise
            same = same.all()
        return bool(same)
    except Exception:
        return False


def fuse(model, example_inputs=None, *, patterns=None, tolerance: Tolerance | None = None, pcc: float | None = None,
         strict: bool = False, verifier: Verifier | None = None):
    """Trace `model` with `example_inputs`, rewrite every verified fusion, and report.

    example_inputs: a list with one item per positional model argument (then *args), or a dict
    by parameter name (keyword-only ones too): fusion.TensorSpec, a torch tensor (taken as
    bfloat16, TILE, DRAM interleaved), a ttnn tensor, or a non-tensor constant (copied).
    Without example_inputs, returns a callable that fuses on its first call for each distinct
    input-spec signature. patterns: None (the built-in catalog), or a list of Pattern objects
    and/or built-in pattern names. tolerance: the error bound of compute rewrites
    (fusion.Tolerance(ulps=2, factor=3) by default; see fusion/numerics.py). pcc: None, or a
    Pearson-correlation floor a rewrite must reach as well (it never suffices alone).
    strict=True raises VerificationError instead of refusing a rewrite that fails verification.
    """
    if example_inputs is None:
        from .lazy import LazyFused

        return LazyFused(model, patterns=patterns, tolerance=tolerance, pcc=pcc, strict=strict, verifier=verifier)
    if isinstance(model, FusedModel):
        model = model._model
    catalog = Catalog(resolve_patterns(patterns))
    verifier = verifier or _verifier(pcc, tolerance)
    seconds = {}
    t0 = time.perf_counter()
    traced = trace(model, example_inputs)
    t1 = time.perf_counter()
    seconds["trace"] = t1 - t0
    fused, report = fuse_traced(traced, catalog, verifier, strict=strict, seconds=seconds, model=model)
    return fused


def _verifier(pcc: float | None, tolerance: Tolerance | None) -> Verifier:
    # verification results depend only on (pattern, specs, captures) and the criterion: share
    # them across calls with the same criterion
    global _SHARED_VERIFIER
    tolerance = tolerance if tolerance is not None else Tolerance()
    if not isinstance(tolerance, Tolerance):
        raise InputError(f"tolerance must be a fusion.Tolerance, got {type(tolerance).__name__}")
    shared = _SHARED_VERIFIER
    if shared is None or shared.pcc_threshold != pcc or shared.tolerance != tolerance:
        try:
            shared = _SHARED_VERIFIER = Verifier(pcc, tolerance)
        except ValueError as e:
            raise InputError(str(e)) from None
    return shared


def fuse_traced(traced: Traced, catalog: Catalog, verifier: Verifier, *, strict: bool = False,
                seconds: dict | None = None, model=None):
    """match -> verify -> rewrite -> report on an already traced graph (the trace-free pipeline)."""
    # the pass allocates many small objects and frees none of the graph: cyclic GC passes over a
    # 50k-node graph would cost more than the pass itself
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _fuse_traced(traced, catalog, verifier, strict=strict, seconds=seconds, model=model)
    finally:
        if was_enabled:
            gc.enable()


def _rejected_calls(graph: torch.fx.Graph) -> list:
    """The model's own calls ttnn refuses (their specs say why): the model would fail there."""
    from .ttnn_specs import Rejected

    out = []
    for n in graph.nodes:
        spec = n.meta.get("spec")
        if isinstance(spec, Rejected) and spec.op == ttnn_ops.op_name(n.target):  # the refused call, not its users
            out.append(Refusal(spec.op, n.meta.get("location", "?"), spec.why))
    return out


def _fuse_traced(traced: Traced, catalog: Catalog, verifier: Verifier, *, strict: bool = False,
                 seconds: dict | None = None, model=None):
    seconds = seconds if seconds is not None else {}
    gm = traced.graph_module
    graph = gm.graph
    report = FusionReport(model=traced.model_name)
    report.nodes_before, report.dispatches_before = _count_calls(graph)
    report.rejected = _rejected_calls(graph)
    runs0, hits0 = verifier.runs, verifier.hits

    # rewrite rounds until nothing changes: a rewrite can complete a later pattern
    # (decomposed RMSNorm -> rms_norm -> rms_norm + matmul); capped, each round strictly shrinks
    only = None
    removed = 0  # calls the rewrites took out of the graph
    for _round in range(MAX_ROUNDS):
        created, removed_now = _one_round(gm, catalog, verifier, report, strict, seconds, only)
        removed += removed_now
        # only a new node that some pattern calls can complete a new match
        created = [n for n in created if id(n.target) in catalog.target_ids]
        if not created:
            break
        # a later match must contain a new node, so its anchor is at most a pattern's length
        # downstream of one: the next round tries only those anchors
        only = _downstream(created, catalog.max_size)
    seen, unique = set(), []
    for f in report.refusals:
        key = (f.pattern, f.location, f.reason)  # equivalent spellings refuse alike
        if key not in seen:
            seen.add(key)
            unique.append(f)
    report.refusals = unique
    t = time.perf_counter()
    # constants the rewrites disconnected (FX's eliminate_dead_code would lint the whole graph)
    for n in list(graph.find_nodes(op="get_attr")):
        if not n.users:
            graph.erase_node(n)
    # counted from the edits, not by walking the graph again
    report.nodes_after = report.nodes_before - removed
    report.dispatches_after = report.dispatches_before - sum(r.saved_dispatches for r in report.rewrites)
    if os.environ.get("TTFUSE_LINT"):
        # O(graph) consistency checks: tests turn them on, fuse() in production skips them
        graph.lint()
        recount = _scan_calls(graph)  # by walking the graph, not through FX's index
        assert recount == (report.nodes_after, report.dispatches_after), (recount, report.nodes_after,
                                                                          report.dispatches_after)
    gm.recompile()
    seconds["rewrite"] = seconds.get("rewrite", 0.0) + time.perf_counter() - t

    report.verifications_run = verifier.runs - runs0
    report.verifications_cached = verifier.hits - hits0
    report.seconds = {k: round(v, 6) for k, v in seconds.items()}
    report.refusals.sort(key=lambda f: (f.location, f.pattern))
    return FusedModel(traced, report, model), report


MAX_ROUNDS = 4


def _savings(c, r) -> tuple[int, int]:
    """(saved dispatches, saved intermediate bytes) of replacing candidate c by replacement r."""
    outputs = set(c.outputs)
    before_bytes = sum(n.meta["spec"].nbytes for n in c.nodes
                       if n not in outputs and isinstance(n.meta.get("spec"), TensorSpec))
    outs = set(r.outputs)
    after_bytes = sum(n.meta["spec"].nbytes for n in r.calls
                      if n not in outs and isinstance(n.meta.get("spec"), TensorSpec))
    return sum(ttnn_ops.dispatches(n.target) for n in c.nodes) - r.dispatches, before_bytes - after_bytes


def _judge(c, outcome) -> None:
    """Savings and profitability of a verified outcome, once per outcome (a verified outcome is
    shared by every match with the same pattern, specs and captures)."""
    r = outcome.replacement
    disp, nbytes = outcome.savings = _savings(c, r)
    outcome.kind = RewriteKind(c.pattern.name, c.spelling.name, True, disp, nbytes,
                               " -> ".join(ttnn_ops.op_name(n.target) for n in c.nodes), r.description, outcome.text,
                               outcome.measured.to_dict() if outcome.measured is not None else None)
    # conversions a fused op needs around it (placement, layout) count against it
    if disp < 0 or (disp == 0 and nbytes <= 0):
        outcome.unprofitable = (
            f"not profitable: the replacement ({r.description}) saves {disp} dispatches and {nbytes} bytes "
            f"of intermediates (conversions it needs count against it)")


def _downstream(nodes: list, depth: int) -> set:
    seen = set(nodes)
    frontier = list(nodes)
    for _ in range(depth):
        nxt = []
        for n in frontier:
            for u in n.users:
                if u not in seen:
                    seen.add(u)
                    nxt.append(u)
        frontier = nxt
    return seen


def _one_round(gm, catalog: Catalog, verifier: Verifier, report: FusionReport, strict: bool, seconds: dict,
               only: set | None = None) -> list:
    """One match -> verify -> rewrite round; returns the nodes it created and how many calls
    it took out of the graph."""
    graph = gm.graph
    t = time.perf_counter()
    verify_seconds = verifier.seconds
    # each candidate is verified as it is found, while its nodes are still in the CPU's caches
    # (on a 50k-node graph a second pass over the candidates costs more than the lookups)
    streams: list = []
    viable = []
    matched: set = set()  # nodes of viable candidates: if none is in two, no overlap to resolve
    size = 0
    last_note = t
    # writes and frees the tracer recorded: a match may not move a read across one
    index = effects.Index(graph) if effects.has_effects(graph) else None
    near: list = []  # near misses, reported where no spelling of their pattern matched the anchor
    anchored: set = set()  # (pattern name, anchor) of every full match, kept or refused
    for i, c in enumerate(catalog.iter_find(graph, only, streams, near_misses=True)):
        if not i & 255:
            now = time.perf_counter()
            if now - last_note > 2.0:  # long verification (large weights): say where it is
                logger.info(f"verifying candidate {i + 1} ({c.pattern.name} at {c.location}), "
                            f"{verifier.runs} reference checks run, {verifier.hits} cached")
                last_note = now
        if c.near_miss:
            near.append(c)
            continue
        anchored.add((c.pattern.name, c.outputs[0]))
        if c.refusal:
            if not c.pattern.quiet:
                report.refusals.append(Refusal(c.pattern.name, c.location, c.refusal, c.spelling.name))
            continue
        if index is not None:
            c.refusal = effects.check(c, index)
            if c.refusal:
                report.refusals.append(Refusal(c.pattern.name, c.location, c.refusal, c.spelling.name))
                continue
        outcome = verifier.verify(c, gm)
        if not outcome.ok:
            reason = outcome.text if outcome.plain else f"verification failed: {outcome.text}"
            if strict:
                raise VerificationError(f"{c.pattern.name} at {c.location}: {reason}")
            report.refusals.append(Refusal(c.pattern.name, c.location, reason, c.spelling.name))
            continue
        if any(o.op == "placeholder" for o in outcome.replacement.outputs):  # the chain removed
            why, drop = effects.identity_problem(c, outcome.replacement.outputs, index,
                                                 effects.returned_buffers(graph))
            if why:
                report.refusals.append(Refusal(c.pattern.name, c.location, why, c.spelling.name))
                continue
            if drop:  # the input's deallocate: its buffer is the output's now
                c.absorbed = [*c.absorbed, *drop]
        if outcome.savings is None:
            _judge(c, outcome)
        if outcome.unprofitable:
            report.refusals.append(Refusal(c.pattern.name, c.location, outcome.unprofitable, c.spelling.name))
            continue
        c.outcome = outcome
        viable.append(c)
        matched.update(c.nodes)
        size += len(c.nodes)
    reported: set = set()
    for c in near:
        key = (c.pattern.name, c.outputs[0])
        if key not in anchored and key not in reported and not c.pattern.quiet:
            reported.add(key)
            report.refusals.append(Refusal(c.pattern.name, c.location, c.refusal, c.spelling.name))
    if len(streams) > 1:
        viable = in_anchor_order(viable)  # the order one walk over the anchors gives
    verified = verifier.seconds - verify_seconds  # reference checks actually run
    seconds["verify"] = seconds.get("verify", 0.0) + verified
    seconds["match"] = seconds.get("match", 0.0) + time.perf_counter() - t - verified

    t = time.perf_counter()
    kept, lost = resolve_overlaps(viable, may_overlap=len(matched) != size)
    for c, winner in lost:
        if c.pattern is winner.pattern and set(c.nodes) == set(winner.nodes):
            continue  # the same match found from another anchor (outputs in the other order)
        if c.pattern.quiet or (c.pattern.name == winner.pattern.name and set(c.nodes) <= set(winner.nodes)):
            continue  # the same fusion over more of the chain won; a quiet pattern (movement pairs) is no news
        report.refusals.append(Refusal(
            c.pattern.name, c.location,
            f"overlaps {winner.pattern.name} at {winner.location}, which was kept (larger or earlier match)",
            c.spelling.name))
    splicer = Splicer(gm)
    created: list = []
    rewrites = report.rewrites
    removed = 0
    feeds: dict = {}  # id(replacement) -> whether it calls an op some pattern calls
    for c in kept:
        outcome = c.outcome
        r = outcome.replacement
        location = c.location
        removed += len(c.nodes) + len(c.absorbed)  # before splicing: it absorbs deallocates
        new = splicer.splice(c, r)
        removed -= len(new)
        feed = feeds.get(id(r))
        if feed is None:
            feed = feeds[id(r)] = any(id(n.target) in catalog.target_ids for n in r.calls)
        if feed:  # only such nodes can complete a match in a later round
            created += new
        rewrites.append(Rewrite(outcome.kind, location, len(c.nodes),
                                {k: _plain(v) for k, v in normalize.visible(c.captures).items()}
                                if c.captures else None))
    seconds["rewrite"] = seconds.get("rewrite", 0.0) + time.perf_counter() - t
    return created, removed


def _plain(v):
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return repr(v)
