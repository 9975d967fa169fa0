"""Give a trained waveform U-Net a spectral refiner after it, to fine-tune.

Usage: python scripts/add_refiner.py MODEL [--n-fft 2048] [--hop 1024] [--width 256] -o OUT.pt

The result restores exactly as MODEL does (the refiner's last projection starts at zero: see
``SpectralRefiner``); ``declipper train --init OUT.pt --context-lr R`` then teaches it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from declipper.checkpoint import load_checkpoint, resolve_model_path, save_stage
from declipper.network import with_refiner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a checkpoint of a waveform U-Net, or the shipped name small")
    parser.add_argument("--n-fft", type=int, default=2048, help="points per frame")
    parser.add_argument("--hop", type=int, default=1024, help="samples between frames")
    parser.add_argument("--width", type=int, default=256, help="channels between the two projections")
    parser.add_argument("--seed", type=int, default=0, help="seed of the refiner's random start")
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    model, metadata = load_checkpoint(resolve_model_path(args.model))
    torch.manual_seed(args.seed)
    try:
        result = with_refiner(model, args.n_fft, args.hop, args.width)
    except ValueError as error:
        raise SystemExit(f"{args.model}: {error}")
    save_stage(args.out, result, metadata, "refiner added",
               f"python scripts/add_refiner.py {args.model} --n-fft {args.n_fft} --hop {args.hop} "
               f"--width {args.width} --seed {args.seed} -o {args.out}")
    print(f"{args.out}: {args.model} followed by a {args.n_fft}-point spectral refiner")


if __name__ == "__main__":
    main()
