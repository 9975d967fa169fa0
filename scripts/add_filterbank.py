"""Give a trained waveform U-Net a learned filterbank feeding one of its levels, to fine-tune.

Usage: python scripts/add_filterbank.py MODEL --length 4096 [--level -1] [--inputs 3] -o OUT.pt

The result restores exactly as MODEL does (the filterbank's projection starts at zero: see
``FilterbankContext``); ``declipper train --init OUT.pt`` then teaches the U-Net to use it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from declipper.checkpoint import load_checkpoint, resolve_model_path, save_stage
from declipper.network import with_filterbank


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a checkpoint of a waveform U-Net, or the shipped name small")
    parser.add_argument("--length", type=int, required=True, help="filter length in samples")
    parser.add_argument("--level", type=int, default=-1,
                        help="the U-Net level it joins, an index into its widths (-1: the deepest)")
    parser.add_argument("--inputs", type=int, default=3, help="3: the filters read y/level and both masks; 1: y alone")
    parser.add_argument("--seed", type=int, default=0, help="seed of the filters' random start")
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    model, metadata = load_checkpoint(resolve_model_path(args.model))
    torch.manual_seed(args.seed)
    try:
        result = with_filterbank(model, args.length, args.level, args.inputs)
    except ValueError as error:
        raise SystemExit(f"{args.model}: {error}")
    save_stage(args.out, result, metadata, "filterbank added",
               f"python scripts/add_filterbank.py {args.model} --length {args.length} --level {args.level} "
               f"--inputs {args.inputs} --seed {args.seed} -o {args.out}")
    print(f"{args.out}: {args.model} with {args.length}-sample filters at level {result.net.context_level}")


if __name__ == "__main__":
    main()
