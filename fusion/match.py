"""Find pattern instances in a traced graph.

All patterns at once: patterns are indexed by the target of their anchor (output) call, and
each graph node is tried only against the patterns anchored at its target, walking the
pattern backwards from there. Cost is linear in graph size for a fixed catalog.

A structural match becomes a `Candidate`. Candidates that match structurally but break a rule
(a capture outside its constraint or not a constant, an escaping intermediate, an unknown
spec, the pattern's check) carry a `refusal` reason so the report can say why they were left.

Overlaps are resolved deterministically: larger matches first (more nodes replaced), then the
earlier position in the graph, then catalog order. A candidate that loses is reported.
"""
from __future__ import annotations

import operator
from typing import Any, Iterable

import torch.fx

from . import keywords, ttnn_ops
from .candidate import Candidate, contiguous, located
from .errors import PatternError
from .compiled_matcher import FALLBACK, NEAR, _SIMPLE, definitely_differs, plainly_equal
from .pattern import MatchView, Pattern, Spelling, bind_call
from .specs import TensorSpec, UnknownSpec


class _NonConstant(Exception):
    def __init__(self, capture: str, node: torch.fx.Node):
        self.capture, self.node = capture, node


def node_bound(node: torch.fx.Node) -> dict | None:
    # cached per node; FX replaces the args tuple when a node is edited, so identity tells staleness
    meta = node.meta
    if "_bound" in meta and meta["_bound_args"] is node.args and meta["_bound_kwargs"] is node.kwargs:
        return meta["_bound"]
    b = bind_call(node.target, node.args, node.kwargs)
    meta["_bound"], meta["_bound_args"], meta["_bound_kwargs"] = b, node.args, node.kwargs
    return b


def literal_of(value: Any) -> tuple[bool, Any]:
    """(is_constant, value): literal get_attr nodes resolve to their value."""
    if isinstance(value, torch.fx.Node):
        if "literal" in value.meta:
            return True, value.meta["literal"]
        return False, value
    if isinstance(value, (list, tuple)):
        items = []
        for v in value:
            ok, lv = literal_of(v)
            if not ok:
                return False, value
            items.append(lv)
        return True, type(value)(items) if isinstance(value, tuple) else items
    return True, value


def _is_tensor_node(node: torch.fx.Node) -> bool:
    return "literal" not in node.meta


def _same_literal(p, g) -> bool:
    tp = type(p)
    if tp is type(g) and tp in _SIMPLE:  # the common case, without normalizing
        return p == g
    p, g = ttnn_ops.normalize_literal(p), ttnn_ops.normalize_literal(g)
    if isinstance(p, bool) or isinstance(g, bool):
        return type(p) is type(g) and p == g
    if isinstance(p, float) or isinstance(g, float):
        return isinstance(g, (int, float)) and isinstance(p, (int, float)) and float(p) == float(g)
    try:
        return type(p) is type(g) and bool(p == g) or (p is None and g is None)
    except Exception:
        return False


class _Matcher:
    """Binds a spelling's nodes to graph nodes. Keywords follow fusion/keywords.py: a placement
    keyword the pattern leaves at its default matches any constant (kept in `placement` for the
    replacement); with `lenient`, a differing literal is noted in `misses` and matching goes on, so
    a chain that matches in structure is reported as a near miss with what differs."""

    def __init__(self, spelling: Spelling, lenient: bool = False):
        self.s = spelling
        self.env: dict = {}
        self.rev: dict = {}
        self.captures: dict = {}
        self.placement: dict = {}  # (pattern call node, keyword) -> the graph's value
        self.lenient = lenient
        self.misses: list = []  # (pattern call node, parameter, pattern value, graph value)

    def param(self, pn: torch.fx.Node, pnode, name, pv, gv) -> bool:
        """A literal parameter of a pattern call against the graph call's value."""
        if gv is pv or self.value(pv, gv, pn.target, name):
            return True
        if name is None:
            return False
        ok, glit = literal_of(gv)
        if (ok and name not in pnode.written and keywords.carried(pn.target, name, self.s.carry)
                and keywords.placement_means(pn.target, name, glit) is None
                and not self._rounds_intermediate(pn, name, glit)):
            self.placement[(pn, name)] = glit
            return True
        if self.lenient:
            self.misses.append((pn, name, pv, glit if ok else gv))
            return True
        return False

    def node(self, pn: torch.fx.Node, g: Any) -> bool:
        if pn in self.env:
            return self.env[pn] is g
        if pn.op == "placeholder":
            if pn.meta.get("role") == "capture":
                return self._capture(pn, g)
            if not isinstance(g, torch.fx.Node) or not _is_tensor_node(g):
                return False
            # two inputs may be one value (silu(x) * x); an input inside the match is refused later
            self.env[pn] = g
            return True
        if pn.op != "call_function":
            return False
        if any(pn.target is c for c in ttnn_ops.VALUE_CONSTRUCTORS):
            traced_ctor = isinstance(g, torch.fx.Node) and g.op == "call_function" and g.target is pn.target
            if not traced_ctor:
                # `ttnn.Shape((1, 1, H, 1))` in a pattern matches a Shape literal or a plain tuple,
                # whose items may be graph values (then H is not a constant)
                ok, lit = literal_of(g)
                return self.value(pn.args[0], ttnn_ops.normalize_literal(lit) if ok else g, None, None)
        if not isinstance(g, torch.fx.Node) or g.op != "call_function" or g.target is not pn.target:
            return False
        if g in self.rev:
            return False
        pnode = self.s.by_node[pn]
        if len(g.args) == pnode.call_shape[0] and tuple(g.kwargs) == pnode.call_shape[1]:
            gargs, gkw = g.args, g.kwargs
            self.env[pn] = g
            self.rev[g] = pn
            for key, name, pv in pnode.fast_literals:
                gv = gargs[key] if isinstance(key, int) else gkw[key]
                if gv is pv or plainly_equal(pv, gv):
                    continue
                if not self.param(pn, pnode, name, pv, gv):
                    return False
            for key, name, pv in pnode.fast_nodes:
                if not self.value(pv, gargs[key] if isinstance(key, int) else gkw[key], pn.target, name):
                    return False
            return True
        gb = node_bound(g)
        if gb is None or pnode.bound.keys() != gb.keys():
            return False
        self.env[pn] = g
        self.rev[g] = pn
        # literals first: most anchors are rejected by a literal before any recursion
        for k, pv in pnode.literal_params:
            gv = gb[k]
            if gv is not pv and not self.param(pn, pnode, k, pv, gv):
                return False
        for k, pv in pnode.node_params:
            if not self.value(pv, gb[k], pn.target, k):
                return False
        return True

    def _rounds_intermediate(self, pn, name, value) -> bool:
        """A dtype= on a call whose result the replacement no longer writes, that differs from its
        tensor inputs' dtype: it rounds there, and dropping it would lose that rounding."""
        if name not in ("dtype", "output_dtype") or pn in self.s.outputs or value is None or self.s.carry:
            return False  # (a carry pattern re-emits the call with its dtype)
        g = self.env.get(pn)
        specs = [n.meta.get("spec") for n in (g.all_input_nodes if isinstance(g, torch.fx.Node) else ())
                 if "literal" not in n.meta]
        return not specs or any(getattr(s, "dtype", None) != value for s in specs)

    def _capture(self, pn, g) -> bool:
        ok, lit = literal_of(g)
        if not ok:
            if isinstance(g, torch.fx.Node) and not g.meta.get("python_value"):
                return False  # a tensor where the pattern has a constant: another structure
            raise _NonConstant(pn.target, g if isinstance(g, torch.fx.Node) else None)
        name = pn.target
        if name in self.captures:
            return _same_literal(self.captures[name], lit)
        self.captures[name] = ttnn_ops.normalize_literal(lit) if isinstance(lit, list) else lit
        return True

    def value(self, pv, gv, target, param) -> bool:
        if isinstance(pv, torch.fx.Node):
            return self.node(pv, gv)
        if isinstance(pv, (list, tuple)):
            ok, glit = literal_of(gv) if isinstance(gv, torch.fx.Node) else (True, gv)
            if isinstance(glit, torch.fx.Node):
                return False
            g = ttnn_ops.normalize_literal(glit) if not isinstance(glit, (list, tuple)) else glit
            if not isinstance(g, (list, tuple)) or len(g) != len(pv):
                return False
            reshape_shape = target is _RESHAPE and param == "shape"
            for pe, ge in zip(pv, g):
                if reshape_shape and pe == -1 and not isinstance(pe, torch.fx.Node):
                    # -1 is "whatever keeps the element count": with the other dims equal it
                    # resolves to the same value the graph wrote explicitly
                    if isinstance(ge, int):
                        continue
                if not self.value(pe, ge, target, None):
                    return False
            return True
        ok, glit = literal_of(gv)
        if not ok:
            return False
        return _same_literal(pv, glit)


_RESHAPE = __import__("ttnn").reshape
_DEALLOCATE = __import__("ttnn").deallocate


def _match_extra_output(m: _Matcher, extra: torch.fx.Node) -> bool:
    """A further output of a multi-output pattern (one norm feeding two matmuls): try the users
    of the graph nodes its pattern arguments already bound to, in graph order."""
    seen = []
    for a in extra.all_input_nodes:
        g = m.env.get(a)
        if isinstance(g, torch.fx.Node):
            seen.extend(u for u in g.users if u.op == "call_function" and u.target is extra.target and u not in m.rev)
    for g in seen:
        env, rev, caps = dict(m.env), dict(m.rev), dict(m.captures)
        if m.node(extra, g):
            return True
        m.env, m.rev, m.captures = env, rev, caps
    return False


def _spec_problem(n: torch.fx.Node) -> str | None:
    """Why the spec of a matched value is not usable, or None."""
    spec = n.meta.get("spec")
    if type(spec) is TensorSpec:
        return None
    if isinstance(spec, UnknownSpec):
        return spec.reason()
    if spec is None:
        return f"unknown spec for {n.name}"
    return None


def _candidate(pattern: Pattern, spelling: Spelling, pindex: int, captures: dict, inputs: dict, outputs: list,
               calls: list, placement: dict | None = None) -> Candidate:
    """A structural match as a candidate, with its rules checked (calls in graph order)."""
    if len(calls) > 1:
        calls.sort()
    cand = Candidate(pattern, spelling, pindex, captures, inputs, outputs, calls, [], calls[0], calls[-1],
                     located(calls[0]), contiguous(calls))
    if placement:
        index = {pn.node: i for i, pn in enumerate(spelling.calls)}
        cand.keywords = {(index[pn], k): v for (pn, k), v in placement.items()}
    cand.refusal = _rules(cand)
    return cand


def _near_miss(pattern: Pattern, spelling: Spelling, pindex: int, anchor: torch.fx.Node) -> Candidate | None:
    """The chain at `anchor` when it matches the spelling in structure but differs in literals:
    a candidate refused with what differs, or None (no such chain, or it differs in nothing)."""
    if spelling.real_calls < 2:
        return None  # one call that differs is not a chain that almost fused
    if not _skeleton(spelling, spelling.outputs[0], anchor):
        return None  # the calls themselves differ (most anchors end here, cheaply)
    m = _Matcher(spelling, lenient=True)
    try:
        ok = m.node(spelling.outputs[0], anchor)
        for extra in spelling.outputs[1:]:
            ok = ok and (extra in m.env or _match_extra_output(m, extra))
    except _NonConstant:
        return None  # a capture computed at run time: the strict matcher reports it
    if not ok or not m.misses:
        return None
    nodes = _bound_calls(spelling, m.env)
    if nodes is None:
        return None
    nodes.sort()
    inputs = {name: m.env.get(ph) for name, ph in spelling.input_placeholders}
    return _near_miss_candidate(pattern, spelling, pindex, nodes, inputs, m.captures,
                                [m.env[o] for o in spelling.outputs], m.misses)


def _near_miss_found(pattern: Pattern, spelling: Spelling, pindex: int, anchor: torch.fx.Node, calls: list,
                     inputs: dict, captures: dict) -> Candidate | None:
    """_near_miss for a chain the generated matcher bound (same argument layout as the pattern's
    calls): the differing literals are read off the bound calls, without a second walk."""
    if spelling.real_calls < 2:
        return None
    misses = []
    for pnode, g in zip(spelling.calls, calls):
        gargs, gkw = g.args, g.kwargs
        for key, name, pv in pnode.fast_literals:
            gv = gargs[key] if isinstance(key, int) else gkw[key]
            if gv is pv or plainly_equal(pv, gv):
                continue
            if definitely_differs(pv, gv):  # what made the matcher say NEAR
                misses.append((pnode.node, name if name is not None else key, pv, gv))
                continue
            ok, glit = literal_of(gv)
            if not (ok and _same_literal(pv, glit)):
                misses.append((pnode.node, name if name is not None else key, pv, glit if ok else gv))
    if not misses:
        return None
    return _near_miss_candidate(pattern, spelling, pindex, sorted(calls), inputs, captures,
                                [anchor], misses)


def _near_miss_candidate(pattern, spelling, pindex, nodes, inputs, captures, outputs, misses):
    # a near miss differs only in what it reports: the pattern's own constraints and check must
    # accept the rest (a residual add after a biased linear is not a near-miss bias add)
    if all(isinstance(g, torch.fx.Node) for g in inputs.values()):
        probe = Candidate(pattern=pattern, spelling=spelling, pattern_index=pindex, captures=captures, inputs=inputs,
                          outputs=outputs, nodes=nodes, absorbed=[], first=nodes[0], last=nodes[-1])
        if any(_spec_problem(n) for n in (*inputs.values(), *outputs)) or _pattern_rules(probe):
            return None
    diffs = []
    for pn, name, pv, gv in misses:
        means = keywords.placement_means(pn.target, name, gv) if isinstance(name, str) else None
        diffs.append(f"{ttnn_ops.op_name(pn.target)} {name}={_shown(gv)} where the pattern has {_shown(pv)}"
                     + (f" ({means})" if means else ""))
    cand = Candidate(pattern=pattern, spelling=spelling, pattern_index=pindex, captures=captures, inputs={},
                     outputs=outputs, nodes=nodes, absorbed=[], first=nodes[0], last=nodes[-1],
                     location=located(nodes[0]))
    cand.refusal = "near miss: " + "; ".join(diffs)
    cand.near_miss = True
    return cand


def _skeleton(spelling: Spelling, pn: torch.fx.Node, g) -> bool:
    """Whether the graph has the spelling's calls, by target alone, where its data flow puts them."""
    if pn.op != "call_function":
        return True
    if any(pn.target is c for c in ttnn_ops.VALUE_CONSTRUCTORS):
        return True
    if not isinstance(g, torch.fx.Node) or g.op != "call_function" or g.target is not pn.target:
        return False
    pnode = spelling.by_node.get(pn)
    gb = None
    for k, pv in pnode.node_params:
        if not isinstance(pv, torch.fx.Node) or pv.op != "call_function":
            continue
        if gb is None:
            gb = node_bound(g)
            if gb is None:
                return False
        if not _skeleton(spelling, pv, gb.get(k)):
            return False
    return True


def _shown(v) -> str:
    if isinstance(v, torch.fx.Node):
        return f"the tensor at {v.meta.get('location', '?')}" if "location" in v.meta else "a tensor"
    return keywords.describe(v)


def _interpret(pattern: Pattern, spelling: Spelling, pindex: int, anchor: torch.fx.Node,
               near_misses: bool = False) -> Candidate | None:
    c = _interpret_strict(pattern, spelling, pindex, anchor)
    if c is None and near_misses:
        return _near_miss(pattern, spelling, pindex, anchor)
    return c


def _interpret_strict(pattern: Pattern, spelling: Spelling, pindex: int, anchor: torch.fx.Node) -> Candidate | None:
    m = _Matcher(spelling)
    try:
        ok = m.node(spelling.outputs[0], anchor)
        for extra in spelling.outputs[1:]:
            ok = ok and (extra in m.env or _match_extra_output(m, extra))
    except _NonConstant as nc:
        # the structure matched up to a capture the graph computes at run time
        where = f" (computed by {nc.node.name} at {nc.node.meta.get('location', '?')})" if nc.node is not None else ""
        cand = _partial_candidate(pattern, spelling, pindex, m, anchor)
        cand.refusal = f"capture {nc.capture} is not a constant{where}; the fused op needs it at trace time"
        return cand
    if not ok:
        return None
    env = m.env
    # every pattern call must be bound (value constructors may have matched literals instead)
    calls = _bound_calls(spelling, env)
    if calls is None:
        return None
    inputs = {}
    for name, ph in spelling.input_placeholders:
        g = env.get(ph)
        if g is None:
            return None
        inputs[name] = g
    return _candidate(pattern, spelling, pindex, m.captures, inputs, [env[o] for o in spelling.outputs], calls,
                      m.placement)


def _bound_calls(spelling: Spelling, env: dict) -> list | None:
    """The graph calls bound to the spelling's calls, in its order; None when one is unbound
    (value constructors may have matched literals instead: they bind nothing)."""
    calls = []
    for pn in spelling.calls:
        g = env.get(pn.node)
        if g is None:
            if any(pn.target is c for c in ttnn_ops.VALUE_CONSTRUCTORS):
                continue
            return None
        calls.append(g)
    return calls


def _partial_candidate(pattern, spelling, pindex, m, anchor) -> Candidate:
    nodes = sorted(g for g in m.env.values() if isinstance(g, torch.fx.Node) and g.op == "call_function") or [anchor]
    return Candidate(pattern=pattern, spelling=spelling, pattern_index=pindex, captures=m.captures,
                     inputs={}, outputs=[anchor], nodes=nodes, absorbed=[], first=nodes[0], last=nodes[-1],
                     location=located(nodes[0]))


def _rules(c: Candidate) -> str | None:
    p = c.pattern
    why = _capture_problem(c)
    if why:
        return why
    nodes = c.nodes
    matched = set(nodes)
    outputs = c.outputs
    for g in nodes:
        for u in g.users:
            if u in matched:
                continue
            if u.target is _DEALLOCATE and u.op == "call_function":
                if g not in outputs:
                    c.absorbed.append(u)
                continue
            if g not in outputs:
                return (f"intermediate {g.name} ({ttnn_ops.op_name(g.target)}, {g.meta.get('location', '?')}) "
                        f"is also used by {u.name} ({u.meta.get('location', '?')}); fusing would lose it")
            if u < c.last:
                return f"output {g.name} is used by {u.name} before the end of the matched chain"
    inputs = c.inputs.values()
    for name, g in c.inputs.items():
        if g in matched:
            return f"input {name} is produced inside the match"
    for n in (*inputs, *nodes):
        why = _spec_problem(n)
        if why:
            return why
    return _check(c) if p.check is not None else None


def _pattern_rules(c: Candidate) -> str | None:
    """The pattern's own rules (capture constraints, then its check), in `_rules`' order, for a
    match whose structural rules are known to pass."""
    return _capture_problem(c) or (_check(c) if c.pattern.check is not None else None)


def _capture_problem(c: Candidate) -> str | None:
    if c.spelling.guard is not None:
        why = c.spelling.guard(c.nodes)
        if why:
            return why
    p = c.pattern
    for name in p.captures:
        why = p.constraint_failure(name, c.captures.get(name))
        if why:
            return why
    return None


def _check(c: Candidate) -> str | None:
    view = MatchView(c.captures, c.input_specs, c.output_specs, _placement_view(c))
    try:
        why = c.pattern.check(view)
    except Exception as e:  # a check that crashes refuses, it never fuses
        why = f"check raised {type(e).__name__}: {e}"
    if why is None or isinstance(why, str):
        return why or None
    # True, False, 0...: the author's intent is unknowable; a silent accept or a refusal saying
    # "True" would both mislead
    raise PatternError(f"pattern {c.pattern.name!r}: check must return None (accept) or a reason string (refuse), "
                       f"got {why!r}")


def _placement_view(c: Candidate) -> dict:
    """{(op name, keyword): value} of the placement keywords the matched calls pass."""
    if not c.keywords:
        return {}
    calls = c.spelling.calls
    return {(ttnn_ops.op_name(calls[i].target), k): v for (i, k), v in c.keywords.items()}


def _anchor_may_match(pnode, g: torch.fx.Node) -> bool:
    """Cheap reject before building a matcher: an anchor written like the pattern's call whose
    plain literals differ cannot match (anything else goes to the full matcher)."""
    if len(g.args) != pnode.call_shape[0] or tuple(g.kwargs) != pnode.call_shape[1]:
        return True
    for key, _name, pv in pnode.fast_literals:
        gv = g.args[key] if isinstance(key, int) else g.kwargs[key]
        if gv is not pv and definitely_differs(pv, gv):
            return False
    return True


class Catalog:
    """Patterns indexed by their anchor target."""

    def __init__(self, patterns: Iterable[Pattern]):
        self.patterns = list(patterns)
        self.index: dict = {}
        self.max_size = 1
        self.targets: set = set()  # every op some pattern calls: only these can start a new match
        self.anchor_targets: list = []
        for i, p in enumerate(self.patterns):
            for s in p.spellings:
                # by id: hashing a ttnn op runs Python code, once per graph node here; the
                # patterns keep their targets alive, so an id cannot be reused meanwhile
                self.index.setdefault(id(s.anchor.target), []).append((i, p, s))
                if not any(s.anchor.target is t for t in self.anchor_targets):
                    self.anchor_targets.append(s.anchor.target)
                self.max_size = max(self.max_size, s.size)
                self.targets.update(c.target for c in s.calls)
        # by id, for per-node membership tests (the patterns keep the targets alive)
        self.target_ids = frozenset(map(id, self.targets))

    def find(self, graph: torch.fx.Graph, only: set | None = None, near_misses: bool = False) -> list[Candidate]:
        """Candidates anchored anywhere in the graph (or only at the nodes in `only`), in the
        order of their anchors in the graph, then of the catalog."""
        streams: list = []
        out = list(self.iter_find(graph, only, streams, near_misses))
        return in_anchor_order(out) if len(streams) > 1 else out

    def iter_find(self, graph: torch.fx.Graph, only: set | None = None, streams: list | None = None,
                  near_misses: bool = False):
        """The candidates of `find`, yielded as they are found (the verifier then reads a match's
        nodes and specs while they are still in the CPU's caches): spelling by spelling, each in
        anchor order. `streams` gets one entry per spelling that yielded something; with more
        than one, `in_anchor_order` gives find's order."""
        for target in self.anchor_targets:
            if only is None:
                # FX indexes nodes by target: visit only the calls some pattern is anchored at
                # (in graph order: FX sorts them by node order)
                nodes = graph.find_nodes(op="call_function", target=target)
            else:
                nodes = sorted(n for n in only if n.target is target and n.op == "call_function")
            if not nodes:
                continue
            for i, p, s in self.index[id(target)]:
                found = _spelling_candidates(i, p, s, nodes, near_misses)
                if streams is not None:
                    first = next(found, None)
                    if first is None:
                        continue
                    streams.append(s)
                    yield first
                yield from found  # delegated in C: no Python step per candidate here


def _spelling_candidates(i: int, p: Pattern, s: Spelling, nodes: list, near_misses: bool = False):
    """The candidates of one spelling at these anchors (graph order); with near_misses, chains that
    differ from it only in literals too (refused, saying what differs)."""
    fast = s.compiled
    if fast is None:
        for node in nodes:
            if _anchor_may_match(s.anchor, node):
                c = _interpret(p, s, i, node, near_misses)
            else:
                c = _near_miss(p, s, i, node) if near_misses else None
            if c is not None:
                yield c
        return
    # most anchors end in the generated scan: no Python call, and a clean match comes out as its
    # candidate. It scans a chunk at a time so that a match's nodes are still in the CPU's caches
    # when its candidate is verified
    own_rules = bool(p.captures) or p.check is not None or s.guard is not None
    for start in range(0, len(nodes), _SCAN_CHUNK):
        for item in fast.scan(nodes[start:start + _SCAN_CHUNK], p, s, i):
            if type(item) is Candidate:  # clean: only the pattern's own rules are left
                if own_rules:
                    item.refusal = _pattern_rules(item)
                yield item
                continue
            node, found = item
            if found is FALLBACK:
                c = _interpret(p, s, i, node, near_misses)
                if c is not None:
                    yield c
            elif type(found) is tuple and found[0] is NEAR:  # the calls are there, a literal differs
                if near_misses:
                    c = _near_miss_found(p, s, i, node, *found[1:])
                    if c is not None:
                        yield c
            elif found is not None:  # None: the calls themselves differ
                calls, inputs, captures, _clean = found
                yield _candidate(p, s, i, captures, inputs, [node], calls)


def in_anchor_order(cands: list) -> list:
    """Candidates from several spellings interleaved as one walk over the anchors would find
    them (the sort is stable: catalog order among candidates at one anchor)."""
    return sorted(cands, key=_ANCHOR)


_FIRST = operator.attrgetter("first")
_ANCHOR = lambda c: c.outputs[0]  # noqa: E731
_SCAN_CHUNK = 64


def resolve_overlaps(cands: list[Candidate], may_overlap: bool | None = None
                     ) -> tuple[list[Candidate], list[tuple[Candidate, Candidate]]]:
    """Pick non-overlapping candidates: larger first, then earlier, then catalog order.
    may_overlap=False: the caller knows no node is in two candidates (None: find out here)."""
    if may_overlap is None:
        taken_once = set()
        for c in cands:
            taken_once.update(c.nodes)
        may_overlap = len(taken_once) != sum(len(c.nodes) for c in cands)
    if not may_overlap:  # no node in two candidates (the common case): all are kept
        return sorted(cands, key=_FIRST), []
    order = sorted(cands, key=lambda c: (-len(c.nodes), c.first, c.pattern_index))
    taken: dict = {}
    kept, lost = [], []
    for c in order:
        clash = next((taken[n] for n in c.nodes if n in taken), None)
        if clash is None:
            for n in c.nodes:
                taken[n] = c
            kept.append(c)
        else:
            lost.append((c, clash))
    kept.sort(key=_FIRST)
    return kept, lost
