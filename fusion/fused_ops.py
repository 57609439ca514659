"""Declare a fused-op entry point (a micro-op or any device function) so the pass can use it.

    @fused_op(golden=MyOp.golden, output_spec=lambda b: TensorSpec(...), dispatches=1)
    def my_fused(x, gamma, *, epsilon): ...

Afterwards calls of `my_fused` inside a replacement are traced as one node; `run_reference`
and the verifier run `golden` in its place; specs come from `output_spec(bound_args)` where
tensor arguments are replaced by their TensorSpecs; the report counts `dispatches` programs.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

from . import specs as specs_mod
from .errors import PatternError
from .trace import active_tracer, has_proxy, register_traceable


def fused_op(*, golden: Callable, output_spec: Callable[[dict], Any], dispatches: int = 1,
             data_movement: bool = False, name: str | None = None):
    if not callable(golden):
        raise PatternError("fused_op needs a callable golden (the CPU reference)")
    if not callable(output_spec):
        raise PatternError("fused_op needs output_spec(bound_args) -> TensorSpec")

    def register(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def entry(*args, **kwargs):
            # called on traced values, however it was reached (a module global, a closure, an
            # attribute), it records itself as one node
            tracer = active_tracer()
            if tracer is not None and (has_proxy(args) or has_proxy(kwargs)):
                return tracer.create_proxy("call_function", entry, args, kwargs)
            return fn(*args, **kwargs)

        declare(entry, golden=golden, output_spec=output_spec, dispatches=dispatches,
                data_movement=data_movement, name=name or f"{fn.__module__}.{fn.__name__}")
        return entry

    return register


def declare(fn: Callable, *, golden: Callable, output_spec: Callable[[dict], Any], dispatches: int = 1,
            data_movement: bool = False, name: str | None = None) -> Callable:
    """The non-decorator form, for entries defined elsewhere (e.g. in micro_ops/)."""
    fn.golden = golden
    fn.ttfuse_dispatches = dispatches
    fn.ttfuse_data_movement = data_movement
    fn.ttfuse_name = name or f"{fn.__module__}.{fn.__name__}"
    specs_mod.register_rule(fn, output_spec)
    register_traceable(fn)
    return fn
