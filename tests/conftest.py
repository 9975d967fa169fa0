"""Shared test material: synthetic music, clipping helpers and a small random-weight model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from declipper.checkpoint import save_checkpoint
from declipper.network import Declipper, UNetConfig

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

torch.set_num_threads(2)


def music(seconds: float, rate: int, channels: int = 2, seed: int = 0, peak: float = 0.9) -> np.ndarray:
    """Notes with harmonics and decaying envelopes, a little noise: [frames, channels] float32.

    Enough like music that clipping it makes plateaus of varied length, and that its amplitude
    distribution has a natural, thinning tail.
    """
    rng = np.random.default_rng(seed)
    frames = int(seconds * rate)
    t = np.arange(frames) / rate
    out = np.zeros((frames, channels))
    for _ in range(int(6 * seconds)):
        onset = rng.uniform(0, seconds)
        f0 = 110 * 2 ** (rng.integers(0, 36) / 12)
        envelope = np.where(t >= onset, np.exp(-(t - onset) * rng.uniform(1.5, 6)), 0.0)
        note = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k
                   for k in range(1, 6) if f0 * k < rate / 2.2)
        pan = rng.uniform(0.2, 0.8, channels)
        out += (envelope * note)[:, None] * pan * rng.uniform(0.3, 1.0)
    out += 0.003 * rng.standard_normal(out.shape)
    return (out / np.abs(out).max() * peak).astype(np.float32)


@pytest.fixture(scope="session")
def random_model_path(tmp_path_factory) -> Path:
    """A real checkpoint with untrained weights: tests of the machinery must not need the shipped model."""
    torch.manual_seed(0)
    model = Declipper(UNetConfig(widths=(8, 16, 32), kernel=5, stride=4))
    path = tmp_path_factory.mktemp("models") / "random.pt"
    save_checkpoint(path, model, {"version": "test", "sample_rates": [44100],
                                  "training": {"command": "none: random weights for tests"}})
    return path


@pytest.fixture(scope="session")
def random_model(random_model_path):
    from declipper import load_model

    return load_model(random_model_path)
