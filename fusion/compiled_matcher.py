"""Straight-line Python matchers generated from a pattern spelling (the matcher's fast path).

The interpretive matcher in `match.py` walks a pattern node by node through dicts and method
calls. For the common case, a graph written with the same argument layout as the pattern, the
walk is the same every time, so it is generated once as plain code: identity checks on
targets, positional reads, literal compares, no recursion. On a 50k-node graph that is most of
the matching time.

A generated matcher returns one of three things for an anchor node:
  * `(calls, inputs, captures, clean)`: a match: a list of graph nodes in the order of the
    spelling's `calls`, a dict of input name -> graph node, the captured values by name, and
    `clean`: True when the match certainly passes every structural rule of `match._rules`
    (no intermediate has a user outside the match, no input is produced inside it, every
    matched value has a known spec), so only the pattern's own constraints remain to check.
    False says nothing: the general rules decide;
  * `None`: certainly no match (the interpretive matcher would fail at the same check);
  * `FALLBACK`: a case it does not decide (another argument layout, a literal that needs
    normalizing, a capture computed at run time, ...): the interpretive matcher runs instead.
It checks in the interpretive matcher's order, so a definite answer is always the answer that
matcher gives; tests compare the two on every built-in pattern and on fuzzed graphs.
"""
from __future__ import annotations

import enum
import re
import types
from dataclasses import dataclass
from typing import Any, Callable

import torch.fx

from . import ttnn_ops
from .candidate import UNKNOWN_LOCATION, Candidate, contiguous
from .specs import TensorSpec

FALLBACK = object()
# the calls are all there but a literal differs: a near miss to report (the scan gives
# (NEAR, calls, inputs, captures) for it, so the reason needs no second walk)
NEAR = object()
NO_CAPTURES = types.MappingProxyType({})  # one read-only empty mapping for every capture-less match

_SIMPLE = (int, float, str, type(None))


def _node_storage() -> tuple[str, str, str]:
    """The Node attributes the generated code reads a call's arguments and the next node from.
    `args`/`kwargs`/`next` are Python properties returning FX's `_args`/`_kwargs`/`_next`; on
    the matcher's hot path (every anchor, every matched call) the property call is a tenth of
    the matching time, so the storage is read directly when it is there and agrees with the
    properties."""
    g = torch.fx.Graph()
    x = g.placeholder("x")
    n = g.call_function(max, (x, 1), {"key": None})
    m = g.call_function(min, (n, 2))
    if (getattr(n, "_args", None) is n.args and getattr(n, "_kwargs", None) is n.kwargs
            and getattr(n, "_next", None) is n.next is m):
        return "_args", "_kwargs", "_next"
    return "args", "kwargs", "next"


_ARGS, _KWARGS, _NEXT = _node_storage()


def plainly_equal(p, g) -> bool:
    """Equal without normalizing: same type, equal value, and for tuples same element types
    (so True never passes for 1). False means "ask the full comparison", not "different"."""
    tp = type(p)
    if tp is not type(g):
        return False
    if tp is tuple:
        return len(p) == len(g) and all(type(a) is type(b) and type(a) in _SIMPLE and a == b for a, b in zip(p, g))
    return tp in _SIMPLE and p == g


def definitely_differs(p, g) -> bool:
    """Two plain literals of one type (int, str, None, an enum) that are not equal: no
    normalization can make them match. Tuples of ints (shapes, permutations) differ when their
    lengths do, or at a position the pattern does not write as -1 (reshape's "any")."""
    tp = type(p)
    if tp is not type(g):
        return False
    if tp is tuple:
        if not all(type(e) is int for e in p) or not all(type(e) is int for e in g):
            return False
        return len(p) != len(g) or any(a != b and a != -1 for a, b in zip(p, g))
    return (tp in _SIMPLE or isinstance(p, enum.Enum)) and not p == g


def _literal_miss(p, g):
    return NEAR if definitely_differs(p, g) else FALLBACK


@dataclass
class CompiledSpelling:
    fn: Callable  # any graph node -> (calls, inputs, captures, clean) | None | FALLBACK
    source: str  # the generated code, for debugging and tests
    # (nodes calling the anchor's target (FX's index), pattern, spelling, catalog index) -> for each
    # anchor with an answer other than None: its Candidate when the match is clean, else
    # (node, fn's answer)
    scan: Callable = None


class _Unsupported(Exception):
    """The spelling has a construct the generator leaves to the interpretive matcher."""


def compile_spelling(spelling) -> CompiledSpelling | None:
    """A generated matcher for a single-output spelling, or None when it has a construct the
    generated code does not cover (it then always uses the interpretive matcher)."""
    if len(spelling.outputs) != 1:
        return None
    gen = _Generator(spelling)
    try:
        gen.node(spelling.outputs[0], "g0")
    except _Unsupported:
        return None
    fn, src = gen.finish(spelling.name)
    # the scan: the same checks without the anchor's own target check (FX's index vouches for
    # it), as one loop over all anchors, each exit a `continue`: no Python call per anchor
    gen = _Generator(spelling)
    gen.anchor_checked = False
    gen.node(spelling.outputs[0], "g0")
    scan, _src = gen.finish(spelling.name, loop=True)
    return CompiledSpelling(fn, src, scan)


def _in_graph_order(spelling) -> bool:
    """Whether the spelling's calls can only appear in a graph in the spelling's order: each call
    uses the one before it (a chain), so the matched nodes need no sorting."""
    calls = [pn.node for pn in spelling.calls]
    return all(a in b.all_input_nodes for a, b in zip(calls, calls[1:]))


class _Generator:
    def __init__(self, spelling):
        self.s = spelling
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {"Node": torch.fx.Node, "FALLBACK": FALLBACK, "NEAR": NEAR,
                                       "_pe": plainly_equal, "_miss": _literal_miss}
        self.bound: dict = {}  # pattern node -> variable holding its graph node
        self.calls_bound: list[str] = []  # variables of graph nodes bound to pattern calls, in order
        self.captured: dict[str, str] = {}  # capture name -> variable
        self.n = 0
        self.anchor_checked = True

    def var(self, stem: str) -> str:
        self.n += 1
        return f"{stem}{self.n}"

    def const(self, value) -> str:
        name = f"K{len(self.consts)}"
        self.consts[name] = value
        return name

    def emit(self, line: str) -> None:
        self.lines.append("    " + line)

    def node(self, pn: torch.fx.Node, v: str) -> None:
        # mirrors _Matcher.node, check for check (captures bind no graph node: each use is
        # compared with the first, as there)
        if pn in self.bound:
            self.emit(f"if {v} is not {self.bound[pn]}: return None")
            return
        if pn.op == "placeholder":
            if pn.meta.get("role") == "capture":
                self.capture(pn, v)
                return
            self.emit(f"if not isinstance({v}, Node) or 'literal' in {v}.meta: return None")
            self.bound[pn] = v
            return
        if pn.op != "call_function":
            raise _Unsupported(pn.op)
        if any(pn.target is c for c in ttnn_ops.VALUE_CONSTRUCTORS):
            raise _Unsupported("value constructor")
        t = self.const(pn.target)
        if v == "g0" and not self.anchor_checked:
            pass  # the caller took the anchor from FX's index of calls by target
        else:
            # a node whose target is this op is a call_function (the other kinds name their
            # target with a string), so the identity check stands for the op check too
            self.emit(f"if not isinstance({v}, Node) or {v}.target is not {t}: return None")
        if self.calls_bound:
            self.emit(f"if {' or '.join(f'{v} is {b}' for b in self.calls_bound)}: return None")
        self.bound[pn] = v
        self.calls_bound.append(v)
        pnode = self.s.by_node[pn]
        nargs, kwnames = pnode.call_shape
        a, kw = self.var("a"), self.var("kw")
        self.emit(f"{a} = {v}.{_ARGS}")
        self.emit(f"{kw} = {v}.{_KWARGS}")
        self.emit(f"if len({a}) != {nargs}: return FALLBACK")
        if kwnames:
            self.emit(f"if tuple({kw}) != {kwnames!r}: return FALLBACK")
        else:
            self.emit(f"if {kw}: return FALLBACK")
        for key, _name, pv in pnode.fast_literals:
            x = self.var("x")
            self.emit(f"{x} = {a}[{key}]" if isinstance(key, int) else f"{x} = {kw}[{key!r}]")
            self.literal(pv, x)
        for key, _name, pv in pnode.fast_nodes:
            if not isinstance(pv, torch.fx.Node):
                raise _Unsupported("a tuple or list holding pattern values")
            x = self.var("x")
            self.emit(f"{x} = {a}[{key}]" if isinstance(key, int) else f"{x} = {kw}[{key!r}]")
            self.node(pv, x)

    def literal(self, pv, x: str) -> None:
        # plainly_equal, then definitely_differs, specialised to the literal's type. A literal that
        # certainly differs does not stop the walk: `near` is set and the structure is still
        # checked, so NEAR means "these calls, other literals" (a near miss to report)
        k = self.const(pv)
        tp = type(pv)
        miss = [f"        if _miss({k}, {x}) is FALLBACK: return FALLBACK", "        near = True"]
        if isinstance(pv, enum.Enum):
            # members are singletons: another member of the same enum is another value
            t = self.const(tp)
            self.emit(f"if {x} is not {k}:")
            self.emit(f"    if type({x}) is {t}: near = True")
            self.emit(f"    elif _miss({k}, {x}) is FALLBACK: return FALLBACK")
            self.emit("    else: near = True")
        elif tp in _SIMPLE:
            t = self.const(tp)
            self.emit(f"if {x} is not {k}:")
            self.emit(f"    if type({x}) is not {t}: return FALLBACK")
            self.emit(f"    if {x} != {k}: near = True")
        elif tp is tuple and all(type(e) is int for e in pv):
            # a shape or permutation: compared as a whole, then its items' types (True == 1)
            kt = self.const(tuple(int for _ in pv))
            self.emit(f"if {x} is not {k}:")
            if -1 in pv:  # reshape's "any" entries: definitely_differs decides
                self.emit(f"    if type({x}) is not tuple or {x} != {k}:")
                for line in miss:
                    self.emit(line)
                self.emit(f"    elif tuple(map(type, {x})) != {kt}: return FALLBACK")
            else:
                self.emit(f"    if type({x}) is not tuple or tuple(map(type, {x})) != {kt}:")
                for line in miss:
                    self.emit(line)
                self.emit(f"    elif {x} != {k}: near = True  # ints of the same count, another value")
        else:
            self.emit(f"if {x} is not {k} and not _pe({k}, {x}):")
            for line in miss:
                self.emit(line[4:])

    def capture(self, pn: torch.fx.Node, v: str) -> None:
        # mirrors _Matcher._capture; a capture computed at run time is left to the interpretive
        # matcher, which turns it into a refusal
        lit = self.var("c")
        self.emit(f"if isinstance({v}, Node):")
        self.emit(f"    if 'literal' not in {v}.meta: return FALLBACK")
        self.emit(f"    {lit} = {v}.meta['literal']")
        self.emit(f"elif isinstance({v}, (list, tuple)): return FALLBACK")
        self.emit("else:")
        self.emit(f"    {lit} = {v}")
        self.emit(f"if isinstance({lit}, (list, tuple)): return FALLBACK")
        name = pn.target
        if name in self.captured:
            prev = self.captured[name]
            self.emit(f"if {lit} is not {prev} and not _pe({prev}, {lit}): return FALLBACK")
        else:
            self.captured[name] = lit

    def finish(self, name: str, loop: bool = False) -> tuple[Callable, str]:
        s = self.s
        calls = [self.bound[pn.node] for pn in s.calls]
        inputs = {n: self.bound[ph] for n, ph in s.input_placeholders}
        # the structural rules, decided here only when they certainly pass: each intermediate
        # has exactly as many users as the pattern gives it (all of them matched calls, since
        # each matched user was reached through it), no input is a matched call, every spec is
        # a TensorSpec
        clean = []
        for pn in s.calls:
            if pn.node is s.outputs[0]:
                continue
            inside = sum(1 for u in pn.node.users if u in s.by_node)
            clean.append(f"len({self.bound[pn.node]}.users) == {inside}")
        for v in dict.fromkeys(inputs.values()):
            clean += [f"{v} is not {c}" for c in calls]
        ts = self.const(TensorSpec)
        for v in dict.fromkeys([*inputs.values(), *calls]):
            clean.append(f"type({v}.meta.get('spec')) is {ts}")
        clean = " and ".join(clean) or "True"
        caps = ", ".join(f"{n!r}: {v}" for n, v in self.captured.items())
        caps = f"{{{caps}}}" if caps else self.const(NO_CAPTURES)
        ins = ", ".join(f"{n!r}: {v}" for n, v in inputs.items())
        calls_list = f"[{', '.join(calls)}]"
        if not loop:
            src = ("def match(g0):\n    near = False\n" + "\n".join(self.lines)
                   + f"\n    if near: return NEAR\n    return {calls_list}, {{{ins}}}, {caps}, {clean}\n")
        else:
            src = self._scan_source(calls, calls_list, ins, caps, clean)
        namespace = dict(self.consts)
        exec(compile(src, f"<ttfuse matcher {name}>", "exec"), namespace)
        return namespace["match"], src

    def _scan_source(self, calls: list, calls_list: str, ins: str, caps: str, clean: str) -> str:
        """The loop over anchors. A clean match becomes its Candidate here, with no further Python
        call (the pattern's own rules aside, which the caller runs); any other answer is recorded
        as (anchor, answer) for the general path."""
        self.consts.update(_Candidate=Candidate, _contiguous=contiguous, _UNKNOWN=UNKNOWN_LOCATION)
        body = [_as_loop_exit(line) for line in self.lines]
        if _in_graph_order(self.s):
            # tuples: cheaper to make and free than lists, and a clean match is never edited
            first, nodes, sort = calls[0], f"({', '.join(calls)},)", []
            contig = " and ".join(f"{a}.{_NEXT} is {b}" for a, b in zip(calls, calls[1:])) or "True"
        else:
            first, nodes, sort = "cl[0]", "cl", [f"cl = {calls_list}", "cl.sort()"]
            contig = "_contiguous(cl)"
        # absorbed: () as a clean match has no deallocate to take along
        make = (f"_Candidate(P, S, I, {caps}, {{{ins}}}, (g0,), {nodes}, (), {first}, g0, "
                f"{first}.meta.get('location', _UNKNOWN), {contig})")
        tail = (["if near:", f"    _out((g0, (NEAR, {calls_list}, {{{ins}}}, {caps})))", "    continue"]
                + [f"if {clean}:"] + [f"    {line}" for line in sort] + [f"    _out({make})", "else:",
                f"    _out((g0, ({calls_list}, {{{ins}}}, {caps}, False)))"])
        return ("def match(nodes, P, S, I):\n    out = []\n    _out = out.append\n    for g0 in nodes:\n"
                + "        near = False\n" + "\n".join("    " + line for line in body) + "\n"
                + "\n".join("        " + line for line in tail) + "\n    return out\n")


_EXIT = re.compile(r"return (None|FALLBACK|NEAR|_miss\(\w+, \w+\))(\s*#.*)?$")


def _as_loop_exit(line: str) -> str:
    """A line of the one-anchor matcher as a line of the scan loop: `return None` (no match)
    moves on to the next anchor; any other answer is recorded for this anchor first."""
    m = _EXIT.search(line)
    if m is None:
        return line
    answer = m.group(1)
    stmt = "continue" if answer == "None" else f"_out((g0, {answer})); continue"
    return line[:m.start()] + stmt
