"""Score `--method hybrid` at several A-SPADE shares, running the network and A-SPADE once per item.

Usage: python scripts/hybrid_shares.py CLEAN... [--model large] [--shares 0,0.2,0.35,1]
       [--input-sdr 1,3,5,7,10,15,20] [--part 0 --parts 2]

Each clean file is clipped at each input SDR (the survey's rule), restored by the network and by
A-SPADE, and every blend (1 - s) * network + s * A-SPADE is scored: the table in docs/experiments.md
and the choice of the default share come from this. A-SPADE costs
nearly all the time (about 36 minutes for the 98 held-out items on one core), so ``--part K
--parts N`` scores every N-th item from the K-th, one process per core, and ``--merge`` adds up the
JSON files the parts wrote.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from declipper import load_model, restore
from declipper.engine import EngineSettings
from declipper.evaluation import clip_at_input_sdr, delta_sdr, excerpts
from declipper.hybrid import blend
from declipper.sparse import aspade


def score_part(args: argparse.Namespace) -> dict:
    model = load_model(args.model)
    shares = [float(s) for s in args.shares.split(",")]
    levels = [float(v) for v in args.input_sdr.split(",")]
    files = sorted(str(p) for c in args.clean for p in (Path(c).rglob("*.flac") if Path(c).is_dir() else [Path(c)]))
    items = [(name, clean, rate, level) for f in files for name, clean, rate in excerpts(f, None, 1) for level in levels]
    scores = []
    for name, clean, rate, level in items[args.part :: args.parts]:
        clipped, clip_levels = clip_at_input_sdr(clean, level)
        network = restore(clipped, rate, model, levels=clip_levels, engine=EngineSettings(precision=args.precision))
        sparse = aspade(clipped, clip_levels)
        scores.append({"item": name, "input_sdr": level,
                       "delta_sdr": [delta_sdr(clean, clipped, blend(network, sparse, s))["delta_sdr"] for s in shares]})
        print(f"{name} {level:g} dB: " + " ".join(f"{v:.2f}" for v in scores[-1]["delta_sdr"]), flush=True)
    return {"model": args.model, "shares": shares, "items": scores}


def print_table(parts: list[dict]) -> None:
    shares, items = parts[0]["shares"], [row for part in parts for row in part["items"]]
    levels = sorted({row["input_sdr"] for row in items})
    print("share | " + " | ".join(f"{v:g}" for v in levels) + " | mean")
    for index, share in enumerate(shares):
        means = [np.mean([r["delta_sdr"][index] for r in items if r["input_sdr"] == v]) for v in levels]
        print(f"{share:g} | " + " | ".join(f"{m:.2f}" for m in means) + f" | {np.mean(means):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clean", nargs="+", help="clean files or folders (of .flac)")
    parser.add_argument("--model", default="large")
    parser.add_argument("--shares", default="0,0.2,0.25,0.3,0.35,0.4,0.45,0.5,0.6,1")
    parser.add_argument("--input-sdr", default="1,3,5,7,10,15,20")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--part", type=int, default=0)
    parser.add_argument("--parts", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("-o", "--output", help="write this part's scores as JSON")
    parser.add_argument("--merge", action="store_true", help="CLEAN are JSON files written by -o: print their table")
    args = parser.parse_args()
    if args.merge:
        print_table([json.loads(Path(p).read_text()) for p in args.clean])
        return
    torch.set_num_threads(args.threads)
    part = score_part(args)
    if args.output:
        Path(args.output).write_text(json.dumps(part, indent=1))
    print_table([part])


if __name__ == "__main__":
    main()
