"""The restoration network: a bias-free U-Net that sees the measurement and its saturation mask.

Inputs are y/scale (scale: the clipping level) and two indicator channels for samples saturated high
and low, as in Fig. 4 of Sechaud et al. The U-Net works in one of two domains:

- ``time`` (default): a 1-D U-Net on the waveform;
- ``stft``: a 2-D U-Net on the short-time spectra of the three input channels (real and imaginary
  parts as channels), whose complex output is turned back into a waveform. Tonal music is sparse
  there, which is what the best sparse declippers exploit.

Two output parameterisations:

- ``consistent`` (default): the network predicts the excess beyond the level on saturated samples
  only, so every output clips back to y by construction and L_MC is identically zero.
- ``free``: the network predicts a correction on every sample, as in the paper; the raw estimate can
  break consistency, which is what L_MC and L_NMC measure in training. At inference it is projected
  onto the consistent set, which (the set being convex and holding the truth) can only bring it closer.

With no bias terms and only ReLU and |.| non-linearities (the STFT is linear) the network is positively
1-homogeneous, and dividing by the level makes the whole restorer exactly scale-equivariant:
restoring a*y gives a*(restored y) for any a > 0.

An ``Ensemble`` averages several such restorers (say one on the waveform, one on spectra), trained
together or apart; it keeps every one of these properties.
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from .physics import project_consistent


OUTPUTS = ("consistent", "free")
DOMAINS = ("time", "stft")


@dataclass(frozen=True)
class UNetConfig:
    widths: tuple[int, ...] = (16, 32, 64, 128)
    kernel: int = 7
    stride: int = 4  # time: down-sampling per level; stft: per level along frequency and frames
    output: str = "consistent"  # or "free"; see the module docstring
    domain: str = "time"  # or "stft"
    n_fft: int = 1024  # stft only
    hop: int = 256  # stft only
    scales: tuple[int, ...] = (1,)  # stft only: run on spectra of n_fft * s, hop * s for each s; average

    @property
    def multiple(self) -> int:
        """Window lengths must be a multiple of this to pass through every down-sampling."""
        if self.domain == "stft":
            return math.lcm(*(self.hop * scale for scale in self.scales))
        return self.stride ** (len(self.widths) - 1)

    @property
    def shortest(self) -> int:
        """The shortest input the network restores reliably: the spectral U-Net's deepest level must
        keep at least two frames (with one, oneDNN's bf16 kernels on an AMX CPU returned garbage)."""
        if self.domain == "stft":
            return self.hop * max(self.scales) * self.stride ** (len(self.widths) - 1)
        return self.multiple

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "UNetConfig":
        if data.get("bank") or data.get("refine"):
            raise ValueError("the model has a learned filterbank or a spectral refiner, experiments this "
                             "version no longer runs (docs/experiments.md says which commit does)")
        return cls(widths=tuple(data["widths"]), kernel=int(data["kernel"]), stride=int(data["stride"]),
                   output=data.get("output", "consistent"), domain=data.get("domain", "time"),
                   n_fft=int(data.get("n_fft", 1024)), hop=int(data.get("hop", 256)),
                   scales=tuple(int(s) for s in data.get("scales", (1,))))


class RowConv1d(nn.Conv1d):
    """A 1-D convolution over the last axis of a [batch, channels, 1, time] channels-last tensor.

    Why: the weights are those of a Conv1d, but oneDNN's channels-last 2-D kernels need no layout
    reorder around each layer; on this project's AMX CPU they run the 1-D U-Net's layers several
    times faster in bf16 than the conv1d path does.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv2d(x, self.weight.unsqueeze(2), None, (1, self.stride[0]), (0, self.padding[0]))


class RowConvTranspose1d(nn.ConvTranspose1d):
    """The transposed counterpart of RowConv1d (no padding, as the U-Net uses it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv_transpose2d(x, self.weight.unsqueeze(2), None, (1, self.stride[0]))


class FoldedConv1d(nn.Conv1d):
    """A strided 1-D convolution (kernel 2 * stride) on a [batch, channels, 1, time] channels-last
    tensor, computed as a stride-1 convolution of kernel 2 over the input folded into ``stride``
    phases: the same weights and, in fp32, the same output.

    Why: on CPUs with AMX, oneDNN's bf16 kernels for padded strided convolutions with few channels
    return wrong values (torch 2.13: relative error ~1 for 8 -> 16 channels, kernel 8, stride 4),
    while stride-1 kernels are right. In channels-last memory the fold is a free reshape.
    """

    def __init__(self, inputs: int, outputs: int, stride: int):
        super().__init__(inputs, outputs, 2 * stride, stride=stride, padding=stride // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stride, padding = self.stride[0], self.padding[0]
        batch, channels, _, length = x.shape
        frames = (length + 2 * padding - 2 * stride) // stride + 1
        rows = x.permute(0, 2, 3, 1)  # [batch, 1, time, channels], contiguous
        rows = nn.functional.pad(rows, (0, 0, padding, stride * (frames + 1) - length - padding))
        folded = rows.reshape(batch, 1, frames + 1, stride * channels).permute(0, 3, 1, 2)
        outputs = self.weight.shape[0]  # folded channel (phase r, channel c) is r * channels + c
        weight = self.weight.reshape(outputs, channels, 2, stride).permute(0, 3, 1, 2).reshape(outputs, -1, 1, 2)
        return nn.functional.conv2d(folded, weight)


def fold_phases(x: torch.Tensor, fold: int) -> torch.Tensor:
    """[batch, channels, 1, time] channels-last -> [batch, fold * channels, 1, time / fold]: each
    group of ``fold`` consecutive samples becomes one frame (phase r, channel c at r * channels + c).
    In channels-last memory this is a view."""
    batch, channels, _, length = x.shape
    return x.permute(0, 2, 3, 1).reshape(batch, 1, length // fold, fold * channels).permute(0, 3, 1, 2)


def unfold_phases(x: torch.Tensor, fold: int) -> torch.Tensor:
    """The inverse of fold_phases."""
    batch, folded, _, frames = x.shape
    return x.permute(0, 2, 3, 1).reshape(batch, 1, frames * fold, folded // fold).permute(0, 3, 1, 2)


@functools.lru_cache(maxsize=64)
def _polyphase_index(outputs: int, inputs: int, kernel: int, padding: int, fold: int,
                     stride: int) -> tuple[torch.Tensor, int]:
    """Where each tap of the polyphase weight comes from in the flat 1-D weight (the last slot: zero)."""
    phases = fold // stride  # output phases: fold for a stride-1 convolution, 1 for a stride-fold one
    taps = [(phase, j, (phase - padding + j) // fold, (phase - padding + j) % fold)
            for phase in range(phases) for j in range(kernel)]
    reach = max(max(-offset, offset) for _, _, offset, _ in taps)
    index = torch.full((phases, outputs, fold, inputs, 2 * reach + 1), outputs * inputs * kernel)
    flat = torch.arange(outputs * inputs * kernel).reshape(outputs, inputs, kernel)
    for phase, j, offset, source_phase in taps:
        index[phase, :, source_phase, :, offset + reach] = flat[:, :, j]
    return index.reshape(phases * outputs, fold * inputs, 1, 2 * reach + 1), reach


def polyphase_weight(weight: torch.Tensor, padding: int, fold: int, stride: int = 1) -> tuple[torch.Tensor, int]:
    """A bias-free 1-D convolution's weight (stride 1 or ``fold``) rewritten for the signal folded
    into ``fold`` phases (see fold_phases), and the padding it needs: conv2d of the folded signal
    with it gives the convolution's output folded by ``fold // stride``, the same up to rounding.

    Why: at full rate the U-Net has few channels (8 for the default model), and oneDNN runs such
    thin convolutions far below the CPU's speed; on 4 phases the same weights make a convolution
    with 4 times the channels on a quarter of the frames, which ran twice as fast here.
    """
    outputs, inputs, kernel = weight.shape
    index, reach = _polyphase_index(outputs, inputs, kernel, padding, fold, stride)
    return torch.cat([weight.flatten(), weight.new_zeros(1)])[index.to(weight.device)], reach


def polyphase_conv(x: torch.Tensor, weight: torch.Tensor, padding: int, fold: int, stride: int = 1,
                   relu: bool = True, residual: torch.Tensor | None = None) -> torch.Tensor:
    taps, reach = polyphase_weight(weight, padding, fold, stride)
    return conv_relu(x, taps, reach, relu, residual)


_FUSED_CONV = getattr(torch.ops.mkldnn, "_convolution_pointwise", None) if torch.backends.mkldnn.is_available() else None


@functools.lru_cache(maxsize=None)
def _fused_conv_works(dtype: torch.dtype) -> bool:
    """Whether oneDNN's fused convolution runs here and agrees with the plain one (it is an internal
    operator: a CPU or build without it must fall back, not fail)."""
    if _FUSED_CONV is None:
        return False
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 1, 64, generator=generator).to(dtype).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(8, 8, 1, 3, generator=generator).to(dtype).contiguous(memory_format=torch.channels_last)
    try:
        with torch.no_grad():
            fused = _FUSED_CONV.binary(x, x, weight, None, [0, 1], [1, 1], [1, 1], 1, "add", None, "relu", [], "")
    except RuntimeError:
        return False
    plain = (nn.functional.conv2d(x.float(), weight.float(), None, 1, (0, 1)) + x.float()).relu()
    return bool((fused.float() - plain).norm() <= 0.02 * plain.norm())


def conv_relu(x: torch.Tensor, weight: torch.Tensor, padding: int, relu: bool = True,
              residual: torch.Tensor | None = None) -> torch.Tensor:
    """relu(conv2d(x, weight) [+ residual]) along the last axis, stride 1, no bias.

    Why: on this project's CPUs a separate ReLU or sum over a full-rate activation cost as much as
    the convolution; in inference on a CPU, oneDNN applies them inside the convolution instead.
    """
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
    if (x.device.type != "cpu" or (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
            or not _fused_conv_works(dtype)):
        out = nn.functional.conv2d(x, weight, None, 1, (0, padding))
        if residual is not None:
            out += residual
        return out.relu_() if relu else out
    # the fused operator is not on autocast's list: cast as autocast would
    x, weight = x.to(dtype), weight.to(dtype)
    residual = residual.to(dtype) if residual is not None else None
    weight = weight.contiguous(memory_format=torch.channels_last)
    arguments = (weight, None, [0, padding], [1, 1], [1, 1], 1)
    if residual is None:
        return _FUSED_CONV(x, *arguments, "relu" if relu else "none", [], "")
    return _FUSED_CONV.binary(x, residual, *arguments, "add", None, "relu" if relu else None, [], "")


class ResidualBlock(nn.Module):
    def __init__(self, width: int, kernel: int, conv: type[nn.Module]):
        super().__init__()
        self.first = conv(width, width, kernel, padding=kernel // 2, bias=False)
        self.second = conv(width, width, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in place: the convolutions' outputs are fresh tensors, and no backward pass needs them unchanged
        inner = self.second(self.first(x).relu_())
        inner += x
        return inner.relu_()


class UNet(nn.Module):
    """Bias-free U-Net over 1 or 2 axes: strided convolutions down, transposed convolutions up,
    skip connections."""

    def __init__(self, config: UNetConfig, inputs: int, outputs: int, axes: int):
        super().__init__()
        self.config = config
        conv, transposed = (RowConv1d, RowConvTranspose1d) if axes == 1 else (nn.Conv2d, nn.ConvTranspose2d)
        widths, kernel, stride = config.widths, config.kernel, config.stride
        self.entry = conv(inputs, widths[0], kernel, padding=kernel // 2, bias=False)
        self.encoders = nn.ModuleList(ResidualBlock(w, kernel, conv) for w in widths[:-1])
        self.downs = nn.ModuleList(
            FoldedConv1d(a, b, stride) if axes == 1
            else conv(a, b, 2 * stride, stride=stride, padding=stride // 2, bias=False)
            for a, b in zip(widths[:-1], widths[1:])
        )
        self.bottom = ResidualBlock(widths[-1], kernel, conv)
        self.ups = nn.ModuleList(
            transposed(b, a, stride, stride=stride, bias=False) for a, b in zip(widths[:-1], widths[1:])
        )
        self.merges = nn.ModuleList(conv(2 * w, w, kernel, padding=kernel // 2, bias=False) for w in widths[:-1])
        self.decoders = nn.ModuleList(ResidualBlock(w, kernel, conv) for w in widths[:-1])
        self.exit = conv(widths[0], outputs, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.exit(self.level(self.entry(x).relu_(), 0))

    def level(self, x: torch.Tensor, depth: int) -> torch.Tensor:
        """The U from ``depth`` down: encode, go down, come back up, merge with the skip, decode."""
        if depth == len(self.downs):
            return self.block(x, self.bottom)
        skip = self.block(x, self.encoders[depth])
        x = self.ups[depth](self.level(self.downs[depth](skip).relu_(), depth + 1)).relu_()
        return self.block(self.merge(torch.cat([x, skip], dim=1), self.merges[depth]), self.decoders[depth])

    def block(self, x: torch.Tensor, block: ResidualBlock) -> torch.Tensor:
        return block(x)

    def merge(self, x: torch.Tensor, merge: nn.Module) -> torch.Tensor:
        return merge(x).relu_()


class UNet1d(UNet):
    """On the waveform: the three input channels in, the output waveform out."""

    def __init__(self, config: UNetConfig = UNetConfig()):
        if len(config.widths) < 2:
            raise ValueError("the waveform U-Net needs at least two widths (one down-sampling)")
        super().__init__(config, inputs=3, outputs=1, axes=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[batch, 3, time] -> [batch, 1, time]. The layers work on [batch, channels, 1, time]
        channels-last; the full-rate level works on the signal folded into ``stride`` phases
        (see polyphase_conv), the levels below it as they are."""
        fold = self.config.stride
        x = fold_phases(x.unsqueeze(2).contiguous(memory_format=torch.channels_last), fold)
        x = polyphase_conv(x, self.entry.weight, self.entry.padding[0], fold)
        skip = self._folded_block(x, self.encoders[0])
        down = self.downs[0]
        x = polyphase_conv(skip, down.weight, down.padding[0], fold, stride=fold)
        x = self.level(x, 1)
        # a transposed convolution with kernel = stride puts out each phase of a frame: a 1x1 convolution
        up = self.ups[0].weight  # [inputs, outputs, stride]
        x = conv_relu(x, up.permute(2, 1, 0).reshape(-1, up.shape[0], 1, 1), 0)
        merge = self.merges[0]
        half = merge.weight.shape[1] // 2  # the merge sees [upsampled, skip]: each half folds alike
        (upsampled, reach), (skipped, _) = (polyphase_weight(w, merge.padding[0], fold)
                                            for w in (merge.weight[:, :half], merge.weight[:, half:]))
        x = conv_relu(torch.cat([x, skip], dim=1), torch.cat([upsampled, skipped], dim=1), reach)
        x = self._folded_block(x, self.decoders[0])
        return unfold_phases(polyphase_conv(x, self.exit.weight, 0, fold, relu=False), fold).squeeze(2)

    def block(self, x: torch.Tensor, block: ResidualBlock) -> torch.Tensor:
        inner = conv_relu(x, block.first.weight.unsqueeze(2), block.first.padding[0])
        return conv_relu(inner, block.second.weight.unsqueeze(2), block.second.padding[0], residual=x)

    def merge(self, x: torch.Tensor, merge: nn.Module) -> torch.Tensor:
        return conv_relu(x, merge.weight.unsqueeze(2), merge.padding[0])

    def _folded_block(self, x: torch.Tensor, block: ResidualBlock) -> torch.Tensor:
        fold = self.config.stride
        inner = polyphase_conv(x, block.first.weight, block.first.padding[0], fold)
        return polyphase_conv(inner, block.second.weight, block.second.padding[0], fold, residual=x)


class SpectralUNet(UNet):
    """Over (frequency, frame) of the inputs' STFTs, real and imaginary parts as channels; the
    complex output goes back to a waveform through the inverse STFT.

    The Nyquist bin is dropped (and given back as zero) and the frames padded, so both axes pass
    through every down-sampling. ``scale`` runs the same weights on frames ``scale`` times longer
    (see UNetConfig.scales): the layers are convolutions, blind to how many bins and frames there are.
    """

    def __init__(self, config: UNetConfig):
        super().__init__(config, inputs=6, outputs=2, axes=2)
        if not config.scales or min(config.scales) < 1:
            raise ValueError("STFT scales must be positive integers")

    def forward(self, features: torch.Tensor, scale: int = 1) -> torch.Tensor:
        batch, channels, length = features.shape
        config = self.config
        n_fft, hop = config.n_fft * scale, config.hop * scale
        window = torch.hann_window(n_fft, device=features.device)
        spectra = torch.stft(features.float().reshape(batch * channels, length), n_fft, hop,
                             window=window, return_complex=True)[:, :-1]  # Nyquist dropped
        bins, frames = spectra.shape[-2:]
        factor = config.stride ** (len(config.widths) - 1)
        x = torch.view_as_real(spectra).reshape(batch, channels, bins, frames, 2)
        x = x.permute(0, 1, 4, 2, 3).reshape(batch, 2 * channels, bins, frames)
        x = nn.functional.pad(x, (0, -(-frames // factor) * factor - frames))
        x = super().forward(x.contiguous(memory_format=torch.channels_last))[..., :frames].float()
        spectrum = nn.functional.pad(torch.complex(x[:, 0], x[:, 1]), (0, 0, 0, 1))  # Nyquist back, as zero
        waveform = torch.istft(spectrum, n_fft, hop, window=window, length=length)
        return waveform.unsqueeze(1)


class Declipper(nn.Module):
    """Measurement + mask + levels -> a restored signal that is consistent with the measurement."""

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        if config.output not in OUTPUTS:
            raise ValueError(f"unknown output parameterisation {config.output!r}: use {' or '.join(OUTPUTS)}")
        if config.domain not in DOMAINS:
            raise ValueError(f"unknown domain {config.domain!r}: use {' or '.join(DOMAINS)}")
        self.config = config
        self.net = SpectralUNet(config) if config.domain == "stft" else UNet1d(config)

    def forward(
        self, y: torch.Tensor, mask: torch.Tensor, upper: torch.Tensor, lower: torch.Tensor, scale: torch.Tensor,
        project: bool = True,
    ) -> torch.Tensor:
        """y, mask: [batch, time]; upper, lower, scale: [batch, 1]. Time must be a multiple of
        ``config.multiple``. Reliable samples come back as y; saturated ones at or beyond their level.
        ``project=False`` gives a free network's raw estimate, for the consistency losses."""
        high, low = (mask > 0), (mask < 0)
        # stacked last, so the waveform U-Net's channels-last layout needs no copy
        features = torch.stack([y / scale, high.to(y.dtype), low.to(y.dtype)], dim=-1).transpose(1, 2)
        outputs = ([self.net(features, stft_scale) for stft_scale in self.config.scales]
                   if self.config.domain == "stft" else [self.net(features)])
        outputs = [output.squeeze(1).to(y.dtype) * scale for output in outputs]
        if self.config.output == "free":
            estimate = y + sum(outputs) / len(outputs)
            return project_consistent(estimate, y, mask, upper, lower) if project else estimate
        # at or beyond the level on saturated samples, y elsewhere: consistent as it stands; several
        # STFT scales average their excesses, as an ensemble averages its members' estimates
        excess = sum(output.abs() for output in outputs) / len(outputs)
        return torch.where(high, torch.maximum(y, upper) + excess, torch.where(low, torch.minimum(y, lower) - excess, y))


@dataclass(frozen=True)
class EnsembleConfig:
    members: tuple[UNetConfig, ...]
    # each member's share of the estimate, summing to 1; None: all alike. Why: a spectral network
    # untied into one copy per frame length must keep the share its scales had together
    weights: tuple[float, ...] | None = None

    def __post_init__(self):
        if self.weights is not None and (len(self.weights) != len(self.members) or min(self.weights) < 0
                                         or abs(sum(self.weights) - 1) > 1e-6):
            raise ValueError("ensemble weights must be one non-negative share per member, summing to 1")

    @property
    def shares(self) -> tuple[float, ...]:
        return self.weights if self.weights is not None else (1 / len(self.members),) * len(self.members)

    @property
    def multiple(self) -> int:
        return math.lcm(*(member.multiple for member in self.members))

    @property
    def shortest(self) -> int:
        return max(member.shortest for member in self.members)

    def to_json(self) -> dict:
        data: dict = {"members": [member.to_json() for member in self.members]}
        if self.weights is not None:
            data["weights"] = list(self.weights)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "EnsembleConfig":
        weights = data.get("weights")
        return cls(tuple(UNetConfig.from_json(member) for member in data["members"]),
                   tuple(float(w) for w in weights) if weights is not None else None)


def valid_length(config: UNetConfig | EnsembleConfig, length: int) -> int:
    """The shortest length at least ``length`` that the network takes: a multiple of
    ``config.multiple``, and no shorter than ``config.shortest``."""
    multiple = config.multiple
    return multiple * -(-max(length, config.shortest) // multiple)


class Ensemble(nn.Module):
    """The mean of several restorers' estimates (weighted by ``config.weights`` where given).

    Why: a U-Net on the waveform and one on spectra err differently, and their mean restores better
    than either. Each estimate is consistent with y and the consistent set is convex, so the mean is
    consistent too; it is as scale-equivariant as its members, and its members can be fine-tuned
    jointly, each then learning what the others miss.
    """

    def __init__(self, config: EnsembleConfig):
        super().__init__()
        if not config.members:
            raise ValueError("an ensemble needs at least one member")
        self.config = config
        self.members = nn.ModuleList(Declipper(member) for member in config.members)

    @classmethod
    def of(cls, models: "list[Declipper]") -> "Ensemble":
        """An ensemble holding (copies of) these trained models' weights."""
        ensemble = cls(EnsembleConfig(tuple(model.config for model in models)))
        for member, model in zip(ensemble.members, models):
            member.load_state_dict(model.state_dict())
        return ensemble

    def forward(
        self, y: torch.Tensor, mask: torch.Tensor, upper: torch.Tensor, lower: torch.Tensor, scale: torch.Tensor,
        project: bool = True,
    ) -> torch.Tensor:
        """As Declipper.forward; time must be a multiple of ``config.multiple``."""
        return sum(share * member(y, mask, upper, lower, scale, project)
                   for share, member in zip(self.config.shares, self.members))


def untie_scales(model: "Declipper | Ensemble") -> "Ensemble | None":
    """An ensemble restoring exactly as ``model``, with a spectral member per STFT scale, each holding
    a copy of the shared weights and its share of the old member's weight; None if no member runs at
    several scales. Why: fine-tuned, each copy can specialise in its frame length, for more
    parameters at the same work per sample."""
    members = list(model.members) if isinstance(model, Ensemble) else [model]
    shares = model.config.shares if isinstance(model, Ensemble) else (1.0,)
    parts = []  # (config, share, weights) of each new member
    for member, share in zip(members, shares):
        scales = member.config.scales if member.config.domain == "stft" else (1,)
        configs = [replace(member.config, scales=(s,)) for s in scales] if len(scales) > 1 else [member.config]
        parts += [(config, share / len(configs), member.state_dict()) for config in configs]
    if len(parts) == len(members):
        return None
    result = Ensemble(EnsembleConfig(tuple(config for config, _, _ in parts), tuple(share for _, share, _ in parts)))
    for target, (_, _, weights) in zip(result.members, parts):
        target.load_state_dict(weights)
    return result


class SignSymmetric(nn.Module):
    """Restores y and -y in one batch and averages the first with the negated second, so that
    restoring -y gives exactly minus the restoration of y.

    Why: music is as likely upside down, but a ReLU network is not odd; the two views err a little
    differently, and their mean gained 0.06-0.09 dB on held-out music with the large model, for twice
    the work. Each view is consistent with y, and so is their mean (the set is convex); scale
    equivariance is kept.
    """

    def __init__(self, model: "Declipper | Ensemble"):
        super().__init__()
        self.model = model
        self.config = model.config

    def forward(
        self, y: torch.Tensor, mask: torch.Tensor, upper: torch.Tensor, lower: torch.Tensor, scale: torch.Tensor,
        project: bool = True,
    ) -> torch.Tensor:
        """As Declipper.forward; the negated signal clips at the negated, swapped levels."""
        both = self.model(torch.cat([y, -y]), torch.cat([mask, -mask]), torch.cat([upper, -lower]),
                          torch.cat([lower, -upper]), torch.cat([scale, scale]), project)
        return (both[: len(y)] - both[len(y) :]) / 2


Restorer = Declipper | Ensemble | SignSymmetric  # what a checkpoint holds (or wraps) and the engine runs
