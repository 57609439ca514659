"""Reference semantics (float64 torch) for ttnn ops that ship no golden function.

Each entry maps an op's fully qualified name to a function taking the op's arguments as ttnn
binds them (tensors as torch tensors) and returning what the op computes, shaped as ttnn's
logical output spec. Written from the ops' documented behaviour and their kernels' data flow.
"""
from __future__ import annotations

from typing import Callable

GOLDENS: dict[str, Callable] = {}


def golden(*names: str):
    def register(fn: Callable) -> Callable:
        for n in names:
            GOLDENS[n] = fn
        return fn

    return register
