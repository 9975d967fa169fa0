"""Training: supervised on clean audio clipped on the fly.

A run writes two files as it goes: OUT (weights + metadata, what ``fix`` loads) and OUT.resume
(the same plus optimizer and random-generator state), so an interrupted run continues exactly
where it stopped with ``--resume``.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from . import __version__
from .api import restore
from .checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from .data import AUGMENT_RATES, AudioCorpus, CropSampler, audio_files
from .engine import EngineSettings, autocast, resolve_device
from .evaluation import clip_at_input_sdr, delta_sdr
from .losses import negative_sdr
from .network import Declipper, UNetConfig
from .physics import Clipping, threshold_for_input_sdr


@dataclass
class TrainSettings:
    mode: str = "supervised"
    steps: int = 5000
    batch: int = 16
    crop: int = 16384
    learning_rate: float = 1e-3
    input_sdr: tuple[float, float] = (1.0, 20.0)
    seed: int = 0
    checkpoint_every: int = 250
    device: str = "auto"
    precision: str = "auto"
    validation_levels: tuple[float, ...] = (5.0, 10.0)
    widths: tuple[int, ...] = field(default_factory=lambda: UNetConfig().widths)


def clipping_for(clean: torch.Tensor, input_sdr: torch.Tensor) -> Clipping:
    """The clipping of each crop at the level that gives its drawn input SDR (the survey's rule)."""
    return Clipping.symmetric(threshold_for_input_sdr(clean, input_sdr))


class Validator:
    """Fixed excerpts of held-out clean files, clipped at fixed input SDRs, restored by the engine."""

    def __init__(self, paths: Sequence[str | Path], levels: Sequence[float], seconds: float = 5.0, per_file: int = 2):
        import soundfile as sf

        self.items = []
        for path in audio_files(paths):
            info = sf.info(path)
            length = int(seconds * info.samplerate)
            for k in range(per_file):
                start = int((k + 1) * info.frames / (per_file + 1)) - length // 2
                clean, rate = sf.read(path, start=max(start, 0), frames=length, dtype="float32", always_2d=True)
                for level in levels:
                    clipped, clip_levels = clip_at_input_sdr(clean, level)
                    self.items.append((level, rate, clean, clipped, clip_levels))
        self.levels = tuple(levels)

    def __call__(self, model: Declipper, device: str) -> dict[str, float]:
        scores: dict[float, list[float]] = {level: [] for level in self.levels}
        model.eval()
        for level, rate, clean, clipped, clip_levels in self.items:
            restored = restore(clipped, rate, model, levels=clip_levels, engine=EngineSettings(device=device))
            scores[level].append(delta_sdr(clean, clipped, restored)["delta_sdr"])
        model.train()
        return {f"delta_sdr@{level:g}dB": float(np.mean(v)) for level, v in scores.items()}


def train(data: Sequence[str | Path], out: str | Path, settings: TrainSettings, cache: str | Path,
          init: str | Path | None = None, resume: bool = False, validation: Sequence[str | Path] = (),
          command: str = "", log: Callable[[str], None] = print,
          on_step: Callable[[int, float], None] | None = None) -> Path:
    if settings.mode != "supervised":
        raise ValueError(f"unknown training mode {settings.mode!r}")
    out = Path(out)
    resume_path = out.with_name(out.name + ".resume")
    device = resolve_device(settings.device)
    torch.manual_seed(settings.seed)
    corpus = AudioCorpus(data, cache, AUGMENT_RATES, progress=lambda name: log(f"caching {name}"))
    log(f"corpus: {len(corpus.tracks)} track versions, {corpus.seconds / 3600:.2f} h")
    sampler = CropSampler(corpus, settings.crop, settings.seed)
    levels_rng = np.random.default_rng(settings.seed + 1)

    if init is not None:
        model, _ = load_checkpoint(init)
    else:
        model = Declipper(UNetConfig(widths=tuple(settings.widths)))
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.0)
    step, wall, history, commands = 0, 0.0, [], []
    if resume:
        state = read_checkpoint(resume_path)
        model.load_state_dict(state["state_dict"])
        training = state["training"]
        optimizer.load_state_dict(training["optimizer"])
        sampler.set_state(json.loads(training["sampler"]))
        levels_rng.bit_generator.state = json.loads(training["levels_rng"])
        torch.set_rng_state(training["torch_rng"])
        step, wall = int(training["step"]), float(training["wall_time_s"])
        history = json.loads(training["history"])
        commands = json.loads(training.get("commands", "[]"))
        log(f"resumed {resume_path} at step {step}")
    commands.append({"command": command, "from_step": step})
    validator = Validator(validation, settings.validation_levels) if validation else None

    def learning_rate(at: int) -> float:
        """Cosine decay to 1 % of the peak rate, after a short warm-up."""
        warm = min(200, settings.steps // 10)
        if at < warm:
            return settings.learning_rate * (at + 1) / warm
        progress = (at - warm) / max(1, settings.steps - warm)
        return settings.learning_rate * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))

    def checkpoint() -> None:
        metadata = {
            "version": __version__,
            "sample_rates": sorted({t.rate for t in corpus.tracks}),
            "training": {
                "mode": settings.mode, "data": [str(p) for p in data], "command": command, "commands": commands,
                "steps": step, "wall_time_s": round(wall, 1), "settings": asdict(settings),
                "corpus_hours": round(corpus.seconds / 3600, 3),
            },
            "validation": history[-1] if history else None,
        }
        save_checkpoint(out, model, metadata)
        save_checkpoint(resume_path, model, metadata, training={
            "optimizer": optimizer.state_dict(), "sampler": json.dumps(sampler.state()),
            "levels_rng": json.dumps(levels_rng.bit_generator.state), "torch_rng": torch.get_rng_state(),
            "step": step, "wall_time_s": wall, "history": json.dumps(history), "commands": json.dumps(commands),
        })

    running = None
    while step < settings.steps:
        started = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step)
        clean = sampler.batch(settings.batch).to(device)
        target = torch.from_numpy(levels_rng.uniform(*settings.input_sdr, size=settings.batch)).float().to(device)
        physics = clipping_for(clean, target)
        with autocast(device, settings.precision):
            estimate = physics.restore(model, physics(clean))
        loss = negative_sdr(clean, estimate)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        wall += time.perf_counter() - started
        value = loss.item()
        running = value if running is None else 0.98 * running + 0.02 * value
        if on_step:
            on_step(step, running)
        if step % settings.checkpoint_every == 0 or step == settings.steps:
            record = {"step": step, "loss": round(running, 3), "wall_time_s": round(wall, 1)}
            if validator:
                record.update({k: round(v, 3) for k, v in validator(model, settings.device).items()})
            history.append(record)
            checkpoint()
            log(json.dumps(record))
    return out
