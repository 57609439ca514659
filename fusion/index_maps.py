"""Data-movement chains compared by the index map they compute.

A chain of reshape / permute / transpose / repeat / squeeze / unsqueeze / to_layout calls moves
values without arithmetic: output position p holds input value number map[p]. Running the chain on
the input's element numbers (exact in float64 up to 2**53) gives that map, and two chains are the
same computation exactly when their maps are equal, for every input and every position: a
proof, not a sample. tt-mlir's EraseInverseOps cancels such ops pairwise by rules; here a chain of
any spelling is replaced by the cheapest single op (or none) whose map is the chain's.
"""
from __future__ import annotations

import itertools
import math

import torch
import ttnn


def _shape(shape, numel: int) -> tuple:
    shape = [int(d) for d in shape]
    if -1 in shape:
        known = math.prod(d for d in shape if d != -1)
        shape[shape.index(-1)] = numel // known if known else 0
    return tuple(shape)


def step(t: torch.Tensor, op, args: tuple, kwargs: dict) -> torch.Tensor | None:
    """One movement op on an index tensor (None: not a movement op this module knows)."""
    a = args[0] if args else None
    if op is ttnn.reshape:
        shape = kwargs.get("shape", a)
        return t.reshape(_shape(tuple(shape), t.numel()))
    if op is ttnn.permute:
        return t.permute(tuple(int(d) for d in kwargs.get("dims", a)))
    if op is ttnn.transpose:
        d1 = kwargs.get("dim1", a)
        d2 = kwargs.get("dim2", args[1] if len(args) > 1 else None)
        return t.transpose(int(d1), int(d2))
    if op is ttnn.repeat:
        reps = tuple(int(d) for d in kwargs.get("repeat_dims", a))
        return t.repeat(reps)
    if op is ttnn.squeeze:
        d = kwargs.get("dim", a)
        return t.squeeze(int(d)) if d is not None else t.squeeze()
    if op is ttnn.unsqueeze:
        return t.unsqueeze(int(kwargs.get("dim", a)))
    if op is ttnn.to_layout:
        return t
    return None


def chain_map(in_shape, calls) -> torch.Tensor | None:
    """The index map of `calls` [(op, args after the tensor, kwargs)] on an input of `in_shape`."""
    t = torch.arange(math.prod(in_shape), dtype=torch.float64).reshape(tuple(in_shape))
    for op, args, kwargs in calls:
        t = step(t, op, args, kwargs)
        if t is None:
            return None
    return t


def simplest(in_shape, target: torch.Tensor) -> list:
    """The fewest calls [(op, args)] whose index map on `in_shape` is `target`: [] (the identity),
    one reshape, permute or repeat, or None when no single op computes it."""
    in_shape = tuple(int(d) for d in in_shape)
    base = torch.arange(math.prod(in_shape), dtype=torch.float64).reshape(in_shape)
    out_shape = tuple(target.shape)
    if target.numel() == base.numel():
        flat = torch.equal(target.reshape(-1), base.reshape(-1))
        if flat and out_shape == in_shape:
            return []
        if flat:
            return [(ttnn.reshape, (out_shape,))]
        if len(out_shape) == len(in_shape) and len(in_shape) <= 6:
            for perm in itertools.permutations(range(len(in_shape))):
                if tuple(in_shape[p] for p in perm) == out_shape and torch.equal(base.permute(perm), target):
                    return [(ttnn.permute, (perm,))]
    elif len(out_shape) == len(in_shape) and all(o % i == 0 for o, i in zip(out_shape, in_shape) if i):
        reps = tuple(o // i for o, i in zip(out_shape, in_shape))
        if torch.equal(base.repeat(reps), target):
            return [(ttnn.repeat, (reps,))]
    return None
