"""The streaming engine: restore a signal of any length in overlapping windows, in fixed memory.

Like Demucs' ``apply``: the signal is cut into windows of ``window`` samples on a fixed grid with a
hop of ``window * (1 - overlap)``, several windows go through the network per batch, and the outputs
are blended with a triangular weight so no seam shows. On a CPU, batches run side by side on as many
single-threaded workers as torch has threads. Windows without a saturated sample skip the
network (their output would be the input). Every output block is projected onto the set of signals
consistent with the input, so reliable samples are returned bit for bit.

Blocks stream in and out: memory depends on the window and batch, never on the duration.
"""
from __future__ import annotations

import os
import warnings
import weakref
from collections import deque
from contextlib import contextmanager
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Iterator, NamedTuple

import numpy as np
import torch

from .network import Restorer, valid_length
from .physics import ClippingLevels, channel_mask, project_consistent


def default_threads() -> int:
    """One torch thread per core, at most 8: more only thrash on shared machines."""
    return max(1, min(os.cpu_count() or 1, 8))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA device")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"unknown device {name!r}: use auto, cpu or cuda")
    return torch.device(name)


def bf16_is_fast(device: torch.device) -> bool:
    """bf16 autocast pays off on GPUs and on CPUs with AMX or AVX-512 bf16 units."""
    if device.type == "cuda":
        return True
    cpu = getattr(torch, "cpu", None)
    return bool(cpu and (getattr(cpu, "_is_amx_tile_supported", lambda: False)()
                         or getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()))


_BF16_VERDICTS: "weakref.WeakKeyDictionary[Restorer, bool]" = weakref.WeakKeyDictionary()


@torch.no_grad()
def bf16_agrees(model: Restorer, device: torch.device, tolerance: float = 0.05) -> bool:
    """Whether the model restores a clipped probe the same in bf16 as in fp32 on this device.

    Why: a wrong bf16 kernel fails silently. oneDNN's padded strided 1-D convolutions did on AMX
    CPUs (see network.FoldedConv1d); ``auto`` precision trusts bf16 only after this check.
    The verdict is kept per model, so batch jobs probe once.
    """
    if model not in _BF16_VERDICTS:
        generator = torch.Generator().manual_seed(0)
        length = valid_length(model.config, 8192)
        time = torch.arange(length) / 44100
        clean = sum(torch.sin(2 * torch.pi * f * time + phase) / k for k, (f, phase) in
                    enumerate(zip((110.0, 277.0, 440.0, 1250.0), torch.rand(4, generator=generator) * 6), 1))
        clean = (clean + 0.05 * torch.randn(length, generator=generator)).unsqueeze(0).to(device)
        level = torch.full((1, 1), 0.5, device=device)
        y = clean.clamp(-0.5, 0.5)
        mask = (y >= 0.5).to(torch.int8) - (y <= -0.5).to(torch.int8)
        exact = model(y, mask, level, -level, level)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            fast = model(y, mask, level, -level, level).float()
        error = (fast - exact).norm() / (exact - y).norm().clamp_min(1e-12)
        _BF16_VERDICTS[model] = bool(error < tolerance)
        if not _BF16_VERDICTS[model]:
            warnings.warn(f"bf16 results differ from fp32 on this {device.type} (relative error {error:.2f}); "
                          "restoring in fp32", RuntimeWarning, stacklevel=2)
    return _BF16_VERDICTS[model]


def use_bf16(model: Restorer, device: torch.device, precision: str) -> bool:
    """bf16 when asked for, or under ``auto`` where it is fast and agrees with fp32."""
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"unknown precision {precision!r}: use auto, bf16 or fp32")
    return precision == "bf16" or (precision == "auto" and bf16_is_fast(device) and bf16_agrees(model, device))


@dataclass
class EngineSettings:
    window: int = 65536  # with 1/8 overlap: 8192 samples of crossfade, so seams stay 49 dB below the restoration
    overlap: float = 0.125
    batch: int = 4
    device: str = "auto"
    precision: str = "auto"
    workers: int | None = None  # batches run at once; None: torch's thread count on a CPU, 1 on CUDA


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread in this thread, for the duration."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class Batch(NamedTuple):
    windows: list[tuple[int, int]]  # (start, channel)
    end: int  # where the signal ended when the batch was cut
    output: Future  # the restored windows, [len(windows), window]


class StreamingRestorer:
    """Feeds [frames, channels] blocks through the model; yields restored blocks and their masks."""

    def __init__(self, model: Restorer, levels: ClippingLevels, settings: EngineSettings = EngineSettings(),
                 min_run: int = 1):
        if not 0 <= settings.overlap < 1:
            raise ValueError("overlap must be in [0, 1)")
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.model = model.to(self.device).eval()
        self.bf16 = use_bf16(self.model, self.device, settings.precision)
        self.window = valid_length(model.config, settings.window)
        self.hop = max(1, int(round(self.window * (1 - settings.overlap))))
        half = self.window // 2
        ramp = torch.cat([torch.arange(1, half + 1), torch.arange(self.window - half, 0, -1)]).float()
        self.weight = (ramp / ramp.max()).to(self.device)
        self.levels = levels.as_tensors(self.device)
        self.min_run = min_run
        self.margin = max(min_run, 1)
        # Why several workers of one thread: the network's small convolutions scale poorly over
        # threads; two single-threaded workers restored 17 % more per second than one worker on two
        # threads on this project's 2-core CPU.
        threads = torch.get_num_threads()
        self.workers = max(1, settings.workers or (threads if self.device.type == "cpu" else 1))
        self.worker_threads = max(1, threads // self.workers)

    def _mask(self, signal: torch.Tensor, start: int, stop: int, base: int) -> torch.Tensor:
        """Mask of absolute samples [start, stop), computed with run-length context around them."""
        lo = max(start - self.margin, base)
        hi = min(stop + self.margin, base + signal.shape[1])
        mask = channel_mask(signal[:, lo - base : hi - base], self.levels, self.min_run)
        return mask[:, start - lo : stop - lo]

    def process(self, blocks: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        # the workers run the network while this thread reads, queues windows and writes
        pool = ThreadPoolExecutor(self.workers, initializer=torch.set_num_threads, initargs=(self.worker_threads,),
                                  thread_name_prefix="declipper-engine")
        stream = self._stream(iter(blocks), pool, self.levels["upper"].shape[0])
        try:
            while True:
                with one_thread():  # this thread's small tensor ops must not fight the workers for cores
                    restored = next(stream, None)
                if restored is None:
                    return
                yield restored
        finally:
            stream.close()
            pool.shutdown(cancel_futures=True)

    def _stream(self, blocks: Iterator[np.ndarray], pool: ThreadPoolExecutor,
                channels: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        buffer = torch.zeros(channels, 0, device=self.device)
        total = torch.zeros_like(buffer)  # weighted sum of window outputs
        norm = torch.zeros_like(buffer)  # sum of weights
        base = 0  # absolute index of buffer[:, 0]
        emitted = 0  # everything before this has been yielded
        next_window = 0  # absolute start of the next window to run
        pending: list[tuple[int, int]] = []  # (start, channel) of windows waiting for a batch
        running: deque[Batch] = deque()  # batches handed to the workers, in order
        finished = False
        while not finished:
            block = next(blocks, None)
            if block is None:
                finished = True
            else:
                if block.ndim != 2 or block.shape[1] != channels:
                    raise ValueError(f"expected blocks of shape [frames, {channels}], got {block.shape}")
                incoming = torch.from_numpy(np.ascontiguousarray(block.T, dtype=np.float32)).to(self.device)
                buffer = torch.cat([buffer, incoming], dim=1)
                total = torch.cat([total, torch.zeros_like(incoming)], dim=1)
                norm = torch.cat([norm, torch.zeros_like(incoming)], dim=1)
            end = base + buffer.shape[1]
            # queue every window whose samples (and run-length context) have all arrived
            while next_window < end and (finished or next_window + self.window + self.margin <= end):
                stop = min(next_window + self.window, end)
                window_mask = self._mask(buffer, next_window, stop, base)
                for channel in torch.nonzero(window_mask.any(dim=1)).flatten().tolist():
                    pending.append((next_window, channel))
                next_window += self.hop
            self._collect(running, total, norm, base)  # what the workers restored since the last block
            # a full batch for every worker, until the end: a partial batch costs nearly as much as a full one
            round_size = self.settings.batch * self.workers
            ready_windows = len(pending) if finished else len(pending) - len(pending) % round_size
            if ready_windows:
                running.extend(self._submit(pending[:ready_windows], buffer, base, end, pool))
                pending = pending[ready_windows:]
            if finished:
                self._collect(running, total, norm, base)
            # samples before the first window not yet restored will receive no more contributions
            ready = end if finished else min(next_window, end)
            for waiting in (running[0].windows if running else [], pending):
                if waiting:
                    ready = min(ready, waiting[0][0])
            if ready > emitted:
                y = buffer[:, emitted - base : ready - base]
                mask = self._mask(buffer, emitted, ready, base)
                blended = torch.where(norm[:, emitted - base : ready - base] > 0,
                                      total[:, emitted - base : ready - base]
                                      / norm[:, emitted - base : ready - base].clamp_min(1e-12), y)
                restored = project_consistent(blended, y, mask, self.levels["upper"], self.levels["lower"])
                yield restored.T.cpu().numpy(), mask.T.cpu().numpy()
                emitted = ready
                keep = max(emitted - self.margin, base)
                buffer, total, norm = buffer[:, keep - base :], total[:, keep - base :], norm[:, keep - base :]
                base = keep

    def _submit(self, pending: list[tuple[int, int]], buffer: torch.Tensor, base: int, end: int,
                pool: ThreadPoolExecutor) -> list[Batch]:
        # equal groups of at most one batch, so that every worker has a share of a short signal
        groups_needed = max(-(-len(pending) // self.settings.batch), min(self.workers, len(pending)))
        size = -(-len(pending) // groups_needed)
        return [Batch(group, end, pool.submit(self._restore_group, group, buffer, base, end))
                for group in (pending[first : first + size] for first in range(0, len(pending), size))]

    def _collect(self, running: deque[Batch], total: torch.Tensor, norm: torch.Tensor, base: int) -> None:
        """Waits for the running batches and adds their weighted outputs in."""
        while running:
            batch = running.popleft()
            restored = batch.output.result()
            for row, (start, channel) in enumerate(batch.windows):
                stop = min(start + self.window, batch.end)
                span = slice(start - base, stop - base)
                total[channel, span] += restored[row, : stop - start] * self.weight[: stop - start]
                norm[channel, span] += self.weight[: stop - start]

    def _restore_group(self, group: list[tuple[int, int]], buffer: torch.Tensor, base: int,
                       end: int) -> torch.Tensor:
        """The network's output for one batch of windows; runs on a worker, so it reads shared state only."""
        ys = torch.zeros(len(group), self.window, device=self.device)
        masks = torch.zeros(len(group), self.window, dtype=torch.int8, device=self.device)
        window_masks: dict[int, torch.Tensor] = {}  # channels of one window share its mask computation
        for row, (start, channel) in enumerate(group):
            stop = min(start + self.window, end)
            if start not in window_masks:
                window_masks[start] = self._mask(buffer, start, stop, base)
            ys[row, : stop - start] = buffer[channel, start - base : stop - base]
            masks[row, : stop - start] = window_masks[start][channel]
        index = torch.tensor([channel for _, channel in group], device=self.device)
        upper, lower, scale = (self.levels[k][index] for k in ("upper", "lower", "scale"))
        # grad mode and autocast are per thread: set them here, on the worker
        with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.model(ys, masks, upper, lower, scale).float()
