"""Audio files: reading in blocks, choosing where and how results are written, writing atomically.

Audio is always read as float and never clamped (decoded lossy audio can exceed full scale).
Restored peaks rise above the old clipping level, so writing them to integer PCM as they are would
clip them again. The output therefore either keeps float samples (the default wherever the
container holds them) or is scaled by one make-up gain that brings the restored peak below full
scale (the default for FLAC, Ogg and MP3, or when asked for).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import soundfile as sf

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".caf", ".w64", ".opus"}
FLOAT_CONTAINERS = {"WAV", "WAVEX", "AIFF", "CAF", "W64", "RF64", "AU"}
BLOCK_FRAMES = 1 << 18


def audio_files(paths: Iterable[str | Path], pattern: str = "*") -> list[Path]:
    """Audio files named directly or found below folders, in a stable order."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(p for p in sorted(path.rglob(pattern)) if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return found


class AudioError(RuntimeError):
    """An input that cannot be read or an output that cannot be written."""


def info(path: Path) -> sf._SoundFileInfo:
    try:
        return sf.info(str(path))
    except Exception as error:
        raise AudioError(f"cannot read {path}: {str(error).splitlines()[0]}") from None


def read_blocks(path: Path, block: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """[frames, channels] float32 blocks, in order, in fixed memory."""
    try:
        with sf.SoundFile(str(path)) as handle:
            while True:
                data = handle.read(block, dtype="float32", always_2d=True)
                if not len(data):
                    return
                yield data
    except sf.LibsndfileError as error:
        raise AudioError(f"cannot read {path}: {str(error).splitlines()[0]}") from None


@dataclass(frozen=True)
class OutputPlan:
    """How a restored file is written: container, sample format, and whether a make-up gain applies."""

    path: Path
    format: str
    subtype: str
    make_up_gain: bool
    ceiling_db: float = -0.1

    def describe(self, gain: float) -> str:
        if not self.make_up_gain:
            return f"{self.subtype.lower()} samples, no gain"
        return f"{self.subtype.lower()}, make-up gain {20 * np.log10(gain):+.2f} dB"


def writable_format(path: Path) -> str | None:
    """The soundfile container for a file name, if soundfile can write it."""
    suffix = path.suffix.lower().lstrip(".")
    aliases = {"aif": "AIFF", "oga": "OGG", "opus": "OGG"}
    name = aliases.get(suffix, suffix.upper())
    return name if name in sf.available_formats() else None


def plan_output(source: Path, target: Path, headroom: str = "auto", ceiling_db: float = -0.1) -> OutputPlan:
    """Pick the container (the target's extension; WAV if soundfile cannot write it) and the subtype.

    headroom: 'float' keeps float samples (only for containers that hold them), 'gain' keeps the
    source's sample format and scales the whole file so the restored peak sits at ``ceiling_db``,
    'auto' takes float where possible, else gain.
    """
    if headroom not in ("auto", "float", "gain"):
        raise ValueError(f"unknown headroom mode {headroom!r}: use auto, float or gain")
    container = writable_format(target)
    if container is None:
        target, container = target.with_suffix(".wav"), "WAV"
    source_info = info(source)
    same_container = source_info.format == container
    subtype = source_info.subtype if same_container else sf.default_subtype(container)
    if headroom == "float" and container not in FLOAT_CONTAINERS:
        raise ValueError(f"{container} cannot hold float samples: use a .wav output or --headroom gain")
    use_float = container in FLOAT_CONTAINERS and headroom != "gain"
    if use_float:
        subtype = "DOUBLE" if subtype == "DOUBLE" else "FLOAT"
    elif not sf.check_format(container, subtype):
        subtype = sf.default_subtype(container)
    return OutputPlan(target, container, subtype, not use_float, ceiling_db)


def output_path(source: Path, output: Path | None, root: Path | None, many: bool, in_place: bool) -> Path:
    """Where the result of ``source`` goes.

    Default: beside the input as NAME.declipped.EXT. With -o FILE (one input) that file; with
    -o DIR the tree below ``root`` is mirrored under DIR with the original names.
    """
    if in_place:
        return source
    if output is None:
        return source.with_name(f"{source.stem}.declipped{source.suffix}")
    if many or output.is_dir() or str(output).endswith(os.sep):
        relative = source.relative_to(root) if root is not None else Path(source.name)
        return output / relative
    return output


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it only when the block succeeds.

    The result gets the permissions a plain new file would (or those of the file it replaces), not
    the private ones of a temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".partial{path.suffix}")
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def copy_unchanged(source: Path, plan: "OutputPlan", rate: int, channels: int) -> None:
    """An unclipped file is passed on unchanged: bit for bit in its own container (re-encoding
    would alter lossy audio), sample for sample when another container was asked for."""
    if source.resolve() == plan.path.resolve():
        return
    with atomic_target(plan.path) as temporary:
        if info(source).format == plan.format:
            shutil.copyfile(source, temporary)
            return
        with open_writer(temporary, rate, channels, plan) as writer:
            for block in read_blocks(source):
                writer.write(block)


def open_writer(path: Path, rate: int, channels: int, plan: OutputPlan) -> sf.SoundFile:
    try:
        return sf.SoundFile(str(path), "w", samplerate=rate, channels=channels, format=plan.format,
                            subtype=plan.subtype)
    except sf.LibsndfileError as error:
        raise AudioError(f"cannot write {plan.path}: {str(error).splitlines()[0]}") from None
