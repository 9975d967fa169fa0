"""Benchmark of the network alone: samples per second through a model, as the design study reports.

    python benchmarks/network_throughput.py [--model small|large|PATH] [--threads 1] [--precision bf16]

Runs batches of the engine's default size (4 windows of 65536 samples) of clipped noise through the
model on one worker, after two warm-up batches, and prints mono samples restored per second. To
restore stereo 44.1 kHz 30x faster than real time, `declipper fix` must put out 2.65 M samples/s,
which with the windows' 1/8 overlap means 3.0 M samples/s through the network, on all workers together.
"""
from __future__ import annotations

import argparse
import time

import torch

from declipper import EngineSettings, load_model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--batches", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model).eval()
    settings = EngineSettings()
    generator = torch.Generator().manual_seed(0)
    y = torch.randn(settings.batch, settings.window, generator=generator).clamp(-1, 1)
    mask = (y >= 1).to(torch.int8) - (y <= -1).to(torch.int8)
    level = torch.ones(settings.batch, 1)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
        for _ in range(2):
            model(y, mask, level, -level, level)
        started = time.perf_counter()
        for _ in range(args.batches):
            model(y, mask, level, -level, level)
        seconds = time.perf_counter() - started
    rate = args.batches * y.numel() / seconds
    print(f"{args.model or 'default'}: {rate / 1e6:.2f} M samples/s ({args.threads} thread(s), {args.precision}, "
          f"batches of {settings.batch} x {settings.window})")


if __name__ == "__main__":
    main()
