"""Speed and quality of the A-SPADE baseline (declipper.sparse) on real audio.

    python benchmarks/aspade_speed.py SONG [--seconds 5] [--input-sdr 3 10 20] [--threads 1]
        [--max-iterations N|survey] [--batch B] [--dtype float32] [--analysis-window hann]

The first --seconds of SONG are clipped at each input SDR with the survey's rule (symmetric level,
Záviška et al. 2021) and declipped in this process; the wall time gives the real-time factor
(audio seconds per second of computation; below 1 is slower than real time) and delta_sdr the gain.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from declipper.evaluation import clip_at_input_sdr, delta_sdr  # noqa: E402
from declipper.sparse import ASpadeSettings, aspade  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("song", type=Path)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--input-sdr", type=float, nargs="+", default=[3.0, 10.0, 20.0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-iterations", type=lambda v: None if v == "survey" else int(v),
                        default=ASpadeSettings.max_iterations,
                        help="a cap per block, or 'survey' to run every block to convergence as the survey does")
    parser.add_argument("--batch", type=int, default=ASpadeSettings.batch)
    parser.add_argument("--dtype", choices=["float32", "float64"], default=ASpadeSettings.dtype)
    parser.add_argument("--analysis-window", choices=["hann", "rectangular"], default=ASpadeSettings.analysis_window)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = ASpadeSettings(max_iterations=args.max_iterations, batch=args.batch, dtype=args.dtype,
                              analysis_window=args.analysis_window)

    rate = sf.info(args.song).samplerate
    clean, rate = sf.read(args.song, dtype="float32", always_2d=True, frames=int(args.seconds * rate))
    seconds = len(clean) / rate
    print(f"{args.song.name}: {seconds:.1f} s, {clean.shape[1]} channel(s) at {rate} Hz; {settings}")
    for level in args.input_sdr:
        clipped, levels = clip_at_input_sdr(clean, level)
        started = time.perf_counter()
        restored = aspade(clipped, levels, settings)
        wall = time.perf_counter() - started
        scores = delta_sdr(clean, clipped, restored)
        print(f"input SDR {level:g} dB ({100 * scores['clipped_fraction']:.1f} % clipped): "
              f"delta SDR {scores['delta_sdr']:.2f} dB in {wall:.1f} s, real-time factor {seconds / wall:.3f} "
              f"({wall / seconds:.1f} s per second of audio)", flush=True)


if __name__ == "__main__":
    main()
