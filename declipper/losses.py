"""Training losses, as small composable pieces: each takes the physics (a Clipping), and the EI
loss a transform and the model too, the way DeepInverse composes its losses.

All are normalised by the clipping level squared, so crops of any loudness weigh alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .physics import Clipping, sdr_db

Tensor = torch.Tensor


def negative_sdr(clean: Tensor, estimate: Tensor) -> Tensor:
    """Supervised loss: -SDR in dB, averaged over the batch.

    On a log scale a crop clipped at 1 dB input SDR and one clipped at 20 dB weigh the same, which
    is how the survey scores methods; a plain squared error would be dominated by heavy clipping.
    """
    return -sdr_db(clean, estimate.float()).mean()


def measurement_consistency(estimate: Tensor, y: Tensor, physics: Clipping) -> Tensor:
    """L_MC: squared distance from x_hat to the set of signals that clip to y.

    Reliable samples must equal y; a saturated sample is only wrong if it falls short of its level,
    so it pays the one-sided (mu - sign(y) x_hat)_+^2, with each polarity's own level.
    """
    estimate = estimate.float()
    mask = physics.mask(y)
    reliable = (estimate - y).pow(2) * (mask == 0)
    short_high = torch.relu(physics.upper - estimate).pow(2) * (mask > 0)
    short_low = torch.relu(estimate - physics.lower).pow(2) * (mask < 0)
    return ((reliable + short_high + short_low) / physics.scale.pow(2)).mean()


def naive_consistency(estimate: Tensor, y: Tensor, physics: Clipping) -> Tensor:
    """L_NMC: ||y - clip(x_hat)||^2, kept for comparison: it has no gradient wherever x_hat
    overshoots a level, since clip() is flat there."""
    return ((y - physics(estimate.float())).pow(2) / physics.scale.pow(2)).mean()


@dataclass
class AmplitudeGain:
    """Random gains g, log-uniform in [low, high]: the amplitude transform of the EI loss."""

    low: float = 1.0
    high: float = 3.0

    def sample(self, batch: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> Tensor:
        u = torch.rand(batch, 1, device=device, generator=generator)
        low, high = torch.log(torch.tensor(self.low)), torch.log(torch.tensor(self.high))
        return torch.exp(low + u * (high - low)).to(device)


@dataclass
class EquivarianceLoss:
    """L_EI: ||g x_hat - f(clip(g x_hat))||^2 with g from ``transform``, at the same levels.

    If audio is (roughly) invariant to amplitude, g x_hat is as plausible a signal as x_hat, and its
    clipped version is a measurement whose truth we hold; gains above 1 clip samples that were
    reliable in y, so there the target is the measurement itself.
    """

    transform: AmplitudeGain
    detach_target: bool = True
    region: str = "all"  # "reliable": score only samples that were reliable in y, whose truth g*y is known

    def __call__(self, estimate: Tensor, physics: Clipping, model: Callable, measurement: Tensor | None = None,
                 gains: Tensor | None = None) -> Tensor:
        estimate = estimate.float()
        if gains is None:
            gains = self.transform.sample(estimate.shape[0], estimate.device)
        target = gains * estimate
        if self.detach_target:
            target = target.detach()
        again = physics.restore(model, physics(target), project=False).float()
        error = (again - target).pow(2) / physics.scale.pow(2)
        if self.region == "reliable":
            if measurement is None:
                raise ValueError("EI on reliable samples needs the measurement")
            error = error * (physics.mask(measurement) == 0)
        elif self.region != "all":
            raise ValueError(f"unknown EI region {self.region!r}: use all or reliable")
        return error.mean()
