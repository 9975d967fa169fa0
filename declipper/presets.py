"""Quality presets: one choice instead of four expert knobs (model, method, A-SPADE's speed-up).

Each maps to what measured best at its cost (docs/experiments.md); an expert option given beside a
preset overrides that part of it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from .hybrid import HYBRID_MODEL


@dataclass(frozen=True)
class Preset:
    model: str | None  # a shipped model's name; None: the default model (small, or $DECLIPPER_MODEL)
    method: str  # network, aspade or hybrid (see declipper.api.METHODS)
    sparse_speedup: int  # A-SPADE's speed-up in the hybrid
    purpose: str
    # for files whose clipping a lossy codec smeared: a model fine-tuned on such crops (None: the same)
    lossy_model: str | None = None


LOSSY_MODEL = "small-lossy"  # declipper-small.pt fine-tuned on clipped, then coded crops (models/README.md)

PRESETS = {
    "fast": Preset(None, "network", 1, "the small network (for MP3, Vorbis or Opus clipping, its copy "
                                       "fine-tuned on such files): many times faster than real time",
                   lossy_model=LOSSY_MODEL),
    "balanced": Preset("large", "network", 1, "the large network: better, still faster than real time"),
    "best": Preset("large", "hybrid", 4, "the large network and A-SPADE together: the best restoration, "
                                         "slower than real time"),
}
DEFAULT_PRESET = "fast"


def lossy_model(quality: str, model: str | None) -> str | None:
    """The model for coded input under a preset: only where no model was chosen (by --model or
    $DECLIPPER_MODEL), so a choice of one's own is never overridden."""
    if model is not None or os.environ.get("DECLIPPER_MODEL"):
        return None
    return PRESETS[quality].lossy_model


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
