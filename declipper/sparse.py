"""A-SPADE, the analysis-sparsity declipper (Kitić, Bertin, Gribonval 2015), as a batched torch baseline.

It is among the best methods of the declipping survey (Záviška, Rajmic, Ozerov, Rencker 2021, "A
survey and an extensive evaluation of popular audio declipping methods"; evaluation.PUBLISHED), so
a learned declipper has to beat it. The settings follow the survey's code (github.com/rajmic/
declipping2020_codes, Methods/SPADE: main_spade_SQAM.m, spade_segmentation.m, aspade.m,
hard_thresholding.m, proj_time.m):

* blocks of 8192 samples, hop 2048 (``param.w = 8192; param.a = param.w/4``);
* each block is multiplied by a Hann *analysis* window (``data_clipped(idx).*gana``, the measurement
  and its bounds are windowed alike) and overlap-added with the dual synthesis window
  ``gabdual(gana)``, i.e. Hann divided by the overlap-added squared window. ``analysis_window=
  "rectangular"`` declips the raw block instead (Hann synthesis only, divided by the overlap-added
  window): its blocks are less sparse and converge far more slowly;
* A is the DFT of the block zero-padded to twice its length, orthonormal (``F.redundancy = 2`` and
  LTFAT's unitary ``dft``): a Parseval tight frame, so A* is a crop of the inverse FFT and the
  x-update is the plain time-domain projection;
* s = 1, r = 2, epsilon = 0.1 (``paramsolver``). The survey bounds a block at
  ceil((w*redundancy/2 + 1) * r/s) = 16386 iterations, where thresholding keeps the whole half
  spectrum and the iteration stops at once: every block runs to convergence (``SURVEY_ASPADE``,
  what ``eval --baseline aspade`` scores). ``fix`` caps a block at 1000 iterations, in float32: on
  real music that scored higher and ran 2-6x faster (docs/experiments.md);
* hard thresholding keeps the k largest entries of the half spectrum, so a conjugate pair counts
  once, with the DC magnitude halved for the ranking (``hard_thresholding.m``).

The iteration is the toolbox's ``aspade.m`` step for step: the objective |A x_hat - z_bar| is tested
right after thresholding, before x_hat moves; k grows after iterations 1, 3, 5, ...; a block that
stops at the bound returns the iterate of smallest objective (under ``fix``'s cap, the last one). In
float64 on the same clipped input it restores what the survey's code restores in Octave to 1e-8
(docs/experiments.md).

Blocks are declipped ``batch`` at a time as [blocks, window] tensors; a converged block leaves the
batch, and blocks without a saturated sample are never run (their output is their input). Memory is
a few copies of the signal and one batch of spectra.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from .physics import ClippingLevels, channel_mask, project_consistent

Tensor = torch.Tensor


@dataclass(frozen=True)
class ASpadeSettings:
    window: int = 8192
    hop: int = 2048
    redundancy: int = 2
    sparsity_step: int = 1  # s: k grows by s ...
    sparsity_every: int = 2  # ... every r iterations
    epsilon: float = 0.1
    max_iterations: int | None = 1000  # None: the survey's bound, i.e. until every block converges
    batch: int = 32
    analysis_window: str = "hann"  # or "rectangular"
    dtype: str = "float32"  # float64 scored within 0.07 dB of it on real music, 1.8x slower

    def __post_init__(self) -> None:
        if self.window % self.hop:
            raise ValueError("the hop must divide the window, so the overlap-added windows are periodic")
        if self.analysis_window not in ("hann", "rectangular"):
            raise ValueError(f"unknown analysis window {self.analysis_window!r}: use hann or rectangular")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"unknown dtype {self.dtype!r}: use float32 or float64")

    def quicker(self, factor: int) -> "ASpadeSettings":
        """k grown ``factor`` times faster and the cap cut as much: the same final sparsity in 1/factor
        of the iterations. Why: capped, no block of real music converges anyway, and on the held-out
        excerpts 4x fewer iterations cost 0.04 dB alone and 0.06 dB in the hybrid (docs/experiments.md)."""
        if factor < 1:
            raise ValueError(f"the A-SPADE speed-up must be a whole number from 1, not {factor}")
        limit = None if self.max_iterations is None else math.ceil(self.max_iterations / factor)
        return replace(self, sparsity_step=self.sparsity_step * factor, max_iterations=limit)

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    @property
    def iteration_limit(self) -> int:
        """The cap, or the survey's bound: the iteration where k reaches the whole half spectrum."""
        if self.max_iterations is not None:
            return self.max_iterations
        return math.ceil((self.window * self.redundancy // 2 + 1) * self.sparsity_every / self.sparsity_step)


# the survey's own code, exactly: every block runs until it converges, in float64 (eval --baseline)
SURVEY_ASPADE = ASpadeSettings(max_iterations=None, dtype="float64")


def windows(settings: ASpadeSettings) -> tuple[Tensor, Tensor]:
    """(analysis, synthesis) windows; periodic Hann, whose shifts by window/4 sum to a constant."""
    hann = torch.hann_window(settings.window, periodic=True, dtype=torch.float64)
    analysis = hann if settings.analysis_window == "hann" else torch.ones_like(hann)
    return analysis, hann


def hard_threshold(z: Tensor, k: int) -> Tensor:
    """Keep the k largest coefficients of each half spectrum [..., bins], zero the rest.

    A real block's spectrum is conjugate-symmetric, so keeping a bin of the half spectrum keeps its
    pair; the DC bin has no pair and is ranked at half its magnitude, as in the toolbox.
    """
    if k >= z.shape[-1]:
        return z
    power = z.real.square() + z.imag.square()
    power[..., 0] *= 0.25
    index = power.topk(k, dim=-1, sorted=False).indices
    return torch.zeros_like(z).scatter_(-1, index, z.gather(-1, index))


def aspade_blocks(y: Tensor, mask: Tensor, upper: Tensor, lower: Tensor,
                  settings: ASpadeSettings = ASpadeSettings()) -> tuple[Tensor, Tensor]:
    """Declip a batch of blocks [blocks, window] independently; returns the restored blocks and the
    iterations each one ran. ``upper``/``lower`` are the (windowed) levels, broadcastable to y."""
    window, size = y.shape[-1], y.shape[-1] * settings.redundancy

    def frame(x: Tensor) -> Tensor:  # A: the half spectrum of the zero-padded block
        return torch.fft.rfft(x, n=size, norm="ortho")

    def adjoint(z: Tensor) -> Tensor:  # A*: irfft reads z as conjugate-symmetric, so it is real
        return torch.fft.irfft(z, n=size, norm="ortho")[..., :window]

    # the consistent set is a box: clamping to bounds taken from project_consistent is the projection
    low = project_consistent(torch.full_like(y, -math.inf), y, mask, upper, lower)
    high = project_consistent(torch.full_like(y, math.inf), y, mask, upper, lower)
    restored = y.clone()
    iterations = torch.full((y.shape[0],), settings.iteration_limit, dtype=torch.long, device=y.device)
    active = torch.arange(y.shape[0], device=y.device)
    x = y
    best_x, best = y.clone(), torch.full((y.shape[0],), math.inf, dtype=torch.float64, device=y.device)
    coefficients = frame(x)  # A x_hat
    u = torch.zeros_like(coefficients)
    k = settings.sparsity_step
    for i in range(1, settings.iteration_limit + 1):
        z_bar = hard_threshold(coefficients + u, k)
        # the toolbox's objective |A x_hat - z_bar| over the full spectrum (bins other than DC and
        # Nyquist stand for a conjugate pair), tested before x_hat moves; the best x_hat is kept
        residual = coefficients - z_bar
        power = residual.real.square() + residual.imag.square()
        energy = (2 * power.sum(-1) - power[..., 0] - (power[..., -1] if size % 2 == 0 else 0)).double()
        improved = energy <= best
        best = torch.where(improved, energy, best)
        best_x = torch.where(improved.unsqueeze(-1), x, best_x)
        done = energy <= settings.epsilon ** 2
        if done.any():
            restored[active[done]] = best_x[done]
            iterations[active[done]] = i
            keep = ~done
            if not keep.any():
                return restored, iterations
            active, x, coefficients, u, z_bar = active[keep], x[keep], coefficients[keep], u[keep], z_bar[keep]
            low, high, best, best_x = low[keep], high[keep], best[keep], best_x[keep]
        x = torch.clamp(adjoint(z_bar - u), low, high)
        coefficients = frame(x)
        u = u + coefficients - z_bar
        if (i + 1) % settings.sparsity_every == 0:  # the toolbox counts from 1 and steps k after counting
            k += settings.sparsity_step
    # at the survey's bound k covers the whole spectrum, so a block stopped there keeps the toolbox's
    # best iterate; under a cap the objective of the early, small-k iterates is not comparable (on
    # dense music the unmoved x = y scored lowest, and every capped block came back unrestored)
    restored[active] = best_x if settings.max_iterations is None else x
    return restored, iterations


class Segmentation:
    """The block grid of a signal of ``frames`` samples: padded so every sample lies under
    window/hop full windows, block b covering padded samples [b*hop, b*hop + window)."""

    def __init__(self, frames: int, settings: ASpadeSettings, device: torch.device | str = "cpu"):
        self.settings = settings
        self.per_window = settings.window // settings.hop
        self.front = settings.window - settings.hop
        self.blocks = math.ceil((self.front + frames) / settings.hop)
        self.length = (self.blocks + self.per_window - 1) * settings.hop
        self.frames = frames
        analysis, synthesis = windows(settings)
        self.analysis = analysis.to(device, settings.torch_dtype)
        self.synthesis = synthesis.to(device, settings.torch_dtype)
        # the overlap-added product of the windows: what an untouched signal comes back multiplied by
        weight = torch.zeros(self.blocks + self.per_window - 1, settings.hop, dtype=torch.float64)
        for m, piece in enumerate((analysis * synthesis).reshape(self.per_window, settings.hop)):
            weight[m : m + self.blocks] += piece
        self.norm = weight.reshape(-1).to(device, settings.torch_dtype)

    def pad(self, signal: Tensor) -> Tensor:
        """[channels, frames] -> [channels, length], zeros around."""
        return torch.nn.functional.pad(signal, (self.front, self.length - self.front - self.frames))

    def crop(self, padded: Tensor) -> Tensor:
        return padded[..., self.front : self.front + self.frames]

    def split(self, padded: Tensor) -> Tensor:
        """All blocks [channels, blocks, window], a view (no copy) of the padded signal."""
        return padded.unfold(-1, self.settings.window, self.settings.hop)

    def saturated_blocks(self, padded_mask: Tensor) -> Tensor:
        """[channels, blocks] bool: which blocks hold a saturated sample (the only ones to run)."""
        hops = padded_mask.view(padded_mask.shape[0], -1, self.settings.hop)
        saturated = (hops.amax(-1) > 0) | (hops.amin(-1) < 0)  # per hop, without a mask-sized copy
        return saturated.unfold(-1, self.per_window, 1).any(-1)

    def add(self, total: Tensor, channels: Tensor, blocks: Tensor, values: Tensor) -> None:
        """total[c, block b] += values (already synthesis-windowed), for rows (c, b, values)."""
        hop = self.settings.hop
        pieces = values.reshape(-1, self.per_window, hop)
        rows = blocks.unsqueeze(-1) + torch.arange(self.per_window, device=blocks.device)
        total.view(total.shape[0], -1, hop).index_put_(
            (channels.unsqueeze(-1).expand_as(rows), rows), pieces, accumulate=True)

    def join(self, total: Tensor) -> Tensor:
        """Normalise an overlap-added sum of windowed blocks back to the signal's scale."""
        return total / self.norm.clamp_min(torch.finfo(self.norm.dtype).tiny)


def aspade(y: np.ndarray, levels: ClippingLevels, settings: ASpadeSettings = ASpadeSettings(),
           progress: Callable[[int, int], None] | None = None, min_run: int = 1,
           mask: Tensor | None = None, device: torch.device | str = "cpu") -> np.ndarray:
    """Declip [frames, channels] audio clipped at ``levels``; channels are independent.
    On a GPU (``device``) the result is the same up to float rounding, and larger batches pay.

    Returns audio of the same shape and float type (float64 input is kept float64 where the settings
    compute in float64, as the survey's code does), projected onto the consistent set: reliable samples
    are y bit for bit, saturated ones lie at or beyond their level. ``progress(done, total)``
    counts the blocks that have a saturated sample, the only ones that cost time.
    """
    if y.ndim != 2 or y.shape[1] != levels.channels:
        raise ValueError(f"expected audio of shape [frames, {levels.channels}], got {y.shape}")
    dtype = settings.torch_dtype
    keep64 = y.dtype == np.float64 and settings.dtype == "float64"
    signal = torch.from_numpy(np.ascontiguousarray(y.T, dtype=np.float64 if keep64 else np.float32)).to(device)
    tensors = levels.as_tensors(device, signal.dtype)
    mask = channel_mask(signal, tensors, min_run) if mask is None else mask.to(device)  # [channels, frames]
    grid = Segmentation(signal.shape[1], settings, device)
    padded, padded_mask = grid.pad(signal.to(dtype)), grid.pad(mask)
    todo = torch.nonzero(grid.saturated_blocks(padded_mask))
    # an untouched block adds y * analysis * synthesis: start from all blocks untouched, add changes
    total = padded * grid.norm
    # per-block bounds are the levels under the analysis window, as the measurement is; a polarity
    # that is not clipped flags no sample, so its (infinite) level is never read; taken from the
    # levels themselves, not their float32 tensors, so that float64 runs see the exact level
    def bounds(values: tuple[float, ...]) -> Tensor:
        return torch.tensor([v if math.isfinite(v) else 0.0 for v in values], dtype=dtype, device=device).unsqueeze(-1)

    upper, lower = bounds(levels.upper), bounds(levels.lower)
    blocks, mask_blocks = grid.split(padded), grid.split(padded_mask)
    for first in range(0, len(todo), settings.batch):
        channels, index = todo[first : first + settings.batch].unbind(-1)
        measured = blocks[channels, index] * grid.analysis
        declipped, _ = aspade_blocks(measured, mask_blocks[channels, index],
                                     upper[channels] * grid.analysis, lower[channels] * grid.analysis, settings)
        grid.add(total, channels, index, (declipped - measured) * grid.synthesis)
        if progress:
            progress(min(first + settings.batch, len(todo)), len(todo))
    estimate = grid.crop(grid.join(total)).to(signal.dtype)
    restored = project_consistent(estimate, signal, mask, tensors["upper"], tensors["lower"])
    return restored.T.contiguous().cpu().numpy()


class ASpadeRestorer:
    """``fix --method aspade``: the engine's ``process`` contract (blocks in; restored blocks and
    their masks out), but A-SPADE needs the whole signal at once, so it is held in memory."""

    def __init__(self, levels: ClippingLevels, settings: ASpadeSettings = ASpadeSettings(), min_run: int = 1,
                 progress: Callable[[int, int], None] | None = None, block: int = 65536):
        self.levels, self.settings, self.min_run, self.progress, self.block = levels, settings, min_run, progress, block

    def process(self, blocks: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        signal = np.concatenate(list(blocks), axis=0)
        mask = channel_mask(torch.from_numpy(np.ascontiguousarray(signal.T)), self.levels.as_tensors(), self.min_run)
        restored = aspade(signal, self.levels, self.settings, self.progress, mask=mask)
        mask = mask.T.numpy()
        for start in range(0, len(signal), self.block):
            yield restored[start : start + self.block], mask[start : start + self.block]
