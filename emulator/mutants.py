"""Kernel mutation testing: plant realistic silicon bugs in our kernels, one at a time, and run the
emulator cases on each mutant; every mutant must be caught (an emulator error, a deadlock, a timeout
or a wrong result).

    python -m emulator.mutants              # every mutant (slow: minutes)
    python -m emulator.mutants --sample 12  # a fixed sample (what CI runs, through tests/test_emulator.py)
    python -m emulator.mutants --list       # the mutants, without running them

Categories follow the bugs that reach silicon: CB page counts, tile and face indices, compile-time and
runtime argument order, semaphore targets, missing barriers and flushes, missing init or data-format
reconfig, DST protocol, multicast destination counts. A mutant that does not compile is reported apart
(tt-metal's JIT would reject it too); a surviving mutant is printed with its diff line.
"""
from __future__ import annotations

import argparse
import random
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from emulator import KERNELS, BuildError, EmulatorError, kernel_deps


@dataclass
class Mutant:
    category: str
    file: str        # relative to kernels/
    line: int
    before: str
    after: str

    @property
    def name(self) -> str:
        return f"{self.category}:{self.file}:{self.line}"


# Mutants that compute the same thing, so no test can catch them; each with why. They are still run:
# an equivalent mutant the emulator rejects would be a false alarm.
_SAME_END = ("a writer that waits for the packed output only keeps BRISC alive; a program ends when every RISC "
             "of the core has finished, so waiting for one tile fewer changes nothing")
_BF16_OUT = ("every matmul output is bfloat16 and the packer was last set for a bfloat16 CB, so this reconfig "
             "changes nothing today; a float32 or bfloat8_b output would make it observable")
_SAME_SCRATCH = ("the gram, diag and rinv CBs always share one data format (float32 with fp32 DST, else bfloat16): "
                 "the packer is already set")
_LAST_POP = ("this one-tile CB is produced and read once per program: nothing waits on it after this pop, so "
             "popping nothing instead changes nothing")
_AFTER_STARTUP = "it follows compute_kernel_hw_startup on the same CBs, which set the same formats"
EQUIVALENT = [
    ("cb-count", "unified/matmul.hpp", "cb_wait_front(CTArgs::out_cb, CTArgs::out_tiles)", _SAME_END),
    ("cb-count", "unified/rmsnorm.hpp", "cb_wait_front(CTArgs::out_cb, CTArgs::num_tiles)", _SAME_END),
    ("cb-count", "unified/rmsnorm.hpp", "cb_wait_front(CTArgs::sum_cb, CTArgs::num_tiles)", _SAME_END),
    ("missing-reconfig", "unified/matmul.hpp", "pack_reconfig_data_format(out);",
     "the packer was last configured for a bfloat16 CB (the start-up's output, or the fused RMSNorm's) and every "
     "matmul output is bfloat16, so the reconfig changes nothing today; a float32 or bfloat8_b output would make it "
     "observable"),
    ("missing-reconfig", "unified/matmul.hpp", "reconfig_data_format<SrcOrder::Reverse>(in0, CTArgs::in1_cb);",
     "with a streamed activation the norm core is never a weight core, so every MatmulStreamed runs right after "
     "compute_kernel_hw_startup on the same CBs"),
    ("missing-reconfig", "unified/matmul.hpp", "pack_reconfig_data_format(CTArgs::out_cb);", _BF16_OUT),
    ("missing-reconfig", "unified/matmul.hpp", "pack_reconfig_data_format(CTArgs::outb_cb);", _BF16_OUT),
    ("missing-reconfig", "unified/rmsnorm.hpp", "reconfig_data_format<SrcOrder::Reverse>(x_cb, x_cb);",
     "x and every input unpacked before it (the residual add's x and residual) are bfloat16: the unpacker is already "
     "set for x"),
    ("missing-reconfig", "unified/rmsnorm.hpp", "pack_reconfig_data_format(diag_cb);", _SAME_SCRATCH),
    ("missing-reconfig", "unified/rmsnorm.hpp", "pack_reconfig_data_format(rinv_cb);", _SAME_SCRATCH),
    ("missing-reconfig", "unified/rmsnorm.hpp", "reconfig_data_format(CTArgs::x_cb, CTArgs::res_cb);", _AFTER_STARTUP),
    ("missing-reconfig", "unified/rmsnorm.hpp", "pack_reconfig_data_format(CTArgs::sum_cb);", _AFTER_STARTUP),
    ("cb-count", "unified/rmsnorm.hpp", "cb_pop_front(const_cb, 2);",
     "nothing reads the constant CB after this pop, and a program's CB state ends with it"),
    ("cb-count", "unified/rmsnorm.hpp", "cb_pop_front(gram_cb, 1);", _LAST_POP),
    ("cb-count", "unified/rmsnorm.hpp", "cb_pop_front(diag_cb, 1);", _LAST_POP),
    ("cb-count", "unified/rmsnorm.hpp", "cb_pop_front(rinv_cb, 1);", _LAST_POP),
    ("ct-arg-order", "unified/rmsnorm.hpp", 'TTFUSE_NAMED(P, "gram_cb"), TTFUSE_NAMED(P, "diag_cb")',
     "the gram and diag CBs are alike (one tile, one data format), so which one holds which changes nothing"),
]


def equivalent(m: "Mutant") -> str | None:
    for cat, file, needle, why in EQUIVALENT:
        if m.category == cat and m.file == file and needle in m.before:
            return why
    return None


def _line_ops():
    """(category, regex over one line, replacement(match) -> new line or None to delete)."""
    delete = lambda m: None  # noqa: E731
    return [
        ("cb-count", re.compile(r"\b(cb_push_back|cb_wait_front|cb_reserve_back|cb_pop_front)\(([^,()]+),\s*(.+)\);"),
         lambda m: m.string[:m.start()] + f"{m[1]}({m[2]}, ({m[3]}) - 1);" + m.string[m.end():]),
        ("missing-barrier", re.compile(r"^\s*noc_async_(read_barrier|write_barrier|writes_flushed|atomic_barrier)\(\);"),
         delete),
        ("missing-init", re.compile(r"^\s*(matmul_init|matmul_block_init|mul_init|add_init|mul_bcast_rows_init|"
                                    r"mul_reuse_dest_init|binop_with_scalar_tile_init|rsqrt_tile_init|silu_tile_init|"
                                    r"sigmoid_tile_init|relu_tile_init)\b.*;"), delete),
        ("missing-reconfig", re.compile(r"^\s*(pack_)?reconfig_data_format\w*(<[^>]*>)?\(.*\);"), delete),
        ("dst-protocol", re.compile(r"^\s*tile_regs_(acquire|commit|wait|release)\(\);"), delete),
        ("tile-index", re.compile(r"\b(matmul_tiles|mul_tiles|add_tiles|mul_tiles_bcast_rows)\((\w+), (\w+), ([^,]+), "),
         lambda m: m.string[:m.start()] + f"{m[1]}({m[2]}, {m[3]}, {m[4]} + 1, " + m.string[m.end():]),
        ("tile-index", re.compile(r"\bpack_tile\(([^,]+),"),
         lambda m: m.string[:m.start()] + f"pack_tile({m[1]} + 1," + m.string[m.end():]),
        ("face-index", re.compile(r"\b(kFace1RowWord|kFaceElements / 2|half \* 2 \* 512|face_col \* 256)\b"),
         lambda m: m.string[:m.start()] + f"({m[0]} + 16)" + m.string[m.end():]),
        ("rt-arg-order", re.compile(r"\bget_(common_)?arg_val<uint32_t>\((\d+)\)"),
         lambda m: m.string[:m.start()] + f"get_{m[1] or ''}arg_val<uint32_t>({int(m[2]) + 1})" + m.string[m.end():]),
        # a semaphore handshake aimed at the other semaphore (e.g. receivers bump `valid` instead of `ready`)
        ("semaphore-target", re.compile(r"get_semaphore\(CTArgs::(ready|valid)_sem\)"),
         lambda m: m.string[:m.start(1)] + ("valid" if m[1] == "ready" else "ready") + m.string[m.end(1):]),
        ("mcast-count", re.compile(r"CTArgs::num_dests\b"),
         lambda m: m.string[:m.start()] + "(CTArgs::num_dests + 1)" + m.string[m.end():]),
    ]


_ARG_PAIR = re.compile(r'TTFUSE_NAMED\((\w+), ("[^"]+")\), TTFUSE_NAMED\(\1, ("[^"]+")\)')
_NAMED_PAIR = re.compile(r'get_named_compile_time_arg_val\(("[^"]+")\),(\s*)get_named_compile_time_arg_val\(("[^"]+")\)')


def derive(root: Path = KERNELS) -> list[Mutant]:
    """Every mutant of every kernel source under ``root``, one edit each."""
    out: list[Mutant] = []
    for path in sorted(root.rglob("*")):
        if path.suffix not in (".hpp", ".cpp") or not path.is_file():
            continue
        rel = str(path.relative_to(root))
        for i, line in enumerate(path.read_text().splitlines()):
            if line.lstrip().startswith("//"):
                continue
            for cat, rx, fn in _line_ops():
                for m in rx.finditer(line):
                    new = fn(m)
                    if new != line:
                        out.append(Mutant(cat, rel, i + 1, line, new if new is not None else ""))
                    break
            # compile-time args read in the wrong order: swap two adjacent named args
            for rx, swap in ((_ARG_PAIR, lambda m: f"TTFUSE_NAMED({m[1]}, {m[3]}), TTFUSE_NAMED({m[1]}, {m[2]})"),
                             (_NAMED_PAIR, lambda m: f"get_named_compile_time_arg_val({m[3]}),{m[2]}"
                                                     f"get_named_compile_time_arg_val({m[1]})")):
                for m in rx.finditer(line):
                    out.append(Mutant("ct-arg-order", rel, i + 1, line,
                                      line[:m.start()] + swap(m) + line[m.end():]))
    return out


def apply(m: Mutant, src_root: Path, dst_root: Path) -> None:
    if dst_root.exists():
        shutil.rmtree(dst_root)
    shutil.copytree(src_root, dst_root)
    f = dst_root / m.file
    lines = f.read_text().splitlines()
    assert lines[m.line - 1] == m.before, m
    lines[m.line - 1] = m.after
    f.write_text("\n".join(lines) + "\n")


def sample(mutants: list[Mutant], n: int, seed: int = 0) -> list[Mutant]:
    """A fixed sample that covers every category before it repeats one."""
    rng = random.Random(seed)
    by_cat: dict[str, list[Mutant]] = {}
    for m in mutants:
        by_cat.setdefault(m.category, []).append(m)
    for v in by_cat.values():
        rng.shuffle(v)
    out: list[Mutant] = []
    while len(out) < n and any(by_cat.values()):
        for cat in sorted(by_cat):
            if by_cat[cat] and len(out) < n:
                out.append(by_cat[cat].pop())
    return out


def _uses(case_sources: dict, rel: str, root: Path) -> list[str]:
    return [name for name, deps in case_sources.items() if (root / rel).resolve() in deps]


def run(mutants: list[Mutant], device, *, timeout: float = 60.0, log=print) -> dict:
    """Run the cases affected by each mutant; returns {'caught': [...], 'survived': [...], 'stillborn': [...]}."""
    from emulator import cases as C

    all_cases = C.mutation_cases()
    # which kernel files each case's program compiles (built once, unmutated)
    sources: dict[str, set] = {}
    for case in all_cases:
        built = case.build(device)
        deps: set = set()
        for kd in built.program.kernels:
            deps |= set(kernel_deps(Path(kd.kernel_source).resolve(), KERNELS))
        sources[case.name] = deps
        import ttnn

        for t in built.tensors:
            ttnn.deallocate(t)
    result = {"caught": [], "survived": [], "stillborn": [], "equivalent": [], "false_alarm": []}
    with tempfile.TemporaryDirectory(prefix="ttfuse-mutant-") as tmp:
        root = Path(tmp) / "kernels"
        for i, m in enumerate(mutants):
            t0 = time.perf_counter()
            apply(m, KERNELS, root)
            names = _uses(sources, m.file, KERNELS)
            verdict, why = "survived", "every case passed"
            for case in [c for c in all_cases if c.name in names]:
                try:
                    reason = C.run_case(case, device, kernel_root=root, timeout=timeout)
                except BuildError as e:
                    verdict, why = "stillborn", str(e).splitlines()[0]
                    break
                except EmulatorError as e:
                    verdict, why = "caught", f"{case.name}: {type(e).__name__}: {e.report.splitlines()[0][:160]}"
                    break
                if reason:
                    verdict, why = "caught", f"{case.name}: {reason[:160]}"
                    break
            same = equivalent(m)
            if same is not None:  # expected to pass every case
                verdict, why = ("equivalent", same) if verdict == "survived" else ("false_alarm", why)
            result[verdict].append((m, why))
            log(f"[{i + 1}/{len(mutants)}] {verdict:9s} {m.name} ({time.perf_counter() - t0:.1f} s): {why}")
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emulator.mutants", description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=int, default=0, help="run a fixed sample of this many mutants (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--list", action="store_true", help="list the mutants and stop")
    ap.add_argument("--category", default=None, help="only mutants of this category")
    args = ap.parse_args(argv)
    mutants = derive()
    if args.category:
        mutants = [m for m in mutants if m.category == args.category]
    if args.sample:
        mutants = sample(mutants, args.sample, args.seed)
    if args.list:
        for m in mutants:
            print(f"{m.name}\n  - {m.before.strip()}\n  + {m.after.strip() or '(deleted)'}")
        print(f"{len(mutants)} mutants")
        return 0
    from micro_ops import mock_device as md

    with md.open_mock_device() as dev:
        r = run(mutants, dev)
    live = len(r["caught"]) + len(r["survived"])
    print(f"\nkernel mutation score: {len(r['caught'])}/{live} caught "
          f"({100.0 * len(r['caught']) / max(live, 1):.1f}%), {len(r['stillborn'])} did not compile, "
          f"{len(r['equivalent'])} equivalent (listed in emulator/mutants.py with the reason), "
          f"{len(r['false_alarm'])} equivalent mutants rejected (false alarms)")
    for m, why in r["false_alarm"]:
        print(f"FALSE ALARM {m.name}: {why}")
    for m, _ in r["survived"]:
        print(f"SURVIVED {m.name}\n  - {m.before.strip()}\n  + {m.after.strip() or '(deleted)'}")
    by: dict = {}
    for verdict in ("caught", "survived", "stillborn", "equivalent", "false_alarm"):
        for m, _ in r[verdict]:
            by.setdefault(m.category, dict.fromkeys(("caught", "survived", "stillborn", "equivalent", "false_alarm"),
                                                    0))[verdict] += 1
    for cat, v in sorted(by.items()):
        print(f"  {cat:18s} caught {v['caught']:3d}  survived {v['survived']:3d}  did not compile {v['stillborn']:3d}"
              f"  equivalent {v['equivalent']:3d}")
    return 1 if r["survived"] or r["false_alarm"] else 0


if __name__ == "__main__":
    sys.exit(main())
