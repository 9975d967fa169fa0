"""Design probe (outside the tool): three design choices of the waveform U-Net measured against the
default's recipe, each trained from scratch in the same loop for the same time. Why a script: the
variants that lost were not worth options in `declipper train` (README, "Choosing the design").

    python scripts/design_probe.py train --features masks|signed|none|runs [--passes 2] [--sdr 1,30] --minutes 35 --out M.pt
    python scripts/design_probe.py eval M.pt data/excerpts/val [--passes 1] [--levels 25,30]

features: what the U-Net reads beside y/level —
  masks  : the two saturation indicators (high, low), as the shipped networks do;
  signed : one channel, high - low;
  none   : nothing: the network must see saturation from y/level reaching +-1;
  runs   : the two indicators plus each saturated sample's place in its run, d / (d + 32), d the
           distance in samples to the nearest reliable one (0 on reliable samples).
passes 2: the network runs twice with shared weights, the second time on its own first (consistent)
  estimate / level instead of y / level: a network unrolled with the consistency constraint.
sdr: the range of input SDRs (dB) drawn uniformly in training (the shipped recipe: 1,20).

Same loop as `declipper train` (AdamW, warm-up then cosine over the time budget, clip-norm 1, bf16
autocast, -SDR per crop), the default's widths 8-...-256, kernel 7, stride 4, same corpus and cache,
batch 16 x 32768 samples, one thread.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from declipper.data import AUGMENT_RATES, AudioCorpus, CropSampler
from declipper.evaluation import clip_at_input_sdr, delta_sdr
from declipper.network import UNet, UNet1d, UNetConfig, beyond_levels
from declipper.physics import sdr_db, threshold_for_input_sdr

CONFIG = UNetConfig(widths=(8, 16, 32, 64, 128, 256), kernel=7, stride=4)
INPUTS = {"masks": 3, "signed": 2, "none": 1, "runs": 4}


def distance_to_reliable(saturated: torch.Tensor) -> torch.Tensor:
    """[batch, time] bool -> distance in samples from each saturated sample to the nearest reliable one."""
    time_ = saturated.shape[-1]
    index = torch.arange(time_, device=saturated.device).expand_as(saturated)
    far = torch.full_like(index, -10 * time_)
    before = torch.where(saturated, far, index).cummax(dim=-1).values
    after = torch.where(saturated, far, (time_ - 1 - index)).flip(-1).cummax(dim=-1).values.flip(-1)
    after = time_ - 1 - after
    return torch.minimum(index - before, after - index).clamp(min=0)


class ProbeNet(UNet1d):
    def __init__(self, inputs: int):
        UNet.__init__(self, CONFIG, inputs=inputs, outputs=1, axes=1)
        self.context_level, self.context = 0, None


class ProbeDeclipper(torch.nn.Module):
    def __init__(self, features: str, passes: int):
        super().__init__()
        self.features, self.passes = features, passes
        self.net = ProbeNet(INPUTS[features])

    def inputs(self, signal, high, low, position):
        h, l = high.to(signal.dtype), low.to(signal.dtype)
        channels = {"masks": [signal, h, l], "signed": [signal, h - l], "none": [signal],
                    "runs": [signal, h, l, position]}[self.features]
        return torch.stack(channels, dim=1)

    def forward(self, y, level):
        """y [batch, time], level [batch, 1]: symmetric clipping at +-level. Returns every pass's estimate."""
        high, low = y >= level, y <= -level
        position = None
        if self.features == "runs":
            d = distance_to_reliable(high | low).to(y.dtype)
            position = d / (d + 32)
        estimates, signal = [], y / level
        for _ in range(self.passes):
            excess = self.net(self.inputs(signal, high, low, position)).squeeze(1).to(y.dtype).abs() * level
            estimate = beyond_levels(y, high, low, level, -level, excess)
            estimates.append(estimate)
            signal = estimate / level
        return estimates


def train(args):
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    corpus = AudioCorpus(["data/corpus/train", "data/piano/train"], "data/cache", AUGMENT_RATES)
    sampler = CropSampler(corpus, args.crop, 0)
    levels = np.random.default_rng(1)
    low_sdr, high_sdr = (float(v) for v in args.sdr.split(","))
    model = ProbeDeclipper(args.features, args.passes).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    budget, wall, step, running = args.minutes * 60, 0.0, 0, None
    while wall < budget:
        started = time.perf_counter()
        progress = wall / budget
        lr = args.lr * (step + 1) / 200 if step < 200 else args.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        clean = sampler.batch(args.batch)
        target = torch.from_numpy(levels.uniform(low_sdr, high_sdr, size=args.batch)).float()
        theta = threshold_for_input_sdr(clean, target).reshape(-1, 1)
        y = clean.clamp(-theta, theta)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            estimates = model(y, theta)
        losses = [-sdr_db(clean, e.float()).mean() for e in estimates]
        # the last pass is what users get; earlier passes get half weight so each one restores too
        loss = losses[-1] + 0.5 * sum(losses[:-1])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        wall += time.perf_counter() - started
        running = losses[-1].item() if running is None else 0.98 * running + 0.02 * losses[-1].item()
        if step % 250 == 0 or wall >= budget:
            print(json.dumps({"step": step, "loss": round(running, 4), "wall": round(wall, 1)}), flush=True)
            torch.save({"features": args.features, "passes": args.passes, "sdr": args.sdr,
                        "state": model.state_dict(), "step": step}, args.out)


def restore(model, clipped, theta):
    """clipped [frames, channels] -> restored, whole excerpt at once (padded to the U-Net's multiple)."""
    frames = clipped.shape[0]
    padded = -(-frames // CONFIG.multiple) * CONFIG.multiple
    y = torch.from_numpy(np.ascontiguousarray(clipped.T)).float()
    y = torch.nn.functional.pad(y, (0, padded - frames))
    level = torch.full((y.shape[0], 1), float(theta))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(y, level)[-1]
    return out[:, :frames].float().numpy().T


def evaluate(args):
    torch.set_num_threads(args.threads)
    saved = torch.load(args.model)
    passes = args.passes or saved["passes"]
    model = ProbeDeclipper(saved["features"], passes).eval()
    model.load_state_dict(saved["state"])
    results = {}
    for level in (float(v) for v in args.levels.split(",")):
        scores = []
        for path in sorted(Path(args.folder).glob("*")):
            clean, rate = sf.read(str(path), dtype="float32", always_2d=True)
            clipped, clip_levels = clip_at_input_sdr(clean, level)
            restored = restore(model, clipped, clip_levels.upper[0])
            scores.append(delta_sdr(clean, clipped, restored)["delta_sdr"])
        results[level] = round(float(np.mean(scores)), 2)
    print(args.model, f"step {saved['step']}", f"passes {passes}", " / ".join(f"{v:.2f}" for v in results.values()),
          f"mean {np.mean(list(results.values())):.2f}")


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("train")
    t.add_argument("--features", choices=tuple(INPUTS), default="masks")
    t.add_argument("--passes", type=int, default=1)
    t.add_argument("--sdr", default="1,20")
    t.add_argument("--minutes", type=float, required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--crop", type=int, default=32768)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--threads", type=int, default=1)
    e = sub.add_parser("eval")
    e.add_argument("model")
    e.add_argument("folder")
    e.add_argument("--passes", type=int, default=0, help="override the number of passes (0: as trained)")
    e.add_argument("--threads", type=int, default=1)
    e.add_argument("--levels", default="1,3,5,7,10,15,20", help="input SDRs (dB)")
    args = parser.parse_args()
    train(args) if args.what == "train" else evaluate(args)


if __name__ == "__main__":
    main()
