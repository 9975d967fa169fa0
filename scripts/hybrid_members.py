"""Save the hybrid's two members per item, then score shares that adapt per segment to the signal.

Usage: python scripts/hybrid_members.py CLEAN... -o DIR [--model large] [--sparse-speedup 4]
       [--input-sdr 1,3,5,7,10,15,20] [--part 0 --parts 2]
       python scripts/hybrid_members.py --fit VAL_DIR... --apply TEST_DIR...

Each clean file is clipped at each input SDR (the survey's rule) and restored by the network and by
A-SPADE at fix's settings; DIR/<item>@<level>.npz keeps clean, clipped and both restorations. An
item already in DIR is skipped, so a stopped run resumes.

``--fit/--apply`` chose how A-SPADE's share follows the signal (declipper.hybrid.adaptive_share): each item is cut into
8192-sample segments, and per segment two features that fix could compute without the clean signal:
*concentration*, the share of the network estimate's energy in its 64 strongest bins (tonal music
is a few lines), and *disagreement*, |n - s|^2 / (|n - y|^2 + |s - y|^2), how differently the two
members changed the clipped input y. A segment's error is quadratic in its share, so every rule is
scored exactly from three sums per segment. Rules are fitted on the --fit folders (validation sets)
and scored on the --apply folders (test sets), beside the fixed shares, the per-segment oracle and
what fix now does (the rule linear in ln d, rounded, interpolated between segments).
"""
from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import torch

from declipper import load_model, restore
from declipper.engine import EngineSettings
from declipper.evaluation import clip_at_input_sdr, delta_sdr, excerpts
from declipper.hybrid import combine
from declipper.sparse import ASpadeSettings, aspade

SEGMENT = 8192
STRONGEST = 64


def save_members(args: argparse.Namespace) -> None:
    model = load_model(args.model)
    settings = ASpadeSettings().quicker(args.sparse_speedup)
    levels = [float(v) for v in args.input_sdr.split(",")]
    files = sorted(str(p) for c in args.clean for p in (Path(c).rglob("*.flac") if Path(c).is_dir() else [Path(c)]))
    items = [(name, clean, rate, level) for f in files for name, clean, rate in excerpts(f, None, 1) for level in levels]
    args.output.mkdir(parents=True, exist_ok=True)
    for name, clean, rate, level in items[args.part :: args.parts]:
        target = args.output / f"{Path(name).parent.name}-{Path(name).stem}@{level:g}.npz"
        if target.exists():
            continue
        clipped, clip_levels = clip_at_input_sdr(clean, level)
        network = restore(clipped, rate, model, levels=clip_levels, engine=EngineSettings())
        sparse = aspade(clipped, clip_levels, settings)
        np.savez(target, clean=clean, clipped=clipped, network=network, sparse=sparse, input_sdr=level)
        print(f"{target.name}: network {delta_sdr(clean, clipped, network)['delta_sdr']:.2f}, "
              f"A-SPADE {delta_sdr(clean, clipped, sparse)['delta_sdr']:.2f}", flush=True)


def segments(signal: np.ndarray) -> np.ndarray:
    """[frames, channels] -> [segments, SEGMENT * channels], zero-padded at the end."""
    frames = -(-len(signal) // SEGMENT) * SEGMENT
    padded = np.zeros((frames, signal.shape[1]), np.float64)
    padded[: len(signal)] = signal
    return padded.reshape(-1, SEGMENT, signal.shape[1]).transpose(0, 2, 1).reshape(frames // SEGMENT, -1)


def load_item(path: Path) -> dict:
    """Per segment: the error sums (a, b, c) of error(s) = a + 2 b s + c s^2, and the features."""
    item = np.load(path)
    product = delta_sdr(item["clean"], item["clipped"], combine(item["clipped"], item["network"], item["sparse"]))
    clean, clipped = item["clean"].astype(np.float64), item["clipped"].astype(np.float64)
    x, y, n, s = (segments(v) for v in (clean, clipped, item["network"], item["sparse"]))
    dn, ds = n - x, s - n
    hann = np.hanning(SEGMENT)
    spectrum = np.abs(np.fft.rfft(segments(item["network"]).reshape(len(n), -1, SEGMENT) * hann, axis=-1)) ** 2
    energy = spectrum.sum(-1).clip(1e-20)
    strongest = np.sort(spectrum, axis=-1)[..., -STRONGEST:].sum(-1)
    changed = ((n - y) ** 2).sum(1) + ((s - y) ** 2).sum(1)
    return {
        "a": (dn ** 2).sum(1), "b": (dn * ds).sum(1), "c": (ds ** 2).sum(1),
        "concentration": (strongest / energy).mean(-1),
        "disagreement": np.where(changed > 0, (ds ** 2).sum(1) / changed.clip(1e-30), 0.0),
        "signal": (clean ** 2).sum(), "input_error": ((clipped - clean) ** 2).sum(),
        "level": float(item["input_sdr"]), "product": product["delta_sdr"],
    }


def item_delta(item: dict, share: np.ndarray) -> float:
    error = (item["a"] + 2 * item["b"] * share + item["c"] * share ** 2).sum()
    return 10 * np.log10(item["input_error"] / max(error, 1e-30))


def oracle(item: dict) -> np.ndarray:
    return np.clip(-item["b"] / np.maximum(item["c"], 1e-30), 0, 1)


def threshold_rule(feature: str, edge: float, below: float, above: float):
    return lambda item: np.where(item[feature] > edge, above, below)


def two_feature_rule(c_edge: float, d_edge: float, shares: tuple[float, float, float, float]):
    """A share per quadrant of (concentration > c_edge, disagreement > d_edge)."""
    def rule(item):
        tonal, apart = item["concentration"] > c_edge, item["disagreement"] > d_edge
        return np.select([tonal & ~apart, tonal & apart, ~tonal & ~apart], shares[:3], shares[3])
    return rule


def linear_features(item: dict, concentration: bool) -> np.ndarray:
    columns = [np.ones_like(item["a"]), np.log(item["disagreement"] + 1e-3)]
    return np.stack(columns + [np.log(1 - item["concentration"] + 1e-3)] * concentration, -1)


def linear_rule(fit_sets: list[list[dict]], concentration: bool):
    """share = clip(w . [1, log(disagreement), log(1 - concentration)], 0, 1), w by weighted least
    squares on the per-segment oracle shares; a segment weighs by how much its error grows away from
    its oracle share (c), relative to its item's input error, so that each item counts in decibels."""
    rows, targets, weights = [], [], []
    for items in fit_sets:
        total = sum(len(item["a"]) for item in items)
        for item in items:
            rows.append(linear_features(item, concentration))
            targets.append(oracle(item))
            weights.append(item["c"] / item["input_error"] / total)
    x, t, w = np.concatenate(rows), np.concatenate(targets), np.sqrt(np.concatenate(weights))
    coefficients = np.linalg.lstsq(x * w[:, None], t * w, rcond=None)[0]
    return coefficients, lambda item: np.clip(linear_features(item, concentration) @ coefficients, 0, 1)


def mean_table(items: list[dict], rule) -> tuple[dict[float, float], float]:
    by_level: dict[float, list[float]] = {}
    for item in items:
        by_level.setdefault(item["level"], []).append(item_delta(item, rule(item)))
    means = {v: float(np.mean(d)) for v, d in sorted(by_level.items())}
    return means, float(np.mean(list(means.values())))


def fitted_rules(fit_sets: list[list[dict]]) -> dict[str, object]:
    """The best rule of each family, chosen by the mean of the fit sets' means (each set counts once,
    however many items it holds)."""
    def score(rule) -> float:
        return float(np.mean([mean_table(items, rule)[1] for items in fit_sets]))

    grid = np.round(np.arange(0, 1.01, 0.1), 2)
    chosen: dict[str, object] = {}
    best_fixed = max(grid, key=lambda s: score(lambda item, s=s: np.full_like(item["a"], s)))
    chosen[f"fixed {best_fixed:g} (fitted)"] = lambda item, s=best_fixed: np.full_like(item["a"], s)
    for feature, edges in (("concentration", (0.7, 0.8, 0.9, 0.95, 0.97, 0.99)), ("disagreement", (0.03, 0.05, 0.1, 0.2, 0.3))):
        candidates = [(e, lo, hi) for e in edges for lo in grid for hi in grid]
        e, lo, hi = max(candidates, key=lambda p: score(threshold_rule(feature, *p)))
        chosen[f"{feature} > {e:g} ? {hi:g} : {lo:g}"] = threshold_rule(feature, e, lo, hi)
    coarse = (0.0, 0.2, 0.35, 0.5, 0.7, 0.9)
    best, best_score = None, -np.inf
    for c_edge, d_edge in itertools.product((0.8, 0.9, 0.95, 0.97), (0.05, 0.1, 0.2)):
        # the quadrants are separable: fit each one's share with the others at 0.35
        shares = [0.35] * 4
        for q in range(4):
            shares[q] = max(coarse, key=lambda v: score(two_feature_rule(c_edge, d_edge, tuple(shares[:q] + [v] + shares[q + 1:]))))
        value = score(two_feature_rule(c_edge, d_edge, tuple(shares)))
        if value > best_score:
            best, best_score = (c_edge, d_edge, tuple(shares)), value
    c_edge, d_edge, shares = best
    candidates = [(a, b) for a in np.round(np.arange(-0.6, 0.61, 0.1), 2) for b in (-0.1, -0.15, -0.2, -0.25, -0.3, -0.4)]
    a, b = max(candidates, key=lambda p: score(lambda item, p=p: np.clip(p[0] + p[1] * np.log(item["disagreement"] + 1e-3), 0, 1)))
    chosen[f"{a:g} {b:+g} log d, by the mean"] = lambda item: np.clip(a + b * np.log(item["disagreement"] + 1e-3), 0, 1)
    for concentration in (False, True):
        coefficients, rule = linear_rule(fit_sets, concentration)
        chosen["linear in log d" + ", log(1 - c)" * concentration + ": " + " ".join(f"{v:+.3f}" for v in coefficients)] = rule
    chosen[f"quadrants c>{c_edge:g}, d>{d_edge:g}: {'/'.join(f'{v:g}' for v in shares)}"] = two_feature_rule(c_edge, d_edge, shares)
    return chosen


def report(fit: list[Path], apply: list[Path]) -> None:
    load = lambda folder: [load_item(p) for p in sorted(folder.glob("*.npz"))]
    fit_sets, apply_sets = [load(f) for f in fit], [load(f) for f in apply]
    rules = {f"fixed {s:g}": (lambda item, s=s: np.full_like(item["a"], s)) for s in (0, 0.35, 0.65, 1)}
    rules.update(fitted_rules(fit_sets))
    rules["oracle per segment (uses the clean signal)"] = oracle
    for folder, items in [*zip(fit, fit_sets), *zip(apply, apply_sets)]:
        role = "fitted on" if folder in fit else "scored on"
        levels = sorted({item["level"] for item in items})
        print(f"\n{role} {folder} ({len(items)} items)\n| rule | " + " | ".join(f"{v:g}" for v in levels) + " | mean |")
        print("|---" * (len(levels) + 2) + "|")
        for name, rule in rules.items():
            means, mean = mean_table(items, rule)
            print(f"| {name} | " + " | ".join(f"{means[v]:.2f}" for v in levels) + f" | {mean:.2f} |")
        means = [np.mean([item["product"] for item in items if item["level"] == v]) for v in levels]
        print("| fix's adaptive share (declipper.hybrid.combine) | " + " | ".join(f"{m:.2f}" for m in means)
              + f" | {np.mean(means):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clean", nargs="*", type=Path, help="clean files or folders (of .flac)")
    parser.add_argument("-o", "--output", type=Path)
    parser.add_argument("--model", default="large")
    parser.add_argument("--sparse-speedup", type=int, default=4)
    parser.add_argument("--input-sdr", default="1,3,5,7,10,15,20")
    parser.add_argument("--part", type=int, default=0)
    parser.add_argument("--parts", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fit", nargs="+", type=Path, help="member folders to fit the rules on")
    parser.add_argument("--apply", nargs="*", type=Path, default=[], help="member folders to score them on")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.fit:
        report(args.fit, args.apply)
    else:
        save_members(args)


if __name__ == "__main__":
    main()
