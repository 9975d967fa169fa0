"""Cut fixed excerpts of clean tracks into small FLAC files: a test set that travels and never changes.

Usage: python scripts/make_excerpts.py SRC DEST [--seconds 5] [--per-file 2] [--mono] [--rate HZ]

The excerpts are evenly spaced in each track (as ``declipper eval --seconds --excerpts`` takes them)
and written as 16-bit FLAC, so scores computed anywhere on them (A-SPADE once, every model since)
refer to the same samples. Scores cached by ``declipper eval`` key an item by its samples' hash.
``--rate`` resamples the excerpts (resampy), to score a model at rates other than the tracks' own.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import resampy
import soundfile as sf

from declipper.audio import audio_files
from declipper.evaluation import excerpts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--per-file", type=int, default=2)
    parser.add_argument("--mono", action="store_true", help="Average the channels (smaller files).")
    parser.add_argument("--rate", type=int, help="Resample the excerpts to this rate (Hz).")
    args = parser.parse_args()
    args.dest.mkdir(parents=True, exist_ok=True)
    for path in audio_files([args.src]):
        for number, (_, audio, rate) in enumerate(excerpts(path, args.seconds, args.per_file)):
            if args.mono:
                audio = audio.mean(axis=1, keepdims=True)
            if args.rate and args.rate != rate:
                audio, rate = resampy.resample(audio, rate, args.rate, axis=0), args.rate
            target = args.dest / f"{path.parent.name}--{path.stem.replace(' ', '_')}--{number + 1}.flac"
            sf.write(target, audio.clip(-1, 1 - 2**-15), rate, subtype="PCM_16")
            print(f"{target}  {audio.shape[0] / rate:.1f} s, {audio.shape[1]} ch, {rate} Hz")


if __name__ == "__main__":
    main()
