"""Two data-movement ops in a row -> the one op (or none) that moves the data the same way.

    x = ttnn.to_layout(x, ttnn.ROW_MAJOR_LAYOUT)     x = ttnn.reshape(x, (1, 1, 32, 4096))
    x = ttnn.to_layout(x, ttnn.TILE_LAYOUT)          x = ttnn.reshape(x, (32, 4096))

Each pair of reshape / permute / repeat / to_layout is compared by its index map
(fusion/index_maps.py): a round trip becomes nothing, a permute and its inverse nothing, two
reshapes one. Rewrite rounds repeat, so a longer chain collapses pair by pair. A lone reshape to
the shape it already has is removed too. Removing a chain altogether is refused where its input
or output is written or freed later (the two would become one buffer). Lossless typecast pairs
(bfloat16 -> float32 -> bfloat16, ...) are removed as well. Checked bit-exactly.
"""
import functools

import ttnn

from fusion import AnyValue, Pattern, TensorSpec
from fusion.index_maps import chain_map, simplest

_MOVES = (ttnn.reshape, ttnn.permute, ttnn.repeat, ttnn.to_layout)


def _chain(op1, op2):
    def chain(x, a, b):
        return op2(op1(x, a), b)

    chain.__name__ = f"{op1.python_fully_qualified_name.split('.')[-1]}_then_{op2.python_fully_qualified_name.split('.')[-1]}"
    return chain


def _emit(x, calls, layout):
    """The simplest calls for the chain on x, then the chain's final layout when it differs."""
    for op, args in calls:
        x = op(x, *args)
    if x.layout != layout:
        x = ttnn.to_layout(x, layout)
    return x


def _frozen(v):
    if isinstance(v, (list, tuple, ttnn.Shape)):
        return tuple(_frozen(x) for x in v)
    return v


def _solve(x_spec_shape, x_layout, ops, values):
    """(simplest calls, final layout) of the chain `ops` with arguments `values`, or (None, reason);
    remembered per (shape, layout, chain): 61 layers ask once."""
    try:
        return _solved(tuple(int(d) for d in x_spec_shape), x_layout, tuple(ops), _frozen(tuple(values)))
    except TypeError:  # an unhashable argument: solve it uncached
        return _solved.__wrapped__(tuple(int(d) for d in x_spec_shape), x_layout, tuple(ops), tuple(values))


@functools.lru_cache(maxsize=4096)
def _solved(x_spec_shape, x_layout, ops, values):
    calls = [(op, (v,), {}) for op, v in zip(ops, values)]
    try:
        target = chain_map(tuple(x_spec_shape), calls)
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        return None, f"the chain's index map cannot be computed: {e}"
    best = simplest(tuple(x_spec_shape), target) if target is not None else None
    if best is None:
        return None, "no single reshape, permute or repeat moves the data as the chain does"
    layout = next((v for op, v in reversed(list(zip(ops, values))) if op is ttnn.to_layout), x_layout)
    if len(best) + (layout != x_layout) >= len(ops):
        return None, "the simplest equivalent is as long as the chain"
    return (best, layout), None


def _fused_for(*ops):
    def fused(x, a, b, c=None):
        (best, layout), why = _solve(x.shape, x.layout, ops, (a, b, c)[:len(ops)])
        if why:
            raise ValueError(why)
        return _emit(x, best, layout)

    return fused


def _check_for(*ops):
    def check(m):
        values = (m.a, m.b, m.c)[:len(ops)] if len(ops) == 3 else (m.a, m.b)
        return _solve(m.x.shape, m.x.layout, ops, values)[1]

    return check


def _arg_choices(op, shape):
    r = len(shape)
    return {ttnn.reshape: [tuple(shape), (1, shape[-2], shape[-1]), (shape[-2], shape[-1])],
            ttnn.permute: [tuple(range(r)), tuple(range(r - 2)) + (r - 1, r - 2)],
            ttnn.repeat: [(1,) * r, (1,) * (r - 2) + (2, 1)],
            ttnn.to_layout: [ttnn.ROW_MAJOR_LAYOUT, ttnn.TILE_LAYOUT]}[op]


def _example_for(op1, op2):
    """A valid instance: the first argument pair (from a few per op) whose chain collapses."""
    def example(rng):
        shape = (1, 1, rng.choice([32, 64]), rng.choice([32, 64]))
        for a in reversed(_arg_choices(op1, shape)):  # the non-trivial arguments first
            try:
                mid = tuple(chain_map(shape, [(op1, (a,), {})]).shape)
            except (RuntimeError, ValueError):
                continue
            for b in reversed(_arg_choices(op2, mid)):
                try:
                    (best, layout), why = _solve(shape, ttnn.TILE_LAYOUT, (op1, op2), (a, b))
                except (RuntimeError, ValueError, TypeError):
                    continue
                if why is None and not (op1 is op2 is ttnn.to_layout and a == b):
                    return {"x": TensorSpec(shape)}, {"a": a, "b": b}
        raise ValueError(f"no collapsing instance of {op1} -> {op2}")

    return example


def _pair(op1, op2):
    fused = _fused_for(op1, op2)
    return Pattern("movement_chain", _chain(op1, op2), lambda x, a, b: fused(x, a, b),
                   captures={"a": AnyValue(), "b": AnyValue()},
                   check=_check_for(op1, op2), exact=True, quiet=True,
                   example=_example_for(op1, op2),
                   becomes="one reshape / permute / repeat, or nothing")


def _sandwich(op):
    """An op done in ROW_MAJOR between two layout conversions (what real code does before a
    reshape or repeat): often the op alone, on TILE."""
    def chain(x, a, b, c):
        return ttnn.to_layout(op(ttnn.to_layout(x, a), b), c)

    chain.__name__ = f"to_layout_{op.python_fully_qualified_name.split('.')[-1]}_to_layout"
    fused = _fused_for(ttnn.to_layout, op, ttnn.to_layout)

    def example(rng):
        shape = (1, 1, rng.choice([32, 64]), rng.choice([32, 64]))
        b = {ttnn.reshape: (1, shape[2], shape[3]), ttnn.permute: (0, 1, 3, 2), ttnn.repeat: (1, 1, 2, 1)}[op]
        return {"x": TensorSpec(shape)}, {"a": ttnn.ROW_MAJOR_LAYOUT, "b": b, "c": ttnn.TILE_LAYOUT}

    return Pattern("movement_chain", chain, lambda x, a, b, c: fused(x, a, b, c),
                   captures={"a": AnyValue(), "b": AnyValue(), "c": AnyValue()},
                   check=_check_for(ttnn.to_layout, op, ttnn.to_layout), exact=True, quiet=True, example=example,
                   becomes="the op alone, in the input's layout")


def same_shape_reshape(x, shape):
    return ttnn.reshape(x, shape)


def _check_same_shape(m):
    if tuple(m.x.shape) != tuple(int(d) for d in m.output.shape):
        return "the reshape changes the shape"
    if m.output != m.x:
        return "the reshape changes the placement or layout"
    return None


_LOSSLESS = {(ttnn.bfloat16, ttnn.float32), (ttnn.uint16, ttnn.uint32), (ttnn.uint16, ttnn.int32)}


def typecast_round_trip(x, wide, back):
    return ttnn.typecast(ttnn.typecast(x, wide), back)


def typecast_removed(x, wide, back):
    return x


def _check_typecast(m):
    if m.back != m.x.dtype:
        return f"the second typecast gives {m.back}, not the input's {m.x.dtype}"
    if (m.x.dtype, m.wide) not in _LOSSLESS:
        return f"{m.x.dtype} -> {m.wide} is not lossless: the round trip rounds"
    if m.output != m.x:
        return "the round trip changes the placement"
    return None


PATTERNS = [
    *(_sandwich(op) for op in (ttnn.reshape, ttnn.permute, ttnn.repeat)),
    *(_pair(a, b) for a in _MOVES for b in _MOVES),
    Pattern("movement_chain", same_shape_reshape, lambda x, shape: x, captures={"shape": AnyValue()},
            check=_check_same_shape, exact=True, quiet=True, becomes="nothing (the reshape keeps the shape)",
            example=lambda rng: ({"x": TensorSpec((1, 1, 32, 64))}, {"shape": (1, 1, 32, 64)})),
    Pattern("movement_chain", typecast_round_trip, typecast_removed,
            captures={"wide": AnyValue(), "back": AnyValue()}, check=_check_typecast, exact=True, quiet=True,
            becomes="nothing (a lossless typecast round trip)",
            example=lambda rng: ({"x": TensorSpec((1, 1, 32, 64))}, {"wide": ttnn.float32, "back": ttnn.bfloat16})),
]
