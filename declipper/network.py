"""The restoration network: a bias-free 1-D U-Net that sees the measurement and its saturation mask.

Inputs are y/scale (scale: the clipping level) and two indicator channels for samples saturated high
and low, as in Fig. 4 of Sechaud et al. Two output parameterisations:

- ``consistent`` (default): the network predicts the excess beyond the level on saturated samples
  only, so every output clips back to y by construction and L_MC is identically zero.
- ``free``: the network predicts a correction on every sample, as in the paper; the raw estimate can
  break consistency, which is what L_MC and L_NMC measure in training. At inference it is projected
  onto the consistent set, which (the set being convex and holding the truth) can only bring it closer.

With no bias terms and only ReLU and |.| non-linearities the network is positively
1-homogeneous, and dividing by the level makes the whole restorer exactly scale-equivariant:
restoring a*y gives a*(restored y) for any a > 0.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .physics import project_consistent


OUTPUTS = ("consistent", "free")


@dataclass(frozen=True)
class UNetConfig:
    widths: tuple[int, ...] = (16, 32, 64, 128)
    kernel: int = 7
    stride: int = 4
    output: str = "consistent"  # or "free"; see the module docstring

    @property
    def multiple(self) -> int:
        """Window lengths must be a multiple of this to pass through every down-sampling."""
        return self.stride ** (len(self.widths) - 1)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "UNetConfig":
        return cls(widths=tuple(data["widths"]), kernel=int(data["kernel"]), stride=int(data["stride"]),
                   output=data.get("output", "consistent"))


class ResidualBlock(nn.Module):
    def __init__(self, width: int, kernel: int):
        super().__init__()
        self.first = nn.Conv1d(width, width, kernel, padding=kernel // 2, bias=False)
        self.second = nn.Conv1d(width, width, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.second(torch.relu(self.first(x))))


class UNet1d(nn.Module):
    """Bias-free U-Net: strided convolutions down, transposed convolutions up, skip connections."""

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = config
        widths, kernel, stride = config.widths, config.kernel, config.stride
        self.entry = nn.Conv1d(3, widths[0], kernel, padding=kernel // 2, bias=False)
        self.encoders = nn.ModuleList(ResidualBlock(w, kernel) for w in widths[:-1])
        self.downs = nn.ModuleList(
            nn.Conv1d(a, b, 2 * stride, stride=stride, padding=stride // 2, bias=False)
            for a, b in zip(widths[:-1], widths[1:])
        )
        self.bottom = ResidualBlock(widths[-1], kernel)
        self.ups = nn.ModuleList(
            nn.ConvTranspose1d(b, a, stride, stride=stride, bias=False) for a, b in zip(widths[:-1], widths[1:])
        )
        self.merges = nn.ModuleList(
            nn.Conv1d(2 * w, w, kernel, padding=kernel // 2, bias=False) for w in widths[:-1]
        )
        self.decoders = nn.ModuleList(ResidualBlock(w, kernel) for w in widths[:-1])
        self.exit = nn.Conv1d(widths[0], 1, 1, bias=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.entry(features))
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = torch.relu(down(x))
        x = self.bottom(x)
        for up, merge, decoder, skip in zip(
            reversed(self.ups), reversed(self.merges), reversed(self.decoders), reversed(skips)
        ):
            x = torch.relu(up(x))
            x = decoder(torch.relu(merge(torch.cat([x, skip], dim=1))))
        return self.exit(x)


class Declipper(nn.Module):
    """Measurement + mask + levels -> a restored signal that is consistent with the measurement."""

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        if config.output not in OUTPUTS:
            raise ValueError(f"unknown output parameterisation {config.output!r}: use {' or '.join(OUTPUTS)}")
        self.config = config
        self.net = UNet1d(config)

    def forward(
        self, y: torch.Tensor, mask: torch.Tensor, upper: torch.Tensor, lower: torch.Tensor, scale: torch.Tensor,
        project: bool = True,
    ) -> torch.Tensor:
        """y, mask: [batch, time]; upper, lower, scale: [batch, 1]. Time must be a multiple of
        ``config.multiple``. Reliable samples come back as y; saturated ones at or beyond their level.
        ``project=False`` gives a free network's raw estimate, for the consistency losses."""
        high, low = (mask > 0), (mask < 0)
        features = torch.stack([y / scale, high.to(y.dtype), low.to(y.dtype)], dim=1)
        output = self.net(features).squeeze(1).to(y.dtype) * scale
        if self.config.output == "free":
            estimate = y + output
            return project_consistent(estimate, y, mask, upper, lower) if project else estimate
        excess = output.abs()
        plateau = torch.where(high, torch.maximum(y, upper), torch.minimum(y, lower))
        estimate = torch.where(high, plateau + excess, torch.where(low, plateau - excess, y))
        return project_consistent(estimate, y, mask, upper, lower)
