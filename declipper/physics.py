"""The forward model: hard clipping, saturation masks and measurement consistency.

Everything here works on torch tensors so that training, evaluation and restoration share one
definition of what "clipped at level mu" means. Levels are per polarity: ``upper`` > 0 and
``lower`` < 0; a polarity that is not clipped has the infinite level (nothing reaches it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

Tensor = torch.Tensor


def clip(x: Tensor, upper: Tensor | float, lower: Tensor | float) -> Tensor:
    """y = clip(x): every sample beyond a level is replaced by that level."""
    upper = torch.as_tensor(upper, dtype=x.dtype, device=x.device)
    lower = torch.as_tensor(lower, dtype=x.dtype, device=x.device)
    return torch.minimum(torch.maximum(x, lower), upper)


def project_consistent(estimate: Tensor, y: Tensor, mask: Tensor, upper: Tensor, lower: Tensor) -> Tensor:
    """The closest signal to ``estimate`` that clips to ``y``.

    Reliable samples are the measurement itself; saturated samples lie at or beyond their level
    with the sign of y. Because the set is convex, an average of consistent windows stays consistent.
    """
    high = torch.maximum(estimate, upper)
    low = torch.minimum(estimate, lower)
    return torch.where(mask > 0, high, torch.where(mask < 0, low, y))


@dataclass(frozen=True)
class Clipping:
    """The clipping operator of a batch, at per-item levels [batch, 1].

    Losses and transforms compose with it the way DeepInverse composes a physics operator: it
    clips, it tells which samples are saturated, and it hands the model what the model needs.
    """

    upper: Tensor
    lower: Tensor

    @classmethod
    def symmetric(cls, theta: Tensor) -> "Clipping":
        theta = theta.reshape(-1, 1)
        return cls(theta, -theta)

    def __call__(self, x: Tensor) -> Tensor:
        return clip(x, self.upper, self.lower)

    def mask(self, y: Tensor) -> Tensor:
        return (y >= self.upper).to(torch.int8) - (y <= self.lower).to(torch.int8)

    @property
    def scale(self) -> Tensor:
        return (self.upper - self.lower) / 2

    def restore(self, model, y: Tensor, project: bool = True) -> Tensor:
        """x_hat = f(y): the model sees the measurement, its mask and the levels (``project=False``:
        the raw estimate of a free-output model, before projection onto the consistent set)."""
        return model(y, self.mask(y), self.upper, self.lower, self.scale, project=project)


def sdr_db(reference: Tensor, estimate: Tensor, dim: int = -1) -> Tensor:
    """Signal-to-distortion ratio 10 log10(|x|^2 / |x - x_hat|^2), the survey's score."""
    signal = reference.pow(2).sum(dim)
    noise = (reference - estimate).pow(2).sum(dim)
    return 10.0 * torch.log10(signal.clamp_min(1e-20) / noise.clamp_min(1e-20))


def threshold_for_input_sdr(x: Tensor, target_db: Tensor | float, iterations: int = 40) -> Tensor:
    """The symmetric level theta with SDR(x, clip(x, theta)) = target, by bisection.

    This is the rule of the declipping survey (Zaviska et al. 2021): SDR grows monotonically with
    theta, from 0 dB-ish at theta -> 0 to infinity at theta = max|x|. Works on a batch [..., T].
    """
    peak = x.abs().amax(-1)
    target = torch.as_tensor(target_db, dtype=x.dtype, device=x.device).expand_as(peak)
    low, high = torch.zeros_like(peak), peak.clone()
    for _ in range(iterations):
        theta = 0.5 * (low + high)
        sdr = sdr_db(x, clip(x, theta.unsqueeze(-1), -theta.unsqueeze(-1)))
        too_clipped = sdr < target
        low = torch.where(too_clipped, theta, low)
        high = torch.where(too_clipped, high, theta)
    return 0.5 * (low + high)


def drop_short_runs(mask: Tensor, min_run: int) -> Tensor:
    """Keep only saturated runs of at least ``min_run`` samples (per polarity, along the last axis)."""
    if min_run <= 1:
        return mask
    kept = []
    for polarity in (1, -1):
        hits = (mask == polarity).float().reshape(-1, 1, mask.shape[-1])
        # a sample survives erosion when the min_run samples starting at it are all saturated ...
        eroded = -torch.nn.functional.max_pool1d(
            torch.nn.functional.pad(-hits, (0, min_run - 1), value=-1.0), min_run, stride=1
        )
        # ... and a dilation of the survivors over the same span restores the long runs exactly.
        dilated = torch.nn.functional.max_pool1d(
            torch.nn.functional.pad(eroded, (min_run - 1, 0)), min_run, stride=1
        )
        kept.append(dilated.reshape(mask.shape) > 0)
    return kept[0].to(torch.int8) - kept[1].to(torch.int8)


@dataclass(frozen=True)
class ClippingLevels:
    """Per channel and polarity: the level mu where the signal saturated, and the spread below it.

    A sample is flagged saturated when it reaches ``level - spread``: the spread is the tolerance of
    hard clipping (dither) or the ripple that lossy coding leaves on a clipped plateau. A polarity
    that is not clipped has an infinite level.
    """

    upper: tuple[float, ...]
    lower: tuple[float, ...]
    upper_spread: tuple[float, ...]
    lower_spread: tuple[float, ...]
    # lossy coding spreads a plateau's samples into a band around the old level: the level above
    # is then the band's lower edge (restoration treats the whole band as saturated, and the input
    # is clipped there, so that the network and A-SPADE see plain clipping), and the smear is how
    # far above it the band's centre, the old level, lay. Zero for hard clipping.
    upper_smear: tuple[float, ...] = ()
    lower_smear: tuple[float, ...] = ()

    def __post_init__(self):
        for name in ("upper_smear", "lower_smear"):
            if not getattr(self, name):
                object.__setattr__(self, name, (0.0,) * len(self.upper))

    @classmethod
    def uniform(cls, channels: int, upper: float, lower: float, spread: float = 0.0) -> "ClippingLevels":
        return cls((upper,) * channels, (lower,) * channels, (spread,) * channels, (spread,) * channels)

    @property
    def channels(self) -> int:
        return len(self.upper)

    def clipped(self, channel: int) -> bool:
        return math.isfinite(self.upper[channel]) or math.isfinite(self.lower[channel])

    @property
    def smeared(self) -> bool:
        """Whether any level is the band of a clipped plateau that lossy coding smeared."""
        return any(self.upper_smear) or any(self.lower_smear)

    @property
    def any_clipped(self) -> bool:
        return any(self.clipped(c) for c in range(self.channels))

    def without(self, channels: list[int]) -> "ClippingLevels":
        """The same levels with ``channels`` marked unclipped, so that they are left as they are."""
        def keep(values: tuple[float, ...], off: float) -> tuple[float, ...]:
            return tuple(off if c in channels else v for c, v in enumerate(values))

        return ClippingLevels(keep(self.upper, math.inf), keep(self.lower, -math.inf), keep(self.upper_spread, 0.0),
                              keep(self.lower_spread, 0.0), keep(self.upper_smear, 0.0), keep(self.lower_smear, 0.0))

    def scale(self, channel: int) -> float:
        """The amplitude the network works in: the mean magnitude of the finite levels."""
        finite = [abs(v) for v in (self.upper[channel], self.lower[channel]) if math.isfinite(v)]
        return sum(finite) / len(finite) if finite else 1.0

    def as_tensors(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
        """Levels as [channels, 1] tensors, ready to broadcast over [channels, time], in the signal's
        dtype: a float64 signal compared with a level rounded to float32 can miss every clipped sample."""
        def column(values: tuple[float, ...]) -> Tensor:
            return torch.tensor(values, dtype=dtype, device=device).unsqueeze(-1)

        return {
            "upper": column(self.upper),
            "lower": column(self.lower),
            "upper_flag": column(tuple(u - s for u, s in zip(self.upper, self.upper_spread))),
            "lower_flag": column(tuple(l + s for l, s in zip(self.lower, self.lower_spread))),
            "scale": column(tuple(self.scale(c) for c in range(self.channels))),
        }

    def to_json(self) -> list[dict[str, float | None]]:
        def finite(v: float) -> float | None:
            return v if math.isfinite(v) else None

        return [
            {"upper": finite(self.upper[c]), "lower": finite(self.lower[c]),
             "upper_smear": self.upper_smear[c] if math.isfinite(self.upper[c]) else None,
             "lower_smear": self.lower_smear[c] if math.isfinite(self.lower[c]) else None}
            for c in range(self.channels)
        ]


def clip_to_levels(block: np.ndarray, levels: ClippingLevels) -> np.ndarray:
    """A [frames, channels] numpy block clipped at each channel's levels: restoration's input, where
    a lossy codec's ripple is flattened back onto the level (hard clipping: only the dither)."""
    upper = np.array(levels.upper, dtype=block.dtype)
    lower = np.array(levels.lower, dtype=block.dtype)
    return np.minimum(np.maximum(block, lower), upper)


def channel_mask(y: Tensor, levels: dict[str, Tensor], min_run: int = 1) -> Tensor:
    """The saturation mask of a [channels, time] block under per-channel levels."""
    high = (y >= levels["upper_flag"]).to(torch.int8)
    low = (y <= levels["lower_flag"]).to(torch.int8)
    return drop_short_runs(high - low, min_run)
