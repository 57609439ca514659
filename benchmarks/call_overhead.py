"""Per-call Python overhead of a trace-time fused model vs the original, on host tensors.

    .venv/bin/python -m benchmarks.call_overhead [--calls 20000]

`fusion.fuse(model)` (no example inputs) fuses on the first call and keeps one graph per
input-spec signature; every later call pays for the signature lookup and the FX forward. The
model here uses only ops that run on host tensors (reshape and layout conversion of ROW_MAJOR
tensors), so the numbers are Python overhead without device dispatch. Prints microseconds per
call for both, the difference and the ratio; the last line is JSON.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
import ttnn

import fusion


def model(x):
    y = ttnn.reshape(x, (1, 1, 32, 64))
    return ttnn.reshape(y, (32, 64))


def _per_call(fn, x, calls: int) -> float:
    best = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(calls):
            fn(x)
        best.append((time.perf_counter() - t) / calls)
    return statistics.median(best) * 1e6


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=20000)
    args = ap.parse_args(argv)
    x = ttnn.from_torch(torch.randn(32, 64), dtype=ttnn.bfloat16, layout=ttnn.ROW_MAJOR_LAYOUT)
    lazy = fusion.fuse(model)
    lazy(x)  # first call: trace + fuse for this signature
    original = _per_call(model, x, args.calls)
    fused = _per_call(lazy, x, args.calls)
    out = {"original_us_per_call": original, "fused_us_per_call": fused, "overhead_us": fused - original,
           "ratio": fused / original, "signatures": len(lazy.fused)}
    print(f"original model: {original:.1f} us/call; fuse(model) callable: {fused:.1f} us/call; "
          f"overhead {fused - original:+.1f} us/call ({fused / original:.2f}x)")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
