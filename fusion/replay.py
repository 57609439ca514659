"""Replaying a traced graph with direct op calls.

Every ttnn op is a `FastOperation`. Its Python `__call__` checks ttnn's run-time modes on every
call, and costs about 0.4 us on top of the C++ op (`op.function`). When those modes are the
defaults, that call is just `op.function(*args, **kwargs)`: fast runtime mode on, comparison
mode and logging off, no python-io graph recording, and nothing has replaced
`FastOperation.__call__`. `direct_forward(gm)` builds a forward that checks these conditions
once per model call and then calls each op's `function` itself. When they do not hold, it runs
the graph module's own forward. The graph module the user sees is left unchanged: its nodes keep
the real ttnn ops, for reports and reference runs.
"""
from __future__ import annotations

import functools
from typing import Callable

import torch.fx
from torch.fx._lazy_graph_module import _LazyGraphModule
from torch.fx.graph import CodeGen

import ttnn
import ttnn.decorators
import ttnn.graph

_FAST_OPERATION = ttnn.decorators.FastOperation
# a call given a command queue keeps the op: FastOperation enters `command_queue` around it
_QUEUE_KWARGS = ("queue_id", "cq_id")


def _pristine_call():
    """FastOperation.__call__ as ttnn's decorators module defines it. None if something else
    has replaced it (ttnn's allocation tracking wraps it at import): a direct call stands in
    for that one function only."""
    call = _FAST_OPERATION.__dict__.get("__call__")
    code = getattr(call, "__code__", None)
    if (code is None or code.co_qualname != "FastOperation.__call__"
            or code.co_filename != ttnn.decorators.__file__):
        return None
    return call


_PRISTINE_CALL = _pristine_call()

# The guard is inlined as the generated forward's first statement: calling a function for it
# would cost another Python frame per model call. The patched `__call__` check also sends calls
# made while ttfuse traces (its tracer patches FastOperation.__call__) through the real ops.
_GUARD = ("_replay_config.enable_fast_runtime_mode and not _replay_config.enable_comparison_mode"
          " and not _replay_config.enable_logging and not _replay_graph.is_python_io_recording_enabled()"
          " and _replay_op_type.__call__ is _replay_pristine"
          # the graph module edited and recompiled since: run its new forward
          " and _replay_src.cls.forward is _replay_src.forward")
_GUARD_GLOBALS = {
    "_replay_config": ttnn.CONFIG,
    "_replay_graph": ttnn.graph,
    "_replay_op_type": _FAST_OPERATION,
    "_replay_pristine": _PRISTINE_CALL,
}


class _Source:
    """The graph module a direct forward was built from, and its forward at that time. FX's
    code generation names torch objects by import path, so the forward reaches them here."""

    __slots__ = ("gm", "cls", "forward")

    def __init__(self, gm: torch.fx.GraphModule):
        self.gm, self.cls, self.forward = gm, type(gm), type(gm).forward


class _GuardedCodeGen(CodeGen):
    """FX's code generation, with the guard (and the fallback) before the graph's body."""

    def __init__(self, params: list[str], extra_globals: dict):
        super().__init__()
        self._params = ", ".join(params)
        self._extra_globals = extra_globals

    def gen_fn_def(self, free_vars, maybe_return_annotation):
        head = super().gen_fn_def(free_vars, maybe_return_annotation)
        return f"{head}\n    if not ({_GUARD}):\n        return _replay_src.gm.forward({self._params})"

    def additional_globals(self):
        return list(self._extra_globals.items())


def _direct(op):
    """op.function under the op's name. FX names a call's global after the target's __name__,
    which ttnn's nanobind functions lack; a partial carries the name and adds no Python frame."""
    direct = functools.partial(op.function)
    namespace, _, name = op.python_fully_qualified_name.rpartition(".")
    direct.__name__ = name
    direct.__module__ = f"ttfuse_direct.{namespace}"
    return direct


def direct_forward(gm: torch.fx.GraphModule) -> Callable:
    """A callable with gm.forward's signature and results. It calls ttnn ops' C++ functions
    directly when ttnn's run-time modes allow it (checked once per call), else runs gm.forward."""
    if isinstance(gm, _LazyGraphModule):
        gm.real_recompile()  # the forward the staleness check compares against
    params = [n.target for n in gm.graph.find_nodes(op="placeholder")]
    directs: dict = {}  # id(op) -> its direct callable, one per op
    swaps = {}
    for node in gm.graph.nodes:
        op = node.target
        if node.op == "call_function" and type(op) is _FAST_OPERATION and not any(k in node.kwargs for k in _QUEUE_KWARGS):
            if id(op) not in directs:
                directs[id(op)] = _direct(op)
            swaps[node] = directs[id(op)]
    if _PRISTINE_CALL is None or not swaps or any(p.startswith("*") for p in params):
        return _wrapped_forward(gm)
    # a copy of the graph, so the user's graph module keeps the real ops
    graph = torch.fx.Graph()
    env: dict = {}
    for node in gm.graph.nodes:
        new = env[node] = graph.node_copy(node, env.__getitem__)
        if node in swaps:
            new.target = swaps[node]
    extra = dict(_GUARD_GLOBALS, _replay_src=_Source(gm))
    graph.set_codegen(_GuardedCodeGen(params, extra))
    forward = torch.fx.GraphModule(gm, graph, class_name=f"Direct{type(gm).__name__}").forward
    # FX renames a global whose name is taken (a placeholder named `_replay_src`, ...); the
    # guard would then read the wrong object, so such a forward is not used
    names = forward.__globals__
    if any(names.get(k) is not v for k, v in extra.items()):
        return _wrapped_forward(gm)
    return forward


def _wrapped_forward(gm: torch.fx.GraphModule) -> Callable:
    def run(*args):
        # looked up per call: the current forward if the graph module is recompiled later
        return gm.forward(*args)

    return run
