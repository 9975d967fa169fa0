"""Audio files: reading in blocks, choosing where and how results are written, writing atomically.

Audio is always read as float and never clamped (decoded lossy audio can exceed full scale).
Restored peaks rise above the old clipping level, so writing them to integer PCM as they are would
clip them again. The output therefore either keeps float samples (the default wherever the
container holds them) or is scaled by one make-up gain that brings the restored peak below full
scale (the default for FLAC, Ogg and MP3, or when asked for).
"""
from __future__ import annotations

import errno
import glob
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import soundfile as sf

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".caf", ".w64", ".rf64", ".opus"}
CONTAINERS = {".aif": "AIFF", ".oga": "OGG", ".opus": "OGG"}  # the rest: the suffix in capitals
FLOAT_CONTAINERS = {"WAV", "WAVEX", "AIFF", "CAF", "W64", "RF64", "AU"}
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
OWN_OUTPUT_TAG = ".declipped"  # NAME.declipped.EXT: the default output beside an input
LOSSY_SUBTYPES = {"VORBIS", "OPUS", "MPEG_LAYER_I", "MPEG_LAYER_II", "MPEG_LAYER_III"}
LOSSLESS_SUFFIX = ".wav"  # where a lossy input's restoration goes unless a name is given: float WAV
BLOCK_FRAMES = 1 << 18
BYTES_PER_SAMPLE = {"PCM_S8": 1, "PCM_U8": 1, "ULAW": 1, "ALAW": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4,
                    "FLOAT": 4, "DOUBLE": 8}
SET_ADD_PEAK_CHUNK = 0x1050  # libsndfile's SFC_SET_ADD_PEAK_CHUNK


def is_own_or_hidden(path: Path) -> bool:
    """declipper's own outputs (NAME.declipped.EXT), the partial files of an interrupted run, and
    other hidden files (macOS '._NAME' metadata): never inputs of a folder search."""
    return path.name.startswith(".") or Path(path.stem).suffix == OWN_OUTPUT_TAG


def audio_files(paths: Iterable[str | Path], pattern: str = "*", exclude: Iterable[Path] = ()) -> list[Path]:
    """Audio files named directly or found below folders, in a stable order.

    Inside folders, hidden files and folders, declipper's own outputs and anything under an
    ``exclude`` folder (a run's output folder) are passed over, so that a rerun never restores its
    own results again. A file named directly is always taken."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            # an output folder inside this one; the folder itself as output is a collision, not an exclusion
            excluded = [e for e in map(lambda e: Path(e).resolve(), exclude)
                        if e != path.resolve() and e.is_relative_to(path.resolve())]
            for candidate in sorted(path.rglob(pattern)):
                parts = candidate.relative_to(path).parts
                if (candidate.is_file() and candidate.suffix.lower() in AUDIO_SUFFIXES
                        and not any(part.startswith(".") for part in parts) and not is_own_or_hidden(candidate)
                        and not any(candidate.resolve().is_relative_to(e) for e in excluded)):
                    found.append(candidate)
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return found


class AudioError(RuntimeError):
    """An input that cannot be read or an output that cannot be written."""


class DiskFull(AudioError):
    """The output's device has no space left: every later file of the batch would fail too."""


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def info(path: Path) -> sf._SoundFileInfo:
    try:
        return sf.info(str(path))
    except Exception as error:
        raise AudioError(f"cannot read {path}: {str(error).splitlines()[0]}") from None


def read_blocks(path: Path, block: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """[frames, channels] float32 blocks, in order, in fixed memory.

    A NaN or infinite sample fails the file: no level, mask or restoration means anything near it,
    and copying it on would hand the next program the same poison."""
    done = 0
    try:
        with sf.SoundFile(str(path)) as handle:
            while True:
                data = handle.read(block, dtype="float32", always_2d=True)
                if not len(data):
                    return
                if not np.isfinite(data).all():
                    first = done + int(np.flatnonzero(~np.isfinite(data).all(axis=1))[0])
                    raise AudioError(f"contains non-finite samples (NaN or infinity), the first at "
                                     f"{first / handle.samplerate:.3f} s")
                done += len(data)
                yield data
    except sf.LibsndfileError as error:
        raise AudioError(f"cannot read {path}: {first_line(error)}") from None


_DATA_CHUNK = re.compile(r"^\s*(data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_FILE_CHUNK = re.compile(r"^\s*(?:RIFF|riff|RF64|FORM)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def truncation_warning(details: sf._SoundFileInfo) -> str | None:
    """A word when the header promises more audio than the file holds (a copy cut short): the
    missing end is not invented, but the user should know the result is as short as the file.
    libsndfile notes such a mismatch in its log ("data : 176400 (should be 88179)")."""
    match = _DATA_CHUNK.search(details.extra_info)
    if match:
        offset = 8 if match.group(1) == "SSND" else 0  # an AIFF sound chunk starts with 8 bytes of fields
        declared, present = int(match.group(2)) - offset, int(match.group(3)) - offset
        if declared <= present:
            return None  # padding after the audio: nothing is missing
        width = BYTES_PER_SAMPLE.get(details.subtype)
        if width:
            return (f"truncated: the header declares {declared // (width * details.channels)} frames, "
                    f"the file holds {details.frames}")
        return "truncated: the header declares more audio than the file holds"
    match = _FILE_CHUNK.search(details.extra_info)
    if match and int(match.group(1)) > int(match.group(2)):
        return "truncated: the header declares a longer file than this one"
    return None


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
    suffix = path.suffix.lower()
    name = CONTAINERS.get(suffix, suffix.lstrip(".").upper())
    return name if suffix in AUDIO_SUFFIXES and name in sf.available_formats() else None


def writable_suffixes() -> list[str]:
    return sorted(s for s in AUDIO_SUFFIXES if writable_format(Path("x" + s)))


def check_writable(path: Path) -> None:
    """Refuse an output name whose format cannot be written, before any work is done."""
    if writable_format(path) is None:
        raise ValueError(f"cannot write {path.suffix or 'files without an extension'} ({path.name}): "
                         f"declipper writes {' '.join(writable_suffixes())}")


def plan_output(source: Path, target: Path, headroom: str = "auto", ceiling_db: float = -0.1) -> OutputPlan:
    """Pick the container (the target's extension; WAV if soundfile cannot write it) and the subtype.

    headroom: 'float' keeps float samples (only for containers that hold them), 'gain' keeps the
    source's sample format and scales the whole file so the restored peak sits at ``ceiling_db``,
    'auto' takes float where possible, else gain.
    """
    if headroom not in ("auto", "float", "gain"):
        raise ValueError(f"unknown headroom mode {headroom!r}: use auto, float or gain")
    check_writable(target)
    container = writable_format(target)
    source_info = info(source)
    same_container = source_info.format == container
    subtype = source_info.subtype if same_container else sf.default_subtype(container)
    if target.suffix.lower() == ".opus":
        subtype = "OPUS"
        if source_info.samplerate not in OPUS_RATES:
            raise ValueError(f"Opus holds only {', '.join(f'{r // 1000}' for r in OPUS_RATES)} kHz audio and "
                             f"{source} is at {source_info.samplerate} Hz: write .flac or .ogg instead")
    if headroom == "float" and container not in FLOAT_CONTAINERS:
        raise ValueError(f"{container} cannot hold float samples: use a .wav output or --headroom gain")
    use_float = container in FLOAT_CONTAINERS and headroom != "gain"
    if use_float:
        subtype = "DOUBLE" if subtype == "DOUBLE" else "FLOAT"
    elif not sf.check_format(container, subtype):
        subtype = sf.default_subtype(container)
    return OutputPlan(target, container, subtype, not use_float, ceiling_db)


def is_lossy(path: Path) -> bool:
    """Whether a file holds lossily coded audio (MP3, Vorbis, Opus)."""
    try:
        return sf.info(str(path)).subtype in LOSSY_SUBTYPES
    except Exception:  # unreadable: its job fails later with the reason; name it by its suffix
        return path.suffix.lower() in {".mp3", ".opus"}


def output_path(source: Path, output: Path | None, root: Path | None, many: bool, in_place: bool) -> Path:
    """Where the result of ``source`` goes.

    Default: beside the input as NAME.declipped.EXT. With -o FILE (one input) that file; with
    -o DIR (an existing folder, a name without an extension, or several inputs) the tree below
    ``root`` is mirrored under DIR with the original names. Where no file name was given, a lossy
    input's restoration is written as float WAV instead (NAME.declipped.wav): coding it again
    would lose about a dB of what was restored, and the restored peaks above full scale would need
    a make-up gain.
    """
    if in_place:
        return source
    suffix = LOSSLESS_SUFFIX if is_lossy(source) else source.suffix
    if output is None:
        return source.with_name(f"{source.stem}{OWN_OUTPUT_TAG}{suffix}")
    if output_is_folder(output, many):
        relative = source.relative_to(root) if root is not None else Path(source.name)
        return (output / relative).with_suffix(suffix)
    return output


def output_is_folder(output: Path, many: bool) -> bool:
    return many or output.is_dir() or str(output).endswith(os.sep) or not output.suffix


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_failure(path: Path, error: BaseException) -> AudioError:
    """What went wrong writing ``path``, named for the file the user asked for (not the temporary
    one). A full disk is told apart even where libsndfile only says "System error": then the
    device has (almost) no space left while the partial file still holds what was written."""
    code = getattr(error, "errno", None)
    full = code in (errno.ENOSPC, errno.EDQUOT)
    if code is None:  # libsndfile's "System error" keeps no errno: look at the device itself
        try:
            full = shutil.disk_usage(path.parent).free < (1 << 16)
        except OSError:
            pass
    if full:
        return DiskFull(f"no space left on device while writing {path}")
    folder = next((p for p in path.parents if p.exists()), None)
    if folder is not None and not folder.is_dir():
        return AudioError(f"cannot write {path}: {folder} is a file, not a folder")
    reason = getattr(error, "strerror", None) or first_line(error)
    return AudioError(f"cannot write {path}: {reason}")


def _partial_name(path: Path) -> re.Pattern:
    return re.compile(rf"^\.{re.escape(path.stem)}\.(?:(\d+)-)?[A-Za-z0-9_]+\.partial"
                      rf"(?:\.staging\.wav|{re.escape(path.suffix)})$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(path: Path) -> list[Path]:
    """Delete the partial files an interrupted run (killed, or the machine stopped) left beside
    ``path``. A partial file's name carries its writer's process id: one still running keeps its own."""
    pattern = _partial_name(path)
    removed = []
    try:
        candidates = list(path.parent.glob(f".{glob.escape(path.stem)}.*.partial*"))
    except OSError:
        return removed
    for candidate in candidates:
        match = pattern.match(candidate.name)
        if match and not (match.group(1) and _alive(int(match.group(1)))):
            try:
                candidate.unlink()
                removed.append(candidate)
            except OSError:
                pass
    return removed


def is_read_only(path: Path) -> bool:
    """A file nobody may write (no write bit, or this user may not): replacing it, even by a rename
    that the folder would allow, would undo its owner's protection."""
    return path.exists() and (not os.stat(path).st_mode & 0o222 or not os.access(path, os.W_OK))


@contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it only when the block succeeds.

    The result gets the permissions a plain new file would (or those of the file it replaces), not
    the private ones of a temporary file. Errors name ``path``, never the temporary file."""
    if is_read_only(path):
        raise AudioError(f"{path} is read-only: not replaced")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.{os.getpid()}-",
                                             suffix=f".partial{path.suffix}")
        os.close(handle)
    except OSError as error:
        raise write_failure(path, error) from None
    try:
        yield Path(temporary)
        try:
            os.chmod(temporary, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask())
            os.replace(temporary, path)
        except OSError as error:
            raise write_failure(path, error) from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def copy_unchanged(source: Path, plan: "OutputPlan", rate: int, channels: int) -> None:
    """An unclipped file is passed on unchanged: bit for bit in its own container (re-encoding
    would alter lossy audio), sample for sample when another container was asked for."""
    if source.resolve() == plan.path.resolve():
        return
    details = info(source)
    # the same codec too: an Ogg container holds Vorbis or Opus
    same_codec = details.format == plan.format and (plan.format != "OGG" or details.subtype == plan.subtype)
    with atomic_target(plan.path) as temporary:
        if same_codec:
            try:
                shutil.copyfile(source, temporary)
            except OSError as error:
                raise write_failure(plan.path, error) from None
            return
        with open_writer(temporary, rate, channels, plan) as writer:
            for block in read_blocks(source):
                writer.write(block)


class AudioWriter:
    """A sound file being written to a temporary path; every failure names the final output and
    tells a full disk apart. No PEAK chunk is written: libsndfile stamps it with the time, and
    the same input must give the same bytes."""

    def __init__(self, path: Path, rate: int, channels: int, plan: OutputPlan):
        self.final = plan.path
        try:
            self.handle = sf.SoundFile(str(path), "w", samplerate=rate, channels=channels, format=plan.format,
                                       subtype=plan.subtype)
        except (sf.LibsndfileError, OSError) as error:
            raise write_failure(self.final, error) from None
        sf._snd.sf_command(self.handle._file, SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0)

    def write(self, block: np.ndarray) -> None:
        try:
            self.handle.write(block)
        except (sf.LibsndfileError, OSError, AssertionError) as error:  # soundfile asserts a short write
            raise write_failure(self.final, error) from None

    def close(self) -> None:
        try:
            self.handle.close()
        except (sf.LibsndfileError, OSError) as error:
            raise write_failure(self.final, error) from None

    def __enter__(self) -> "AudioWriter":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:  # the block failed: release the file, keep the block's error
            try:
                self.handle.close()
            except Exception:
                pass


def open_writer(path: Path, rate: int, channels: int, plan: OutputPlan) -> AudioWriter:
    return AudioWriter(path, rate, channels, plan)
