"""The pattern language: a fusion is the unfused ttnn code, as a user writes it, plus captures,
a check and a replacement.

    def unfused(x, K, H):                       # tensor inputs + named captures
        x = ttnn.reshape(x, (-1, 1, 1, K))
        ...
        return ttnn.to_layout(x, ttnn.TILE_LAYOUT)

    def fused(x, K, H):
        return prepare_expert_weights(x, K, H)

    PATTERN = Pattern("prepare_expert_weights", unfused, fused,
                      captures={"K": IntIn(1, 32), "H": IntIn(1)},
                      check=lambda m: None if ... else "reason")

Every parameter of the unfused function that is not in `captures` is a tensor input. Every
literal in the unfused code must match exactly; a value that may vary is a capture, and each
capture has a constraint. `check(m)` reads captured values (`m.K`) and specs (`m.x.shape`,
`m.output.memory_config`) and returns None to accept or a reason string to refuse. Several
spellings (a list of functions with the same parameters) may share one replacement. All of it
is validated here, when the pattern is defined, not when a model is fused.
"""
from __future__ import annotations

import functools
import inspect
import operator
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch.fx

from . import normalize, ttnn_ops
from .compiled_matcher import compile_spelling
from .errors import PatternError
from .trace import SYMBOLIC, trace_function

# ---------------------------------------------------------------------------
# Capture constraints
# ---------------------------------------------------------------------------


class Constraint:
    """A predicate on a captured value that can say what it requires."""

    def __call__(self, value) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self, name: str) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class IntIn(Constraint):
    lo: int | None = None
    hi: int | None = None

    def __post_init__(self):
        for v in (self.lo, self.hi):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise PatternError(f"IntIn bounds must be ints or None, got {v!r}")
        if self.lo is not None and self.hi is not None and self.lo > self.hi:
            raise PatternError(f"IntIn({self.lo}, {self.hi}) accepts nothing: lo > hi")

    def __call__(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, int):
            return False
        return (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)

    def describe(self, name: str) -> str:
        lo = "" if self.lo is None else f"{self.lo} <= "
        hi = "" if self.hi is None else f" <= {self.hi}"
        return f"{lo}{name}{hi} (an int)"


@dataclass(frozen=True)
class FloatIn(Constraint):
    lo: float
    hi: float

    def __post_init__(self):
        for v in (self.lo, self.hi):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
                raise PatternError(f"FloatIn bounds must be numbers, got {v!r}")
        if self.lo > self.hi:
            raise PatternError(f"FloatIn({self.lo:g}, {self.hi:g}) accepts nothing: lo > hi")

    def __call__(self, value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.lo <= value <= self.hi

    def describe(self, name: str) -> str:
        return f"{self.lo:g} <= {name} <= {self.hi:g}"


@dataclass(frozen=True)
class OneOf(Constraint):
    values: tuple

    def __post_init__(self):
        if isinstance(self.values, (str, bytes)) or not isinstance(self.values, (tuple, list, frozenset, set)):
            raise PatternError(f"OneOf takes a tuple of the accepted values, got {self.values!r}")
        if not self.values:
            raise PatternError("OneOf(()) accepts nothing")

    def __call__(self, value) -> bool:
        return any(value == v and type(value) is type(v) for v in self.values)

    def describe(self, name: str) -> str:
        return f"{name} in {list(self.values)}"


@dataclass(frozen=True)
class AnyValue(Constraint):
    """Accept any constant (say why in a comment where it is used)."""

    def __call__(self, value) -> bool:
        return True

    def describe(self, name: str) -> str:
        return f"{name} any constant"


@dataclass(frozen=True)
class Predicate(Constraint):
    fn: Callable[[Any], bool]
    text: str

    def __call__(self, value) -> bool:
        return bool(self.fn(value))

    def describe(self, name: str) -> str:
        return self.text.format(name=name)


# ---------------------------------------------------------------------------
# Compiled pattern graphs
# ---------------------------------------------------------------------------


def _has_node(v) -> bool:
    if isinstance(v, torch.fx.Node):
        return True
    if isinstance(v, (list, tuple)):
        return any(_has_node(x) for x in v)
    return False


def _positional_names(target, nargs: int, kwnames: tuple):
    ov = ttnn_ops._overload_for(target, nargs, kwnames) if hasattr(target, "function") or ttnn_ops.overloads(target) else None
    return ov.positional[:nargs] if ov is not None else None


@dataclass
class PNode:
    """A call in a pattern: target plus its canonically bound arguments."""

    node: torch.fx.Node
    target: Any
    bound: dict  # param -> value (pattern Nodes inside)
    literal_params: tuple = ()  # (param, value) with no pattern node inside: checked first
    node_params: tuple = ()

    def __post_init__(self):
        self.literal_params = tuple((k, v) for k, v in self.bound.items() if not _has_node(v))
        self.node_params = tuple((k, v) for k, v in self.bound.items() if _has_node(v))
        # fast path: a graph call written with the same argument layout as the pattern's call
        # (same positional count, same keywords) compares position by position; the parameters
        # neither call wrote are defaults on both sides
        args, kwargs = self.node.args, self.node.kwargs
        self.call_shape = (len(args), tuple(kwargs))
        names = _positional_names(self.target, len(args), tuple(kwargs))
        given = [(i, names[i] if names else None, v) for i, v in enumerate(args)] + [(k, k, v) for k, v in kwargs.items()]
        self.fast_literals = tuple(g for g in given if not _has_node(g[2]))
        self.fast_nodes = tuple(g for g in given if _has_node(g[2]))
        # the parameters the pattern's call writes: a placement keyword it leaves out matches any value
        self.written = frozenset(g[1] for g in given if g[1] is not None)


@dataclass(eq=False)  # identity: a spelling keys the verifier's cache (and its key keeps it alive)
class Spelling:
    name: str
    fn: Callable
    graph: torch.fx.Graph
    root: Any
    calls: list[PNode]  # topological order
    by_node: dict
    outputs: list[torch.fx.Node]
    tensor_inputs: list[str]
    captures: list[str]
    input_placeholders: tuple = ()  # (name, placeholder) of each tensor input
    tensor_input_names: tuple = ()  # the names of input_placeholders
    compiled: Any = None  # a generated matcher (fusion.compiled_matcher), None when it does not apply
    # which equivalent spelling of the written one this is (fusion/normalize.py; all 0: as written)
    choices: tuple = ()
    guard: Any = None  # guard(matched nodes) -> reason or None, for spellings with hidden constants
    carry: bool = False  # the pattern's carry: meaning keywords it leaves out pass through too

    @property
    def anchor(self) -> PNode:
        return self.by_node[self.outputs[0]]

    @property
    def size(self) -> int:
        return len(self.calls)

    @functools.cached_property
    def real_calls(self) -> int:
        """Calls of ops (value constructors such as ttnn.Shape aside)."""
        return sum(1 for pn in self.calls if not any(pn.target is c for c in ttnn_ops.VALUE_CONSTRUCTORS))


def bind_call(target, args, kwargs) -> dict | None:
    if target is operator.getitem or target is getattr:
        return {"a": args[0], "b": args[1]}
    if any(target is c for c in ttnn_ops.VALUE_CONSTRUCTORS):
        return {"value": args[0]}
    return ttnn_ops.bind(target, args, kwargs)


def _uses(value, out: set):
    if isinstance(value, torch.fx.Node):
        out.add(value)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _uses(v, out)
    elif isinstance(value, dict):
        for v in value.values():
            _uses(v, out)


def _compile_spellings(pattern_name: str, fn: Callable, params: list[str], captures: set[str],
                       carry: bool = False) -> list[Spelling]:
    """The written spelling and every equivalent one (fusion/normalize.py), each compiled. A carry
    pattern is not re-spelled: its replacement re-emits the user's op as written."""
    where = f"pattern {pattern_name!r}, spelling {fn.__name__}"
    tensor_params = {p: None for p in params if p not in captures}
    scalar_params = {p: SYMBOLIC for p in params if p in captures}

    def run(hook):
        return trace_function(fn, tensor_params, scalar_params, call_hook=hook)

    try:
        combos = [()] if carry else normalize.spellings(run)
    except Exception as e:  # a pattern that does not trace is malformed
        raise PatternError(f"{where}: cannot be traced: {type(e).__name__}: {e}") from e
    if not combos:
        raise PatternError(f"{where}: has more than {normalize.MAX_SPELLINGS} equivalent spellings; "
                           f"split it into smaller patterns")
    out, seen = [], set()
    for choices in combos:
        graph, root = run(normalize.hook(choices))
        key = normalize.shape_key(graph)
        if key in seen:
            continue
        seen.add(key)
        out.append(_compile_spelling(where, fn, graph, root, params, captures, choices, carry))
    return out


def _compile_spelling(where: str, fn: Callable, graph, root, params: list[str], captures: set[str],
                      choices: tuple = (), carry: bool = False) -> Spelling:
    calls, by_node, outputs = [], {}, []
    for n in graph.nodes:
        if n.op == "call_function":
            if ttnn_ops.is_deallocate(n.target):
                continue  # deallocates of intermediates are absorbed by the matcher
            bound = bind_call(n.target, n.args, n.kwargs)
            if bound is None:
                raise PatternError(f"{where}: call of {ttnn_ops.op_name(n.target)} does not fit its signature")
            pn = PNode(n, n.target, bound)
            calls.append(pn)
            by_node[n] = pn
        elif n.op == "output":
            res = n.args[0]
            outs = list(res) if isinstance(res, (tuple, list)) else [res]
            for o in outs:
                if not isinstance(o, torch.fx.Node) or o not in by_node:
                    raise PatternError(f"{where}: must return the result(s) of ttnn op calls, got {o!r}")
            outputs = outs
    real_calls = [c for c in calls if not any(c.target is k for k in ttnn_ops.VALUE_CONSTRUCTORS)]
    if not real_calls:
        raise PatternError(f"{where}: matches no ttnn op")
    used: set = set()
    for c in calls:
        _uses(c.bound, used)
    names_used = {n.target for n in used if n.op == "placeholder"}
    for p in params:
        if p not in names_used:
            kind = "capture" if p in captures else "tensor input"
            raise PatternError(f"{where}: {kind} {p!r} is never used by the unfused code")
    anchor_target = by_node[outputs[0]].target
    if any(anchor_target is k for k in ttnn_ops.VALUE_CONSTRUCTORS):
        raise PatternError(f"{where}: output must be a ttnn op")
    spelling = Spelling(
        name=fn.__name__, fn=normalize.spelled(fn, choices), graph=graph, root=root, calls=calls, by_node=by_node,
        outputs=outputs, choices=tuple(choices), guard=normalize.guard(graph), carry=carry,
        tensor_inputs=[p for p in params if p not in captures], captures=[p for p in params if p in captures],
        input_placeholders=tuple((n.target, n) for n in graph.nodes
                                 if n.op == "placeholder" and n.meta.get("role") == "tensor"),
    )
    spelling.tensor_input_names = tuple(name for name, _ph in spelling.input_placeholders)
    try:
        spelling.compiled = compile_spelling(spelling)
    except KeyError:
        # a pattern graph the generator does not cover (calls not all reached back from the
        # output, e.g. an in-place write through a view): the general matcher takes it
        spelling.compiled = None
    return spelling


# ---------------------------------------------------------------------------
# Pattern
# ---------------------------------------------------------------------------


class Pattern:
    """One fusion: unfused spellings -> replacement, with captures and a check."""

    def __init__(
        self,
        name: str,
        match: Callable | Sequence[Callable],
        replacement: Callable,
        *,
        captures: dict[str, Constraint | Callable] | None = None,
        check: Callable[["MatchView"], str | None] | None = None,
        exact: bool | None = None,
        description: str = "",
        becomes: str = "",
        example: Callable | None = None,
        carry: bool = False,
        quiet: bool = False,
    ):
        if not isinstance(name, str) or not name:
            raise PatternError("a pattern needs a non-empty name")
        self.name = name
        self.description = description or (inspect.getdoc(replacement) or "").split("\n")[0]
        self.becomes = becomes
        fns = list(match) if isinstance(match, (list, tuple)) else [match]
        if not fns or not all(callable(f) for f in fns):
            raise PatternError(f"pattern {name!r}: `match` must be a function or a list of functions")
        if not callable(replacement):
            raise PatternError(f"pattern {name!r}: `replacement` must be a function")
        captures = dict(captures or {})
        params = _params(fns[0], name)
        for f in fns[1:]:
            if _params(f, name) != params:
                raise PatternError(
                    f"pattern {name!r}: spelling {f.__name__} has parameters {_params(f, name)}, "
                    f"but {fns[0].__name__} has {params}; spellings of one pattern share their parameters")
        rparams = _params(replacement, name)
        if rparams != params:
            raise PatternError(
                f"pattern {name!r}: replacement {replacement.__name__}{tuple(rparams)} must take the same "
                f"parameters as the unfused code {tuple(params)}")
        for cname, constraint in captures.items():
            if cname not in params:
                raise PatternError(
                    f"pattern {name!r}: constraint on unknown name {cname!r}; the unfused code's parameters are {params}")
            if not callable(constraint):
                raise PatternError(f"pattern {name!r}: constraint for {cname!r} must be callable")
        if check is not None and not callable(check):
            raise PatternError(f"pattern {name!r}: check must be callable")
        if example is not None and not callable(example):
            raise PatternError(f"pattern {name!r}: example must be callable: example(rng) -> (input specs, captures)")
        # example(rng) -> ({tensor input: TensorSpec}, {capture: value}): a valid instance, used by
        # the fuzzer and fusion.testing; without it they search shapes at random
        self.example = example
        self.params = params
        self.captures = captures
        self.check = check
        self.exact = exact
        self.replacement = replacement
        # carry=True: the replacement re-emits the matched ops, so every keyword of theirs the
        # pattern leaves out (meanings too, e.g. a producer's activation) passes through to the
        # replacement call of the same op; without a same op to take it, the rewrite is refused
        self.carry = carry
        # quiet=True: a pattern that matches ordinary code (every lone reshape, every pair of
        # movement ops) reports only the refusals of matches that passed its own rules (memory
        # effects, verification): that a reshape changes a shape is not news
        self.quiet = quiet
        self.spellings = [s for f in fns for s in _compile_spellings(name, f, params, set(captures), carry)]
        self.tensor_inputs = [p for p in params if p not in captures]

    def __repr__(self) -> str:
        return f"Pattern({self.name!r}, spellings={[s.name for s in self.spellings]})"

    def constraint_failure(self, cname: str, value) -> str | None:
        c = self.captures.get(cname)
        if c is None:
            return None
        ok = c(value)
        if ok:
            return None
        text = c.describe(cname) if isinstance(c, Constraint) else f"constraint {getattr(c, '__name__', 'check')}"
        return f"capture {cname}={value!r} violates {text}"

    def unfused_source(self) -> str:
        return "\n\n".join(inspect.getsource(s.fn) for s in self.spellings)


def _params(fn: Callable, pname: str) -> list[str]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as e:
        raise PatternError(f"pattern {pname!r}: cannot read the signature of {fn!r}: {e}")
    out = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise PatternError(f"pattern {pname!r}: {fn.__name__} may not take *args/**kwargs")
        out.append(p.name)
    return out


class MatchView:
    """What a pattern's `check` sees: captures by name, tensor inputs as specs, `output` spec, and
    `placement`: {(op name, keyword): value} of the placement keywords the matched calls pass
    beyond the pattern's (fusion/keywords.py), e.g. m.placement.get(("ttnn.rms_norm", "program_config"))."""

    def __init__(self, captures: dict, input_specs: dict, output_specs: list, placement: dict | None = None):
        self._captures = captures
        self._inputs = input_specs
        self.outputs = output_specs
        self.output = output_specs[0] if output_specs else None
        self.placement = placement or {}

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._captures:
            return self._captures[name]
        if name in self._inputs:
            return self._inputs[name]
        raise AttributeError(f"pattern has no capture or input named {name!r}")
