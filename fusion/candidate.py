"""A match of a pattern in a graph, as the matcher found it and verification judged it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch.fx

if TYPE_CHECKING:
    from .pattern import Pattern, Spelling

UNKNOWN_LOCATION = "<unknown>:0"


@dataclass(slots=True)
class Candidate:
    pattern: Pattern
    spelling: Spelling
    pattern_index: int
    captures: dict  # name -> value
    inputs: dict  # tensor input name -> graph node
    outputs: list | tuple  # graph nodes, in pattern output order
    nodes: list | tuple  # matched graph call nodes, graph order
    absorbed: list | tuple  # deallocates of matched intermediates
    # the first and last matched call: FX nodes order by graph position (their `<` compares
    # FX's own sort keys in C), so no index of positions is needed
    first: torch.fx.Node
    last: torch.fx.Node
    location: str = UNKNOWN_LOCATION  # the first matched call's (see located)
    # nothing else between the matched calls when found (and nothing can be spliced in between
    # later: a splice inserts only next to its own nodes); read while the nodes are hot
    contiguous: bool = False
    refusal: str | None = None
    # where the replacement goes: None (at the last matched call) or "first" (before the first
    # matched call, when a write between them would change what the last place reads)
    placement: str | None = None
    # set once verification passed: the (shared) outcome, which says how
    outcome: Any = None
    # placement keywords the graph's calls pass where the pattern leaves the default:
    # {(spelling call index, keyword): value}, passed through to the replacement (fusion/keywords.py)
    keywords: dict | None = None
    # the chain matches in structure but differs in literals: refused, saying what differs
    near_miss: bool = False

    @property
    def input_specs(self) -> dict:
        return {k: n.meta.get("spec") for k, n in self.inputs.items()}

    @property
    def output_specs(self) -> list:
        return [n.meta.get("spec") for n in self.outputs]


def located(node: torch.fx.Node) -> str:
    """Where the user wrote a matched call; read when the match is found, while the node is fresh
    in the CPU's caches (splicing may erase it later)."""
    return node.meta.get("location", UNKNOWN_LOCATION)


def contiguous(nodes: list) -> bool:
    """Whether calls in graph order follow each other with nothing in between."""
    prev = nodes[0]
    for n in nodes[1:]:
        if prev.next is not n:
            return False
        prev = n
    return True
