"""Differential fuzzing: random TT-NN programs, fused and unfused, must compute the same thing.

    python -m fusion.fuzz --programs 10000 --seed 0 [--workers 2] [--out fuzz_failures]
    python -m fusion.fuzz --mutate        # replacement mutants the verifier must refuse (fusion/mutants.py)

Each program mixes instances of the catalog's patterns (drawn from the catalog through each
pattern's `example`, so new patterns are fuzzed automatically), near-misses of them (a literal
changed, an op swapped for a sibling, an input's dtype or layout changed, an intermediate made
to escape), shared inputs and several consumers, `deallocate` calls, chains that feed each
other, ops no pattern or spec rule knows, in-place writes (`add_`, `multiply_`, `output_tensor=`,
`ttnn.copy`) and moves (`reallocate`) of values and of a pattern instance's inputs between its
calls, views (a same-shape reshape) read after their base was written, and integer inputs.
Each is fused, and the reference semantics of the original and the fused program are compared
on inputs from two input domains (rotating over all of them with the program index): bit-exact
where the program is pure data movement, else with the verifier's own error bound against
exact arithmetic (fusion/numerics.py). A mismatch, a crash or a hang is a
failure: the program is shrunk to the fewest segments that still fail and saved as a
reproducer (`python <file>` replays it). The last line is `N programs, R rewrites, M mismatches`;
the exit code is non-zero on any failure.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import signal
import sys
import time
import traceback
from typing import Any

MAX_SEGMENTS = 4
PROGRAM_TIMEOUT_S = 60

_DTYPES = ("bfloat16", "float32")
_LAYOUTS = ("TILE", "ROW_MAJOR")


# ---------------------------------------------------------------------------
# Drawing a program description (pure data: JSON, replayable)
# ---------------------------------------------------------------------------


def _spec_desc(spec) -> list:
    import ttnn

    dtype = next((n for n in ("float32", "int32", "bfloat8_b") if spec.dtype == getattr(ttnn, n)), "bfloat16")
    return [list(spec.shape), dtype, "ROW_MAJOR" if spec.layout == ttnn.ROW_MAJOR_LAYOUT else "TILE"]


def _spec(desc):
    import ttnn

    from .specs import TensorSpec

    shape, dtype, layout = desc
    return TensorSpec(tuple(shape), getattr(ttnn, dtype),
                      ttnn.ROW_MAJOR_LAYOUT if layout == "ROW_MAJOR" else ttnn.TILE_LAYOUT)


def _draw_instance(pattern, rng: random.Random):
    """(input specs, captures) for a pattern: its example, or a random search over shapes."""
    if pattern.example is not None:
        return pattern.example(rng)
    from .pattern import FloatIn, IntIn, OneOf
    from .specs import TensorSpec

    caps = {}
    for name, c in pattern.captures.items():
        if isinstance(c, IntIn):
            lo = 1 if c.lo is None else c.lo
            caps[name] = rng.randint(lo, lo + 63 if c.hi is None else min(c.hi, lo + 63))
        elif isinstance(c, FloatIn):
            caps[name] = rng.uniform(c.lo, c.hi)
        elif isinstance(c, OneOf):
            caps[name] = rng.choice(c.values)
        else:
            caps[name] = None
    dims = [1, 32, 64] + [v for v in caps.values() if isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 256]
    specs = {t: TensorSpec(tuple(rng.choice(dims) for _ in range(4))) for t in pattern.tensor_inputs}
    return specs, caps


def _json_value(v):
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise TypeError(f"capture value {v!r} is not replayable")


def draw_program(seed: int, index: int) -> dict:
    """A program description: inputs and segments, every random choice written down."""
    from .api import default_patterns

    rng = random.Random(f"{seed}:{index}")
    catalog = default_patterns()
    inputs: list = []  # spec descs
    values: list = []  # (ref, spec desc) available to later segments
    segments = []
    for _ in range(rng.randint(1, MAX_SEGMENTS)):
        kind = rng.random()
        if kind < 0.8 or not values:
            # a pattern name first, then one of its entries: families of many entries (reshards,
            # movement pairs) do not crowd out the rest
            names = sorted({p.name for p in catalog})
            name = names[rng.randrange(len(names))]
            pi = rng.choice([i for i, p in enumerate(catalog) if p.name == name])
            pattern = catalog[pi]
            si = rng.randrange(len(pattern.spellings))
            specs, caps = _draw_instance(pattern, rng)
            try:
                caps = {k: _json_value(v) for k, v in caps.items()}
            except TypeError:
                continue
            binds = {}
            for name in pattern.tensor_inputs:
                desc = _spec_desc(specs[name])
                reuse = [ref for ref, d in values if d == desc]
                if reuse and rng.random() < 0.5:  # shared subexpressions, several consumers
                    binds[name] = rng.choice(reuse)
                else:
                    if rng.random() < 0.1:  # near-miss on the input: wrong dtype or layout
                        desc = [desc[0], rng.choice(_DTYPES), rng.choice(_LAYOUTS)]
                    inputs.append(desc)
                    binds[name] = ["in", len(inputs) - 1]
                    values.append((binds[name], desc))
            mutation = None
            r = rng.random()
            if r < 0.35:
                mutation = {"kind": "literal", "call": rng.randrange(8), "choice": rng.randrange(1 << 16)}
            elif r < 0.5:
                mutation = {"kind": "swap_op", "call": rng.randrange(8), "choice": rng.randrange(1 << 16)}
            write = None
            if rng.random() < 0.2:
                # an in-place write to one of the instance's inputs just before one of its calls
                # (not a move: the instance reads its input again, which would be a use after free)
                write = {"call": rng.randrange(1, 4), "input": rng.choice(pattern.tensor_inputs),
                         "how": rng.choice([w for w in WRITES if w != "reallocate"])}
            seg = {"kind": "pattern", "pattern": pattern.name, "pattern_index": pi, "spelling": si, "inputs": binds,
                   "captures": caps, "mutation": mutation, "escape": rng.random() < 0.15,
                   "deallocate": rng.random() < 0.3, "write": write}
            segments.append(seg)
            # its output may feed later segments when shapes happen to fit
            values.append((["seg", len(segments) - 1], None))
        else:
            ref = rng.choice([ref for ref, d in values if d is not None] or [values[0][0]])
            op = rng.choice(OTHER_OPS)
            segments.append({"kind": "other", "op": op, "input": ref})
            if op == "view":  # an alias later segments may read after its base was written
                values.append((["seg", len(segments) - 1], next((d for r, d in values if r == ref), None)))
    if rng.random() < 0.1:  # an integer input and an op on it
        inputs.append([[1, 1, 32, 32], "int32", "TILE"])
        segments.append({"kind": "other", "op": rng.choice(("neg", "abs", "to_layout_rm")), "input": ["in", len(inputs) - 1]})
    return {"seed": seed, "index": index, "inputs": inputs, "segments": segments}


# in-place writes the generator puts between calls and after values (fusion/effects.py)
WRITES = ("add_", "multiply_", "output_tensor", "copy", "reallocate")
OTHER_OPS = ("exp", "neg", "cumsum", "silu", "to_layout_rm", "view", "add_", "multiply_", "output_tensor", "copy",
             "reallocate")


# ---------------------------------------------------------------------------
# Building the program from its description
# ---------------------------------------------------------------------------

_SIBLINGS = None


def _siblings():
    import ttnn

    global _SIBLINGS
    if _SIBLINGS is None:
        groups = [
            [ttnn.silu, ttnn.relu, ttnn.gelu, ttnn.sigmoid],
            [ttnn.add, ttnn.subtract, ttnn.multiply],
            [ttnn.rsqrt, ttnn.sqrt, ttnn.exp],
            [ttnn.linear, ttnn.matmul],
            [ttnn.mean, ttnn.sum],
            [ttnn.pow],
        ]
        _SIBLINGS = {op: [o for o in g if o is not op] for g in groups for op in g}
    return _SIBLINGS


def _tweak(value, rng: random.Random):
    """A near-miss of a literal: another int, a swapped permutation, the other layout..."""
    import ttnn

    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + rng.choice([-1, 1, 2])
    if isinstance(value, float):
        return value * rng.choice([10.0, 0.1, 1e4])
    if value is ttnn.TILE_LAYOUT:
        return ttnn.ROW_MAJOR_LAYOUT
    if value is ttnn.ROW_MAJOR_LAYOUT:
        return ttnn.TILE_LAYOUT
    if isinstance(value, ttnn.Shape):
        value = tuple(value)
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, int) for v in value):
        v = list(value)
        if len(v) >= 2 and rng.random() < 0.6:
            i, j = rng.sample(range(len(v)), 2)
            v[i], v[j] = v[j], v[i]
        else:
            i = rng.randrange(len(v))
            v[i] = v[i] + rng.choice([1, 2]) if v[i] > 0 else v[i]
        return tuple(v)
    return value


def _mutator(mutation: dict | None):
    if not mutation:
        return None
    from torch.fx.proxy import Proxy

    state = {"n": 0}
    rng = random.Random(mutation["choice"])

    def hook(op, args, kwargs):
        i = state["n"]
        state["n"] += 1
        if i != mutation["call"]:
            return op, args, kwargs
        if mutation["kind"] == "swap_op":
            sib = _siblings().get(op)
            return (rng.choice(sib) if sib else op), args, kwargs
        slots = [("a", k) for k, v in enumerate(args) if not isinstance(v, Proxy)] + \
                [("k", k) for k, v in kwargs.items() if not isinstance(v, Proxy)]
        if not slots:
            return op, args, kwargs
        where, key = rng.choice(slots)
        if where == "a":
            args = tuple(_tweak(v, rng) if k == key else v for k, v in enumerate(args))
        else:
            kwargs = {k: (_tweak(v, rng) if k == key else v) for k, v in kwargs.items()}
        return op, args, kwargs

    return hook


def _with_write(hook, spec: dict | None, tracer, write, kwargs: dict, refs: dict):
    """`hook`, plus an in-place write of one of the instance's inputs just before its spec["call"]-th call."""
    if not spec or spec["input"] not in kwargs:
        return hook
    state = {"n": 0, "busy": False}

    def call(op, args, kw):
        if state["busy"]:  # the write's own calls
            return op, args, kw
        if state["n"] == spec["call"]:
            state["busy"] = True
            try:
                write(spec["how"], kwargs[spec["input"]], refs[spec["input"]])
            finally:
                state["busy"] = False
        state["n"] += 1
        return hook(op, args, kw) if hook is not None else (op, args, kw)

    return call


def build_program(desc: dict):
    """(GraphModule, input specs) for a description."""
    import torch.fx
    import ttnn

    from .api import default_patterns
    from .trace import TTTracer, recording_ttnn

    catalog = default_patterns()
    tracer = TTTracer()
    specs = [_spec(d) for d in desc["inputs"]]
    placeholders = []
    for i, spec in enumerate(specs):
        p = tracer.create_proxy("placeholder", f"in{i}", (), {})
        p.node.meta["spec"] = spec
        placeholders.append(p)
    seg_out: dict = {}
    outputs = []

    def ref(r):
        if r is None:
            return None
        return placeholders[r[1]] if r[0] == "in" else seg_out.get(r[1])

    def rebind(r, value):  # `x = ttnn.reallocate(x)`: later readers use the moved tensor
        if r[0] == "in":
            placeholders[r[1]] = value
        else:
            seg_out[r[1]] = value

    def write(how, x, r):
        """An in-place write (or a move) of x, as model code writes it."""
        if how == "add_":
            ttnn.add_(x, 0.5)
        elif how == "multiply_":
            ttnn.multiply_(x, -2.0)
        elif how == "output_tensor":
            ttnn.multiply(x, 3.0, output_tensor=x)
        elif how == "copy":
            ttnn.copy(ttnn.neg(x), x)
        elif how == "reallocate":
            rebind(r, ttnn.reallocate(x))

    with recording_ttnn(tracer):
        for si, seg in enumerate(desc["segments"]):
            if seg["kind"] == "pattern":
                pattern = catalog[seg["pattern_index"]]
                fn = pattern.spellings[seg["spelling"]].fn
                kwargs = {k: ref(v) for k, v in seg["inputs"].items()}
                if any(v is None for v in kwargs.values()):
                    continue
                kwargs.update(seg["captures"])
                before = len(tracer.graph.nodes)
                tracer.call_hook = _with_write(_mutator(seg.get("mutation")), seg.get("write"), tracer, write,
                                               kwargs, seg["inputs"])
                try:
                    out = fn(**kwargs)
                finally:
                    tracer.call_hook = None
                out = out[0] if isinstance(out, (tuple, list)) else out
                new_calls = [n for n in list(tracer.graph.nodes)[before:] if n.op == "call_function"]
                if seg.get("escape") and len(new_calls) > 1:
                    outputs.append(torch.fx.Proxy(new_calls[0], tracer))
                if seg.get("deallocate") and len(new_calls) > 1 and not seg.get("escape") and not seg.get("write"):
                    ttnn.deallocate(torch.fx.Proxy(new_calls[0], tracer))
                seg_out[si] = out
                outputs.append(out)
            else:
                x = ref(seg["input"])
                if x is None:
                    continue
                op = seg["op"]
                if op in WRITES:
                    write(op, x, seg["input"])
                    continue
                y = {"exp": lambda: ttnn.exp(x), "neg": lambda: ttnn.neg(x), "silu": lambda: ttnn.silu(x),
                     "cumsum": lambda: ttnn.cumsum(x, 0), "abs": lambda: ttnn.abs(x),
                     "view": lambda: ttnn.reshape(x, tuple(x.shape)),
                     "to_layout_rm": lambda: ttnn.to_layout(x, ttnn.ROW_MAJOR_LAYOUT)}[op]()
                seg_out[si] = y
                outputs.append(y)
        # the inputs as the program left them: writes to them are results too
        outputs.extend(p for p in placeholders if p.node.op != "placeholder")
    tracer.create_node("output", "output", (tracer.create_arg(tuple(outputs)),), {})
    gm = torch.fx.GraphModule(tracer.root, tracer.graph, class_name="FuzzProgram")
    return gm, specs


# ---------------------------------------------------------------------------
# Checking one program
# ---------------------------------------------------------------------------


def _inputs(specs, seed: int, domain: str = "normal"):
    import torch

    from .verify import random_input

    g = torch.Generator().manual_seed(seed)
    return [random_input(s, g, domain) for s in specs]


def _domains(specs, index: int) -> list:
    """Two input domains per program, rotating with its index: every domain over the run
    (verification itself tries all of them on every candidate)."""
    from . import numerics

    doms = numerics.domains_for([s.dtype for s in specs])
    return [doms[index % len(doms)], doms[(index + len(doms) // 2) % len(doms)]]


def _bits_differ(a, b) -> str | None:
    """Why outputs differ bit for bit (pure data movement), or None."""
    import torch

    from .numerics import bits_equal

    if isinstance(a, (tuple, list)):
        if not isinstance(b, (tuple, list)) or len(a) != len(b):
            return f"output structure differs: {type(a).__name__}[{len(a)}] vs {type(b).__name__}"
        for i, (x, y) in enumerate(zip(a, b)):
            why = _bits_differ(x, y)
            if why:
                return f"output {i}: {why}"
        return None
    if not isinstance(a, torch.Tensor):
        return None if a == b else f"{a!r} != {b!r}"
    if not isinstance(b, torch.Tensor) or a.shape != b.shape:
        return f"shape {tuple(a.shape)} vs {tuple(getattr(b, 'shape', ()))}"
    return None if bits_equal(a, b) else f"not bit-exact ({int((a != b).sum())} values differ)"


class _Timeout(Exception):
    pass


def check_program(desc: dict) -> dict:
    """{'status': ok|invalid|mismatch|crash|hang, 'rewrites': n, 'detail': str}."""
    from . import ttnn_ops
    from .api import fuse
    from .reference import ReferenceRunner
    from .trace import trace
    from .verify import compare_programs

    def alarm(signum, frame):
        raise _Timeout()

    use_alarm = hasattr(signal, "SIGALRM")
    if use_alarm:
        old = signal.signal(signal.SIGALRM, alarm)
        signal.alarm(PROGRAM_TIMEOUT_S)
    try:
        try:
            gm, specs = build_program(desc)
            traced = trace(gm, specs)
            trials = [(d, _inputs(specs, desc["index"], d)) for d in _domains(specs, desc["index"])]
            expected = [ReferenceRunner(traced.graph_module).run(xs) for _d, xs in trials]
        except _Timeout:
            raise
        except Exception as e:  # the generator made a program the reference cannot run: not a finding
            return {"status": "invalid", "rewrites": 0, "detail": f"{type(e).__name__}: {e}"[:300]}
        try:
            fused = fuse(gm, specs)
            got = [fused.reference_runner().run(xs) for _d, xs in trials]
        except _Timeout:
            raise
        except Exception:
            return {"status": "crash", "rewrites": 0, "detail": traceback.format_exc()[-2000:]}
        exact = ttnn_ops.only_moves_data(n for n in traced.graph_module.graph.nodes if n.op == "call_function")
        n = len(fused.report.rewrites)
        for (domain, xs), e, g in zip(trials, expected, got):
            # the verifier's own criterion (bit-exact for pure data movement)
            why = _bits_differ(e, g) if exact else compare_programs(traced.graph_module, fused.graph_module, xs,
                                                                     expected=e, got=g)
            if why:
                return {"status": "mismatch", "rewrites": n, "detail": f"{domain} inputs: {why}\n{fused.report}"}
        return {"status": "ok", "rewrites": n, "detail": ""}
    except _Timeout:
        return {"status": "hang", "rewrites": 0, "detail": f"no result after {PROGRAM_TIMEOUT_S} s"}
    finally:
        if use_alarm:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)


def shrink(desc: dict, status: str) -> dict:
    """Drop segments one at a time while the program still fails the same way."""
    current = desc
    changed = True
    while changed and len(current["segments"]) > 1:
        changed = False
        for i in range(len(current["segments"])):
            trial = dict(current, segments=[s for j, s in enumerate(current["segments"]) if j != i])
            if _refs_ok(trial) and check_program(trial)["status"] == status:
                current, changed = trial, True
                break
    return current


def _refs_ok(desc) -> bool:
    n = len(desc["segments"])
    for seg in desc["segments"]:
        refs = list(seg.get("inputs", {}).values()) if seg["kind"] == "pattern" else [seg["input"]]
        if any(r[0] == "seg" and r[1] >= n for r in refs):
            return False
    return True


REPRO_TEMPLATE = '''"""ttfuse fuzz reproducer: {status} ({detail_line}).

Replay: python {name}
"""
import json
import sys

from fusion.fuzz import check_program, build_program

DESCRIPTION = json.loads({desc!r})

if __name__ == "__main__":
    from fusion.host import use_mock_cluster_if_no_hardware

    use_mock_cluster_if_no_hardware()
    print(build_program(DESCRIPTION)[0].code)
    result = check_program(DESCRIPTION)
    print(result["status"], result["detail"])
    sys.exit(0 if result["status"] in ("ok", "invalid") else 1)
'''


def save_reproducer(desc: dict, result: dict, out_dir: str) -> str:
    os.makedirs(out_dir, exist_ok=True)
    name = os.path.join(out_dir, f"repro_seed{desc['seed']}_prog{desc['index']}.py")
    first = (result["detail"].splitlines() or [""])[0][:120]
    with open(name, "w") as f:
        f.write(REPRO_TEMPLATE.format(status=result["status"], detail_line=first.replace('"', "'"),
                                      name=name, desc=json.dumps(desc)))
    return name


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------


def _worker_init(threads: int | None = None):
    from .host import use_mock_cluster_if_no_hardware

    use_mock_cluster_if_no_hardware()
    import logging

    logging.disable(logging.WARNING)
    if threads:
        import torch

        torch.set_num_threads(threads)  # one per worker: two workers of two threads each thrash two cores


def _run_chunk(args):
    seed, indices = args
    out = []
    for i in indices:
        desc = draw_program(seed, i)
        out.append((i, check_program(desc)))
    return out


def run(programs: int, seed: int, workers: int = 1, out_dir: str = "fuzz_failures", progress=print) -> dict:
    totals = {"programs": 0, "rewrites": 0, "mismatches": 0, "crashes": 0, "hangs": 0, "invalid": 0, "failures": []}
    chunk = 50
    jobs = [(seed, list(range(s, min(programs, s + chunk)))) for s in range(0, programs, chunk)]
    t0 = time.perf_counter()
    last = t0

    def account(results):
        nonlocal last
        for i, r in results:
            totals["programs"] += 1
            totals["rewrites"] += r["rewrites"]
            st = r["status"]
            if st == "invalid":
                totals["invalid"] += 1
            elif st != "ok":
                totals[{"mismatch": "mismatches", "crash": "crashes", "hang": "hangs"}[st]] += 1
                desc = shrink(draw_program(seed, i), st)
                path = save_reproducer(desc, r, out_dir)
                totals["failures"].append(path)
                progress(f"FAIL program {i}: {st}: {(r['detail'].splitlines() or [''])[0][:200]} -> {path}")
        now = time.perf_counter()
        if now - last > 5 or totals["programs"] == programs:
            last = now
            rate = totals["programs"] / max(now - t0, 1e-9)
            progress(f"[{totals['programs']}/{programs}] {totals['rewrites']} rewrites, "
                     f"{totals['mismatches']} mismatches, {totals['crashes']} crashes, {totals['hangs']} hangs, "
                     f"{totals['invalid']} invalid; {rate:.0f} programs/s")

    if workers <= 1:
        _worker_init()
        for job in jobs:
            account(_run_chunk(job))
    else:
        ctx = mp.get_context("spawn")
        threads = max(1, (os.cpu_count() or 1) // workers)
        with ctx.Pool(workers, initializer=_worker_init, initargs=(threads,)) as pool:
            for results in pool.imap_unordered(_run_chunk, jobs):
                account(results)
    totals["seconds"] = time.perf_counter() - t0
    return totals


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusion.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--programs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", default="fuzz_failures", help="folder for reproducer files")
    parser.add_argument("--mutate", action="store_true",
                        help="mutate every catalog replacement and count the mutants verification refuses "
                             "(fusion/mutants.py) instead of fuzzing programs")
    parser.add_argument("--seeds", type=int, default=2, help="--mutate: seeds per domain to show a survivor equivalent")
    args = parser.parse_args(argv)
    if args.mutate:
        from . import mutants

        _worker_init()
        totals = mutants.run(seeds=args.seeds)
        mutants.report(totals)
        return 1 if totals.missed else 0
    if args.programs < 1:
        parser.error("--programs must be at least 1")
    totals = run(args.programs, args.seed, args.workers, args.out)
    failures = totals["mismatches"] + totals["crashes"] + totals["hangs"]
    print(f"summary: {totals['programs']} programs in {totals['seconds']:.1f} s, {totals['rewrites']} rewrites, "
          f"{totals['mismatches']} mismatches, {totals['crashes']} crashes, {totals['hangs']} hangs, "
          f"{totals['invalid']} generated programs the reference cannot run (skipped)")
    print(f"{totals['programs']} programs, {totals['rewrites']} rewrites, {totals['mismatches']} mismatches")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
