"""Training material: folders of audio decoded once into a cache, and random crops from it.

Files in any format soundfile reads are decoded to float (never clamped: decoded Vorbis can exceed
1.0), stored as float16 .npy arrays per file and rate, and memory-mapped, so a corpus of hours costs
no RAM. Each file is also cached at one other rate (resampled with resampy) so the network learns at
the rates users bring. A file that cannot be read is skipped with a warning.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import resampy
import soundfile as sf
import torch

from .audio import audio_files

AUGMENT_RATES = (16000, 22050, 96000)


@dataclass
class Track:
    name: str
    rate: int
    samples: np.ndarray  # [channels, frames], float16, memory-mapped

    @property
    def frames(self) -> int:
        return self.samples.shape[1]


def _cache_key(path: Path, rate: int | None) -> str:
    stat = path.stat()
    text = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{rate}"
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _decode(path: Path, rate: int | None, cache: Path) -> Track:
    target = cache / f"{path.stem[:40]}-{_cache_key(path, rate)}.npy"
    if not target.exists():
        audio, native = sf.read(path, dtype="float32", always_2d=True)
        audio = audio.T
        if rate is not None and rate != native:
            audio = resampy.resample(audio, native, rate, filter="kaiser_fast", axis=-1)
        # the rate goes first, and each file under a name of this process's own, so a reader that
        # sees the array always finds its rate, and two writers never clash
        rate_file = target.with_suffix(f".{os.getpid()}.rate")
        rate_file.write_text(str(rate or native))
        rate_file.replace(target.with_suffix(".rate"))
        temporary = target.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(temporary, audio.astype(np.float16))
        temporary.replace(target)
    return Track(path.name, int(target.with_suffix(".rate").read_text()), np.load(target, mmap_mode="r"))


class AudioCorpus:
    """Every file at its own rate, plus (with ``augment_rates``) one extra rate per file."""

    def __init__(self, paths: Sequence[str | Path], cache: str | Path, augment_rates: Sequence[int] = (),
                 progress: Callable[[str], None] | None = None):
        cache = Path(cache)
        cache.mkdir(parents=True, exist_ok=True)
        self.tracks: list[Track] = []
        for number, path in enumerate(audio_files(paths)):
            if progress:
                progress(path.name)
            rates: list[int | None] = [None]
            if augment_rates:
                rates.append(augment_rates[number % len(augment_rates)])
            for rate in rates:
                try:
                    self.tracks.append(_decode(path, rate, cache))
                except Exception as error:  # a broken file must not stop a long run
                    warnings.warn(f"skipping {path}: {error}")
                    break
        if not self.tracks:
            raise ValueError("no readable audio found in " + ", ".join(map(str, paths)))

    @property
    def seconds(self) -> float:
        return sum(t.frames / t.rate for t in self.tracks)


class _SeededSampler:
    """Random draws that can be saved and restored, so a resumed run sees the same crops."""

    def __init__(self, frames: list[int], length: int, seed: int):
        weights = np.array(frames, dtype=np.float64)
        self.weights = weights / weights.sum()  # longer files give proportionally more crops
        self.length = length
        self.rng = np.random.default_rng(seed)

    def pick(self) -> int:
        return int(self.rng.choice(len(self.weights), p=self.weights))

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


class CropSampler(_SeededSampler):
    """Random mono crops: a random track (by length), offset, channel mix and polarity.

    Near-silent crops are redrawn: clipping never reaches them and they teach nothing.
    """

    def __init__(self, corpus: AudioCorpus, length: int, seed: int = 0):
        usable = [t for t in corpus.tracks if t.frames > length]
        if not usable:
            raise ValueError(f"no track is longer than the crop length ({length} samples)")
        super().__init__([t.frames for t in usable], length, seed)
        self.tracks = usable

    def crop(self) -> np.ndarray:
        return self.crop_with_rate()[0]

    def crop_with_rate(self) -> tuple[np.ndarray, int]:
        """A crop and the sample rate of the track it came from."""
        for _ in range(100):
            track = self.tracks[self.pick()]
            start = int(self.rng.integers(0, track.frames - self.length))
            stereo = np.asarray(track.samples[:, start : start + self.length], dtype=np.float32)
            mix = self.rng.dirichlet(np.ones(stereo.shape[0])) if stereo.shape[0] > 1 else np.ones(1)
            mono = (mix[:, None] * stereo).sum(0) * self.rng.choice([-1.0, 1.0])
            if np.sqrt(np.mean(mono**2)) > 1e-3:
                return mono.astype(np.float32), track.rate
        raise ValueError("the corpus seems silent: 100 crops in a row had no signal")

    def batch(self, size: int) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.crop() for _ in range(size)]))


class ClippedCropSampler(_SeededSampler):
    """Crops of real clipped recordings, with the clipping levels the detector finds in each file.

    Crops are single channels (mixing channels would blur their plateaus) with a random polarity.
    A share ``clipped_share`` of the crops is drawn until it holds saturated samples, the rest at
    random, so training sees both. Within a crop the saturated samples are set to their level
    exactly: the dither or coding ripple on a plateau carries no information about what was lost.
    """

    def __init__(self, corpus: AudioCorpus, length: int, seed: int = 0, clipped_share: float = 0.75,
                 tolerance: float = 1e-4):
        from .detection import LevelEstimator

        self.items = []  # (track, channel, upper flag, lower flag)
        for track in corpus.tracks:
            if track.frames <= length:
                continue
            estimator = LevelEstimator(track.samples.shape[0], tolerance)
            for start in range(0, track.frames, 1 << 20):
                estimator.update(np.asarray(track.samples[:, start : start + (1 << 20)], dtype=np.float32).T)
            levels = estimator.levels()
            for channel in range(levels.channels):
                if levels.clipped(channel):
                    upper = levels.upper[channel] - levels.upper_spread[channel]
                    lower = levels.lower[channel] + levels.lower_spread[channel]
                    self.items.append((track, channel, upper, lower))
        if not self.items:
            raise ValueError("no clipping found in the training audio: self-supervised training needs "
                             "clipped recordings (or use a clean corpus with --clipping simulate)")
        super().__init__([t.frames for t, *_ in self.items], length, seed)
        self.clipped_share = clipped_share

    def crop(self) -> tuple[np.ndarray, float, float]:
        want_clipping = self.rng.random() < self.clipped_share
        for _ in range(200):
            track, channel, upper, lower = self.items[self.pick()]
            start = int(self.rng.integers(0, track.frames - self.length))
            y = np.asarray(track.samples[channel, start : start + self.length], dtype=np.float32)
            if want_clipping and not ((y >= upper) | (y <= lower)).any():
                continue
            y = np.clip(y, lower, upper)
            if self.rng.random() < 0.5:
                return -y, -lower, -upper
            return y, upper, lower
        raise ValueError("could not find clipped crops: the clipped passages are shorter than a crop")

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        crops = [self.crop() for _ in range(size)]
        y = torch.from_numpy(np.stack([c[0] for c in crops]))
        upper = torch.tensor([c[1] for c in crops], dtype=torch.float32).unsqueeze(-1)
        lower = torch.tensor([c[2] for c in crops], dtype=torch.float32).unsqueeze(-1)
        return y, upper, lower
