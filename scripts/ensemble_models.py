"""Combine trained checkpoints into one that restores with the mean of their estimates.

Usage: python scripts/ensemble_models.py A.pt B.pt [...] -o OUT.pt

The result restores as it is (`declipper fix --model OUT.pt`), and `declipper train --init OUT.pt`
fine-tunes all its members jointly. Each member's own metadata (data, commands, steps) is kept.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from declipper import __version__
from declipper.checkpoint import load_checkpoint, resolve_model_path, save_checkpoint
from declipper.network import Ensemble


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("members", nargs="+", help="checkpoints of single networks, or the shipped name small")
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    loaded = [load_checkpoint(resolve_model_path(name)) for name in args.members]
    if any(isinstance(model, Ensemble) for model, _ in loaded):
        raise SystemExit("members must be single networks, not ensembles")
    rates = set.intersection(*(set(metadata.get("sample_rates", [])) for _, metadata in loaded))
    for _, metadata in loaded:
        metadata.pop("format", None)
    save_checkpoint(args.out, Ensemble.of([model for model, _ in loaded]), {
        "version": __version__, "sample_rates": sorted(rates),
        "members": [{"source": str(name), **metadata} for name, (_, metadata) in zip(args.members, loaded)],
    })
    print(f"{args.out}: mean of {len(loaded)} models")


if __name__ == "__main__":
    main()
