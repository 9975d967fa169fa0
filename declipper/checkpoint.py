"""Checkpoints: network weights plus JSON metadata, in one file that loads without running code.

Format ``declipper-checkpoint/1``: a torch file holding only tensors and strings
``{"format": str, "metadata": JSON str, "state_dict": {name: tensor}}`` and, in a training run's
own checkpoints, ``"training": {...}`` (optimizer and random-generator state for --resume).
It is read with ``torch.load(weights_only=True)``, which refuses pickled code.
The metadata records the architecture and its settings, the sample rates trained at, the training
data, the exact command, the step count, wall time and any evaluation results.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .network import Declipper, Ensemble, EnsembleConfig, Restorer, UNetConfig

FORMAT = "declipper-checkpoint/1"
ARCHITECTURES = {"unet1d": (Declipper, UNetConfig), "ensemble": (Ensemble, EnsembleConfig)}
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL = "declipper-small.pt"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or made for something else."""


def default_model_path() -> Path:
    """The shipped model: $DECLIPPER_MODEL, else models/ beside the package (a source checkout),
    else the copy a regular install puts under <prefix>/share/declipper/models."""
    override = os.environ.get("DECLIPPER_MODEL")
    if override:
        return Path(override)
    for folder in (MODELS_DIR, Path(sys.prefix) / "share" / "declipper" / "models"):
        if (folder / DEFAULT_MODEL).exists():
            return folder / DEFAULT_MODEL
    return MODELS_DIR / DEFAULT_MODEL


def shipped_models() -> dict[str, Path]:
    """The shipped models by name ('small' for declipper-small.pt), found beside the default one."""
    folder = default_model_path().parent
    return {path.stem.removeprefix("declipper-"): path for path in sorted(folder.glob("declipper-*.pt"))}


def resolve_model_path(name: str | os.PathLike | None) -> Path:
    """A path, or the name of a shipped model ('small' -> models/declipper-small.pt)."""
    if name is None:
        return default_model_path()
    path = Path(name)
    if not path.exists() and path.suffix == "" and len(path.parts) == 1:
        return default_model_path().parent / f"declipper-{name}.pt"
    return path


def save_checkpoint(path: str | os.PathLike, model: Restorer, metadata: dict[str, Any],
                    training: dict[str, Any] | None = None, half: bool = False) -> None:
    """Write atomically, so an interrupted run never leaves a half-written checkpoint behind.
    ``half`` stores the weights as float16 (half the file, for shipping); they load back as float32."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    architecture = next(name for name, (kind, _) in ARCHITECTURES.items() if type(model) is kind)
    metadata = {"format": FORMAT, "architecture": architecture, "config": model.config.to_json(), **metadata}
    payload: dict[str, Any] = {
        "format": FORMAT,
        "metadata": json.dumps(metadata),
        "state_dict": {k: v.detach().cpu().to(torch.float16 if half and v.is_floating_point() else v.dtype)
                       for k, v in model.state_dict().items()},
    }
    if training is not None:
        payload["training"] = training
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        torch.save(payload, temporary)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def save_stage(path: str | os.PathLike, model: Restorer, metadata: dict[str, Any], stage: str, command: str) -> None:
    """Save a model derived from a checkpoint (a part added, weights rearranged): its metadata keeps the
    source's history and records this step, so the result tells how it was made."""
    metadata = {key: value for key, value in metadata.items() if key not in ("format", "architecture", "config")}
    metadata["version"] = __version__
    metadata["stages"] = [*metadata.get("stages", []), {"stage": stage, "command": command}]
    save_checkpoint(path, model, metadata)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The raw payload, checked; every failure becomes a one-line CheckpointError."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"model checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols are not the user's business
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a corrupt or foreign file
        # torch's own message may suggest loading unsafely: it is never passed on
        if "Unsupported global" in str(error):
            reason = "it holds Python objects other than tensors, which are refused (nothing in it was run)"
        else:
            reason = "the file is damaged or of another kind (only tensors and plain data are ever loaded)"
        raise CheckpointError(f"cannot read model checkpoint {path}: not a declipper checkpoint: {reason}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a declipper checkpoint (expected format {FORMAT})")
    try:
        payload["metadata"] = json.loads(payload["metadata"])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: checkpoint metadata is missing or not JSON") from None
    return payload


def load_checkpoint(path: str | os.PathLike) -> tuple[Restorer, dict[str, Any]]:
    """Build the network the metadata describes and load its weights."""
    payload = read_checkpoint(path)
    metadata = payload["metadata"]
    architecture = metadata.get("architecture")
    if architecture not in ARCHITECTURES:
        raise CheckpointError(f"{path}: unknown architecture {architecture!r}; this declipper knows "
                              f"{', '.join(ARCHITECTURES)}")
    model_class, config_class = ARCHITECTURES[architecture]
    try:
        model = model_class(config_class.from_json(metadata["config"]))
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        first_line = str(error).strip().splitlines()[0]
        raise CheckpointError(f"{path}: weights do not match the architecture in its metadata ({first_line})") from None
    model.eval()
    return model, metadata
