"""The two FX edits the splicer makes per match: retarget a node, erase nodes.

FX's public edits do more than these need. `Node.__setattr__` re-indexes the node in FX's
find_nodes table on every attribute write, after a `hasattr` that runs the attribute's property,
and `Graph.erase_node` writes `_erased` through that same `__setattr__`. On a 50k-node graph the
edits are over a third of the pass. `DirectEdits` makes the same changes with the same FX
primitives (the table's dicts, `_update_args_kwargs`, `_remove_from_list`) and nothing else.

It relies on FX internals, so it is used only when both hold:
  * a self-test, run once, finds that it leaves a scratch graph in exactly the state FX's
    public edits leave it in (nodes, arguments, users and their order, the find_nodes table
    and its order, erased nodes), and
  * the graph is plain: FX's own Graph and Node methods, a find_nodes table, and no erase
    hooks on its module.
Otherwise `PublicEdits` runs, which is FX's public API.
"""
from __future__ import annotations

from typing import Any

import torch.fx
from torch.fx.node import map_arg

try:  # what map_arg calls after checking its function: the self-test compares the results
    from torch._C import _fx_map_arg
except ImportError:  # pragma: no cover - an older torch
    _fx_map_arg = map_arg

_GRAPH_ERASE = torch.fx.Graph.erase_node
_NODE_SETATTR = torch.fx.Node.__setattr__
_set = object.__setattr__


class PublicEdits:
    def __init__(self, graph: torch.fx.Graph):
        self.graph = graph

    def retarget(self, node: torch.fx.Node, target: Any, args: tuple, kwargs: dict) -> None:
        node.target = target
        node.args = args
        if kwargs or node.kwargs:  # each assignment re-indexes the node: skip the no-op one
            node.kwargs = kwargs

    def erase_all(self, nodes) -> None:
        for node in nodes:
            self.graph.erase_node(node)

    def collapse(self, node: torch.fx.Node, target: Any, args: tuple, kwargs: dict, *erased) -> None:
        """A match spliced in place: its last node retargeted, then the nodes in `erased` (each
        a sequence, in order) erased."""
        self.retarget(node, target, args, kwargs)
        for nodes in erased:
            self.erase_all(nodes)


def _to_none(_n):
    return None


class DirectEdits:
    """FX's public edits without the re-checks and re-indexing that cannot change anything here
    (the table update FX does on an args write moves the node to the end of its table entry:
    kept, so find_nodes(sort=False) sees the same order as after the public edits)."""

    def __init__(self, graph: torch.fx.Graph):
        self.graph = graph
        self.table = graph._find_nodes_lookup_table.table
        # id(target) -> (target, its call_function entry of the table): a ttnn op hashes in
        # Python, and every edit looks up its entry
        self._calls: dict = {}

    def _entry(self, node: torch.fx.Node, target: Any) -> dict:
        if node.op != "call_function":
            return self.table[(node.op, None)]
        hit = self._calls.get(id(target))
        if hit is not None and hit[0] is target:
            return hit[1]
        entry = self.table[("call_function", target)]  # FX's table creates a missing entry
        self._calls[id(target)] = (target, entry)
        return entry

    def retarget(self, node: torch.fx.Node, target: Any, args: tuple, kwargs: dict) -> None:
        del self._entry(node, node.target)[node]
        _set(node, "target", target)
        self._entry(node, target)[node] = None
        node._update_args_kwargs(args, kwargs if (kwargs or node._kwargs) else node._kwargs)

    collapse = PublicEdits.collapse

    def erase_all(self, nodes) -> None:
        """Erase these nodes, in this order (each must have no users left by then)."""
        graph = self.graph
        for node in nodes:
            if node.users:
                raise RuntimeError(f"Tried to erase Node {node} but it still had {len(node.users)} users in the graph")
            if node.graph is not graph or node._erased:
                raise RuntimeError(f"cannot erase {node}: erased already or in another graph")
            del self._entry(node, node.target)[node]
            node._remove_from_list()
            _set(node, "_erased", True)
            graph._len -= 1
            node._update_args_kwargs(_fx_map_arg(node._args, _to_none), _fx_map_arg(node._kwargs, _to_none))


def _plain(graph: torch.fx.Graph) -> bool:
    m = graph.owning_module
    return (type(graph).erase_node is _GRAPH_ERASE and torch.fx.Node.__setattr__ is _NODE_SETATTR
            and hasattr(graph, "_find_nodes_lookup_table") and hasattr(graph, "_len")
            and not getattr(m, "_erase_node_hooks", None))


def edits_for(graph: torch.fx.Graph) -> PublicEdits | DirectEdits:
    """The direct edits when they are known to equal FX's public ones on this graph, else those."""
    if _direct_edits_agree() and _plain(graph):
        return DirectEdits(graph)
    return PublicEdits(graph)


_AGREE: bool | None = None


def _direct_edits_agree() -> bool:
    global _AGREE
    if _AGREE is None:
        try:
            _AGREE = _state_after(PublicEdits) == _state_after(DirectEdits)
        except Exception:  # FX internals moved: the public edits it is
            _AGREE = False
    return _AGREE


def _state_after(edits_class) -> tuple:
    """A scratch graph after the splicer's kinds of edit, as plain data."""
    gm = torch.fx.GraphModule(torch.nn.Module(), torch.fx.Graph())
    g = gm.graph
    x = g.placeholder("x")
    a = g.call_function(max, (x, 1))
    b = g.call_function(min, (a, (2, 3)), {"k": a})
    c = g.call_function(max, (b, 2))
    d0 = g.call_function(abs, (x,))
    d = g.call_function(abs, (x,))
    e = g.call_function(max, (c, d), {"k": 1})
    g.output((e, d, d0))
    edits = edits_class(g)
    edits.collapse(c, pow, (x, 2), {}, (), (b, a))  # a one-call splice: the last node takes over
    edits.retarget(e, min, (c,), {"k": d})  # with kwargs, and users of a kept input
    edits.retarget(d0, abs, (x,), {})  # same target: FX moves it to the end of its table entry
    g.lint()

    def text(v):
        return map_arg(v, lambda n: n.name) if v is not None else None

    nodes = [(n.name, n.op, n.target, text(n.args), text(n.kwargs), [u.name for u in n.users]) for n in g.nodes]
    table = {k: [n.name for n in v] for k, v in g._find_nodes_lookup_table.table.items()}
    erased = [(n.name, n._erased, n._args, n._kwargs, len(n.users), n._prev.name, n._next.name) for n in (a, b)]
    return nodes, table, erased, g._len, len(g.nodes), [n.name for n in g.find_nodes(op="call_function", target=max, sort=False)]
