"""Benchmark of the network alone: samples per second through a model, as the design study reports.

    python benchmarks/network_throughput.py [--model small|large|PATH] [--threads 1] [--precision bf16]
        [--add-spectral 4,8,16,32,64 --n-fft 2048 --hop 1024]

Runs batches of the engine's default size (4 windows of 65536 samples) of clipped noise through the
model on one worker, after two warm-up batches, and prints mono samples restored per second. To
restore stereo 44.1 kHz 30x faster than real time, `declipper fix` must put out 2.65 M samples/s,
which with the windows' 1/8 overlap means 3.0 M samples/s through the network, on all workers together.

``--add-spectral WIDTHS`` appends an untrained spectral U-Net of that shape (kernel 3, stride 2) as a
second ensemble member: what such a member would cost beside the model, before training one.
"""
from __future__ import annotations

import argparse
import time

import torch

from declipper import EngineSettings, load_model
from declipper.network import Ensemble, EnsembleConfig, UNetConfig


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--add-spectral", help="widths of a spectral member to add, e.g. 4,8,16,32,64")
    parser.add_argument("--n-fft", type=int, default=2048)
    parser.add_argument("--hop", type=int, default=1024)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model).eval()
    name = args.model or "default"
    if args.add_spectral:
        widths = tuple(int(w) for w in args.add_spectral.split(","))
        spectral = UNetConfig(widths=widths, kernel=3, stride=2, domain="stft", n_fft=args.n_fft, hop=args.hop)
        if isinstance(model, Ensemble):
            raise SystemExit("--add-spectral takes a single network, not an ensemble")
        ensemble = Ensemble(EnsembleConfig((model.config, spectral)))
        ensemble.members[0].load_state_dict(model.state_dict())
        model = ensemble.eval()
        name += f" + spectral {args.add_spectral} ({args.n_fft}/{args.hop})"
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
    print(f"{name}: {rate / 1e6:.2f} M samples/s ({args.threads} thread(s), {args.precision}, "
          f"batches of {settings.batch} x {settings.window})")


if __name__ == "__main__":
    main()
