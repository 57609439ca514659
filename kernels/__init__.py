"""C++ kernel sources of the ttfuse micro-ops.

In a checkout this is the top-level ``kernels/`` folder; installed, the same folder is the package
``ttfuse_kernels`` (pyproject maps it). Either way :func:`kernel_path` gives the absolute path that a
``ttnn.KernelDescriptor`` needs, and :func:`include_dir` the folder to pass as a compiler include
path so kernels can ``#include "unified/kernel_op_api.hpp"``.
"""
from __future__ import annotations

from pathlib import Path

_ROOT = Path(__file__).resolve().parent


def include_dir() -> str:
    """Absolute path of the kernels folder (the include root for shared headers)."""
    return str(_ROOT)


def kernel_path(relative: str) -> str:
    """Absolute path of a kernel source, e.g. ``kernel_path("prepare_expert_weights/x.cpp")``.
    Raises FileNotFoundError naming the path when it does not exist (a missing file would
    otherwise surface only when tt-metal builds the program)."""
    path = (_ROOT / relative).resolve()
    if _ROOT not in path.parents:
        raise ValueError(f"kernel path {relative!r} leaves the kernels folder {_ROOT}")
    if not path.is_file():
        raise FileNotFoundError(f"kernel source {relative!r} not found under {_ROOT}")
    return str(path)


__all__ = ["include_dir", "kernel_path"]
