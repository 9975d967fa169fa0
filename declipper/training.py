"""Training: supervised on clean audio clipped on the fly, or self-supervised from clipped audio alone.

Self-supervised training (Sechaud et al.) sees only measurements y: the loss is measurement
consistency (L_MC, or the naive L_NMC for comparison) plus amplitude equivariance (L_EI). The crops
come from real clipped recordings (levels found by the detector) or, to study the method, from a
clean corpus clipped on the fly with the clean signal hidden from the loss.

A run writes two files as it goes: OUT (weights + metadata, what ``fix`` loads) and OUT.resume
(the same plus optimizer, teacher and random-generator state), so an interrupted run continues
exactly where it stopped with ``--resume``. Under ``torchrun`` each process draws its own crops
and gradients are averaged across processes (gloo on CPU, nccl on GPU); rank 0 writes.
"""
from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist

from . import __version__
from .api import restore
from .checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from .codecs import Codec
from .audio import audio_files
from .data import AUGMENT_RATES, AudioCorpus, ClippedCropSampler, CropSampler
from .engine import EngineSettings, resolve_device, use_bf16
from .evaluation import clip_at_input_sdr, delta_sdr
from .losses import AmplitudeGain, EquivarianceLoss, measurement_consistency, naive_consistency, negative_sdr
from .network import DOMAINS, OUTPUTS, Declipper, Restorer, UNetConfig, valid_length
from .physics import Clipping, project_consistent, threshold_for_input_sdr

MODES = ("supervised", "self-supervised")
CONSISTENCY = {"mc": measurement_consistency, "nmc": naive_consistency}


@dataclass
class TrainSettings:
    mode: str = "supervised"
    simulate_clipping: bool = True  # clean corpus clipped on the fly; False: the audio is clipped already
    steps: int = 5000
    batch: int = 16
    crop: int = 16384
    learning_rate: float = 1e-3
    input_sdr: tuple[float, float] = (1.0, 20.0)
    consistency: str = "mc"
    ei_weight: float = 1.0
    gains: tuple[float, float] = (1.0, 6.0)
    ei_region: str = "reliable"
    teacher_decay: float = 0.0  # > 0: EI targets come from a slowly averaged copy of the network
    seed: int = 0
    checkpoint_every: int = 250
    device: str = "auto"
    precision: str = "auto"
    validation_levels: tuple[float, ...] = (5.0, 10.0)
    widths: tuple[int, ...] = field(default_factory=lambda: UNetConfig().widths)
    kernel: int = UNetConfig().kernel
    stride: int = UNetConfig().stride
    output: str = "consistent"
    domain: str = UNetConfig().domain
    n_fft: int = UNetConfig().n_fft
    hop: int = UNetConfig().hop
    scales: tuple[int, ...] = UNetConfig().scales
    minutes: float | None = None  # a wall-clock budget: the schedule then runs over time, not steps
    codecs: tuple[str, ...] = ()  # supervised: also clipped crops coded with these (declipper.codecs names)
    coded_share: float = 0.5  # ... this share of the crops

    def network(self) -> UNetConfig:
        return UNetConfig(widths=tuple(self.widths), kernel=self.kernel, stride=self.stride, output=self.output,
                          domain=self.domain, n_fft=self.n_fft, hop=self.hop, scales=tuple(self.scales))

    def check(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown training mode {self.mode!r}: use {' or '.join(MODES)}")
        if self.mode == "supervised" and not self.simulate_clipping:
            raise ValueError("supervised training needs clean audio (clipped on the fly)")
        if self.consistency not in CONSISTENCY:
            raise ValueError(f"unknown consistency loss {self.consistency!r}: use mc or nmc")
        if self.ei_region not in ("all", "reliable"):
            raise ValueError(f"unknown EI region {self.ei_region!r}: use all or reliable")
        if not 0 <= self.teacher_decay <= 1:
            raise ValueError("the teacher decay must lie in [0, 1]")
        if not 0 < self.gains[0] <= self.gains[1]:
            raise ValueError("gains must satisfy 0 < low <= high")
        if self.output not in OUTPUTS:
            raise ValueError(f"unknown output parameterisation {self.output!r}: use {' or '.join(OUTPUTS)}")
        if self.domain not in DOMAINS:
            raise ValueError(f"unknown domain {self.domain!r}: use {' or '.join(DOMAINS)}")
        if self.kernel < 1 or self.kernel % 2 == 0 or self.stride < 2:
            raise ValueError("the kernel must be odd and the stride at least 2")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError("the time budget must be positive")
        if self.codecs and not self.simulate_clipping:
            raise ValueError("coded training crops are made from clean audio: use simulated clipping")
        for name in self.codecs:
            Codec(name)  # a clear error for an unknown name
        if not 0 <= self.coded_share <= 1:
            raise ValueError("the coded share must lie in [0, 1]")


def clipping_for(clean: torch.Tensor, input_sdr: torch.Tensor) -> Clipping:
    """The clipping of each crop at the level that gives its drawn input SDR (the survey's rule)."""
    return Clipping.symmetric(threshold_for_input_sdr(clean, input_sdr))


class SimulatedClipping:
    """Clean crops clipped on the fly at input SDRs drawn uniformly from a range (in dB)."""

    def __init__(self, corpus: AudioCorpus, settings: TrainSettings, seed: int):
        self.sampler = CropSampler(corpus, settings.crop, seed)
        self.levels = np.random.default_rng(seed + 1)
        self.input_sdr = settings.input_sdr

    def batch(self, size: int, device: torch.device) -> tuple[torch.Tensor, Clipping, torch.Tensor]:
        clean = self.sampler.batch(size).to(device)
        target = torch.from_numpy(self.levels.uniform(*self.input_sdr, size=size)).float().to(device)
        physics = clipping_for(clean, target)
        return physics(clean), physics, clean

    def state(self) -> dict:
        return {"crops": self.sampler.state(), "levels": self.levels.bit_generator.state}

    def set_state(self, state: dict) -> None:
        self.sampler.set_state(state["crops"])
        self.levels.bit_generator.state = state["levels"]


class CodedClipping(SimulatedClipping):
    """Clean crops clipped at full scale and, a share of them, coded with a lossy codec and decoded,
    as most clipped music reaches users: the network learns what a codec's ripple looks like beside
    clipping. A coded crop is restored from the band detection flags: the input is clipped a little
    below the decoded plateau's lowest samples (a random 0.3-5 % of them lie lower, as the band
    detection finds leaves some out), and everything at that level counts as saturated.

    Crops are single channels, so bit rates are per channel: mp3-64 here is like 128 kbps stereo.
    Each crop is coded with a margin on both sides, so the codec's start and end do not show.
    """

    MARGIN = 2048
    FULL_SCALE = 1 - 2**-15

    def __init__(self, corpus: AudioCorpus, settings: TrainSettings, seed: int):
        self.sampler = CropSampler(corpus, settings.crop + 2 * self.MARGIN, seed)
        self.levels = np.random.default_rng(seed + 1)
        self.input_sdr = settings.input_sdr
        self.codecs = [Codec(name) for name in settings.codecs]
        self.coded_share = settings.coded_share

    def _crop(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(measurement, clean, level) of one crop, scaled so that the master clips at full scale."""
        clean, rate = self.sampler.crop_with_rate()
        target = float(self.levels.uniform(*self.input_sdr))
        theta = float(threshold_for_input_sdr(torch.from_numpy(clean).double().unsqueeze(0), target)[0])
        clean = clean * (self.FULL_SCALE / max(theta, 1e-9))
        master = np.clip(clean, -self.FULL_SCALE, self.FULL_SCALE)
        usable = [codec for codec in self.codecs if codec.takes(rate)]
        inner = slice(self.MARGIN, len(clean) - self.MARGIN)
        if not usable or self.levels.random() >= self.coded_share:
            return master[inner], clean[inner], self.FULL_SCALE
        codec = usable[int(self.levels.integers(len(usable)))]
        decoded = codec.round_trip(master[:, None].astype(np.float32), rate)[:, 0][inner]
        clipped = np.abs(master[inner]) >= self.FULL_SCALE
        level = self.FULL_SCALE
        if clipped.any():
            level = float(np.percentile(np.abs(decoded[clipped]), self.levels.uniform(0.3, 5.0)))
        return np.clip(decoded, -level, level), clean[inner], level

    def batch(self, size: int, device: torch.device) -> tuple[torch.Tensor, Clipping, torch.Tensor]:
        crops = [self._crop() for _ in range(size)]
        y = torch.from_numpy(np.stack([c[0] for c in crops]).astype(np.float32)).to(device)
        clean = torch.from_numpy(np.stack([c[1] for c in crops]).astype(np.float32)).to(device)
        level = torch.tensor([c[2] for c in crops], dtype=torch.float32, device=device)
        return y, Clipping.symmetric(level), clean


class RealClipping:
    """Crops of recordings that are clipped already; there is no clean signal."""

    def __init__(self, corpus: AudioCorpus, settings: TrainSettings, seed: int):
        self.sampler = ClippedCropSampler(corpus, settings.crop, seed)

    def batch(self, size: int, device: torch.device) -> tuple[torch.Tensor, Clipping, None]:
        y, upper, lower = self.sampler.batch(size)
        return y.to(device), Clipping(upper.to(device), lower.to(device)), None

    def state(self) -> dict:
        return {"crops": self.sampler.state()}

    def set_state(self, state: dict) -> None:
        self.sampler.set_state(state["crops"])


class Objective:
    """The training loss of a mode: -SDR against the clean signal, or L_MC + w * L_EI from y alone."""

    def __init__(self, settings: TrainSettings, bf16: bool):
        self.settings = settings
        self.bf16 = bf16
        self.equivariance = EquivarianceLoss(AmplitudeGain(*settings.gains), region=settings.ei_region)

    def __call__(self, model, teacher, y: torch.Tensor, physics: Clipping, clean: torch.Tensor | None,
                 device: torch.device) -> tuple[torch.Tensor, dict[str, float]]:
        supervised = self.settings.mode == "supervised"
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16):
            # supervised: score what users get; self-supervised: the raw estimate, which the losses judge
            estimate = physics.restore(model, y, project=supervised)
            if supervised:
                loss = negative_sdr(clean, estimate)
                return loss, {"loss": loss.item()}
            consistency = CONSISTENCY[self.settings.consistency](estimate, y, physics)
            loss, parts = consistency, {self.settings.consistency: consistency.item()}
            if self.settings.ei_weight > 0:
                if teacher is not None:
                    with torch.no_grad():
                        reference = physics.restore(teacher, y, project=False)
                else:
                    reference = estimate
                ei = self.equivariance(reference, physics, model, measurement=y)
                loss = loss + self.settings.ei_weight * ei
                parts["ei"] = ei.item()
        parts["loss"] = loss.item()
        if clean is not None:  # simulated clipping: the clean signal is only watched, never learned from
            watched = project_consistent(estimate.detach(), y, physics.mask(y), physics.upper, physics.lower)
            parts["sdr_gain"] = float(-negative_sdr(clean, watched) + negative_sdr(clean, y))
        return loss, parts


class Validator:
    """Fixed excerpts of held-out clean files, clipped at fixed input SDRs, restored by the engine."""

    def __init__(self, paths: Sequence[str | Path], levels: Sequence[float], seconds: float = 5.0, per_file: int = 2):
        from .evaluation import excerpts

        self.items = []
        for path in audio_files(paths):
            for _, clean, rate in excerpts(path, seconds, per_file):
                for level in levels:
                    clipped, clip_levels = clip_at_input_sdr(clean, level)
                    self.items.append((level, rate, clean, clipped, clip_levels))
        self.levels = tuple(levels)

    def __call__(self, model: Restorer, device: str) -> dict[str, float]:
        scores: dict[float, list[float]] = {level: [] for level in self.levels}
        model.eval()
        for level, rate, clean, clipped, clip_levels in self.items:
            restored = restore(clipped, rate, model, levels=clip_levels, engine=EngineSettings(device=device))
            scores[level].append(delta_sdr(clean, clipped, restored)["delta_sdr"])
        model.train()
        return {f"delta_sdr@{level:g}dB": float(np.mean(v)) for level, v in scores.items()}


def _distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size); joins the process group when started by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _gather(obj, world: int) -> list:
    if world == 1:
        return [obj]
    gathered: list = [None] * world
    dist.all_gather_object(gathered, obj)
    return gathered


def train(data: Sequence[str | Path], out: str | Path, settings: TrainSettings, cache: str | Path,
          init: str | Path | None = None, resume: bool = False, validation: Sequence[str | Path] = (),
          command: str = "", log: Callable[[str], None] = print,
          on_step: Callable[[int, float], None] | None = None) -> Path:
    settings.check()
    out = Path(out)
    resume_path = out.with_name(out.name + ".resume")
    device = resolve_device(settings.device)
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    rank, world = _distributed(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # crops have one fixed shape: let cuDNN pick its fastest kernels
    if rank != 0:
        log, on_step = (lambda message: None), None
    torch.manual_seed(settings.seed + rank)
    if resume:
        model, _ = load_checkpoint(resume_path)  # whatever it holds: a U-Net or an ensemble
    elif init is not None:
        model, _ = load_checkpoint(init)
    else:
        model = Declipper(settings.network())
    if valid_length(model.config, settings.crop) != settings.crop:
        raise ValueError(f"--crop must be a multiple of {model.config.multiple} and at least "
                         f"{valid_length(model.config, 1)} samples for this network")
    # resampling would smooth the plateaus of real clipping away: only clean audio is rate-augmented
    rates = AUGMENT_RATES if settings.simulate_clipping else ()
    if rank != 0:
        dist.barrier()  # rank 0 fills the decode cache first; the others then only read it
    corpus = AudioCorpus(data, cache, rates, progress=lambda name: log(f"caching {name}"))
    if world > 1 and rank == 0:
        dist.barrier()
    log(f"corpus: {len(corpus.tracks)} track versions, {corpus.seconds / 3600:.2f} h")
    kind = (CodedClipping if settings.codecs else SimulatedClipping) if settings.simulate_clipping else RealClipping
    source = kind(corpus, settings, settings.seed + 7919 * rank)

    model.to(device).train()
    objective = Objective(settings, bf16=use_bf16(model, device, settings.precision))
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.0)
    teacher = None
    step, wall, history, commands = 0, 0.0, [], []
    if resume:
        training = read_checkpoint(resume_path)["training"]
        optimizer.load_state_dict(training["optimizer"])
        sources = json.loads(training["sources"])
        if len(sources) != world:
            raise ValueError(f"{resume_path} was written by {len(sources)} processes; resume with as many")
        source.set_state(sources[rank])
        torch.set_rng_state(training["torch_rng"][rank])
        step, wall = int(training["step"]), float(training["wall_time_s"])
        history = json.loads(training["history"])
        commands = json.loads(training["commands"])
        log(f"resumed {resume_path} at step {step}")
    if settings.teacher_decay > 0:
        teacher = copy.deepcopy(model).eval()
        if resume:
            teacher.load_state_dict(training["teacher"])
        for parameter in teacher.parameters():
            parameter.requires_grad_(False)
    commands.append({"command": command, "from_step": step})
    validator = Validator(validation, settings.validation_levels) if validation and rank == 0 else None

    budget = settings.minutes * 60 if settings.minutes else None

    def learning_rate(at: int) -> float:
        """Cosine decay to 1 % of the peak rate, after a short warm-up; over the steps, or over the
        time budget when one is set (so a run of fixed duration still ends annealed)."""
        warm = min(200, settings.steps // 10)
        if at < warm:
            return settings.learning_rate * (at + 1) / warm
        progress = wall / budget if budget else (at - warm) / max(1, settings.steps - warm)
        return settings.learning_rate * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))

    def checkpoint() -> None:
        sources = _gather(source.state(), world)
        rng_states = _gather(torch.get_rng_state(), world)
        if rank != 0:
            return
        metadata = {
            "version": __version__,
            "sample_rates": sorted({t.rate for t in corpus.tracks}),
            "training": {
                "mode": settings.mode, "data": [str(p) for p in data], "command": command, "commands": commands,
                "steps": step, "wall_time_s": round(wall, 1), "processes": world, "settings": asdict(settings),
                "corpus_hours": round(corpus.seconds / 3600, 3),
            },
            "validation": history[-1] if history else None,
        }
        save_checkpoint(out, model, metadata)
        extra = {"teacher": teacher.state_dict()} if teacher is not None else {}
        save_checkpoint(resume_path, model, metadata, training={
            "optimizer": optimizer.state_dict(), "sources": json.dumps(sources), "torch_rng": rng_states,
            "step": step, "wall_time_s": wall, "history": json.dumps(history), "commands": json.dumps(commands),
            **extra,
        })

    def out_of_time() -> bool:
        if budget is None or world == 1:
            return budget is not None and wall >= budget
        done = torch.tensor(float(wall >= budget), device=device)
        dist.all_reduce(done, op=dist.ReduceOp.MAX)  # every process stops at the same step
        return bool(done.item())

    running: dict[str, float] = {}
    stopping = out_of_time()
    while step < settings.steps and not stopping:
        started = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step)
        y, physics, clean = source.batch(settings.batch, device)
        loss, parts = objective(model, teacher, y, physics, clean, device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if world > 1:
            for parameter in model.parameters():
                if parameter.grad is not None:
                    dist.all_reduce(parameter.grad)
                    parameter.grad /= world
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if teacher is not None:
            with torch.no_grad():
                for mine, slow in zip(model.parameters(), teacher.parameters()):
                    slow.lerp_(mine, 1 - settings.teacher_decay)
        step += 1
        wall += time.perf_counter() - started
        for key, value in parts.items():
            running[key] = value if key not in running else 0.98 * running[key] + 0.02 * value
        if on_step:
            on_step(step, running["loss"])
        stopping = out_of_time()
        if step % settings.checkpoint_every == 0 or step == settings.steps or stopping:
            record = {"step": step, **{k: round(v, 4) for k, v in running.items()}, "wall_time_s": round(wall, 1)}
            if validator:
                record.update({k: round(v, 3) for k, v in validator(model, settings.device).items()})
            history.append(record)
            checkpoint()
            log(json.dumps(record))
    if world > 1:
        dist.barrier()  # no process leaves while another still writes or talks to it
        dist.destroy_process_group()
    return out
