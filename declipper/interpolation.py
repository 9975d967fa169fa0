"""Consistent cubic interpolation: the simplest declipper, as a floor for the others.

Each run of saturated samples is bridged by a cubic Hermite curve between the reliable samples on
either side, with slopes estimated from those samples, and the result is projected onto the
consistent set (saturated samples lifted to at least their level). It knows nothing about music:
a network or a sparse method that does not beat it by a wide margin has learned little.
"""
from __future__ import annotations

import numpy as np
import torch

from .physics import ClippingLevels, channel_mask, project_consistent


def _runs(saturated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (exclusive) of the runs of True in a 1-D mask."""
    edges = np.diff(np.concatenate([[0], saturated.view(np.int8), [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _slope(y: np.ndarray, reliable: np.ndarray, at: np.ndarray, step: int) -> np.ndarray:
    """dy/dn at ``at`` from the reliable samples beyond it (``step`` -1: to the left, +1: right):
    second order where two more are reliable, first order where one is, flat otherwise."""
    n = y.size
    one, two = at - step, at - 2 * step
    ok_one = (one >= 0) & (one < n)
    ok_one[ok_one] &= reliable[one[ok_one]]
    ok_two = ok_one & (two >= 0) & (two < n)
    ok_two[ok_two] &= reliable[two[ok_two]]
    clamp = lambda i: np.clip(i, 0, n - 1)  # noqa: E731: read only where the mask says so
    first = (y[at] - y[clamp(one)]) * step
    second = (3 * y[at] - 4 * y[clamp(one)] + y[clamp(two)]) / 2 * step
    return np.where(ok_two, second, np.where(ok_one, first, 0.0))


def cubic_channel(y: np.ndarray, saturated: np.ndarray, level_high: float, level_low: float) -> np.ndarray:
    """Bridge every saturated run of one channel; float64 in, float64 out."""
    out = y.astype(np.float64).copy()
    starts, ends = _runs(saturated)
    if starts.size == 0:
        return out
    reliable = ~saturated
    n = y.size
    left, right = starts - 1, ends  # the reliable samples that frame each run
    has_left, has_right = left >= 0, right < n
    side = np.where(y[starts] > 0, level_high, level_low)  # a run at an edge is held at its level
    y0 = np.where(has_left, y[np.clip(left, 0, n - 1)], side)
    y1 = np.where(has_right, y[np.clip(right, 0, n - 1)], side)
    m0 = np.where(has_left, _slope(y, reliable, np.clip(left, 0, n - 1), 1), 0.0)
    m1 = np.where(has_right, _slope(y, reliable, np.clip(right, 0, n - 1), -1), 0.0)
    lengths = ends - starts
    span = (lengths + 1).astype(np.float64)  # from the left frame to the right frame
    run = np.repeat(np.arange(starts.size), lengths)
    position = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths) + 1
    t = position / span[run]
    h00, h10, h01, h11 = 2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t, -2 * t**3 + 3 * t**2, t**3 - t**2
    out[np.repeat(starts, lengths) + position - 1] = (h00 * y0[run] + h10 * span[run] * m0[run]
                                                     + h01 * y1[run] + h11 * span[run] * m1[run])
    return out


def cubic_restore(y: np.ndarray, levels: ClippingLevels) -> np.ndarray:
    """Restore [frames, channels] float32 audio clipped at ``levels``; consistent, float32."""
    signal = torch.from_numpy(np.ascontiguousarray(y.T, dtype=np.float32))
    tensors = levels.as_tensors()
    mask = channel_mask(signal, tensors)
    bridged = np.stack([cubic_channel(signal[c].numpy(), mask[c].numpy() != 0, levels.upper[c], levels.lower[c])
                        for c in range(levels.channels)])
    estimate = torch.from_numpy(bridged.astype(np.float32))
    restored = project_consistent(estimate, signal, mask, tensors["upper"], tensors["lower"])
    return restored.T.contiguous().numpy()
