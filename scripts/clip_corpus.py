"""Make a corpus of clipped recordings from clean ones, to study self-supervised fine-tuning.

Each file is clipped whole at the level that gives an input SDR drawn uniformly from a range (the
survey's rule), then normalised so the level sits at full scale and written as 16-bit FLAC: what a
recording that hit the converter's limit looks like. The clean files are never used afterwards.

    python scripts/clip_corpus.py data/corpus/train/wesnoth data/wesnoth-clipped --input-sdr 3,15
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from declipper.audio import audio_files
from declipper.evaluation import clip_at_input_sdr

FULL_SCALE = 32767 / 32768


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--input-sdr", default="3,15", help="Range of input SDRs (dB), drawn per file.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    low, high = (float(v) for v in args.input_sdr.split(","))
    rng = np.random.default_rng(args.seed)
    args.target.mkdir(parents=True, exist_ok=True)
    manifest = []
    for path in audio_files([args.source]):
        clean, rate = sf.read(str(path), dtype="float32", always_2d=True)
        target_sdr = float(rng.uniform(low, high))
        clipped, levels = clip_at_input_sdr(clean, target_sdr)
        out = args.target / (path.stem + ".flac")
        sf.write(str(out), clipped * (FULL_SCALE / levels.upper[0]), rate, subtype="PCM_16")
        manifest.append({"source": str(path), "clipped": str(out), "input_sdr": round(target_sdr, 2),
                         "clipped_fraction": round(float((clipped != clean).mean()), 4)})
        print(json.dumps(manifest[-1]))
    (args.target / "manifest.json").write_text(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    main()
