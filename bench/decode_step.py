#!/usr/bin/env python3
"""The demo model's own cost of one KV-cache decode step, in-process (no respawn), for a batch
of 1 and of 8 sequences: the ceiling on what continuous batching can gain on this machine.

  scripts/python bench/decode_step.py [--threads N] [--steps N] [--position P]

Prints one line per batch size: the median milliseconds of `step` over --steps calls.
"""
import argparse
import os
import statistics
import time

import torch

MODEL = os.path.join(os.path.dirname(__file__), "..", "models", "demo.pt")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--position", type=int, default=40, help="context length so far")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = torch.jit.load(MODEL)
    layers, heads, head_dim, context = 2, 4, 32, 128  # the demo model's respawn.json
    with torch.inference_mode():
        for batch in (1, 8):
            k = torch.zeros(layers, 8, heads, context, head_dim)
            v = torch.zeros_like(k)
            prompt = torch.tensor([list(b"The quick brown fox")])
            for slot in range(batch):
                model.prefill(prompt, slot, k, v)
            tokens = torch.full((batch,), 65)
            positions = torch.full((batch,), args.position)
            slots = torch.arange(batch)
            for _ in range(5):
                model.step(tokens, positions, slots, k, v)
            times = []
            for _ in range(args.steps):
                started = time.perf_counter()
                model.step(tokens, positions, slots, k, v)
                times.append((time.perf_counter() - started) * 1000)
            print(f"batch {batch}: step median {statistics.median(times):.3f} ms "
                  f"({args.threads} thread(s), position {args.position})")


if __name__ == "__main__":
    main()
