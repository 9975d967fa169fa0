"""Render tonal acoustic music (solo instruments and small ensembles) from public-domain scores.

The game soundtracks of the corpus are dense mixes; solo and chamber music, where a note is a few
sharp spectral lines held for a long time, is what the declipping survey measures on. This script
renders it with fluidsynth from music21's corpus (Bach chorales, Palestrina, Monteverdi, string
quartets by Haydn, Mozart and Beethoven, folk tunes), every part on a General MIDI instrument:

    apt-get install fluidsynth fluid-soundfont-gm timgm6mb-soundfont musescore-general-soundfont
    pip install music21 mido
    python scripts/render_tonal.py data/tonal/test --set test      # 16 excerpts, the evaluation set
    python scripts/render_tonal.py data/tonal/val --set val        # 16 more, to choose designs with
    python scripts/render_tonal.py data/tonal/train --set train --minutes 240

What keeps the evaluation honest:
* works: each collection's scores are split by a hash of their path; ``test`` and ``val`` draw from
  disjoint held-out shares, ``train`` never touches either;
* timbres: ``test`` and ``val`` are rendered with MuseScore_General.sf3, ``train`` only with
  FluidR3_GM.sf2 and TimGM6mb.sf2, so no evaluated sample of an instrument was ever trained on;
* what is rendered: the evaluation sets are fixed lists (``EVALUATION``) covering bowed strings,
  woodwinds, brass, plucked strings, mallets, keyboards, free reeds and voices, solo and ensemble,
  half of them in a simulated room.

Every note's velocity follows a slow random walk (a phrase swells and fades) around the score's,
and the tempo is scaled by 0.8-1.25, so that renderings are not all at one loudness and pace.
Rooms are simulated by convolution with an exponentially decaying noise tail (reverberation time
0.4-1.6 s, faster decay at high frequencies). The evaluation excerpts are the loudest fully active
``--seconds`` of each rendering, mono, 44.1 kHz, normalised to -1 dBFS, written as 24-bit FLAC with
``manifest.json`` saying what each one is. Training renderings are whole (up to 90 s), at 44.1,
48, 32 or 22.05 kHz.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import mido
import numpy as np
import soundfile as sf

EVALUATION_SOUNDFONT = "/usr/share/sounds/sf3/MuseScore_General.sf3"
TRAINING_SOUNDFONTS = ["/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2"]
TRAINING_RATES = [44100, 44100, 48000, 32000, 22050]
DRUMS = 9

# collection -> where its scores are in music21's corpus, and how many parts they have
COLLECTIONS = {
    "chorale": "bach",  # four voices
    "vocal": ("palestrina", "monteverdi", "josquin"),  # four to six voices
    "quartet": ("haydn", "mozart", "beethoven"),  # string quartets, four parts
    "folk": ("ryansMammoth", "essenFolksong", "oneills1850"),  # one melody
}

# General MIDI programs by family, with the pitch each sits best around (MIDI note number)
FAMILIES = {
    "bowed": {40: 76, 41: 64, 42: 50, 43: 38, 48: 64, 49: 64},
    "woodwind": {73: 79, 68: 74, 71: 67, 70: 50, 72: 86, 69: 67, 74: 79, 65: 64, 66: 57},
    "brass": {56: 70, 57: 53, 58: 38, 60: 60, 61: 62},
    "plucked": {24: 60, 25: 60, 46: 64, 45: 60, 105: 64, 107: 67},
    "mallets": {8: 79, 9: 86, 11: 70, 12: 67, 13: 79, 14: 67, 10: 79},
    "keyboard": {0: 62, 1: 62, 6: 62, 7: 62, 19: 60, 16: 60, 4: 62},
    "free_reed": {21: 62, 22: 72, 23: 62, 20: 60},
    "voice": {52: 62, 53: 62},
}


@dataclass(frozen=True)
class Spec:
    """One evaluation excerpt: what plays what, in which room."""

    name: str
    family: str
    collection: str
    programs: tuple[int, ...]  # one per part, in score order (a solo: one program for the melody)
    reverb: bool


EVALUATION = [
    Spec("violin", "bowed", "folk", (40,), False),
    Spec("cello", "bowed", "folk", (42,), True),
    Spec("string-quartet", "bowed", "quartet", (40, 40, 41, 42), True),
    Spec("flute", "woodwind", "folk", (73,), False),
    Spec("clarinet", "woodwind", "folk", (71,), True),
    Spec("wind-quartet", "woodwind", "chorale", (73, 68, 71, 70), False),
    Spec("trumpet", "brass", "folk", (56,), False),
    Spec("brass-quartet", "brass", "chorale", (56, 60, 57, 58), True),
    Spec("guitar", "plucked", "chorale", (24, 24, 24, 24), False),
    Spec("harp", "plucked", "folk", (46,), True),
    Spec("marimba", "mallets", "chorale", (12, 12, 12, 12), False),
    Spec("vibraphone", "mallets", "folk", (11,), True),
    Spec("piano", "keyboard", "chorale", (0, 0, 0, 0), True),
    Spec("organ", "keyboard", "vocal", (19, 19, 19, 19), True),
    Spec("accordion", "free_reed", "folk", (21,), False),
    Spec("choir", "voice", "vocal", (52, 52, 52, 52), True),
]


def share(path: str) -> str:
    """Which split a score belongs to, fixed by its path: 'test', 'val' or 'train'."""
    bucket = int(hashlib.sha1(path.encode()).hexdigest(), 16) % 20
    return "test" if bucket == 0 else "val" if bucket == 1 else "train"


def scores(collection: str, split: str) -> list[str]:
    from music21 import corpus

    roots = COLLECTIONS[collection]
    roots = (roots,) if isinstance(roots, str) else roots
    paths = []
    for path in corpus.getPaths():
        relative = str(path).split("/corpus/", 1)[1]
        if relative.split("/")[0] in roots and share(relative) == split:
            paths.append(str(path))
    return sorted(paths)


def score_to_midi(path: str, target: Path, measures: int = 48) -> int:
    """Write the first ``measures`` bars of a score as MIDI; returns its number of parts."""
    from music21 import converter

    score = converter.parse(path)
    if hasattr(score, "scores"):  # an opus (a folk-tune collection): take one tune
        tunes = [s for s in score.scores if s.flatten().notes]
        score = tunes[int(hashlib.sha1(path.encode()).hexdigest(), 16) % len(tunes)]
    parts = [p for p in score.parts if p.flatten().notes]
    if not parts:
        raise ValueError("no notes")
    try:
        score = score.measures(1, measures)
    except Exception:  # scores without measures: take them whole
        pass
    score.write("midi", fp=str(target))
    return len(parts)


def perform(source: Path, target: Path, programs: list[int], centres: list[int],
            rng: np.random.Generator) -> None:
    """Give each part its instrument, move it by octaves into the instrument's range, and play
    it with a phrased dynamic and a new tempo."""
    midi = mido.MidiFile(source)
    tempo_scale = rng.uniform(0.8, 1.25)
    note_tracks = [t for t in midi.tracks if any(m.type == "note_on" for m in t)]
    for number, track in enumerate(note_tracks):
        program, centre = programs[number % len(programs)], centres[number % len(centres)]
        pitches = [m.note for m in track if m.type == "note_on" and m.velocity > 0]
        shift = 12 * round((centre - float(np.median(pitches))) / 12) if pitches else 0
        channel = number if number < DRUMS else number + 1
        level, kept, sounding, delay = rng.uniform(60, 100), [], set(), 0
        for message in track:
            message = message.copy(time=message.time + delay)
            delay = 0
            if message.type in ("note_on", "note_off"):
                note = int(np.clip(message.note + shift, 21, 108))
                if message.type == "note_on" and message.velocity > 0:
                    if note in sounding:  # a unison of two voices, or a tie music21 wrote twice:
                        kept.append(mido.Message("note_off", channel=channel, note=note, time=message.time))
                        message = message.copy(time=0)  # end the first, or a held wind never stops
                    level = float(np.clip(level + rng.normal(0, 4), 45, 118))
                    velocity = int(np.clip(level + rng.normal(0, 5), 25, 127))
                    message = message.copy(note=note, velocity=velocity, channel=channel)
                    sounding.add(note)
                elif note in sounding:
                    message = mido.Message("note_off", channel=channel, note=note, time=message.time)
                    sounding.discard(note)
                else:  # the end of a note already ended
                    delay = message.time
                    continue
            elif message.type == "program_change":
                delay = message.time
                continue
            elif hasattr(message, "channel"):
                message = message.copy(channel=channel)
            kept.append(message)
        kept.insert(0, mido.Message("program_change", channel=channel, program=program, time=0))
        end = [i for i, m in enumerate(kept) if m.type == "end_of_track"]
        silence = [mido.Message("control_change", channel=channel, control=c, value=0, time=0) for c in (123, 120)]
        position = end[0] if end else len(kept)
        kept[position:position] = silence  # all notes off, all sound off: nothing rings past the end
        track[:] = kept
    for track in midi.tracks:
        for index, message in enumerate(track):
            if message.type == "set_tempo":
                track[index] = message.copy(tempo=int(message.tempo / tempo_scale))
    if not any(m.type == "set_tempo" for t in midi.tracks for m in t):
        midi.tracks[0].insert(0, mido.MetaMessage("set_tempo", tempo=int(500000 / tempo_scale), time=0))
    midi.save(target)


def render(midi: Path, soundfont: str, rate: int) -> np.ndarray:
    """fluidsynth, its own reverb and chorus off (rooms are added here); mono float64."""
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "render.wav"
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.4", "-R", "0", "-C", "0", "-r", str(rate),
                        "-F", str(wav), soundfont, str(midi)], check=True, capture_output=True, timeout=600)
        audio, _ = sf.read(wav, dtype="float64", always_2d=True)
    return audio.mean(axis=1)


def room(audio: np.ndarray, rate: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Convolve with a decaying noise tail: reverberation time T60, highs dying twice as fast."""
    t60 = rng.uniform(0.4, 1.6)
    t = np.arange(int(t60 * rate)) / rate
    noise = rng.standard_normal((2, t.size))
    low = np.convolve(noise[0], np.ones(8) / 8, mode="same")  # crude band split
    high = noise[1] - np.convolve(noise[1], np.ones(8) / 8, mode="same")
    tail = low * np.exp(-6.9 * t / t60) + high * np.exp(-13.8 * t / t60)
    onset = int(0.01 * rate)
    tail[:onset] = 0  # the first reflections arrive after 10 ms
    impulse = np.zeros(t.size)
    impulse[0] = 1.0
    wet = np.sqrt(rng.uniform(0.3, 1.5))  # reverberant to direct energy from -5 to +2 dB
    impulse += wet * tail / np.linalg.norm(tail)
    n = audio.size + impulse.size - 1
    size = 1 << (n - 1).bit_length()
    out = np.fft.irfft(np.fft.rfft(audio, size) * np.fft.rfft(impulse, size), size)[: audio.size]
    return out, t60


def loudest_active(audio: np.ndarray, rate: int, seconds: float) -> int:
    """Start of the loudest window of ``seconds`` in which every 50-ms frame is sounding."""
    hop = int(0.05 * rate)
    frames = audio[: audio.size // hop * hop].reshape(-1, hop)
    energy = np.sqrt((frames ** 2).mean(axis=1))
    length = int(seconds / 0.05)
    if energy.size < length:
        raise ValueError("shorter than an excerpt")
    floor = energy.max() * 10 ** (-40 / 20)
    best, start = -1.0, None
    for first in range(0, energy.size - length + 1, 5):
        window = energy[first:first + length]
        if window.min() > floor and np.median(window) > best:
            best, start = float(np.median(window)), first
    if start is None:
        raise ValueError("no fully active window")
    return start * hop


def normalise(audio: np.ndarray) -> np.ndarray:
    return audio / np.abs(audio).max() * 10 ** (-1 / 20)


def render_evaluation(dest: Path, split: str, seconds: float, seed: int) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    manifest = []
    for number, spec in enumerate(EVALUATION):
        rng = np.random.default_rng([seed, number, split == "val"])
        candidates = scores(spec.collection, split)
        order = rng.permutation(len(candidates))
        for index in order:
            path = candidates[index]
            try:
                with tempfile.TemporaryDirectory() as folder:
                    raw, played = Path(folder) / "score.mid", Path(folder) / "played.mid"
                    parts = score_to_midi(path, raw)
                    if spec.collection != "folk" and parts != len(spec.programs):
                        continue
                    centres = [FAMILIES[spec.family][p] for p in spec.programs]
                    if spec.collection != "folk" and len(set(spec.programs)) == 1:  # one instrument, all voices
                        centres = [c + o for c, o in zip(centres, (7, 2, -5, -12))]
                    perform(raw, played, list(spec.programs), centres, rng)
                    audio = render(played, EVALUATION_SOUNDFONT, 44100)
                t60 = None
                if spec.reverb:
                    audio, t60 = room(audio, 44100, rng)
                start = loudest_active(audio, 44100, seconds)
            except Exception as error:  # a score music21 cannot parse, or too short: the next one
                print(f"  skipped {path}: {error}", file=sys.stderr)
                continue
            excerpt = normalise(audio[start:start + int(seconds * 44100)])
            name = f"{number + 1:02d}-{spec.family}-{spec.name}{'-room' if spec.reverb else ''}.flac"
            sf.write(dest / name, excerpt, 44100, subtype="PCM_24")
            relative = path.split("/corpus/", 1)[1]
            manifest.append({"file": name, **asdict(spec), "score": relative, "start_s": start / 44100,
                             "t60_s": t60, "soundfont": Path(EVALUATION_SOUNDFONT).name})
            print(f"{name}  {relative}  from {start / 44100:.1f} s")
            break
        else:
            raise SystemExit(f"no usable score for {spec.name} in the {split} share of {spec.collection}")
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def render_training(dest: Path, minutes: float, seed: int) -> None:
    """Random works of the training share, each on instruments of one family (ensembles of one
    family, or solos), a training soundfont, a rate, dry or in a room; resumable by file name."""
    dest.mkdir(parents=True, exist_ok=True)
    pools = {c: scores(c, "train") for c in COLLECTIONS}
    total = sum(sf.info(p).duration for p in dest.glob("*.flac"))
    number = 0
    while total < minutes * 60:
        number += 1
        rng = np.random.default_rng([seed, number])
        collection = rng.choice(list(pools))
        family = rng.choice(list(FAMILIES))
        path = pools[collection][rng.integers(len(pools[collection]))]
        name = dest / f"{number:05d}-{collection}-{family}.flac"
        if name.exists():
            continue
        members = list(FAMILIES[family])
        try:
            with tempfile.TemporaryDirectory() as folder:
                raw, played = Path(folder) / "score.mid", Path(folder) / "played.mid"
                parts = score_to_midi(path, raw)
                programs = [int(rng.choice(members)) for _ in range(parts)]
                if rng.random() < 0.5:
                    programs = [programs[0]] * parts
                centres = [FAMILIES[family][p] + (0 if parts == 1 else (7, 2, -5, -12, 12, -17)[i % 6])
                           for i, p in enumerate(programs)]
                perform(raw, played, programs, centres, rng)
                rate = int(rng.choice(TRAINING_RATES))
                audio = render(played, str(rng.choice(TRAINING_SOUNDFONTS)), rate)
            if rng.random() < 0.5:
                audio, _ = room(audio, rate, rng)
            sounding = np.flatnonzero(np.abs(audio) > 1e-4 * np.abs(audio).max())
            audio = audio[sounding.min():sounding.max() + 1][: 90 * rate]
            if audio.size < 3 * rate:
                continue
        except Exception as error:
            print(f"  skipped {path}: {error}", file=sys.stderr)
            continue
        sf.write(name, normalise(audio), rate, subtype="PCM_16")
        total += audio.size / rate
        print(f"{name.name}  {audio.size / rate:.0f} s at {rate} Hz  ({total / 60:.1f} of {minutes:.0f} min)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--set", choices=["test", "val", "train"], required=True)
    parser.add_argument("--seconds", type=float, default=6.0, help="Length of an evaluation excerpt.")
    parser.add_argument("--minutes", type=float, default=240.0, help="Training audio to render.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.set == "train":
        render_training(args.dest, args.minutes, args.seed)
    else:
        render_evaluation(args.dest, args.set, args.seconds, args.seed)


if __name__ == "__main__":
    main()
