"""Trace + specs of a deep model built from a corpus forward: N layers, each a copy of the
forward's module with weights of its own (empty device tensors of the same specs: what the trace
reads of a weight is its spec).

    python -m benchmarks.trace_layers [--forward NAME] [--layers 61]

Three measurements, each in a fresh process, side by side in one run:
  cold      ttnn's answers not on disk (TTFUSE_SPEC_CACHE=off): every distinct call JIT-builds
            its kernels on the mock device once
  warm      a new process with the answers on disk (the normal case after a first run)
  retrace   the same process tracing the same model a second time (answers in memory)
Weights and device opening are not timed; only `fusion.trace` is.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time

DEFAULT_FORWARD = "deepseek_v3.moe.decode.deepseek_v3_2x4"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_MARK = "trace-layers: "


def _fresh_weights(module, device):
    """A shallow copy of `module` whose device tensors (attributes, and in lists / dicts one level
    down) are new empty tensors of the same specs."""
    import ttnn

    def fresh(v):
        if isinstance(v, ttnn.Tensor) and v.storage_type() == ttnn.StorageType.DEVICE:
            return ttnn.allocate_tensor_on_device(v.shape, v.dtype, v.layout, device, v.memory_config())
        if isinstance(v, list):
            return [fresh(x) for x in v]
        if isinstance(v, dict):
            return {k: fresh(x) for k, x in v.items()}
        return v

    clone = copy.copy(module)
    for k, v in vars(module).items():
        setattr(clone, k, fresh(v))
    return clone


def _layers(fwd, device, n):
    model = fwd.model
    owner = getattr(model, "__self__", None)
    if owner is None:  # a closure: its weights cannot be swapped, every layer shares them
        return [model] * n, "shared"
    method = model.__func__
    layers = [model]
    while len(layers) < n:
        try:
            layers.append(method.__get__(_fresh_weights(owner, device)))
        except RuntimeError:  # device memory full (the mock chips have 12 GB of DRAM, as real ones)
            break
    distinct = len(layers)
    layers += [layers[i % distinct] for i in range(distinct, n)]
    return layers, "per layer" if distinct == n else f"{distinct} distinct sets (device DRAM full), reused cyclically"


def measure(name: str, layers: int) -> dict:
    import corpus
    from corpus.common import corpus_device
    from fusion.trace import trace

    entry = corpus.entries()[name]
    with corpus_device(entry.device, entry.mesh_shape) as device:
        fwd = corpus.build(name, device)
        stack, weights = _layers(fwd, device, layers)

        def model(*inputs):
            x = inputs[0]
            for layer in stack:
                x = layer(x, *inputs[1:])
            return x

        t0 = time.perf_counter()
        traced = trace(model, fwd.example_inputs)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        trace(model, fwd.example_inputs)
        again = time.perf_counter() - t0
        calls = sum(1 for n in traced.graph_module.graph.nodes if n.op == "call_function")
        from fusion.specs import UnknownSpec

        unknown = sum(1 for n in traced.graph_module.graph.nodes
                      if n.op == "call_function" and isinstance(n.meta.get("spec"), UnknownSpec))
    return {"forward": name, "layers": layers, "calls": calls, "unknown": unknown, "weights": weights,
            "first": round(first, 3), "retrace": round(again, 3)}


def _child(name: str, layers: int, spec_cache: str) -> dict:
    env = dict(os.environ, TTFUSE_SPEC_CACHE=spec_cache, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("TT_METAL_MOCK_CLUSTER_DESC_PATH", None)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.trace_layers", "--child", "--forward", name,
                           "--layers", str(layers)], capture_output=True, text=True, env=env, cwd=ROOT)
    # tt-metal may log to stdout after the result (closing the device): find it by its mark
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark process failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(lines[-1][len(_MARK):])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--forward", default=DEFAULT_FORWARD)
    parser.add_argument("--layers", type=int, default=61)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(_MARK + json.dumps(measure(args.forward, args.layers)), flush=True)
        return 0
    with tempfile.TemporaryDirectory() as store:
        cold = _child(args.forward, args.layers, "off")
        _child(args.forward, 1, store)  # fills the store as a first run on this machine would
        warm = _child(args.forward, args.layers, store)
    print(f"{args.layers} layers of {args.forward} ({warm['calls']} traced calls, weights {warm['weights']}, "
          f"{warm['unknown']} unknown specs)")
    print(f"  trace + specs, cold process, nothing on disk : {cold['first']:7.2f} s")
    print(f"  trace + specs, new process, answers on disk  : {warm['first']:7.2f} s")
    print(f"  trace + specs, same process, second trace    : {warm['retrace']:7.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
