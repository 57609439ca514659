"""Per-call Python overhead of a trace-time fused model, on host tensors.

    .venv/bin/python -m benchmarks.call_overhead [--calls 20000] [--rounds 15]

`fusion.fuse(model)` (no example inputs) fuses on the first call and keeps one graph per
input-spec signature; every later call pays for the signature lookup, then replays the traced
graph, calling each op's C++ function directly when ttnn's run-time modes allow it
(fusion/replay.py). Three cases, each against what a user would run without ttfuse:

* nothing_fuses: a model of two reshapes with nothing in the catalog to fuse, vs the model itself;
* fused: a model that a user pattern rewrites (two reshapes -> one), vs the same one-reshape
  code written by hand, so both sides run the same ttnn calls and only ttfuse's overhead differs;
* eight_ops: a model of eight reshapes where nothing fuses, vs the model itself (closer to a
  real block, where the per-call costs are spread over more ops);
* fused_vs_model: the fused model of `fused`, vs the original (unfused) model: the issue's own
  measure, the fused callable against the model a user would otherwise call.

The ops are reshapes of ROW_MAJOR host tensors, so no device dispatch hides the overhead. The
two sides are timed in alternating rounds (these machines are noisy); the overhead is the median
of the per-round differences. Prints microseconds per call; the last line is JSON.
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


def reshaped_by_hand(x):
    return ttnn.reshape(x, (32, 64))


def eight_reshapes(x):
    y = ttnn.reshape(x, (1, 32, 64))
    y = ttnn.reshape(y, (64, 32))
    y = ttnn.reshape(y, (1, 1, 64, 32))
    y = ttnn.reshape(y, (2048,))
    y = ttnn.reshape(y, (32, 64))
    y = ttnn.reshape(y, (4, 8, 64))
    y = ttnn.reshape(y, (1, 2048))
    return ttnn.reshape(y, (32, 64))


# a user pattern whose replacement runs on host tensors, so the fused graph itself is timed
DOUBLE_RESHAPE = fusion.Pattern("double_reshape", model, reshaped_by_hand)


def _rounds(a, b, x, calls: int, rounds: int) -> tuple[list, list]:
    ta, tb = [], []
    for _ in range(rounds):
        for fn, out in ((a, ta), (b, tb)):
            t = time.perf_counter()
            for _ in range(calls):
                fn(x)
            out.append((time.perf_counter() - t) / calls * 1e6)
    return ta, tb


def _case(name: str, baseline, lazy, x, calls: int, rounds: int) -> dict:
    lazy(x)  # first call: trace + fuse for this signature
    base_us, lazy_us = _rounds(baseline, lazy, x, calls, rounds)
    diffs = [b - a for a, b in zip(base_us, lazy_us)]
    out = {"baseline_us": statistics.median(base_us), "fused_callable_us": statistics.median(lazy_us),
           "overhead_us_median": statistics.median(diffs), "overhead_us_min_round": min(diffs),
           "overhead_us_max_round": max(diffs), "rewrites": sum(len(r.rewrites) for r in lazy.reports)}
    out["overhead_fraction"] = out["overhead_us_median"] / out["baseline_us"]
    print(f"{name:>14}: baseline {out['baseline_us']:.2f} us/call, fuse(model) {out['fused_callable_us']:.2f} us/call, "
          f"overhead {out['overhead_us_median']:+.2f} us/call median over {rounds} rounds "
          f"(rounds ranged {out['overhead_us_min_round']:+.2f} .. {out['overhead_us_max_round']:+.2f}); "
          f"{out['rewrites']} rewrites")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args(argv)
    x = ttnn.from_torch(torch.randn(32, 64), dtype=ttnn.bfloat16, layout=ttnn.ROW_MAJOR_LAYOUT)
    result = {
        "nothing_fuses": _case("nothing_fuses", model, fusion.fuse(model), x, args.calls, args.rounds),
        "fused": _case("fused", reshaped_by_hand, fusion.fuse(model, patterns=[DOUBLE_RESHAPE]), x, args.calls,
                       args.rounds),
        "eight_ops": _case("eight_ops", eight_reshapes, fusion.fuse(eight_reshapes), x, args.calls, args.rounds),
        "fused_vs_model": _case("fused_vs_model", model, fusion.fuse(model, patterns=[DOUBLE_RESHAPE]), x,
                                args.calls, args.rounds),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
