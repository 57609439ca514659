"""The differential fuzzer finds nothing on the catalog, and does find a pass that lies."""
import subprocess
import sys

import pytest
import ttnn

import fusion
from fusion import fuzz


def test_a_few_hundred_programs_fuse_without_a_mismatch():
    totals = fuzz.run(programs=300, seed=7, workers=1, out_dir="/tmp/ttfuse_fuzz_ok", progress=lambda *_: None)
    assert totals["programs"] == 300
    assert totals["rewrites"] > 100, "the generator must actually exercise the patterns"
    assert (totals["mismatches"], totals["crashes"], totals["hangs"]) == (0, 0, 0), totals["failures"]
    assert totals["invalid"] < 60


def test_programs_are_replayable_from_their_description():
    a, b = fuzz.draw_program(3, 11), fuzz.draw_program(3, 11)
    assert a == b
    assert fuzz.build_program(a)[0].code == fuzz.build_program(b)[0].code


def _lying_catalog():
    # a pattern whose replacement is wrong, with a verifier that has been switched off: what a
    # silent-wrong-rewrite bug would look like
    def unfused(x):
        return ttnn.relu(ttnn.silu(x))

    def wrong(x):
        return ttnn.relu(x)  # one dispatch fewer, and another function

    return [fusion.Pattern("lie", unfused, wrong, example=lambda rng: ({"x": fusion.TensorSpec((1, 1, 32, 32))}, {}))]


def test_the_fuzzer_catches_a_wrong_rewrite_and_saves_a_reproducer(monkeypatch, tmp_path):
    from fusion import api
    from fusion.verify import Outcome, Verifier, build_replacement

    monkeypatch.setattr(api, "default_patterns", _lying_catalog)
    monkeypatch.setattr(Verifier, "verify", lambda self, c, gm: Outcome(True, "skipped", build_replacement(c)))
    monkeypatch.setattr(api, "_SHARED_VERIFIER", None)
    totals = fuzz.run(programs=10, seed=0, workers=1, out_dir=str(tmp_path), progress=lambda *_: None)
    # programs whose instance was mutated into a near-miss do not fire the lie; the rest must be caught
    assert totals["mismatches"] >= 5 and len(totals["failures"]) == totals["mismatches"]
    repro = open(totals["failures"][0]).read()
    assert "mismatch" in repro and "DESCRIPTION" in repro
    # shrunk to the fewest segments that still fail
    desc = __import__("json").loads(eval(repro.split("json.loads(")[1].split(")\n")[0]))
    assert len(desc["segments"]) == 1


def test_command_line_prints_the_closing_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "fusion.fuzz", "--programs", "20", "--seed", "2", "--workers", "1",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("20 programs, ") and last.endswith(" 0 mismatches")


def test_the_fuzzer_catches_a_pass_that_moves_reads_across_writes(monkeypatch):
    """With the memory-effects rule switched off, the generator's in-place writes between a
    pattern instance's calls make the fused program read values the original never read."""
    from fusion import api

    monkeypatch.setattr(api.effects, "check", lambda c, index: None)
    results = [fuzz.check_program(fuzz.draw_program(0, i)) for i in range(150)]
    assert sum(r["status"] in ("mismatch", "crash") for r in results) >= 5


def test_reference_runs_model_buffers_like_a_device():
    import torch

    def moved_past_a_write(a, b):
        s = ttnn.silu(a)
        ttnn.add_(a, b)
        return ttnn.multiply(s, b)

    traced = fusion.trace(moved_past_a_write, [fusion.TensorSpec((1, 1, 32, 32))] * 2).graph_module
    graph = traced.graph
    silu, add_, mul = [n for n in graph.nodes if n.op == "call_function"]
    # the silu moved after the write reads the written buffer, as a device would
    with graph.inserting_before(mul):
        late = graph.call_function(ttnn.silu, (silu.args[0],))
    late.meta.update(silu.meta)
    mul.replace_input_with(silu, late)
    graph.erase_node(silu)
    traced.recompile()
    x, y = torch.ones(1, 1, 32, 32), torch.ones(1, 1, 32, 32)
    got = fusion.reference.ReferenceRunner(traced).run([x, y])
    assert torch.allclose(got.float(), torch.nn.functional.silu(torch.full((1, 1, 32, 32), 2.0)), atol=0.02)

    def use_after_free(a):
        b = ttnn.neg(a)
        ttnn.deallocate(a)
        return ttnn.add(a, b)

    with pytest.raises(fusion.InputError, match="freed its buffer"):
        fusion.run_reference(use_after_free, x)


def test_mutation_mode_refuses_every_result_changing_replacement_mutant():
    from fusion import mutants

    totals = mutants.run(seeds=1, progress=lambda *_: None)
    assert len(totals.results) > 200
    assert not totals.missed, [(r.pattern, r.spelling, r.mutant, r.why) for r in totals.missed]
    # survivors are only mutants shown bit-identical (commutative operands, linear <-> matmul)
    assert all(r.why == "bit-identical to the replacement" for r in totals.results if r.applicable and not r.refused)
    kinds = {r.mutant.split(" ")[0] for r in totals.results}
    assert {"output", "call"} <= kinds


def test_mutation_command_prints_its_score():
    out = subprocess.run([sys.executable, "-m", "fusion.fuzz", "--mutate", "--seeds", "1"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "score: 100.00%" in out.stdout and out.stdout.strip().splitlines()[-1].endswith(" 0 missed")
