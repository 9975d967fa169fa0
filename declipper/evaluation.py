"""Scoring restorations the way the declipping survey does (Zaviska et al. 2021)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from .physics import ClippingLevels, clip, sdr_db, threshold_for_input_sdr


def clip_at_input_sdr(clean: np.ndarray, input_sdr_db: float) -> tuple[np.ndarray, ClippingLevels]:
    """Clip a [frames, channels] signal at the symmetric level that gives the target input SDR."""
    x = torch.from_numpy(np.ascontiguousarray(clean, dtype=np.float64)).reshape(1, -1)
    theta = float(threshold_for_input_sdr(x, input_sdr_db, iterations=60))
    clipped = clip(torch.from_numpy(clean.astype(np.float32)), theta, -theta).numpy()
    return clipped, ClippingLevels.uniform(clean.shape[1], theta, -theta, 0.0)


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(sdr_db(torch.from_numpy(reference.astype(np.float64)).reshape(-1),
                        torch.from_numpy(estimate.astype(np.float64)).reshape(-1)))


def delta_sdr(clean: np.ndarray, clipped: np.ndarray, restored: np.ndarray) -> dict[str, float]:
    """The SDR gain of the restoration over the clipped input. (Scored on the clipped samples alone it
    is the same number: a consistent restoration leaves the other samples as the input has them, so
    both errors live on the clipped samples only, and the signal's energy cancels in the difference.)"""
    saturated = clean != clipped
    return {"delta_sdr": sdr(clean, restored) - sdr(clean, clipped), "clipped_fraction": float(saturated.mean())}


# Mean delta-SDR (dB) on the ten EBU SQAM excerpts, Zaviska et al. 2021, at input SDR 1..20 dB.
SURVEY_LEVELS = (1, 3, 5, 7, 10, 15, 20)
PUBLISHED = {
    "social sparsity, PEW": (12.17, 15.03, 16.60, 17.66, 19.00, 21.11, 21.99),
    "A-SPADE": (11.88, 13.88, 15.06, 15.98, 17.28, 19.43, 20.27),
    "S-SPADE": (11.38, 13.71, 15.04, 15.62, 17.11, 19.28, 19.91),
    "l1 CP, parabola weights": (9.95, 13.03, 14.77, 15.96, 17.44, 19.63, 21.00),
    "NMF": (5.10, 12.21, 14.27, 16.22, 18.00, 20.57, 21.96),
}


def published(level: float) -> dict[str, float]:
    """The survey's figures at an input SDR it reports, or nothing."""
    if level not in SURVEY_LEVELS:
        return {}
    index = SURVEY_LEVELS.index(level)
    return {method: values[index] for method, values in PUBLISHED.items()}


def excerpts(path, seconds: float | None, count: int) -> list[tuple[str, np.ndarray, int]]:
    """The whole file, or ``count`` evenly spaced excerpts of ``seconds`` each."""
    import soundfile as sf

    details = sf.info(str(path))
    if seconds is None or seconds * details.samplerate >= details.frames:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        return [(str(path), audio, rate)]
    length = int(seconds * details.samplerate)
    found = []
    for k in range(count):
        start = int((k + 1) * details.frames / (count + 1)) - length // 2
        audio, rate = sf.read(str(path), start=max(start, 0), frames=length, dtype="float32", always_2d=True)
        found.append((f"{path}@{max(start, 0) / rate:.1f}s", audio, rate))
    return found


class ScoreCache:
    """Scores of a slow, deterministic restorer (the A-SPADE baseline: hours for a test set), kept
    in one JSON file per method and settings, so every later comparison on the same files is free.
    An item is keyed by its name, a hash of its clean samples, and the input SDR: the same excerpt
    scored on another machine or after a copy is still found."""

    def __init__(self, folder: Path, method: str):
        self.path = Path(folder) / f"{method}.json"
        self.scores = json.loads(self.path.read_text()) if self.path.exists() else {}

    @staticmethod
    def key(name: str, clean: np.ndarray, level: float) -> str:
        digest = hashlib.sha1(np.ascontiguousarray(clean, dtype=np.float32).tobytes()).hexdigest()[:16]
        return f"{Path(name).name}|{digest}|{level:g}"

    def get(self, key: str) -> dict | None:
        return self.scores.get(key)

    def put(self, key: str, scores: dict) -> None:
        self.scores[key] = scores
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        temporary.write_text(json.dumps(self.scores, indent=1))
        os.replace(temporary, self.path)


def evaluate(restorer, files, levels, seconds: float | None = None, count: int = 1,
             progress=None, cache: ScoreCache | None = None) -> list[dict]:
    """Clip every file (or excerpt) at every input SDR with the survey's rule, restore it with
    ``restorer(clipped, rate, clip_levels)``, and score it. One row per item and level."""
    rows = []
    items = [(path, *item) for path in files for item in excerpts(path, seconds, count)]
    for number, (path, name, clean, rate) in enumerate(items):
        for level in levels:
            key = ScoreCache.key(name, clean, level) if cache else ""
            scores = cache.get(key) if cache else None
            if scores is None:
                clipped, clip_levels = clip_at_input_sdr(clean, level)
                scores = delta_sdr(clean, clipped, restorer(clipped, rate, clip_levels))
                if cache:
                    cache.put(key, scores)
            rows.append({"item": name, "rate": rate, "input_sdr": level, **scores})
            if progress:
                progress(number * len(levels) + levels.index(level) + 1, len(items) * len(levels))
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Mean scores per input SDR."""
    summary = []
    for level in sorted({r["input_sdr"] for r in rows}):
        chosen = [r for r in rows if r["input_sdr"] == level]
        summary.append({
            "input_sdr": level,
            "items": len(chosen),
            "delta_sdr": float(np.mean([r["delta_sdr"] for r in chosen])),
            "clipped_fraction": float(np.mean([r["clipped_fraction"] for r in chosen])),
        })
    return summary
