"""A-SPADE started from the network's estimate, against A-SPADE started from the clipped input.

Usage: python scripts/aspade_warm_start.py MEMBERS_DIR[,MEMBERS_DIR...] --every 3

Reads the items that scripts/hybrid_members.py saved (clean, clipped, the large network's and
A-SPADE's restorations at --sparse-speedup 4) and runs A-SPADE again at --sparse-speedup 8 and 16
from y (cold), and at 16 from the network's estimate (warm: the first iterate is the network's
restoration instead of y). Prints each alone and in the hybrid at fixed shares, per input SDR.
Why: A-SPADE is what makes `--quality best` slower than real time; a good first iterate might let
it stop sooner.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from declipper.evaluation import clip_at_input_sdr, delta_sdr
from declipper.hybrid import blend
from declipper.sparse import ASpadeSettings, aspade

RUNS = {"cold q8": (8, False), "cold q16": (16, False), "warm q16": (16, True)}
SHARES = (0.35, 0.65, 0.9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", help="member folders, comma-separated")
    parser.add_argument("--every", type=int, default=3, help="score every N-th item")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for folder in map(Path, args.folders.split(",")):
        rows: dict[float, list[dict[str, float]]] = {}
        seconds = {name: 0.0 for name in RUNS}
        for path in sorted(folder.glob("*.npz"))[:: args.every]:
            item = np.load(path)
            clean, clipped, network, level = item["clean"], item["clipped"], item["network"], float(item["input_sdr"])
            again, levels = clip_at_input_sdr(clean, level)
            assert np.array_equal(again, clipped), "the members were clipped differently"
            restored = {"network": network, "cold q4": item["sparse"]}
            for name, (speedup, warm) in RUNS.items():
                start = time.perf_counter()
                restored[name] = aspade(clipped, levels, ASpadeSettings().quicker(speedup), start=network if warm else None)
                seconds[name] += time.perf_counter() - start
            scores = {name: delta_sdr(clean, clipped, value)["delta_sdr"] for name, value in restored.items()}
            for name, value in restored.items():
                if name != "network":
                    scores.update({f"{name}, share {s:g}": delta_sdr(clean, clipped, blend(network, value, s))["delta_sdr"]
                                   for s in SHARES})
            rows.setdefault(level, []).append(scores)
        levels = sorted(rows)
        print(f"\n{folder} ({sum(map(len, rows.values()))} items); seconds: "
              + ", ".join(f"{name} {value:.0f}" for name, value in seconds.items()))
        print("| run | " + " | ".join(f"{v:g}" for v in levels) + " | mean |\n" + "|---" * (len(levels) + 2) + "|")
        for name in rows[levels[0]][0]:
            means = [np.mean([r[name] for r in rows[v]]) for v in levels]
            print(f"| {name} | " + " | ".join(f"{m:.2f}" for m in means) + f" | {np.mean(means):.2f} |")


if __name__ == "__main__":
    main()
