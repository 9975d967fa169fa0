"""Finding the clipping level of a recording from its amplitude distribution.

Clipping piles samples up at the level mu: a point mass for hard clipping, a narrow bump when dither
or lossy coding has rippled the plateaus. Natural audio has a thinning tail instead, and even a
brick-wall limiter's smooth peaks only give the 1/sqrt(mu - v) density of a rounded crest. So, per
channel and polarity, we look at the top of the distribution at scales t = tol, 2 tol, 4 tol, ...
and accept a level where the band [peak - t, peak] is much denser than the band below it.

The histograms are accumulated block by block, so a file of any length is scanned in fixed memory.
"""
from __future__ import annotations

import functools
import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .physics import ClippingLevels

BINS_PER_OCTAVE = 1 << 14  # relative resolution ~4e-5
LOWEST_OCTAVE = -20  # amplitudes below 2**-20 (~ -120 dBFS) never clip anything we can restore
OCTAVES = 24
PLATEAU_RATIO = 6.0  # density of the top band over the band below: a rounded crest gives 3
MIN_FLAT_SHARE = 0.25  # of the samples at a clipping level, most sit in runs; a limiter's crests do not
RIPPLE_PROMINENCE = 1.3  # a rippled plateau's bump over the valley beneath it: 1.45 to 4 measured
RIPPLE_SIGNIFICANCE = 6.0  # ... in standard deviations of the counting noise
MIN_PILE = 10  # samples in the pile before we believe it
MIN_RIPPLE_PILE = 100  # ... for a rippled one, whose bump a tone's few hundred samples can fake
CODED_BINS = 200  # a coded plateau is looked for in bins of 1/200 of the peak
# the band of smeared samples reaches this many times the bump's lower half-width below its centre:
# 2, 3 and 4 measured on held-out tracks (docs/experiments.md), 3 the best over levels and codecs
BAND_REACH = 3.0
CAPPED_REACH = 0.08  # of the plateau level: how far below a hard plateau a coded bump's centre may lie
# a coded plateau must hold this share of a channel's samples: a sustained synth tone or a limiter's
# crests make small bumps too (up to 0.14 % measured on the test tracks driven into a limiter, 0.15 % on
# a heldout one), the survey's lightest clipping 1-4 %. Lighter clipping in lossy files is left alone.
MIN_CODED_SHARE = 2e-3
TOP_SHARE = 0.1  # of the samples from the valley up, at most this share lies well above a coded plateau
# of the peak: the lowest amplitude level() looks at. Decoded plateaus overshoot the level by up to
# +3.5 dB, and their ripple reaches 30 % below it, so the band can start at a third of the peak
KEPT_SHARE = 0.3
# Below this share of reliable samples a channel is left as it is: there is nothing to restore from
# (a DC offset at full scale, a dead converter). The survey's heaviest clipping, input SDR 1 dB,
# leaves 5-15 % of the samples reliable on sines and music.
MIN_RELIABLE_SHARE = 0.02


@dataclass
class DetectionSettings:
    """How saturated samples are found; ``threshold`` replaces the estimate when given."""

    tolerance: float = 1e-4  # relative to the level, so detection does not depend on the gain
    min_run: int = 1
    threshold: tuple[float, float] | None = None  # (upper, lower) linear levels


def _bin_index(values: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        position = (np.log2(values) - LOWEST_OCTAVE) * BINS_PER_OCTAVE
    return np.clip(position, 0, OCTAVES * BINS_PER_OCTAVE - 1).astype(np.int64)


def _bin_value(index: int) -> float:
    return 2.0 ** (index / BINS_PER_OCTAVE + LOWEST_OCTAVE)


@dataclass
class _Tail:
    """Histograms of one polarity of one channel, in log-spaced bins, plus its exact peak.

    ``flat`` counts only samples with a neighbour within the tolerance: clipped plateaus are flat,
    while the crest of a peak (even one a limiter set exactly at its ceiling) is a single sample.
    """

    counts: np.ndarray = field(default_factory=lambda: np.zeros(OCTAVES * BINS_PER_OCTAVE, np.int64))
    flat: np.ndarray = field(default_factory=lambda: np.zeros(OCTAVES * BINS_PER_OCTAVE, np.int64))
    peak: float = 0.0
    samples: int = 0  # of the channel, both polarities

    def add(self, values: np.ndarray, flat: np.ndarray) -> None:
        self.samples += len(values)
        self.peak = max(self.peak, float(values.max(initial=0.0)))
        # level() only asks about amplitudes above half the peak, so the samples below a share of the
        # peak so far (hence of the final peak) need no bin: most of them, in music, and the costly part
        kept = values > KEPT_SHARE * self.peak
        if kept.any():
            bins = _bin_index(values[kept])
            low = int(bins.min())  # count into the span of bins in use, not all 400 k of them
            span = slice(low, int(bins.max()) + 1)
            self.counts[span] += np.bincount(bins - low, minlength=span.stop - low)
            self.flat[span] += np.bincount(bins[flat[kept]] - low, minlength=span.stop - low)

    def level(self, tolerance: float) -> tuple[float, float, float | None, float]:
        """(level, spread, pile, smear) of a pile-up at the top of the distribution, or
        (inf, 0, None, 0) if none. ``pile``: the number of clipped samples where a codec has smeared
        them, None for plateaus (there every flagged sample is a clipped one)."""
        if self.peak <= 0:
            return math.inf, 0.0, None, 0.0
        above = self._above(self.counts)
        plateau = self._plateau(self._above(self.flat), above, tolerance)
        if plateau:
            # a decoder that wrote integers (ffmpeg's default WAV, a CD rip of an MP3) clipped the
            # codec's overshoot again: a hard plateau at full scale on top of the coded band
            level, spread = plateau
            coded = self._coded_plateau(above, tolerance, top=level - spread)
            return coded if coded is not None else (*plateau, None, 0.0)
        return self._coded_plateau(above, tolerance) or (math.inf, 0.0, None, 0.0)

    @staticmethod
    def _above(counts: np.ndarray):
        """value -> number of samples at or above it."""
        from_top = np.cumsum(counts[::-1])[::-1]
        return lambda value: int(from_top[_bin_index(np.array([max(value, 1e-30)]))[0]])

    def _plateau(self, flat_above, above, tolerance: float) -> tuple[float, float] | None:
        """Hard clipping, maybe dithered: a point mass of flat runs at the top, far denser than the
        band below. A limiter also piles single crest samples at its ceiling, but few of them are flat."""
        t = self.peak * max(tolerance, 2.0 / BINS_PER_OCTAVE)
        for _ in range(5):
            top = flat_above(self.peak - t)
            below = flat_above(self.peak - 5 * t) - top
            everything_top = above(self.peak - t)
            mostly_flat = top >= MIN_FLAT_SHARE * everything_top
            # a point mass among all samples too: the crest of a slow sine is flat (its slope is nil
            # there) but its samples thin out smoothly below the peak, as no plateau's do
            dense = 4 * everything_top > PLATEAU_RATIO * (above(self.peak - 5 * t) - everything_top)
            if top >= MIN_PILE and mostly_flat and 4 * top > PLATEAU_RATIO * below and dense:
                level = self._median_above(self.peak - t, top)
                return level, self.peak - level + tolerance * level
            t *= 2
        return None

    def _coded_plateau(self, above, tolerance: float,
                       top: float | None = None) -> tuple[float, float, float, float] | None:
        """Clipping then lossy coding: the codec spreads each plateau into a bump around the level.

        In bins of 0.5 % of the peak (smoothed over a few bins), the bump is the highest local
        maximum that stands well above the valley beneath it, with little of the distribution
        above it (a square-wave synth also piles its samples at one amplitude, but inside the
        music's range, not at its top). Returns (level, spread, pile, smear): the level is the
        bottom of the band of smeared samples, BAND_REACH times the distance from the bump's
        centre down to its half height below it (so that nearly all the plateau's samples lie
        above); the pile, the number of clipped samples, is the bump's excess over the valley's density;
        the smear is the centre's height above the level. ``top``: look below it only (the samples
        above it make a hard plateau of their own).
        """
        top = self.peak if top is None else top
        width = top / CODED_BINS
        first = int(math.ceil(KEPT_SHARE * self.peak / width))  # below it the histograms keep nothing
        beyond = above(top) if top < self.peak else 0
        edges = np.array([above(j * width) - beyond for j in range(first, CODED_BINS + 1)], dtype=np.float64)
        counts = -np.diff(edges)  # counts[i]: samples in [(first + i) width, (first + i + 1) width)
        kernel = np.exp(-0.5 * (np.arange(-6, 7) / 2.0) ** 2)
        smooth = np.convolve(counts, kernel, "same") / np.convolve(np.ones_like(counts), kernel, "same")
        found = None
        # from the top down; under a hard plateau the bump's top half was clipped off: its lower flank
        # may rise right up to the plateau
        capped = top < self.peak
        for mode in range(len(counts) - (1 if capped else 2), len(counts) // 10, -1):
            if smooth[mode] < smooth[max(mode - 8, 0) : mode + 9].max():
                continue
            low = max(mode - 60, 0)
            valley_at = low + int(np.argmin(smooth[low:mode])) if mode > low else mode
            valley = float(smooth[valley_at])
            significance = (smooth[mode] - valley) / math.sqrt(max(valley, 1.0) / 5)  # ~5 bins of smoothing
            if (smooth[mode] >= RIPPLE_PROMINENCE * valley and significance >= RIPPLE_SIGNIFICANCE
                    and counts[mode - 2 : mode + 3].sum() >= MIN_RIPPLE_PILE):
                found = mode, valley_at, valley
                break
        if found is None:
            return None
        mode, valley_at, valley = found
        half = (smooth[mode] + valley) / 2
        under, above_mode = smooth[mode::-1] <= half, smooth[mode:] <= half  # the bump's half height, each side
        rise = mode - int(np.argmax(under)) if under.any() else 0
        fall = mode + int(np.argmax(above_mode)) if above_mode.any() else len(counts) - 1  # or up to a hard plateau
        if counts[min(fall + 2 * (fall - mode) + 2, len(counts)) :].sum() > TOP_SHARE * counts[valley_at:].sum():
            return None
        # under a hard plateau, the bump must be the codec's, centred at the old level, close below the
        # plateau (decoders shift it by up to 5 %): a bump of the music's own lies lower or wider
        if capped and (len(counts) - 1 - mode > min(BAND_REACH * (mode - rise), CAPPED_REACH * CODED_BINS)):
            return None
        if not capped and not (counts[mode + 1 :] <= half).any():  # unsmoothed: a narrow bump ends in a bin
            return None  # no ripple above the level: a density rising to its peak, as a sine's crest
        # ripple spreads a plateau's samples continuously: a periodic tone whose period is a whole
        # number of samples repeats a few exact values, which fill few of the fine bins
        lo, hi = (_bin_index(np.array([(first + k) * width]))[0] for k in (rise, fall + 1))
        if np.count_nonzero(self.counts[lo : hi + 1]) < min(counts[rise : fall + 1].sum(), hi - lo) / 4:
            return None
        centre = (first + mode + 0.5) * width
        bottom = max(centre - BAND_REACH * (mode - rise) * width, KEPT_SHARE * self.peak)
        start = int((bottom / width) - first)
        below = counts[start:].sum() - valley * max(mode - start, 0)
        # under a hard plateau: a codec's overshoot clipped again holds at most about as many samples as
        # the band below it (half of the ripple lies below the level); hard clipping of lossless audio
        # holds nearly all of them in the plateau, and a small bump below it is the music's own
        if capped and below < beyond / 2:
            return None
        pile = below + beyond
        if pile < MIN_CODED_SHARE * self.samples:
            return None
        return bottom, tolerance * bottom, float(pile), centre - bottom

    def count_from(self, value: float) -> int:
        """Samples at or above ``value``: exact for values above the kept share of the peak."""
        return self._above(self.counts)(value) if math.isfinite(value) and value <= self.peak else 0

    def _median_above(self, floor: float, count: int) -> float:
        """Median of the pile: the plateau value, around which dither spreads."""
        first = int(_bin_index(np.array([floor]))[0])
        cumulative = np.cumsum(self.flat[first:])
        median_bin = first + int(np.searchsorted(cumulative, count / 2))
        return min(_bin_value(median_bin + 1), self.peak)


@functools.lru_cache(maxsize=1)
def _channel_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max(1, min(os.cpu_count() or 1, 8)), thread_name_prefix="declipper-detect")


class LevelEstimator:
    """Accumulates amplitude statistics of [frames, channels] blocks and estimates the levels."""

    def __init__(self, channels: int, tolerance: float = 1e-4):
        self.tolerance = tolerance
        self.tails = [(_Tail(), _Tail()) for _ in range(channels)]
        self.frames = 0
        # per channel and polarity, set by levels(): clipped samples under a coded plateau, or None
        self.piles: list[tuple[float | None, float | None]] = [(None, None)] * channels

    def update(self, block: np.ndarray) -> None:
        self.frames += len(block)
        if len(self.tails) > 1:  # numpy lets go of the GIL in the heavy steps: channels in parallel
            list(_channel_pool().map(self._update_channel, [block] * len(self.tails), range(len(self.tails))))
        else:
            self._update_channel(block, 0)

    def _update_channel(self, block: np.ndarray, channel: int) -> None:
        positive, negative = self.tails[channel]
        samples = np.ascontiguousarray(block[:, channel])  # a strided column is slow to difference
        # a sample is flat when a neighbour lies within the tolerance (relative to the larger of the two)
        reach = np.abs(samples)
        reach = np.maximum(reach[1:], reach[:-1])
        reach *= reach.dtype.type(self.tolerance)
        step = np.diff(samples)
        close = np.abs(step, out=step) <= reach
        flat = np.zeros(len(samples), bool)
        flat[1:] |= close
        flat[:-1] |= close
        positive.add(samples, flat)
        negative.add(-samples, flat)

    def levels(self) -> ClippingLevels:
        upper, lower, upper_spread, lower_spread, upper_smear, lower_smear = [], [], [], [], [], []
        self.piles = []
        for positive, negative in self.tails:
            level, spread, high_pile, smear = positive.level(self.tolerance)
            upper.append(level)
            upper_spread.append(spread)
            upper_smear.append(smear)
            level, spread, low_pile, smear = negative.level(self.tolerance)
            lower.append(-level)
            lower_spread.append(spread)
            lower_smear.append(smear)
            self.piles.append((high_pile, low_pile))
        return ClippingLevels(tuple(upper), tuple(lower), tuple(upper_spread), tuple(lower_spread),
                              tuple(upper_smear), tuple(lower_smear))

    def coding_correction(self, levels: ClippingLevels) -> list[float]:
        """Per channel, the estimated share of clipped samples minus the share flagged, from the
        coded plateaus that levels() found: the band of smeared samples flagged for restoration also
        holds unclipped ones (and misses a few clipped ones), so what it flags overstates the clipping."""
        corrections = []
        for channel, ((positive, negative), (high, low)) in enumerate(zip(self.tails, self.piles)):
            correction = 0.0
            if high is not None:
                correction += high - positive.count_from(levels.upper[channel] - levels.upper_spread[channel])
            if low is not None:
                correction += low - negative.count_from(-(levels.lower[channel] + levels.lower_spread[channel]))
            corrections.append(correction / max(self.frames, 1))
        return corrections

    def saturated_share(self, levels: ClippingLevels) -> list[float]:
        """Per channel, the share of samples flagged saturated under ``levels`` (runs of any length),
        from the histograms: exact for levels estimated here, a lower bound for a given level below
        half the peak."""
        shares = []
        for channel, (positive, negative) in enumerate(self.tails):
            count = (positive.count_from(levels.upper[channel] - levels.upper_spread[channel])
                     + negative.count_from(-(levels.lower[channel] + levels.lower_spread[channel])))
            shares.append(count / max(self.frames, 1))
        return shares


def unrestorable_channels(saturated_share: list[float]) -> list[int]:
    """Channels with too few reliable samples to restore anything from."""
    return [c for c, share in enumerate(saturated_share) if share > 1 - MIN_RELIABLE_SHARE]


def estimate_levels(audio: np.ndarray, tolerance: float = 1e-4) -> ClippingLevels:
    """Clipping levels of an in-memory [frames, channels] signal."""
    estimator = LevelEstimator(audio.shape[1], tolerance)
    estimator.update(audio)
    return estimator.levels()


def fixed_levels(channels: int, threshold: tuple[float, float], tolerance: float) -> ClippingLevels:
    upper, lower = threshold
    return ClippingLevels((upper,) * channels, (lower,) * channels, (tolerance * upper,) * channels,
                          (-tolerance * lower,) * channels)


_THRESHOLD = re.compile(r"^\s*([+-]?\d+(?:\.\d*)?(?:e[+-]?\d+)?)\s*(db|dbfs)?\s*$", re.IGNORECASE)


def parse_threshold(text: str) -> tuple[float, float]:
    """'-0.5dB', '0.9', or per polarity '0.9,-0.8' / '-1dB,-2dB' -> (upper, lower) linear levels.

    A dBFS value is a magnitude below full scale; a linear value is a magnitude, except that the
    second of a pair may carry its sign.
    """
    parts = [p for p in text.split(",")]
    if not 1 <= len(parts) <= 2:
        raise ValueError(f"threshold {text!r}: give one level, or two separated by a comma")
    magnitudes = []
    for part in parts:
        match = _THRESHOLD.match(part)
        if not match:
            raise ValueError(f"threshold {part!r}: expected a number, optionally followed by dB")
        value = float(match.group(1))
        if match.group(2):
            if value > 0:
                raise ValueError(f"threshold {part!r}: dBFS levels are at most 0")
            value = 10.0 ** (value / 20.0)
        magnitudes.append(abs(value))
    if any(m <= 0 for m in magnitudes):
        raise ValueError(f"threshold {text!r}: levels must be non-zero")
    upper = magnitudes[0]
    lower = magnitudes[-1]
    return upper, -lower


class MaskStatistics:
    """Saturated-sample counts and the longest saturated run per channel, over streamed mask blocks."""

    def __init__(self, channels: int):
        self.frames = 0
        self.high = np.zeros(channels, np.int64)
        self.low = np.zeros(channels, np.int64)
        self.longest = np.zeros(channels, np.int64)
        self._run = np.zeros(channels, np.int64)  # length of the run still open at the block end
        self._sign = np.zeros(channels, np.int8)

    def update(self, mask: np.ndarray) -> None:
        self.frames += len(mask)
        self.high += (mask > 0).sum(axis=0)
        self.low += (mask < 0).sum(axis=0)
        for channel in range(mask.shape[1]):
            column = mask[:, channel]
            if not len(column):
                continue
            change = np.flatnonzero(np.diff(column)) + 1
            starts = np.concatenate([[0], change])
            lengths = np.diff(np.concatenate([starts, [len(column)]]))
            signs = column[starts]
            if signs[0] != 0 and signs[0] == self._sign[channel]:
                lengths[0] += self._run[channel]
            saturated = lengths[signs != 0]
            if saturated.size:
                self.longest[channel] = max(self.longest[channel], int(saturated.max()))
            self._sign[channel], self._run[channel] = signs[-1], lengths[-1] if signs[-1] != 0 else 0

    @property
    def clipped_fraction(self) -> np.ndarray:
        return (self.high + self.low) / max(self.frames, 1)


def severity(clipped_fraction: float) -> str:
    """A plain-words grade from the share of saturated samples."""
    if clipped_fraction == 0:
        return "none"
    for limit, word in ((1e-3, "light"), (1e-2, "moderate"), (5e-2, "heavy")):
        if clipped_fraction < limit:
            return word
    return "severe"
