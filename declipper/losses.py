"""Training losses, as small pieces that combine the physics, the model and the data."""
from __future__ import annotations

import torch

from .physics import sdr_db


def negative_sdr(clean: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
    """Supervised loss: -SDR in dB, averaged over the batch.

    On a log scale a crop clipped at 1 dB input SDR and one clipped at 20 dB weigh the same, which
    is how the survey scores methods; a plain squared error would be dominated by heavy clipping.
    """
    return -sdr_db(clean, estimate.float()).mean()
