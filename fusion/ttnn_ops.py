"""What the pass knows about ttnn ops: names, canonical argument binding, value kinds.

ttnn ops are `FastOperation` objects wrapping nanobind functions. Their parameter names come
from the nanobind signature (`__nb_signature__`), so a call written positionally and one
written with keywords bind to the same canonical {name: value} form, defaults filled in.
"""
from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass
from typing import Any, Callable

import ttnn

_FAST_OPERATION = type(ttnn.reshape)

# Namespaces whose ops the tracer records. Sub-namespaces are walked at trace time.
TRACED_NAMESPACES = ("ttnn", "ttnn.experimental", "ttnn.transformer", "ttnn.operations")

# ttnn value constructors that patterns may call with captured scalars, e.g.
# `ttnn.Shape((1, 1, H, 1))`. In a user graph they are evaluated eagerly into literals.
VALUE_CONSTRUCTORS = {ttnn.Shape: lambda args, kwargs: tuple(args[0])}


def is_ttnn_op(obj: Any) -> bool:
    return isinstance(obj, _FAST_OPERATION)


def op_name(target: Any) -> str:
    name = getattr(target, "python_fully_qualified_name", None)
    if name:
        return name
    ttfuse_name = getattr(target, "ttfuse_name", None)
    if ttfuse_name:
        return ttfuse_name
    mod = getattr(target, "__module__", "") or ""
    return f"{mod}.{getattr(target, '__qualname__', getattr(target, '__name__', repr(target)))}".lstrip(".")


def is_deallocate(target: Any) -> bool:
    return target is ttnn.deallocate


# Ops that move or relabel data without arithmetic: a chain of only these is checked
# bit-exactly by the verifier. (typecast rounds, so it is not here.)
DATA_MOVEMENT_OPS = frozenset(
    op
    for op in (
        getattr(ttnn, n, None)
        for n in (
            "reshape", "to_layout", "repeat", "permute", "transpose", "concat", "slice",
            "to_memory_config", "tilize", "untilize", "clone", "squeeze", "unsqueeze",
            "repeat_interleave", "pad", "interleaved_to_sharded", "sharded_to_interleaved",
            "reallocate", "move",
        )
    )
    if op is not None
)


def is_data_movement(target: Any) -> bool:
    if target in DATA_MOVEMENT_OPS:
        return True
    return bool(getattr(target, "ttfuse_data_movement", False))


def only_moves_data(nodes) -> bool:
    """Whether these call nodes compute nothing (data movement and frees only): their results are
    compared bit for bit."""
    return all(is_data_movement(n.target) or is_deallocate(n.target) for n in nodes)


@functools.lru_cache(maxsize=4096)
def dispatches(target: Any) -> int:
    """Device programs one call of `target` launches (deallocate and Python glue launch none)."""
    if is_deallocate(target) or not callable(target):
        return 0
    declared = getattr(target, "ttfuse_dispatches", None)
    if declared is not None:
        return int(declared)
    return 1 if is_ttnn_op(target) else 0


# ---------------------------------------------------------------------------
# Canonical binding
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Overload:
    positional: tuple[str, ...]  # may be passed positionally (in order)
    keyword_only: tuple[str, ...]
    defaults: dict  # name -> default value

    @property
    def names(self) -> tuple[str, ...]:
        return self.positional + self.keyword_only

    @functools.cached_property
    def defaults_all(self) -> dict:
        """Every parameter in order, at its default (None where it has none): the base of a binding."""
        return {n: self.defaults.get(n) for n in self.names}


_PARAM_RE = re.compile(r"^\s*(\*?)(\w+)\s*(?::[^=]*)?(?:=\s*\\(\d+))?\s*$")


def _split_params(sig: str) -> list[str]:
    inner = sig[sig.index("(") + 1 : sig.rindex(")")]
    parts, depth, cur = [], 0, []
    for ch in inner:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if cur:
        parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _parse_nb_signature(sig: str, defaults: tuple) -> Overload | None:
    positional, keyword_only, dflt = [], [], {}
    kw_only = False
    for param in _split_params(sig):
        if param == "*":
            kw_only = True
            continue
        if param.startswith("**") or param.startswith("*"):
            return None  # variadic overloads are not bound canonically
        m = _PARAM_RE.match(param.replace("\n", " "))
        if not m:
            return None
        name = m.group(2)
        if name == "self":
            continue
        if m.group(3) is not None:
            idx = int(m.group(3))
            dflt[name] = defaults[idx] if idx < len(defaults) else None
        (keyword_only if kw_only else positional).append(name)
    return Overload(tuple(positional), tuple(keyword_only), dflt)


@functools.lru_cache(maxsize=None)
def overloads(target: Any) -> tuple[Overload, ...]:
    """Overloads of a ttnn op from its nanobind signature; () when unknown."""
    fn = getattr(target, "function", None)
    if fn is None:
        declared = getattr(target, "ttfuse_signature", None)
        if declared:
            return (declared,)
        return _python_overload(target)
    for carrier in (type(fn).__call__, fn):
        sigs = getattr(carrier, "__nb_signature__", None)
        if sigs:
            out = []
            for entry in sigs:
                ov = _parse_nb_signature(entry[0], entry[2] if len(entry) > 2 else ())
                if ov is not None:
                    out.append(ov)
            return tuple(out)
    return ()


def bind(target: Any, args: tuple, kwargs: dict) -> dict | None:
    """Canonical {param: value} of a call, defaults filled; None when no overload fits.

    The first overload that accepts the positional count and keyword names wins, so a
    call and its keyword-spelled twin bind identically.
    """
    ov = _overload_for(target, len(args), tuple(kwargs))
    if ov is None:
        return None
    bound = dict(ov.defaults_all)
    bound.update(zip(ov.positional, args))
    bound.update(kwargs)
    return bound


@functools.lru_cache(maxsize=8192)
def _overload_for(target: Any, nargs: int, kwnames: tuple) -> "Overload | None":
    """The first overload a call shape fits (cached: binding is on the matcher's hot path)."""
    for ov in overloads(target):
        if nargs > len(ov.positional):
            continue
        names = set(ov.names)
        if any(k not in names for k in kwnames):
            continue
        given = set(ov.positional[:nargs])
        if any(k in given for k in kwnames):
            continue
        given.update(kwnames)
        if any(n not in given and n not in ov.defaults for n in ov.names):
            continue
        return ov
    return None


def _python_overload(target) -> tuple[Overload, ...]:
    import inspect

    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return ()
    pos, kw, dflt = [], [], {}
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            return ()
        (kw if p.kind is p.KEYWORD_ONLY else pos).append(p.name)
        if p.default is not p.empty:
            dflt[p.name] = p.default
    return (Overload(tuple(pos), tuple(kw), dflt),)


def is_literal_value(value: Any) -> bool:
    """A non-tensor ttnn value the tracer keeps as a literal constant."""
    if isinstance(value, (ttnn.Tensor,)):
        return False
    mod = type(value).__module__ or ""
    return mod.startswith("ttnn") and not isinstance(value, enum.Enum)


def normalize_literal(value: Any) -> Any:
    """Structural form for comparing literals: Shape -> tuple, list -> tuple."""
    if isinstance(value, ttnn.Shape):
        return tuple(int(v) for v in value)
    if isinstance(value, (list, tuple)):
        return tuple(normalize_literal(v) for v in value)
    return value
