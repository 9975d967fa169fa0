"""Clipped masters that went through a lossy codec: does `scan` find the clipping, and what does `fix` gain?

Usage: python benchmarks/lossy_codecs.py [TRACKS] [--levels 3 10 20] [--codecs mp3-128 mp3-320 vorbis-q4 opus-128]
       [--quality fast] [--model PATH] [--also-16-bit] [--limit N] [--json out.json]

For two excerpts of each clean held-out track (default: data/corpus/test, never trained on) and input SDR, the
track is boosted until clipping at full scale gives that input SDR (the survey's rule), stored as
16-bit WAV (the lossless master) and encoded with each codec (Opus at 48 kHz: the track is
resampled with resampy first, and its own master is made at that rate). Each file then goes
through `declipper scan` and `declipper fix` as a user would run them (the API behind the CLI, the
default output name), and the result is scored against the boosted clean track. The same tracks,
unclipped (peak-normalised to full scale, and driven 6 dB into a brick-wall limiter) and coded,
check that unclipped lossy music is not flagged.

Printed per codec and level (means over tracks): the clipped share scan reports against the
truth (the worst ratio over tracks), the SDR before and after fix, ΔSDR, and ΔSDR as a share of
what fix gains on the lossless master. ``ceiling`` is the ΔSDR of the same track coded without
clipping (made quieter for the codec, then scaled back): the codec's own error, which a declipper
does not undo, caps what any restoration of the lossy file can gain.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import resampy
import soundfile as sf
import torch

from declipper.api import load_model, restore_file, scan_file
from declipper.audio import audio_files, output_path
from declipper.codecs import OPUS_RATE, Codec
from declipper.evaluation import excerpts, sdr
from declipper.physics import threshold_for_input_sdr
from declipper.presets import PRESETS, lossy_model, resolve
from declipper.sparse import ASpadeSettings

FULL_SCALE = 1 - 2**-15  # the largest 16-bit sample


def boosted(clean: np.ndarray, input_sdr: float) -> np.ndarray:
    """The track scaled so that clipping it at full scale gives ``input_sdr`` (all channels alike)."""
    flat = torch.from_numpy(clean.reshape(1, -1).astype(np.float64))
    return clean * (FULL_SCALE / float(threshold_for_input_sdr(flat, input_sdr)))


def limited(clean: np.ndarray, drive_db: float = 6.0, ceiling_db: float = -0.1) -> np.ndarray:
    """A loud, unclipped master: the track driven into a look-ahead brick-wall limiter (64 samples of
    look-ahead, instant attack, smooth release). Its crests pile up below the ceiling, the case
    detection must not take for clipping."""
    from numpy.lib.stride_tricks import sliding_window_view

    ceiling = 10 ** (ceiling_db / 20)
    x = clean * (10 ** (drive_db / 20) * ceiling / np.abs(clean).max())
    need = np.minimum(1.0, ceiling / np.maximum(np.abs(x).max(axis=1), 1e-12))
    lookahead = 64
    gain = sliding_window_view(np.concatenate([need, np.ones(lookahead - 1)]), lookahead).min(axis=1)
    release = np.empty_like(gain)
    level = 1.0
    for i, g in enumerate(gain):
        level = g if g < level else level + (g - level) * 0.001
        release[i] = level
    kernel = np.hanning(2 * lookahead + 1)
    smooth = np.minimum(np.convolve(release, kernel / kernel.sum(), mode="same"), release)
    y = x * smooth[:, None]
    return y * (ceiling / np.abs(y).max())


def fix(source: Path, preset: dict) -> tuple[np.ndarray, dict, dict]:
    """`declipper scan` and `declipper fix` on one file, as the CLI runs them, with default output."""
    scanned = scan_file(source).to_json()
    target = output_path(source, None, None, False, False)
    fixed = restore_file(source, target, **preset).to_json()
    audio, _ = sf.read(fixed["output"], dtype="float64", always_2d=True)
    return audio / 10 ** (fixed["gain_db"] / 20), scanned, fixed


def share(report: dict) -> float:
    return float(np.mean(report["clipped_fraction"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tracks", nargs="?", type=Path, default=Path("data/corpus/test"))
    parser.add_argument("--levels", type=float, nargs="+", default=[3.0, 10.0, 20.0])
    parser.add_argument("--codecs", nargs="+", default=["mp3-128", "mp3-320", "vorbis-q4", "opus-128"])
    parser.add_argument("--quality", default="fast", choices=sorted(PRESETS))
    parser.add_argument("--model", help="A checkpoint instead of the preset's model.")
    parser.add_argument("--also-16-bit", action="store_true",
                        help="Also each coded file decoded to 16-bit WAV (the codec's overshoot clipped again).")
    parser.add_argument("--seconds", type=float, default=5.0, help="Two excerpts this long from each track.")
    parser.add_argument("--limit", type=int, help="Only the first N excerpts.")
    parser.add_argument("--json", type=Path, help="Write every measurement here.")
    args = parser.parse_args()
    codecs = [Codec(name) for name in args.codecs]
    model, method, speedup = resolve(args.quality, args.model)
    for_lossy = lossy_model(args.quality, args.model) if method == "network" else None
    preset = {"model": None if method == "aspade" else load_model(model), "method": method,
              "sparse_settings": ASpadeSettings().quicker(speedup),
              "lossy_model": load_model(for_lossy) if for_lossy else None}
    # the tracks' own float audio (the excerpts under data/excerpts were clipped to 16 bit)
    items = [item for path in audio_files([args.tracks]) for item in excerpts(path, args.seconds, 2)][: args.limit]
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        for number, (name, clean44, rate44) in enumerate(items):
            label = f"{Path(name.split('@')[0]).stem}@{name.split('@')[-1]}"
            clean44 = clean44.astype(np.float64)
            versions = {rate44: clean44}
            if any(c.family == "opus" for c in codecs) and rate44 != OPUS_RATE:
                versions[OPUS_RATE] = resampy.resample(clean44, rate44, OPUS_RATE, axis=0)
            for rate, clean in versions.items():
                names = [c for c in codecs if (OPUS_RATE if c.family == "opus" else rate44) == rate]
                # unclipped: peak-normalised to full scale, and limited: nothing must be flagged
                unclipped = {"peak at full scale": clean * (FULL_SCALE / np.abs(clean).max()),
                             "limited 6 dB": limited(clean)}
                for kind, loud in unclipped.items():
                    for codec in names:
                        path = work / f"{number}-{rate}-{kind[:4]}{codec.suffix}"
                        path.write_bytes(codec.encode(loud.astype(np.float32), rate))
                        rows.append({"track": label, "codec": codec.name, "level": None, "unclipped": kind,
                                     "scan_share": share(scan_file(path).to_json()), "true_share": 0.0})
                for level in args.levels:
                    reference = boosted(clean, level)
                    master = np.clip(reference, -FULL_SCALE, FULL_SCALE)
                    truth = float(np.mean(np.abs(reference) >= FULL_SCALE))
                    lossless = work / f"{number}-{rate}-{level:g}.wav"
                    sf.write(lossless, master, rate, subtype="PCM_16")
                    restored, scanned, _ = fix(lossless, preset)
                    stored = sf.read(lossless, dtype="float64", always_2d=True)[0]
                    base = {"track": label, "rate": rate, "level": level, "true_share": truth}
                    rows.append({**base, "codec": "wav", "scan_share": share(scanned),
                                 "before": sdr(reference, stored), "after": sdr(reference, restored)})
                    for codec in names:
                        coded = work / f"{number}-{rate}-{level:g}{codec.suffix}"
                        coded.write_bytes(codec.encode(master.astype(np.float32), rate))
                        decoded = sf.read(coded, dtype="float64", always_2d=True)[0]
                        # the codec's error without clipping: what a perfect restoration would still carry
                        shrink = FULL_SCALE / np.abs(reference).max()
                        unclipped = codec.round_trip((reference * shrink).astype(np.float32), rate) / shrink
                        ceiling = sdr(reference, unclipped) - sdr(reference, decoded)
                        inputs = [(codec.name, coded)]
                        if args.also_16_bit:  # decoded to 16-bit WAV first, as ffmpeg writes it by default
                            integer = work / f"{number}-{rate}-{level:g}-{codec.name}-s16.wav"
                            sf.write(integer, np.clip(decoded, -1, FULL_SCALE), rate, subtype="PCM_16")
                            inputs.append((f"{codec.name}→s16", integer))
                        for version, path in inputs:
                            before = sdr(reference, sf.read(path, dtype="float64", always_2d=True)[0])
                            restored, scanned, fixed = fix(path, preset)
                            rows.append({**base, "codec": version, "scan_share": share(scanned), "before": before,
                                         "after": sdr(reference, restored), "ceiling": ceiling,
                                         "output": Path(fixed["output"]).suffix,
                                         "restored_peak_db": 20 * np.log10(max(fixed["restored_peak"], 1e-12))})
            print(f"{name}: done ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    names = [c.name for c in codecs] + ([f"{c.name}→s16" for c in codecs] if args.also_16_bit else [])
    report(rows, args.levels, ["wav"] + names, len(items), args.quality)


def report(rows: list[dict], levels: list[float], codecs: list[str], tracks: int, quality: str) -> None:
    print(f"{tracks} tracks, `--quality {quality}`; means over tracks; scan ratio: reported / true clipped share "
          "(its worst over tracks in brackets)\n")
    print("| codec | input SDR | scan ratio | SDR before | SDR after | ΔSDR | ceiling | of lossless ΔSDR |")
    print("|---|---|---|---|---|---|---|---|")
    def lossless(found: list[dict]) -> float:
        """fix's ΔSDR on the same masters stored losslessly (at the same rate: Opus's are at 48 kHz)."""
        keys = {(r["track"], r["rate"], r["level"]) for r in found}
        return float(np.mean([r["after"] - r["before"] for r in rows
                              if r["codec"] == "wav" and (r["track"], r["rate"], r["level"]) in keys]))

    for codec in codecs:
        for level in levels:
            found = [r for r in rows if r["codec"] == codec and r["level"] == level]
            if not found:
                continue
            ratios = [r["scan_share"] / r["true_share"] for r in found]
            worst = max(ratios, key=lambda q: max(q, 1 / q) if q > 0 else np.inf)
            gain = np.mean([r["after"] - r["before"] for r in found])
            ceiling = f"{np.mean([r['ceiling'] for r in found]):.2f}" if codec != "wav" else "∞"
            print(f"| {codec} | {level:g} dB | {np.mean(ratios):.2f} ({worst:.2f}) | "
                  f"{np.mean([r['before'] for r in found]):.2f} | {np.mean([r['after'] for r in found]):.2f} | "
                  f"{gain:.2f} | {ceiling} | {100 * gain / lossless(found):.0f} % |")
    for kind in ("peak at full scale", "limited 6 dB"):
        unclipped = [r for r in rows if r["level"] is None and r["unclipped"] == kind]
        flagged = [r for r in unclipped if r["scan_share"] > 0]
        print(f"\nunclipped, {kind}, coded: {len(flagged)} of {len(unclipped)} files flagged"
              + (": " + ", ".join(f"{r['track']} {r['codec']} {100 * r['scan_share']:.3f} %" for r in flagged)
                 if flagged else ""))


if __name__ == "__main__":
    main()
