"""Fuse the bundled example models, print each report, and check fused == original on the CPU."""
from __future__ import annotations

import argparse
import sys
import time

import torch

import fusion
from fusion.host import use_mock_cluster_if_no_hardware
from examples.gpt_oss_moe import CONFIGS, GptOssMoEDecode
from examples.llama_decoder import CONFIGS as DECODER_CONFIGS, LlamaDecoderLayer
from fusion.verify import pcc


def _equal(a, b) -> bool:
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return torch.equal(a, b)


def run_moe() -> bool:
    ok = True
    for chain in ("seed", "bcast"):
        for cfg in CONFIGS:
            model = GptOssMoEDecode(**cfg, weight_chain=chain)
            t0 = time.perf_counter()
            fused = fusion.fuse(model, model.example_inputs())
            dt = time.perf_counter() - t0
            print(f"\n=== GPT-OSS MoE decode, weight chain '{chain}', H={cfg['hidden_size']}, "
                  f"K={cfg['num_experts_per_tok']}, E={cfg['num_experts']} (fused in {dt:.2f} s)")
            print(fused.report)
            inputs = model.random_inputs()
            same = _equal(fusion.run_reference(model, *inputs), fusion.run_reference(fused, *inputs))
            print(f"reference semantics, fused vs original: {'bit-exact' if same else 'MISMATCH'}")
            ok = ok and same and len(fused.report.rewrites) == 1
    return ok


def run_decoder() -> bool:
    ok = True
    for cfg in DECODER_CONFIGS:
        model = LlamaDecoderLayer(**cfg)
        t0 = time.perf_counter()
        fused = fusion.fuse(model, model.example_inputs())
        dt = time.perf_counter() - t0
        print(f"\n=== Llama decoder layer, {cfg['mode']}, hidden {cfg['hidden']}, ffn {cfg['ffn']} (fused in {dt:.2f} s)")
        print(fused.report)
        x = model.random_inputs()
        p = pcc(fusion.run_reference(model, *x), fusion.run_reference(fused, *x))
        print(f"reference semantics, fused vs original: pcc {p:.6f}")
        ok = ok and p >= 0.999 and len(fused.report.rewrites) >= 1
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args(argv)
    # weights are TILE host tensors: without a device, tt-metal needs a (mock) cluster for tile sizes
    use_mock_cluster_if_no_hardware()
    ok = run_moe()
    ok = run_decoder() and ok
    print("\nall example models fused and verified" if ok else "\nSOME EXAMPLE DID NOT FUSE OR DISAGREED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
