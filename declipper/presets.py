"""Quality presets: one choice instead of four expert knobs (model, method, A-SPADE's speed-up).

Each maps to what measured best at its cost (docs/experiments.md); an expert option given beside a
preset overrides that part of it.
"""
from __future__ import annotations

from dataclasses import dataclass

from .hybrid import HYBRID_MODEL


@dataclass(frozen=True)
class Preset:
    model: str | None  # a shipped model's name; None: the default model (small, or $DECLIPPER_MODEL)
    method: str  # network, aspade or hybrid (see declipper.api.METHODS)
    sparse_speedup: int  # A-SPADE's speed-up in the hybrid
    purpose: str


PRESETS = {
    "fast": Preset(None, "network", 1, "the small network: many times faster than real time"),
    "balanced": Preset("large", "network", 1, "the large network: better, still faster than real time"),
    "best": Preset("large", "hybrid", 4, "the large network and A-SPADE together: the best restoration, "
                                         "slower than real time"),
}
DEFAULT_PRESET = "fast"


def resolve(quality: str, model: str | None = None, method: str | None = None,
            sparse_speedup: int | None = None) -> tuple[str | None, str, int]:
    """(model, method, sparse_speedup) for a preset, with the expert choices that were given."""
    if quality not in PRESETS:
        raise ValueError(f"--quality must be {', '.join(PRESETS)}, not {quality!r}")
    preset = PRESETS[quality]
    method = method or preset.method
    if model is None:  # the hybrid is the quality mode, whatever preset it was asked beside
        model = HYBRID_MODEL if method == "hybrid" else preset.model
    return model, method, sparse_speedup if sparse_speedup is not None else preset.sparse_speedup
