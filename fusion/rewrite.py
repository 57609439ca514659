"""Splice verified replacements into the graph; recompile once at the end.

Each replacement is inserted just before the last node of its match (every input is defined
by then, and the matcher refused any output used earlier), or before its first node when an
in-place write between them changes an input (fusion/effects.py). Deallocates of matched
intermediates go with the match; a deallocate of a match input that sat inside the matched
span moves to just after the replacement, so the fused op still reads a live tensor.
"""
from __future__ import annotations

import warnings

import torch.fx

from . import ttnn_ops
from .graph_edits import edits_for
from .match import Candidate
from .reference import map_args
from .verify import Replacement


class Splicer:
    def __init__(self, gm: torch.fx.GraphModule):
        self.gm = gm
        self.graph = gm.graph
        self.edits = edits_for(gm.graph)
        self.renamed: dict = {}  # replaced output node -> its replacement
        self._n_attrs = 0

    def current(self, node: torch.fx.Node) -> torch.fx.Node:
        while node in self.renamed:
            node = self.renamed[node]
        return node

    def _copy_attr(self, rn: torch.fx.Node, owner) -> torch.fx.Node:
        value = getattr(owner, rn.target)
        while hasattr(self.gm, f"_fused{self._n_attrs}"):
            self._n_attrs += 1
        name = f"_fused{self._n_attrs}"
        self._n_attrs += 1
        setattr(self.gm, name, value)
        with warnings.catch_warnings():
            # FX only recognises modules/parameters/buffers as attribute owners; ttnn values are plain attributes
            warnings.simplefilter("ignore", UserWarning)
            node = self.graph.get_attr(name)
        node.meta.update({k: v for k, v in rn.meta.items() if k in ("literal", "spec", "tensor_constant", "value")})
        return node

    def _move_input_deallocates(self, c: Candidate, after: torch.fx.Node) -> None:
        """Deallocates of inputs that sat inside the matched span move after the fused op."""
        graph = self.graph
        for g in c.inputs.values():
            g = self.current(g)
            for u in list(g.users):
                if u.op == "call_function" and ttnn_ops.is_deallocate(u.target):
                    if c.first < u < c.last:
                        with graph.inserting_after(after):
                            moved = graph.call_function(u.target, u.args, u.kwargs)
                        moved.meta.update(u.meta)
                        self.edits.erase_all((u,))
                        after = moved

    def _in_place(self, c: Candidate, r: Replacement) -> list[torch.fx.Node] | None:
        """A one-call replacement whose output is the match's only output: retarget the last
        matched node and erase the others, instead of creating a node and rewiring its users
        (the common case, and the cheapest FX edit)."""
        if (len(r.calls) != 1 or len(c.outputs) != 1 or c.outputs[0] is not c.last or r.outputs[0] is not r.calls[0]
                or c.placement is not None):
            return None
        rn = r.calls[0]
        node = c.last
        plan = _plan_of(r)
        if plan is not None and not self.renamed:
            args, kwargs = plan(c.inputs)
        else:
            env = {n: self.current(c.inputs[n.target]) for n in r.placeholders}
            if r.constants:
                with self.graph.inserting_before(node):
                    for n in r.constants:
                        env[n] = self._copy_attr(n, r.root)
            args, kwargs = map_args(rn.args, env.__getitem__), map_args(rn.kwargs, env.__getitem__)
        if c.contiguous:  # no other node sits inside the span: nothing to move, one edit call
            self.edits.collapse(node, rn.target, args, kwargs, c.absorbed, c.nodes[-2::-1])
        else:
            self.edits.retarget(node, rn.target, args, kwargs)
            self._move_input_deallocates(c, node)
            self.edits.erase_all(c.absorbed)
            self.edits.erase_all(c.nodes[-2::-1])
        # the node keeps its spec: verification made the replacement's output spec equal to it;
        # its cached binding (match.node_bound) is keyed by the args object, which just changed
        meta = node.meta
        meta["fused_by"] = c.pattern.name
        meta["location"] = c.location
        if "writes" in meta or "buffer" in meta or "frees" in meta:
            # the fused op writes no buffer of the match's: its result is a fresh one
            for k in ("writes", "buffer", "frees"):
                meta.pop(k, None)
        return [node]

    def splice(self, c: Candidate, r: Replacement) -> list[torch.fx.Node]:
        in_place = self._in_place(c, r)
        if in_place is not None:
            return in_place
        graph = self.graph
        # at the last matched call; before the first when a write between them changes an input
        # (every input is defined before the first then: fusion/effects.py)
        where = c.nodes[0] if c.placement == "first" else c.nodes[-1]
        env: dict = {}
        created: list = []
        with graph.inserting_before(where):
            for rn in r.graph.nodes:
                if rn.op == "placeholder":
                    env[rn] = self.current(c.inputs[rn.target])
                elif rn.op == "get_attr":
                    env[rn] = self._copy_attr(rn, r.root)
                elif rn.op == "call_function":
                    new = graph.call_function(rn.target, map_args(rn.args, env.__getitem__), map_args(rn.kwargs, env.__getitem__))
                    new.meta["spec"] = rn.meta.get("spec")
                    new.meta["location"] = c.location
                    new.meta["source_fn"] = c.nodes[0].meta.get("source_fn")
                    new.meta["fused_by"] = c.pattern.name
                    env[rn] = new
                    created.append(new)
        new_outputs = [env[o] for o in r.outputs]
        for old, new in zip(c.outputs, new_outputs):
            old.replace_all_uses_with(new)
            self.renamed[old] = new
        if c.placement is None:  # placed first, the replacement reads its inputs before any of these
            self._move_input_deallocates(c, created[-1] if created else new_outputs[-1])
        self.edits.erase_all(c.absorbed)
        self.edits.erase_all(c.nodes[::-1])
        return created


def _plan_of(r: Replacement):
    """in_place_plan(r), generated once per replacement (replacements are shared by every match
    with the same verification outcome)."""
    plan = r.__dict__.get("_in_place_plan", False)
    if plan is False:
        plan = r.__dict__["_in_place_plan"] = in_place_plan(r)
    return plan


def in_place_plan(r: Replacement):
    """For a one-call replacement without constants whose call is its output: a function
    mapping the match's inputs (name -> graph node) to the call's (args, kwargs), generated so
    that a splice does no recursive argument mapping. None when the replacement has another
    form or its arguments hold more than inputs and plain literals (Splicer._in_place then maps
    them itself)."""
    if r.constants or len(r.calls) != 1 or r.outputs[0] is not r.calls[0]:
        return None
    rn = r.calls[0]
    names = {n: n.target for n in r.placeholders}
    consts: dict = {}

    def expr(v) -> str:
        if isinstance(v, torch.fx.Node):
            if v not in names:
                raise LookupError(v)
            return f"i[{names[v]!r}]"
        if type(v) in (tuple, list) and any(isinstance(x, torch.fx.Node) for x in v):
            inner = ", ".join(expr(x) for x in v) + ("," if type(v) is tuple and len(v) == 1 else "")
            return f"({inner})" if type(v) is tuple else f"[{inner}]"
        if isinstance(v, dict) and any(isinstance(x, torch.fx.Node) for x in v.values()):
            raise LookupError(v)
        name = f"K{len(consts)}"
        consts[name] = v
        return name

    try:
        args = ", ".join(expr(a) for a in rn.args) + ("," if len(rn.args) == 1 else "")
        kwargs = ", ".join(f"{k!r}: {expr(v)}" for k, v in rn.kwargs.items())
    except LookupError:
        return None
    src = f"def build(i):\n    return ({args}), {{{kwargs}}}\n"
    exec(compile(src, "<ttfuse splice>", "exec"), consts)
    return consts["build"]
