"""Equivalent spellings of a pattern, so that one written spelling matches every way real code
writes the same computation.

A pattern is written once, in the canonical form; tracing it here under a call hook records,
for every call, each equivalent spelling of it:

* a commutative op (add, multiply, maximum, ...) with two tensor operands, in either order;
* square(x) = pow(x, 2) = multiply(x, x);
* rsqrt(y) = reciprocal(sqrt(y));
* mean(x, dim, keepdim) = sum(x, dim, keepdim) * (1/N) = sum(x, dim, keepdim) / N, where N is the
  number of reduced values: a guard checks the constant against the matched sum's input spec.

The Python operators need no rule: the tracer records `a + b`, `2 * x` and `x / n` as the ttnn
calls ttnn.Tensor's operators make. Each combination of choices is one spelling of the pattern
(same name as the written one, its `choices` say which), compiled like a written spelling, so
the generated matcher covers them all; the fuzzer draws them through the same hook. Whatever
spelling matched, verification compares the matched graph calls themselves with the
replacement, so a rule here can widen what matches, never what is accepted.
"""
from __future__ import annotations

import functools
import itertools
from typing import Any, Callable

import torch.fx
import ttnn

from . import ttnn_ops

COMMUTATIVE = frozenset(id(op) for op in (
    getattr(ttnn, n, None) for n in ("add", "multiply", "maximum", "minimum", "eq", "ne", "logical_and", "logical_or",
                                     "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor", "squared_difference"))
    if op is not None)

# captures the rules add to a pattern graph (a constant the graph computes from a shape):
# bound by the matcher like any capture, checked by the spelling's guard, never given to the
# replacement
HIDDEN = "_normal_"

def visible(captures: dict) -> dict:
    """The captures a replacement and a report see (the hidden constants left out)."""
    return {k: v for k, v in captures.items() if not k.startswith(HIDDEN)}


MAX_SPELLINGS = 256  # combinations of one written spelling; more says the pattern is too loose


def _is_tensor(v) -> bool:
    """A traced tensor (not a capture, a literal or a Python value computed from shapes)."""
    if not isinstance(v, torch.fx.Proxy):
        return False
    meta = v.node.meta
    return meta.get("role") != "capture" and not meta.get("python_value") and "literal" not in meta


def _spec(v):
    return v.node.meta.get("spec") if isinstance(v, torch.fx.Proxy) else None


def _alternatives(op, args: tuple, kwargs: dict) -> list[Callable]:
    """Builders of the equivalent spellings of one call (the call itself first); each takes the
    speller and returns (op, args, kwargs) for the recorded call."""
    same = [lambda sp: (op, args, kwargs)]
    if id(op) in COMMUTATIVE and len(args) >= 2 and _is_tensor(args[0]) and _is_tensor(args[1]) \
            and args[0] is not args[1] and not any(k.startswith("input_tensor_") for k in kwargs):
        return same + [lambda sp: (op, (args[1], args[0], *args[2:]), kwargs)]
    x = args[0] if args else None
    if not _is_tensor(x):
        return same
    squares = {"square": lambda sp: (ttnn.square, (x,), kwargs),
               "pow": lambda sp: (ttnn.pow, (x, 2), kwargs),
               "multiply": lambda sp: (ttnn.multiply, (x, x), kwargs)}
    if op is ttnn.square and len(args) == 1:
        return [squares["square"], squares["pow"], squares["multiply"]]
    if op is ttnn.pow and len(args) == 2 and args[1] in (2, 2.0) and type(args[1]) is not bool:
        return [squares["pow"], squares["square"], squares["multiply"]]
    if op is ttnn.multiply and len(args) == 2 and args[1] is x:
        return [squares["multiply"], squares["square"], squares["pow"]]
    if op is ttnn.rsqrt and len(args) == 1 and not kwargs.get("fast_and_approximate_mode"):
        plain = {k: v for k, v in kwargs.items() if k != "fast_and_approximate_mode"}
        return same + [lambda sp: (ttnn.reciprocal, (ttnn.sqrt(x),), plain)]
    if op is ttnn.mean and len(args) == 1 and not kwargs.keys() - {"dim", "keepdim", "memory_config"}:
        dim, keepdim = kwargs.get("dim"), kwargs.get("keepdim", False)
        if dim is not None:
            rest = {k: v for k, v in kwargs.items() if k == "memory_config"}

            def scaled(sp, divide: bool):
                n = sp.reduced_count(x, dim)
                if n is False:  # shapes known, the dim not among them: as written
                    return op, args, kwargs
                total = ttnn.sum(x, dim=dim, keepdim=keepdim)  # recorded as is (the speller is inside a rule)
                const = sp.hidden_constant(n if divide else (None if n is None else 1.0 / n))
                return (ttnn.divide if divide else ttnn.multiply), (total, const), rest

            return same + [lambda sp: scaled(sp, False), lambda sp: scaled(sp, True)]
    return same


class Speller:
    """The trace hook recording one combination of spellings (`choices[i]` for the i-th call of
    the written spelling; missing entries: as written). `sites` counts each call's spellings."""

    def __init__(self, choices: tuple = (), inner=None):
        self.choices = choices
        self.inner = inner
        self.sites: list[int] = []
        self.depth = 0  # inside a rule: the calls it makes are recorded as they are
        self.hidden = 0
        self.tracer = None

    def __call__(self, op, args, kwargs):
        if self.depth:
            return self._pass(op, args, kwargs)
        for v in (*args, *kwargs.values()):
            if isinstance(v, torch.fx.Proxy):
                self.tracer = v.tracer
                break
        alts = _alternatives(op, args, kwargs)
        i = len(self.sites)
        self.sites.append(len(alts))
        choice = self.choices[i] if i < len(self.choices) else 0
        if choice and choice < len(alts):  # (a program may give one value as both operands: one spelling)
            self.depth += 1
            try:
                op, args, kwargs = alts[choice](self)
            finally:
                self.depth -= 1
        return self._pass(op, args, kwargs)

    def _pass(self, op, args, kwargs):
        return self.inner(op, args, kwargs) if self.inner is not None else (op, args, kwargs)

    def reduced_count(self, x, dim):
        """The values a reduction over `dim` of x sums: None when x has no spec (a pattern graph),
        False when the dim is not one of x's."""
        spec = _spec(x)
        if spec is None or not hasattr(spec, "shape"):
            return None
        dims = dim if isinstance(dim, (tuple, list)) else (dim,)
        n = 1
        try:
            for d in dims:
                n *= int(spec.shape[d])
        except (IndexError, TypeError):
            return False
        return n

    def hidden_constant(self, value):
        """The constant as a literal when the shapes are known (a program), else a hidden capture
        (a pattern graph)."""
        if value is not None:
            return value
        p = self.tracer.create_proxy("placeholder", f"{HIDDEN}{self.hidden}", (), {})
        self.hidden += 1
        p.node.meta["role"] = "capture"
        return p


def hook(choices: tuple, inner=None):
    """A trace call hook spelling calls by `choices` (None when all are as written)."""
    if not any(choices):
        return inner
    return Speller(tuple(choices), inner)


def spellings(trace: Callable[[Any], Any]) -> list[tuple]:
    """Every combination of choices of a written spelling: `trace(hook)` traces it under a hook."""
    counter = Speller()
    trace(counter)
    combos = list(itertools.product(*(range(k) for k in counter.sites)))
    if len(combos) > MAX_SPELLINGS:
        return []
    return combos


def shape_key(graph: torch.fx.Graph) -> tuple:
    """Two spellings that record the same graph are one (x * x in either order)."""
    index = {}
    out = []
    for i, n in enumerate(graph.nodes):
        index[n] = i

        def enc(v):
            if isinstance(v, torch.fx.Node):
                return ("n", index[v])
            if isinstance(v, (list, tuple)):
                return tuple(enc(x) for x in v)
            return ("v", repr(v))

        out.append((n.op, ttnn_ops.op_name(n.target) if callable(n.target) else n.target, enc(n.args),
                    tuple(sorted((k, enc(v)) for k, v in n.kwargs.items()))))
    return tuple(out)


def guard(graph: torch.fx.Graph) -> Callable | None:
    """For a spelling with hidden constants: the check that each `sum -> multiply/divide by a
    constant` in a match scales by the sum's reduced count (what mean computes), or None."""
    if not any(n.op == "placeholder" and str(n.target).startswith(HIDDEN) for n in graph.nodes):
        return None

    def check(nodes) -> str | None:
        for g in nodes:
            if g.target is not ttnn.sum:
                continue
            src = g.args[0].meta.get("spec") if g.args and isinstance(g.args[0], torch.fx.Node) else None
            out = g.meta.get("spec")
            if not hasattr(src, "numel") or not hasattr(out, "numel") or not out.numel:
                return "the reduced count of a sum is unknown"
            n = src.numel // out.numel
            for u in g.users:
                if u not in nodes or u.target not in (ttnn.multiply, ttnn.divide) or len(u.args) < 2:
                    continue
                from .match import literal_of

                ok, c = literal_of(u.args[1])
                if not ok or isinstance(c, bool) or not isinstance(c, (int, float)):
                    return "the sum is scaled by a value computed at run time"
                want = n if u.target is ttnn.divide else 1.0 / n
                if abs(c - want) > 1e-6 * abs(want):
                    return f"the sum of {n} values is scaled by {c:g}, not {want:g}: that is not their mean"
        return None

    return check


def spelled(fn: Callable, choices: tuple) -> Callable:
    """`fn` recording its calls spelled by `choices` when called inside a trace (the fuzzer's and
    fusion.testing's programs draw a pattern's every spelling through this)."""
    if not any(choices):
        return fn

    @functools.wraps(fn)
    def run(*args, **kwargs):
        tracer = next((v.tracer for v in (*args, *kwargs.values()) if isinstance(v, torch.fx.Proxy)), None)
        if tracer is None:
            return fn(*args, **kwargs)
        saved = tracer.call_hook
        tracer.call_hook = Speller(choices, saved)
        try:
            return fn(*args, **kwargs)
        finally:
            tracer.call_hook = saved

    return run
