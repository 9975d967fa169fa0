"""Render MIDI files to audio with fluidsynth, optionally forcing every part onto one instrument.

Gives kinds of music the game soundtracks lack (solo piano, for instance), from Debian packages:

    apt-get install fluidsynth fluid-soundfont-gm openttd-openmsx   # GPL-2 scores, MIT soundfont
    pip install mido
    python scripts/render_midi.py /usr/share/games/openttd/baseset/openmsx data/piano --program 0 --held-out 6

Drum parts (MIDI channel 10) are dropped when a program is forced. Each rendering is normalised
to a peak of -1 dBFS and written as 16-bit FLAC; the last ``--held-out`` files (in name order) go to
``TARGET/heldout``, the rest to ``TARGET/train``.
"""
from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import mido
import numpy as np
import soundfile as sf

DRUMS = 9
SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"


def force_program(source: Path, target: Path, program: int) -> None:
    """Every channel plays ``program``; drums are dropped."""
    midi = mido.MidiFile(source)
    for track in midi.tracks:
        kept = []
        delay = 0
        for message in track:
            drop = hasattr(message, "channel") and message.channel == DRUMS
            if drop:
                delay += message.time  # keep the timing of what follows
                continue
            if message.type == "program_change":
                message = message.copy(program=program)
            kept.append(message.copy(time=message.time + delay))
            delay = 0
        track[:] = kept
    first = midi.tracks[0]
    for channel in range(16):
        if channel != DRUMS:
            first.insert(0, mido.Message("program_change", channel=channel, program=program, time=0))
    midi.save(target)


def render(midi: Path, out: Path, rate: int, soundfont: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "render.wav"
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(rate), "-F", str(wav), soundfont, str(midi)],
                       check=True, capture_output=True)
        audio, _ = sf.read(wav, dtype="float64", always_2d=True)
    audio = audio[: np.flatnonzero(np.abs(audio).max(axis=1) > 1e-4).max(initial=0) + 1]  # trailing silence
    sf.write(out, audio / np.abs(audio).max() * 10 ** (-1 / 20), rate, subtype="PCM_16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="Folder of .mid files.")
    parser.add_argument("target", type=Path)
    parser.add_argument("--program", type=int, default=None, help="General MIDI program for every part (0: piano).")
    parser.add_argument("--held-out", type=int, default=0)
    parser.add_argument("--rate", type=int, default=44100)
    parser.add_argument("--soundfont", default=SOUNDFONT)
    args = parser.parse_args()
    files = sorted(args.source.glob("*.mid"))
    with tempfile.TemporaryDirectory() as folder:
        for number, path in enumerate(files):
            part = "heldout" if number >= len(files) - args.held_out else "train"
            (args.target / part).mkdir(parents=True, exist_ok=True)
            midi = path
            if args.program is not None:
                midi = Path(folder) / path.name
                force_program(path, midi, args.program)
            out = args.target / part / (path.stem + ".flac")
            render(midi, out, args.rate, args.soundfont)
            print(f"{part}: {out} ({sf.info(out).duration:.0f} s)")


if __name__ == "__main__":
    main()
