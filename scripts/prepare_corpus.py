"""Build the training and held-out music corpus from the allowed Debian packages.

Usage: python scripts/prepare_corpus.py DEST   (needs apt-get, dpkg and network access to Debian)

Downloads the six music packages named in the issues, unpacks them, mixes each Frets on Fire song
with its guitar stem, and lays the audio out as DEST/{train,heldout,test}/<package>/...
Held-out tracks are never trained on; they validate training runs and choose designs. Test tracks
are neither trained on nor looked at while choosing a design: they only score the final models
(through the fixed excerpts that scripts/make_excerpts.py cuts from them).
Licences: wesnoth-1.16-music, nexuiz-music (GPL-2+); fretsonfire-songs-sectoid (MIT-style);
fretsonfire-songs-muldjord, singularity-music, hyperrogue-music (CC-BY-SA-3.0).
"""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import soundfile as sf

PACKAGES = [
    "wesnoth-1.16-music",
    "nexuiz-music",
    "fretsonfire-songs-sectoid",
    "fretsonfire-songs-muldjord",
    "singularity-music",
    "hyperrogue-music",
]
HELD_OUT = {
    "journeys_end.ogg",
    "traveling_minstrels.ogg",
    "stairs.ogg",
    "Feelings.wav",
    "chaos_god.wav",
    "Coherence.ogg",
    "hr3-caves.ogg",
}
TEST = {
    "elvish-theme.ogg",
    "love_theme.ogg",
    "subcities.ogg",
    "Nebula.ogg",
    "hr3-jungle.ogg",
    "War of freedom.wav",
    "armygeddon.wav",
}


def unpack(work: Path) -> Path:
    debs, root = work / "debs", work / "root"
    debs.mkdir(parents=True, exist_ok=True)
    root.mkdir(exist_ok=True)
    for package in PACKAGES:
        if not list(debs.glob(f"{package}_*.deb")):
            subprocess.run(["apt-get", "download", package], cwd=debs, check=True)
    for deb in debs.glob("*.deb"):
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    return root


def mix_stems(song_dir: Path, dest: Path) -> None:
    """Frets on Fire ships the backing track and the guitar separately: the music is their sum."""
    song, rate = sf.read(song_dir / "song.ogg", dtype="float32", always_2d=True)
    guitar_path = song_dir / "guitar.ogg"
    if guitar_path.exists():
        guitar, guitar_rate = sf.read(guitar_path, dtype="float32", always_2d=True)
        assert guitar_rate == rate
        n = min(len(song), len(guitar))
        song = song[:n] + guitar[:n]
    sf.write(dest, song, rate, subtype="FLOAT")


def main(dest: Path) -> None:
    root = unpack(dest / "packages")
    sources: dict[str, list[Path]] = {
        "wesnoth": sorted((root / "usr/share/games/wesnoth/1.16/data/core/music").glob("*.ogg")),
        "singularity": sorted((root / "usr/share/games/singularity/music").glob("*.ogg")),
        "hyperrogue": sorted((root / "usr/share/hyperrogue/music").glob("*.ogg")),
    }
    nexuiz = dest / "packages/nexuiz"
    with zipfile.ZipFile(root / "usr/share/games/nexuiz/data/music.pk3") as pk3:
        pk3.extractall(nexuiz)
    sources["nexuiz"] = sorted((nexuiz / "sound/cdtracks").glob("*.ogg"))
    for artist in ("sectoid", "muldjord"):
        mixed = dest / "packages/fretsonfire" / artist
        mixed.mkdir(parents=True, exist_ok=True)
        for song_dir in sorted(p.parent for p in (root / f"usr/share/games/fretsonfire/data/songs/{artist}").glob("*/song.ogg")):
            out = mixed / f"{song_dir.name}.wav"
            if not out.exists():
                mix_stems(song_dir, out)
        sources[f"fretsonfire-{artist}"] = sorted(mixed.glob("*.wav"))
    for name, files in sources.items():
        for path in files:
            split = "heldout" if path.name in HELD_OUT else "test" if path.name in TEST else "train"
            link = dest / split / name / path.name
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(path.resolve())
    for split in ("train", "heldout", "test"):
        count = sum(1 for _ in (dest / split).rglob("*.*"))
        print(f"{split}: {count} files under {dest / split}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "data/corpus").resolve())
