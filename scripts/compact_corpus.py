"""A compact copy of a training corpus, to train on a machine that the full corpus cannot reach.

Usage: python scripts/compact_corpus.py SRC DEST [--segments 4] [--seconds 12] [--quality 0.8]

From each audio file under SRC, ``segments`` evenly spaced stretches of ``seconds`` are averaged to
mono and written, at the file's own rate, as one Ogg Vorbis file (quality given as libsndfile's
compression level, 0 best to 1 smallest; 0.8 is about 60 kbit/s). The codec's own noise becomes part
of the "clean" signal, which clipping is then simulated on; what the network learns about restoring
peaks is unaffected by it, and a corpus of hours fits in tens of MB.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf

from declipper.audio import audio_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--quality", type=float, default=0.8)
    args = parser.parse_args()
    total = 0.0
    for path in audio_files([args.src]):
        info = sf.info(str(path))
        length = int(args.seconds * info.samplerate)
        pieces = []
        for k in range(args.segments):
            start = max(0, int((k + 0.5) * info.frames / args.segments) - length // 2)
            audio, _ = sf.read(str(path), start=start, frames=length, dtype="float32", always_2d=True)
            pieces.append(audio.mean(axis=1))
        mono = np.ascontiguousarray(np.concatenate(pieces))
        target = args.dest / path.relative_to(args.src).with_suffix(".ogg")
        target.parent.mkdir(parents=True, exist_ok=True)
        # written in blocks: libsndfile's Vorbis encoder crashes on very long single writes
        with sf.SoundFile(target, "w", info.samplerate, 1, format="OGG", subtype="VORBIS",
                          compression_level=args.quality) as out:
            for start in range(0, len(mono), 1 << 15):
                out.write(mono[start : start + (1 << 15)])
        total += len(mono) / info.samplerate
        print(f"{target}  {len(mono) / info.samplerate:.0f} s")
    print(f"{total / 3600:.2f} h in all")


if __name__ == "__main__":
    main()
