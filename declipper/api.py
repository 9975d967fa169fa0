"""The Python API: the CLI is a thin shell around these functions.

    import declipper
    model = declipper.load_model()            # the shipped model, or a path to your own
    found = declipper.detect(audio)           # levels and saturation mask of a [frames, channels] array
    fixed = declipper.restore(audio, 44100)   # restored array, same shape
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .audio import (OutputPlan, atomic_target, copy_unchanged, info, is_lossy, open_writer, plan_output,
                    read_blocks, truncation_warning)
from .checkpoint import load_checkpoint, resolve_model_path
from .detection import (DetectionSettings, LevelEstimator, MaskStatistics, estimate_levels, fixed_levels,
                        severity, unrestorable_channels)
from .engine import EngineSettings, StreamingRestorer
from .hybrid import HYBRID_MODEL, HybridRestorer
from .network import Restorer, SignSymmetric
from .physics import ClippingLevels, channel_mask, clip_to_levels
from .sparse import ASpadeRestorer, ASpadeSettings

MIN_RATE, MAX_RATE = 8000, 192000
METHODS = ("network", "aspade", "hybrid")
ProgressCallback = Callable[[str, int, int], None]  # (stage, done, in all)


def load_model(path: str | os.PathLike | None = None, symmetric: bool = False) -> Restorer:
    """A checkpoint by path or shipped name ('small'); None loads the default model.
    ``symmetric`` also restores the negated signal and averages (network.SignSymmetric): a little
    better, twice the work. Its metadata is on ``model.metadata``."""
    model, metadata = load_checkpoint(resolve_model_path(path))
    if symmetric:
        model = SignSymmetric(model)
    model.metadata = metadata
    return model


def as_frames(audio: np.ndarray) -> np.ndarray:
    """[frames] or [frames, channels] float audio as a float32 [frames, channels] array."""
    audio = np.asarray(audio)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.ndim != 2 or audio.shape[1] == 0:
        raise ValueError(f"audio must be [frames] or [frames, channels], got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"audio must be floating point (got {audio.dtype}); read files with dtype='float32'")
    if not np.isfinite(audio).all():
        raise ValueError("audio contains NaN or infinite samples")
    return audio.astype(np.float32, copy=False)


def check_rate(sample_rate: int) -> None:
    if not MIN_RATE <= sample_rate <= MAX_RATE:
        raise ValueError(f"sample rate {sample_rate} Hz is outside the supported {MIN_RATE}-{MAX_RATE} Hz")


@dataclass
class Detection:
    levels: ClippingLevels
    mask: np.ndarray  # [frames, channels] int8: +1 saturated high, -1 saturated low, 0 reliable

    @property
    def clipped_fraction(self) -> np.ndarray:
        return (self.mask != 0).mean(axis=0)


def find_levels(audio: np.ndarray, settings: DetectionSettings) -> ClippingLevels:
    if settings.threshold is not None:
        return fixed_levels(audio.shape[1], settings.threshold, settings.tolerance)
    return estimate_levels(audio, settings.tolerance)


def detect(audio: np.ndarray, tolerance: float = 1e-4, min_run: int = 1,
           threshold: tuple[float, float] | None = None) -> Detection:
    """Clipping levels per channel and polarity, and which samples sit at them."""
    frames = as_frames(audio)
    levels = find_levels(frames, DetectionSettings(tolerance, min_run, threshold))
    mask = channel_mask(torch.from_numpy(np.ascontiguousarray(frames.T)), levels.as_tensors(), min_run)
    return Detection(levels, mask.T.numpy())


def method_model(method: str, model: str | None) -> str | None:
    """The model a method loads: the one asked for, else the large one for the hybrid (the quality
    mode, whose time A-SPADE dominates anyway), else the default."""
    return model if model is not None else (HYBRID_MODEL if method == "hybrid" else None)


def make_restorer(method: str, model: Restorer | None, levels: ClippingLevels, engine: EngineSettings,
                  min_run: int, progress: ProgressCallback | None = None, sparse_share: float | None = None,
                  sparse_settings: ASpadeSettings = ASpadeSettings(), lossy_model: Restorer | None = None):
    """The network's streaming engine, the model-free A-SPADE baseline, or the weighted mean of the
    two (``hybrid``, with the large model unless one is given), behind one interface.
    ``sparse_settings``: A-SPADE's, the survey's unless asked otherwise (``ASpadeSettings.quicker``)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use {', '.join(METHODS)}")
    if uses_lossy_model(levels, lossy_model):
        model = lossy_model
    network = None
    if method != "aspade":
        network = StreamingRestorer(model if model is not None else load_model(method_model(method, None)),
                                    levels, engine, min_run)
    if method == "network":
        return network
    sparse = ASpadeRestorer(levels, sparse_settings, min_run=min_run,
                            progress=(lambda done, total: progress("A-SPADE", done, total)) if progress else None)
    return sparse if method == "aspade" else HybridRestorer(network, sparse, sparse_share)


def uses_lossy_model(levels: ClippingLevels, lossy_model: Restorer | None) -> bool:
    """Whether the model for lossy input restores these levels: where a codec smeared the clipping."""
    return lossy_model is not None and levels.smeared


def restore(audio: np.ndarray, sample_rate: int, model: Restorer | None = None,
            levels: ClippingLevels | None = None, detection: DetectionSettings = DetectionSettings(),
            engine: EngineSettings = EngineSettings(), method: str = "network",
            sparse_share: float | None = None, sparse_settings: ASpadeSettings = ASpadeSettings(),
            lossy_model: Restorer | None = None) -> np.ndarray:
    """Restore clipped audio held in memory; ``levels`` skips detection when they are known.
    ``lossy_model`` restores instead of ``model`` where detection finds clipping smeared by a codec.
    ``method="aspade"`` uses the sparse baseline instead of the network (slow, no model);
    ``method="hybrid"`` mixes the two (the best quality, slow), A-SPADE weighted ``sparse_share``, or
    by default by a share that follows how closely the two restorations agree."""
    check_rate(sample_rate)
    original_shape = np.shape(audio)
    frames = as_frames(audio)
    if levels is None:
        levels = find_levels(frames, detection)
    saturated = channel_mask(torch.from_numpy(np.ascontiguousarray(frames.T)), levels.as_tensors()) != 0
    levels = levels.without(unrestorable_channels(saturated.float().mean(dim=1).tolist()))
    if not levels.any_clipped:
        return frames.reshape(original_shape).copy()
    restorer = make_restorer(method, model, levels, engine, detection.min_run, sparse_share=sparse_share,
                             sparse_settings=sparse_settings, lossy_model=lossy_model)
    restored = np.concatenate([block for block, _ in restorer.process([clip_to_levels(frames, levels)])], axis=0)
    return restored.reshape(original_shape)


@dataclass
class FileReport:
    """What happened to one file; ``error`` is set when it failed."""

    source: Path
    target: Path | None = None
    channels: int = 0
    sample_rate: int = 0
    frames: int = 0
    levels: ClippingLevels | None = None
    clipped_fraction: list[float] = field(default_factory=list)  # estimated share of clipped samples
    flagged_fraction: list[float] = field(default_factory=list)  # ... and of those restored (lossy: more)
    longest_run: list[int] = field(default_factory=list)
    input_peak: float | None = None  # measured by scan_file
    restored_peak: float = 0.0
    gain: float = 1.0
    seconds: float = 0.0
    action: str = ""
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)  # partial files of an interrupted run, deleted

    @property
    def severity(self) -> str:
        return severity(max(self.clipped_fraction, default=0.0))

    def to_json(self) -> dict:
        return {
            "file": str(self.source), "output": str(self.target) if self.target else None,
            "channels": self.channels, "sample_rate": self.sample_rate, "frames": self.frames,
            "duration_s": self.frames / self.sample_rate if self.sample_rate else 0.0,
            "levels": self.levels.to_json() if self.levels else None,
            "clipped_fraction": self.clipped_fraction, "flagged_fraction": self.flagged_fraction,
            "longest_run": self.longest_run,
            "severity": self.severity, "input_peak": self.input_peak, "restored_peak": self.restored_peak,
            "gain_db": 20 * math.log10(self.gain), "seconds": round(self.seconds, 3), "action": self.action,
            "error": self.error, "warnings": self.warnings, "removed_partial_files": [str(p) for p in self.removed],
        }


@dataclass
class Survey:
    """The first pass over a file: its levels, and the channels with nothing to restore from."""

    levels: ClippingLevels
    saturated_share: list[float]  # flagged: what restoration re-estimates
    warnings: list[str]
    coding_correction: list[float]  # the estimated clipped share minus the flagged one (lossy input)

    def clipped(self, flagged: list[float]) -> list[float]:
        """The clipped share per channel, from the share flagged in the mask."""
        return [max(f + c, 0.0) for f, c in zip(flagged, self.coding_correction)]

    @property
    def unrestorable(self) -> list[int]:
        return unrestorable_channels(self.saturated_share)

    @property
    def restorable_levels(self) -> ClippingLevels:
        return self.levels.without(self.unrestorable)


def survey_file(source: Path, details, detection: DetectionSettings,
                progress: ProgressCallback | None) -> Survey:
    """Read the whole file once before anything is written: the levels come from the amplitude
    distribution of all of it, and a file that cannot be read through (non-finite samples, a
    decoding error) fails here, with nothing written."""
    estimator = LevelEstimator(details.channels, detection.tolerance)
    done = 0
    for block in read_blocks(source):
        estimator.update(block)
        done += len(block)
        if progress:
            progress("detect", done, details.frames)
    if detection.threshold is not None:
        levels = fixed_levels(details.channels, detection.threshold, detection.tolerance)
        correction = [0.0] * details.channels
    else:
        levels = estimator.levels()
        correction = estimator.coding_correction(levels)
    survey = Survey(levels, estimator.saturated_share(levels), [], correction)
    truncated = truncation_warning(details)
    if truncated:
        survey.warnings.append(truncated)
    survey.warnings.extend(f"channel {c + 1}: {100 * survey.saturated_share[c]:.1f} % of its samples saturated, "
                           "nothing to restore from: left as it is" for c in survey.unrestorable)
    return survey


def scan_file(source: str | os.PathLike, detection: DetectionSettings = DetectionSettings(),
              progress: ProgressCallback | None = None) -> FileReport:
    """A clipping report of a file, without writing audio."""
    started = time.perf_counter()
    source = Path(source)
    details = info(source)
    survey = survey_file(source, details, detection, progress)
    levels = survey.levels
    stats = MaskStatistics(details.channels)
    tensors = levels.as_tensors()
    peak, done, tail = 0.0, 0, None
    for block in read_blocks(source):
        # carry min_run samples across blocks so runs that straddle a boundary are judged whole
        joined = block if tail is None else np.concatenate([tail, block])
        mask = channel_mask(torch.from_numpy(np.ascontiguousarray(joined.T)), tensors, detection.min_run).T.numpy()
        stats.update(mask[0 if tail is None else len(tail):])
        tail = block[-detection.min_run:]
        peak = max(peak, float(np.abs(block).max(initial=0.0)))
        done += len(block)
        if progress:
            progress("scan", done, details.frames)
    flagged = stats.clipped_fraction.tolist()
    return FileReport(source, None, details.channels, details.samplerate, details.frames, levels,
                      survey.clipped(flagged), flagged, stats.longest.tolist(), peak, peak, 1.0,
                      time.perf_counter() - started, "scanned", warnings=survey.warnings)


def restore_file(source: str | os.PathLike, target: str | os.PathLike, model: Restorer | None = None,
                 detection: DetectionSettings = DetectionSettings(), engine: EngineSettings = EngineSettings(),
                 headroom: str = "auto", ceiling_db: float = -0.1,
                 progress: ProgressCallback | None = None, method: str = "network",
                 sparse_share: float | None = None, sparse_settings: ASpadeSettings = ASpadeSettings(),
                 lossy_model: Restorer | None = None) -> FileReport:
    """Restore a file of any length in fixed memory (A-SPADE and the hybrid hold the whole signal)
    and write the result atomically. ``lossy_model`` restores instead of ``model`` where detection
    finds clipping smeared by a codec (an MP3, or a WAV decoded from one).

    Unclipped files are copied bit for bit. Otherwise the result keeps float samples, or (for
    containers without float, or headroom='gain') is scaled by one gain so nothing clips again.
    """
    started = time.perf_counter()
    source, target = Path(source), Path(target)
    details = info(source)
    check_rate(details.samplerate)
    plan = plan_output(source, target, headroom, ceiling_db)
    survey = survey_file(source, details, detection, progress)
    levels = survey.restorable_levels
    report = FileReport(source, plan.path, details.channels, details.samplerate, details.frames, survey.levels,
                        warnings=survey.warnings)
    if not levels.any_clipped:
        copy_unchanged(source, plan, details.samplerate, details.channels)
        report.clipped_fraction = [float(s) if survey.unrestorable else 0.0 for s in survey.saturated_share]
        report.flagged_fraction = list(report.clipped_fraction)
        report.longest_run = [0] * details.channels
        report.action = ("nothing to restore from: copied unchanged" if survey.unrestorable
                         else "no clipping found: copied unchanged")
        report.seconds = time.perf_counter() - started
        return report
    restorer = make_restorer(method, model, levels, engine, detection.min_run, progress, sparse_share, sparse_settings,
                             lossy_model)
    stats = MaskStatistics(details.channels)
    with atomic_target(plan.path) as temporary:
        float_plan = OutputPlan(temporary, "WAV", "FLOAT", False) if plan.make_up_gain else plan
        staging = temporary.with_suffix(".staging.wav") if plan.make_up_gain else temporary
        try:
            done = 0
            with open_writer(staging, details.samplerate, details.channels, float_plan) as writer:
                blocks = (clip_to_levels(block, levels) for block in read_blocks(source))
                for restored, mask in restorer.process(blocks):
                    writer.write(restored)
                    stats.update(mask)
                    report.restored_peak = max(report.restored_peak, float(np.abs(restored).max(initial=0.0)))
                    done += len(restored)
                    if progress:
                        progress("restore", done, details.frames)
            if plan.make_up_gain:
                ceiling = 10 ** (plan.ceiling_db / 20)
                report.gain = min(1.0, ceiling / report.restored_peak) if report.restored_peak > 0 else 1.0
                with open_writer(temporary, details.samplerate, details.channels, plan) as writer:
                    for block in read_blocks(staging):
                        writer.write(block * report.gain)
        finally:
            if staging != temporary and staging.exists():
                staging.unlink()
    # a channel left as it is was not masked: its share is the first pass's
    report.flagged_fraction = [survey.saturated_share[c] if c in survey.unrestorable else float(f)
                               for c, f in enumerate(stats.clipped_fraction)]
    report.clipped_fraction = survey.clipped(report.flagged_fraction)
    report.longest_run = stats.longest.tolist()
    report.action = plan.describe(report.gain)
    if uses_lossy_model(levels, lossy_model):
        report.action = f"{report.action}; restored by the model for lossy input"
    if is_lossy(source) and not is_lossy(plan.path):
        report.action = f"lossy input written losslessly: {report.action}"
    report.seconds = time.perf_counter() - started
    return report
