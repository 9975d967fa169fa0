"""The network and A-SPADE together: a weighted mean of their two restorations.

Why: the two fail in different places. The networks win by 2-5 dB on dense rock and metal, where
sparsity fails; A-SPADE wins on sparse tonal music, whose partials its 8192-point frames resolve.
Both restorations are consistent with the measurement (reliable samples are y, saturated ones lie
at or beyond their level), and the consistent set is convex, so any mean of the two is consistent.

A-SPADE's share follows the signal: per 8192-sample stretch it grows as the two restorations agree
(``adaptive_share``). Where they agree, A-SPADE has found a sparse signal the network also sees,
and its estimate is the sharper one; where they disagree, the music is dense and A-SPADE's guess is
the worse one. Fitted on the validation sets, it gained over the fixed share 0.35 on every test
set: 2.7 dB on tonal music, 0.5 on dense mixes, 0.2 on speech (docs/experiments.md). The price is A-SPADE's: slower than real time on
a CPU.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

HYBRID_MODEL = "large"  # the hybrid is the quality mode, and A-SPADE dominates its time anyway
STRETCH = 8192  # samples per share: A-SPADE's frame
# share = AGREEMENT[0] + AGREEMENT[1] * ln(disagreement + 0.001), fitted with the large model and
# A-SPADE at --sparse-speedup 4 on the tonal and dense validation sets (scripts/hybrid_members.py)
AGREEMENT = (-0.09, -0.25)


def check_share(share: float | None) -> float | None:
    """A fixed share in [0, 1], or None for the adaptive one."""
    if share is not None and not 0.0 <= share <= 1.0:
        raise ValueError(f"the sparse share must lie in [0, 1], not {share}")
    return share


def adaptive_share(clipped: np.ndarray, network: np.ndarray, sparse: np.ndarray) -> np.ndarray:
    """A-SPADE's share per frame [frames, 1] from how far apart the two restorations of [frames,
    channels] audio are, per STRETCH frames (channels together): disagreement = |n - s|^2 / (|n - y|^2
    + |s - y|^2), share = clip(a + b ln(disagreement + 0.001), 0, 1). Interpolated linearly between
    the centres of the stretches that hold a restored sample, so the share never jumps."""
    frames = len(clipped)
    starts = np.arange(0, frames, STRETCH)

    def energy(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # |a - b|^2 per stretch, in float64
        per_frame = np.square(a - b).sum(axis=1, dtype=np.float64)
        return np.add.reduceat(per_frame, starts) if frames else per_frame

    apart = energy(network, sparse)
    changed = energy(network, clipped) + energy(sparse, clipped)
    restored = changed > 0
    if not restored.any():
        return np.zeros((frames, 1), np.float32)
    share = np.clip(AGREEMENT[0] + AGREEMENT[1] * np.log(apart[restored] / changed[restored] + 1e-3), 0, 1)
    centres = (np.flatnonzero(restored) + 0.5) * STRETCH
    return np.interp(np.arange(frames), centres, share).astype(np.float32)[:, None]


def blend(network: np.ndarray, sparse: np.ndarray, share: float | np.ndarray) -> np.ndarray:
    """(1 - share) * network + share * sparse (a number, or one per frame), kept between the two so
    rounding cannot leave the consistent set: where both are y (reliable samples) the result is y
    bit for bit."""
    mix = (1 - share) * network + share * sparse
    return np.clip(mix, np.minimum(network, sparse), np.maximum(network, sparse)).astype(network.dtype)


def combine(clipped: np.ndarray, network: np.ndarray, sparse: np.ndarray, share: float | None = None) -> np.ndarray:
    """The hybrid's restoration of [frames, channels] audio: a fixed share, or the adaptive one."""
    return blend(network, sparse, adaptive_share(clipped, network, sparse) if share is None else share)


class HybridRestorer:
    """``fix --method hybrid``: the engine's ``process`` contract over the two restorers. A-SPADE
    needs the whole signal at once, so the blocks are held in memory, as ``--method aspade`` does;
    so is the network's restoration, which the adaptive share compares with A-SPADE's."""

    def __init__(self, network, sparse, share: float | None = None):
        self.network, self.sparse, self.share = network, sparse, check_share(share)

    def process(self, blocks: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        blocks = list(blocks)
        sparse = np.concatenate([restored for restored, _ in self.sparse.process(blocks)], axis=0)
        pieces = list(self.network.process(blocks))
        network = np.concatenate([restored for restored, _ in pieces], axis=0)
        mixed = combine(np.concatenate(blocks, axis=0), network, sparse, self.share)
        start = 0
        for restored, mask in pieces:
            yield mixed[start : start + len(restored)], mask
            start += len(restored)
