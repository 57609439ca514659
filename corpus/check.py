"""Trace every corpus forward and say what ttfuse sees in it.

    python -m corpus.check                 # table of all forwards (one process per mock cluster)
    python -m corpus.check NAME ... --json # machine-readable, one record per forward

Per forward: ttnn calls and device dispatches in the traced graph, ops whose spec is unknown,
calls ttnn rejects, in-place writes in the graph against writes made by the eager run, whether
the traced outputs' specs equal the eager run's, whether `run_reference` runs the whole graph,
and the trace time. Each forward runs in a process of its own (two at a time): tt-metal reads its
cluster (n150, t3k) once per process, and a crash inside ttnn then loses one forward, not the
table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from typing import Any

SELF = os.path.abspath(__file__)
ROOT = os.path.dirname(os.path.dirname(SELF))


def _specs_of(out: Any) -> list:
    from fusion.specs import spec_from_value

    from corpus.common import _flat

    return [spec_from_value(o) for o in _flat(out)]


def check_forward(name: str, device: Any) -> dict:
    import torch

    import corpus
    import fusion
    from fusion import effects, ttnn_ops
    from fusion.api import _count_calls
    from fusion.specs import TensorSpec, UnknownSpec
    from fusion.trace import short_location, trace
    from fusion.ttnn_specs import Rejected

    record: dict = {"name": name}
    t0 = time.perf_counter()
    with fusion.capture_host_values():
        fwd = corpus.build(name, device)
    record["build_seconds"] = round(time.perf_counter() - t0, 2)
    record.update(family=fwd.family, mode=fwd.mode, follows=fwd.follows)
    t0 = time.perf_counter()
    traced = trace(fwd.model, fwd.example_inputs)
    record["trace_seconds"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    trace(fwd.model, fwd.example_inputs)
    record["retrace_seconds"] = round(time.perf_counter() - t0, 3)
    graph = traced.graph_module.graph
    ops, dispatches = _count_calls(graph)
    calls = [n for n in graph.nodes if n.op == "call_function" and ttnn_ops.is_ttnn_op(n.target)]
    record.update(ops=ops, dispatches=dispatches)
    unknown, rejected = [], []
    for n in calls:
        spec = n.meta.get("spec")
        parts = spec if isinstance(spec, tuple) else (spec,)
        bad = next((p for p in parts if isinstance(p, UnknownSpec)), None)
        if bad is None:
            continue
        entry = {"op": ttnn_ops.op_name(n.target), "location": short_location(n.meta.get("location", "?")),
                 "reason": bad.reason()}
        (rejected if isinstance(bad, Rejected) else unknown).append(entry)
    record["unknown_specs"] = unknown
    record["rejected"] = rejected
    record["graph_writes"] = sum(1 for n in graph.nodes if "writes" in n.meta)
    record["graph_frees"] = sum(1 for n in graph.nodes if "frees" in n.meta)
    record["calls_with_writes"] = sum(1 for n in calls if effects.written(n.target, n.args, n.kwargs))
    # a call whose result nothing reads, that neither writes a buffer nor frees one, is a call the
    # graph lost track of (an in-place write recorded as a plain call is one): none in real code
    outputs = set(next(n for n in graph.nodes if n.op == "output").all_input_nodes)
    record["dead_calls"] = [
        f"{ttnn_ops.op_name(n.target)} at {short_location(n.meta.get('location', '?'))}" for n in calls
        if not n.users and n not in outputs and "writes" not in n.meta and "frees" not in n.meta
        and not ttnn_ops.is_deallocate(n.target)]
    out_node = next(n for n in graph.nodes if n.op == "output")
    outs = out_node.args[0]
    from corpus.common import _flat

    traced_specs = [o.meta.get("spec") if hasattr(o, "meta") else None for o in _flat(outs)]
    record["ops_without_reference"] = _ops_without_reference(graph)
    record["fusion"] = _fusion(fwd)
    try:
        record["reference"] = _reference(traced, fwd)
    except Exception as e:  # the reason goes in the table; the corpus tests assert on it
        record["reference"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
    # last: the forward may deallocate its inputs, as the real module does
    eager = fwd.model(*fwd.example_inputs)
    eager_specs = _specs_of(eager)
    record["output_specs_match"] = traced_specs == eager_specs
    if not record["output_specs_match"]:
        record["output_specs"] = {"traced": [repr(s) for s in traced_specs], "eager": [repr(s) for s in eager_specs]}
    return record


def _fusion(fwd) -> dict:
    """What the default catalog does to the forward: dispatches after, rewrites and refusals."""
    from fusion.trace import short_location

    t0 = time.perf_counter()
    import fusion

    report = fusion.fuse(fwd.model, fwd.example_inputs).report
    return {
        "seconds": round(time.perf_counter() - t0, 2),
        "dispatches_after": report.dispatches_after,
        "rewrites": [{"pattern": r.kind.pattern, "spelling": r.kind.spelling, "location": short_location(r.location),
                      "becomes": r.kind.replacement} for r in report.rewrites],
        "refusals": [{"pattern": f.pattern, "location": short_location(f.location), "reason": f.reason}
                     for f in report.refusals],
    }


def _ops_without_reference(graph) -> list:
    from fusion import ccl, ttnn_ops
    from fusion.reference import NoReference, _golden

    missing = set()
    for n in graph.nodes:
        if n.op != "call_function" or ttnn_ops.is_deallocate(n.target) or ccl.is_collective(n.target):
            continue
        try:
            _golden(n.target)
        except NoReference:
            missing.add(ttnn_ops.op_name(n.target))
    return sorted(missing)


# a mesh graph's inputs and weights in reference semantics, over all devices: beyond this the
# host (24 GiB, float32 compute for large cases) cannot hold them
REFERENCE_VALUE_LIMIT = 1 << 30


def _reference(traced, fwd) -> str:
    """Run the traced graph in reference semantics on every device of the mesh, each device on
    its shard of the example inputs (their host values, captured when the forward built them)."""
    import torch
    import ttnn

    from corpus.common import _flat
    from fusion.reference import ReferenceRunner

    runner = ReferenceRunner(traced.graph_module)
    tensors = [v for v in _flat(list(fwd.example_inputs)) if isinstance(v, ttnn.Tensor)]
    placeholders = [p for p in traced.graph_module.graph.nodes if p.op == "placeholder"]
    if len(tensors) != len(placeholders):
        raise ValueError(f"{len(placeholders)} graph inputs but {len(tensors)} example tensors")
    values = runner.devices * sum(node.meta["spec"].numel for node in traced.graph_module.graph.nodes
                                  if node.op in ("placeholder", "get_attr") and hasattr(node.meta.get("spec"), "numel"))
    if values > REFERENCE_VALUE_LIMIT:
        return (f"too large: {values / 1e9:.1f} G input and weight values over {runner.devices} devices "
                f"(limit {REFERENCE_VALUE_LIMIT / 1e9:.1f} G)")
    with torch.no_grad():
        runner.run_values(tensors, [p.target for p in placeholders])
    return "ok"


def run_group(names: list[str], device_kind: str, mesh_shape: tuple) -> list[dict]:
    from corpus.common import corpus_device

    out = []
    with corpus_device(device_kind, mesh_shape) as device:
        for name in names:
            try:
                out.append(check_forward(name, device))
            except Exception as e:
                out.append({"name": name, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()})
            print(f"[corpus] {name}: done", file=sys.stderr, flush=True)
    return out


def check_all(names: list[str] | None = None, jobs: int | None = None) -> list[dict]:
    """Every forward (or `names`), each in a process of its own (on its own mock cluster), `jobs`
    at a time (default: $TTFUSE_CORPUS_JOBS, else 2)."""
    from concurrent.futures import ThreadPoolExecutor

    import corpus

    entries = corpus.entries()
    names = names or list(entries)
    jobs = jobs or int(os.environ.get("TTFUSE_CORPUS_JOBS", "2"))
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        # one process per forward: a crash inside ttnn (a segfault) loses that forward only
        results = list(pool.map(lambda n: _check_in_process(n, entries[n]), names))
    return [r for group in results for r in group]


_RECORD_MARK = "corpus-records: "


def _check_in_process(name: str, entry) -> list[dict]:
    cmd = [sys.executable, SELF, "--group", entry.device, ",".join(map(str, entry.mesh_shape)), "--json", name]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("TT_METAL_MOCK_CLUSTER_DESC_PATH", None)  # the child picks its own cluster
    env.setdefault("TT_LOGGER_LEVEL", "error")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    # tt-metal may log to stdout after the records (closing the device): find them by their mark
    found = [ln for ln in proc.stdout.splitlines() if ln.startswith(_RECORD_MARK)]
    try:
        return json.loads(found[-1][len(_RECORD_MARK):])
    except (json.JSONDecodeError, IndexError):
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        return [{"name": name, "error": f"corpus process failed (exit {proc.returncode}): {tail}"}]


def fusion_table(records: list[dict]) -> str:
    """Per forward: dispatches before and after the default catalog, rewrites by pattern, refusals."""
    lines = ["| forward | dispatches | after | rewrites | refusals (near misses) |", "|---|---|---|---|---|"]
    for r in records:
        f = r.get("fusion")
        if f is None:
            continue
        counts: dict = {}
        for x in f["rewrites"]:
            counts[x["pattern"]] = counts.get(x["pattern"], 0) + 1
        rewrites = ", ".join(f"{k} x{v}" for k, v in sorted(counts.items())) or "-"
        near = sum(1 for x in f["refusals"] if x["reason"].startswith("near miss"))
        lines.append(f"| {r['name']} | {r['dispatches']} | {f['dispatches_after']} | {rewrites} | "
                     f"{len(f['refusals'])} ({near}) |")
    return "\n".join(lines)


def table(records: list[dict]) -> str:
    head = ("| forward | follows | ops | dispatches | unknown specs | rejected | writes | outputs as eager | "
            "reference | trace s |")
    lines = [head, "|" + "---|" * 10]
    for r in records:
        if "error" in r:
            lines.append(f"| {r['name']} | | | | | | | | ERROR: {r['error'].splitlines()[0][:80]} | |")
            continue
        ref = r["reference"] if r["reference"] == "ok" else r["reference"].split(":")[0]
        if r["ops_without_reference"]:
            ref += f" ({len(r['ops_without_reference'])} ops without)"
        lines.append(f"| {r['name']} | {r['follows']} | {r['ops']} | {r['dispatches']} | {len(r['unknown_specs'])} | "
                     f"{len(r['rejected'])} | {r['graph_writes']}/{r['calls_with_writes']} | "
                     f"{'yes' if r['output_specs_match'] else 'NO'} | {ref} | {r['trace_seconds']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m corpus.check", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="forwards to check (default: all)")
    parser.add_argument("--json", action="store_true", help="print JSON records instead of the table")
    parser.add_argument("--group", nargs=2, metavar=("DEVICE", "MESH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.group:
        kind, shape = args.group[0], tuple(int(v) for v in args.group[1].split(","))
        records = run_group(args.names, kind, shape)
        print(_RECORD_MARK + json.dumps(records), flush=True)
        return 0
    records = check_all(args.names or None)
    if args.json:
        print(json.dumps(records, indent=1))
    else:
        print(table(records))
        print()
        print(fusion_table(records))
        for r in records:
            for x in r.get("fusion", {}).get("refusals", []):
                print(f"  {r['name']}: refused {x['pattern']} at {x['location']}: {x['reason']}")
            for key in ("unknown_specs", "rejected"):
                for e in r.get(key, []):
                    print(f"  {r['name']}: {key.replace('_', ' ')}: {e['op']} at {e['location']}: {e['reason']}")
            if r.get("reference", "ok") != "ok":
                print(f"  {r['name']}: reference: {r['reference']}")
            if "error" in r:
                print(f"  {r['name']}: {r['error']}")
    return 0


if __name__ == "__main__":
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    sys.exit(main())
