"""Where in a coded plateau's band should restoration start? An oracle answer, from the true plateaus.

Usage: python scripts/lossy_band.py [TRACKS] [--codecs mp3-128 mp3-320 vorbis-q4] [--levels 3 10 20]

Two excerpts of each held-out track (default data/corpus/heldout) are clipped at full scale at each
input SDR, coded and decoded. Knowing where the master clipped, the decoded input is clipped again
at a percentile of the decoded plateau's magnitudes (50 %: its median; 0: its lowest sample; -5:
5 % below that), everything there is restored by the default network, and the mean ΔSDR is printed
beside the lossless master's. Detection cannot know the plateaus; this says where it should aim.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from lossy_codecs import FULL_SCALE, boosted  # noqa: E402

from declipper.api import load_model, restore  # noqa: E402
from declipper.audio import audio_files  # noqa: E402
from declipper.codecs import Codec  # noqa: E402
from declipper.evaluation import excerpts, sdr  # noqa: E402
from declipper.physics import ClippingLevels  # noqa: E402

PERCENTILES = (50, 25, 10, 5, 2, 1, 0.3, 0, -5, -10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tracks", nargs="?", type=Path, default=Path("data/corpus/heldout"))
    parser.add_argument("--codecs", nargs="+", default=["mp3-128", "mp3-320", "vorbis-q4"])
    parser.add_argument("--levels", type=float, nargs="+", default=[3.0, 10.0, 20.0])
    args = parser.parse_args()
    model = load_model()
    items = [item for path in audio_files([args.tracks]) for item in excerpts(path, 5.0, 2)]
    gains: dict[tuple[str, float], list[list[float]]] = {}
    for _, clean, rate in items:
        clean = clean.astype(np.float64)
        for level in args.levels:
            reference = boosted(clean, level)
            master = np.clip(reference, -FULL_SCALE, FULL_SCALE)
            clipped = np.abs(reference) >= FULL_SCALE
            channels = master.shape[1]
            lossless = restore(master.astype(np.float32), rate, model=model,
                               levels=ClippingLevels.uniform(channels, FULL_SCALE * 0.9999, -FULL_SCALE * 0.9999))
            gains.setdefault(("wav", level), []).append([sdr(reference, lossless) - sdr(reference, master)])
            for name in args.codecs:
                decoded = Codec(name).round_trip(master.astype(np.float32), rate).astype(np.float64)
                magnitudes = np.abs(decoded[clipped])
                row = []
                for percentile in PERCENTILES:
                    edge = (np.percentile(magnitudes, percentile) if percentile >= 0
                            else magnitudes.min() * (1 + percentile / 100))
                    restored = restore(np.clip(decoded, -edge, edge).astype(np.float32), rate, model=model,
                                       levels=ClippingLevels.uniform(channels, edge, -edge))
                    row.append(sdr(reference, restored) - sdr(reference, decoded))
                gains.setdefault((name, level), []).append(row)
    print(f"{len(items)} excerpts; mean ΔSDR (dB) restoring from a percentile of the decoded plateau\n")
    print("| codec | input SDR | lossless | " + " | ".join(f"{p:g} %" for p in PERCENTILES) + " |")
    print("|---|---|---|" + "---|" * len(PERCENTILES))
    for name in args.codecs:
        for level in args.levels:
            row = np.mean(gains[(name, level)], axis=0)
            lossless = np.mean(gains[("wav", level)])
            print(f"| {name} | {level:g} dB | {lossless:.2f} | " + " | ".join(f"{g:.2f}" for g in row) + " |")


if __name__ == "__main__":
    main()
