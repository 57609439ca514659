"""A corpus of real TT-NN model forwards: the test input of every fusion.

Each module here reproduces, op for op, the ttnn calls of one module of a tt-metal model (the op
sequence, keyword spellings, memory / program / compute-kernel configs, dtypes, in-place writes
and deallocations) in code written for this project, and names the tt-metal file and function it
follows. The calls and configs are facts about tt-metal's models; the code is ours.

A forward is registered with :func:`forward` on a builder ``build(device) -> Forward``: the
builder makes the weights on ``device`` (the mock N150 as a 1x1 mesh here, or a real device) and
returns the callable plus its example inputs. ``all_forwards()`` lists the registered names.
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Any, Callable

#: the modules of this package that hold forwards (everything but the helpers)
_HELPERS = {"common"}


@dataclasses.dataclass
class Forward:
    """One real forward, ready to trace: ``model(*example_inputs)`` runs it on the device."""

    name: str                      # "<family>.<module>.<mode>[.<config>]", e.g. "tt_transformers.mlp.decode.llama3_8b"
    family: str                    # "tt_transformers", "gpt_oss", "deepseek_v3", "falcon7b", "vit", ...
    mode: str                      # "decode", "prefill" or "" (a model without the distinction)
    follows: str                   # "models/tt_transformers/tt/mlp.py: MLP.forward"
    model: Callable                # the forward, a callable taking the example inputs
    example_inputs: list           # device tensors (and Python constants) as the forward takes them
    host_inputs: list | None = None  # torch values of the example tensors, in the same order (None: constants)
    notes: str = ""                # config (model, device, batch/seq) and what was left out, and why


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    family: str
    mode: str
    follows: str
    build: Callable[[Any], Forward]
    device: str = "n150"             # "n150" (1x1 mesh) or "t3k" (8 Wormhole chips, fabric 1D)
    mesh_shape: tuple = (1, 1)       # the mesh opened on that device, e.g. (1, 8) or (2, 4) on "t3k"


_REGISTRY: dict[str, Entry] = {}

#: device kind -> number of chips (one kind per process: tt-metal reads the cluster once)
DEVICES = {"n150": 1, "t3k": 8}


def forward(name: str, *, family: str, mode: str, follows: str, device: str = "n150", mesh_shape: tuple = (1, 1)):
    """Register ``build(mesh_device) -> Forward`` under ``name``; the forward runs on a mesh of
    ``mesh_shape`` opened on the mock ``device`` ("n150": one chip; "t3k": eight, with fabric for
    CCL ops)."""
    if device not in DEVICES:
        raise ValueError(f"corpus forward {name!r}: device must be one of {sorted(DEVICES)}, got {device!r}")

    def register(build: Callable[[Any], Forward]) -> Callable[[Any], Forward]:
        if name in _REGISTRY and _REGISTRY[name].build is not build:
            raise ValueError(f"corpus forward {name!r} is registered twice")
        _REGISTRY[name] = Entry(name, family, mode, follows, build, device, tuple(mesh_shape))
        return build

    return register


def _load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _HELPERS and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def entries() -> dict[str, Entry]:
    _load_all()
    return dict(sorted(_REGISTRY.items()))


def all_forwards() -> list[str]:
    return list(entries())


def build(name: str, device: Any) -> Forward:
    found = entries()
    if name not in found:
        raise KeyError(f"no corpus forward named {name!r}; known: {', '.join(found)}")
    fwd = found[name].build(device)
    for field in ("name", "family", "mode", "follows"):
        if getattr(fwd, field) != getattr(found[name], field):
            raise ValueError(f"corpus forward {name!r}: its Forward.{field} differs from its registration")
    return fwd
