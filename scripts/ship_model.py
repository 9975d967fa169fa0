"""Copy a trained checkpoint into models/ with the record a shipped model carries.

Usage: python scripts/ship_model.py SRC DEST --stages STAGES.json [--scores NAME=EVAL.json ...]

STAGES.json lists how the weights were made, in order (each stage: command, hardware, steps, wall
time), for models trained in several runs or on another machine; each ``--scores`` file is the
``declipper eval --json`` output of the model (and of A-SPADE, with ``--baseline aspade``) on a named
set. Both go into the checkpoint's JSON metadata beside what training recorded; the weights are
untouched.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from declipper.checkpoint import load_checkpoint, save_checkpoint


def summary(report: dict) -> dict:
    def levels(rows: list[dict]) -> dict:
        return {f"{row['input_sdr']:g}": round(row["delta_sdr"], 2) for row in rows}

    scores = {"delta_sdr_db": levels(report["summary"]), "items": len(report["items"]) // len(report["summary"])}
    for name, found in report.get("baselines", {}).items():
        scores[f"{name}_delta_sdr_db"] = levels(found["summary"])
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--stages", type=Path, required=True)
    parser.add_argument("--scores", action="append", default=[], help="NAME=EVAL.json")
    parser.add_argument("--half", action="store_true", help="store the weights as float16 (half the file)")
    args = parser.parse_args()
    model, metadata = load_checkpoint(args.src)
    metadata.pop("format", None), metadata.pop("architecture", None), metadata.pop("config", None)
    metadata["stages"] = json.loads(args.stages.read_text())
    metadata["evaluation"] = {}
    for item in args.scores:
        name, _, path = item.partition("=")
        metadata["evaluation"][name] = summary(json.loads(Path(path).read_text()))
    if args.half:
        metadata["stored_as"] = "float16 weights, loaded as float32"
    save_checkpoint(args.dest, model, metadata, half=args.half)
    print(json.dumps(metadata["evaluation"], indent=1))


if __name__ == "__main__":
    main()
