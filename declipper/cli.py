"""The command line: a thin layer over the Python API (see declipper.api)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shlex
import sys
from pathlib import Path
from typing import List, Optional

import torch
import typer
from rich.console import Console

from .engine import EngineSettings, default_threads
from .hybrid import SPARSE_SHARE, check_share
from .network import UNetConfig

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Restore clipped audio with a network trained to invert clipping.")
console = Console(stderr=True, soft_wrap=True)  # messages stay one line each, however long
SYMMETRIC_HELP = ("Also restore the negated signal and average the two: +0.06-0.09 dB with the large "
                  "model on held-out music, twice the time.")
SPEEDUP_HELP = ("A-SPADE (--method aspade or hybrid) N times faster: its sparsity grows N times faster and it "
                 "stops N times sooner. 1: the survey's settings; 4 cost 0.04 dB alone and 0.06-0.07 dB in the "
                 "hybrid on held-out and test music.")


@app.callback()
def declipper() -> None:
    """Restore clipped audio with a network trained to invert clipping."""


def set_threads(threads: Optional[int]) -> None:
    torch.set_num_threads(threads or default_threads())
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass


def shown(value) -> str:
    """User data (paths, messages) as literal text, never as rich markup: '[live]' stays."""
    from rich.markup import escape

    return escape(str(value))


def fail(message: str) -> None:
    console.print(f"[red]error:[/red] {shown(message)}")
    raise typer.Exit(2)


def number_list(text: str, option: str, count: int | None = None) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or (count is not None and len(values) != count):
        fail(f"{option} takes {count or 'some'} numbers separated by commas, not {text!r}")
    return values


@app.command()
def train(
    data: List[Path] = typer.Argument(..., help="Folders or files of audio to learn from."),
    out: Path = typer.Option(..., "--out", help="Checkpoint to write (OUT.resume holds the state to resume)."),
    mode: str = typer.Option("supervised", help="supervised: clean audio clipped on the fly, scored against "
                                                "the clean signal; self-supervised: L_MC + L_EI from clipped audio alone."),
    clipping: str = typer.Option("auto", help="simulate: DATA is clean and is clipped on the fly; real: DATA is "
                                              "clipped already (levels from the detector); auto: simulate for "
                                              "supervised, real for self-supervised."),
    init: str = typer.Option("shipped", help="Checkpoint to start from: 'shipped' (the default model), a path, "
                                             "or 'none' to start from scratch."),
    steps: int = typer.Option(5000, help="Optimizer steps in all."),
    batch: int = typer.Option(16, help="Crops per step (per process under torchrun)."),
    crop: int = typer.Option(16384, help="Samples per crop."),
    learning_rate: float = typer.Option(1e-3, "--lr"),
    context_learning_rate: Optional[float] = typer.Option(None, "--context-lr", help="Peak learning rate of a "
                                                          "filterbank or refiner added by scripts/add_filterbank.py or "
                                                          "scripts/add_refiner.py (default: --lr)."),
    input_sdr: str = typer.Option("1,20", help="Range of input SDRs (dB) for simulated clipping."),
    consistency: str = typer.Option("mc", help="Self-supervised consistency loss: mc, or nmc (naive) to compare."),
    ei_weight: float = typer.Option(1.0, help="Weight of L_EI (0: L_MC alone)."),
    gains: Optional[str] = typer.Option(None, help="Range of the EI gains g (log-uniform; default 1,2 when "
                                        "fine-tuning self-supervised, else 1,6)."),
    ei_region: Optional[str] = typer.Option(None, help="reliable: score L_EI only where y was reliable; all: on "
                                                       "every sample. Default: all when fine-tuning (with a frozen "
                                                       "teacher), reliable from scratch (all diverged there)."),
    teacher_decay: Optional[float] = typer.Option(None, help="EMA decay of a teacher network for EI targets (0: "
                                                             "none; 1: the starting model, frozen). Default: 1 when "
                                                             "fine-tuning, 0 from scratch."),
    widths: str = typer.Option(",".join(map(str, UNetConfig().widths)), help="U-Net widths per level, for --init none."),
    kernel: int = typer.Option(UNetConfig().kernel, help="U-Net kernel size, for --init none."),
    stride: int = typer.Option(UNetConfig().stride, help="U-Net down-sampling factor per level, for --init none."),
    domain: str = typer.Option("time", help="For --init none: time (1-D U-Net on the waveform) or stft (2-D "
                               "U-Net on short-time spectra)."),
    n_fft: int = typer.Option(UNetConfig().n_fft, help="STFT size, for --domain stft."),
    hop: int = typer.Option(UNetConfig().hop, help="STFT hop, for --domain stft."),
    scales: str = typer.Option(",".join(map(str, UNetConfig().scales)),
                               help="For --domain stft: multiples of --n-fft and --hop that the same weights "
                                    "also run at, their estimates averaged (1,2: frames of N and 2N)."),
    minutes: Optional[float] = typer.Option(None, help="Stop after this much training time; the learning-rate "
                                            "schedule then runs over the time, not the steps."),
    output: str = typer.Option("consistent", help="For --init none: consistent (the network predicts only the "
                                                  "excess of saturated samples) or free (a correction on every "
                                                  "sample, projected at inference)."),
    resume: bool = typer.Option(False, help="Continue an interrupted run from OUT.resume."),
    validate: List[Path] = typer.Option([], help="Held-out clean audio scored at every checkpoint."),
    cache: Path = typer.Option(Path(".declipper-cache"), help="Where decoded audio is cached."),
    checkpoint_every: int = typer.Option(250, help="Steps between checkpoints."),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    precision: str = typer.Option("auto", help="auto (bf16 where fast), bf16 or fp32."),
    threads: Optional[int] = typer.Option(None, help="Torch CPU threads (default: one per core, at most 8)."),
) -> None:
    """Train a model, or fine-tune one on your own clipped recordings (self-supervised)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .checkpoint import CheckpointError, default_model_path
    from .training import TrainSettings, train as run_training

    set_threads(threads)
    if clipping not in ("auto", "simulate", "real"):
        fail(f"--clipping must be auto, simulate or real, not {clipping!r}")
    simulate = clipping == "simulate" or (clipping == "auto" and mode == "supervised")
    # measured (README): fine-tuning keeps long plateaus anchored with the starting model as a frozen
    # EI teacher; from scratch there is no teacher worth keeping, and L_EI only on reliable samples is stable
    fine_tuning = init != "none" and mode == "self-supervised"
    if ei_region is None:
        ei_region = "all" if fine_tuning else "reliable"
    if teacher_decay is None:
        teacher_decay = 1.0 if fine_tuning else 0.0
    if gains is None:  # measured (README): fine-tuning with gains near 1 gains at light clipping too
        gains = "1,2" if fine_tuning else "1,6"
    low, high = number_list(input_sdr, "--input-sdr", 2)
    gain_low, gain_high = number_list(gains, "--gains", 2)
    settings = TrainSettings(
        mode=mode, simulate_clipping=simulate, steps=steps, batch=batch, crop=crop, learning_rate=learning_rate,
        context_learning_rate=context_learning_rate,
        input_sdr=(low, high), consistency=consistency, ei_weight=ei_weight, gains=(gain_low, gain_high),
        ei_region=ei_region, teacher_decay=teacher_decay, seed=seed, checkpoint_every=checkpoint_every,
        device=device, precision=precision, widths=tuple(int(w) for w in number_list(widths, "--widths")),
        kernel=kernel, stride=stride, output=output, domain=domain, n_fft=n_fft, hop=hop,
        scales=tuple(int(s) for s in number_list(scales, "--scales")), minutes=minutes)
    start = None if init == "none" else default_model_path() if init == "shipped" else Path(init)
    command = "declipper " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    with Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                  TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=console) as progress:
        task = progress.add_task("train", total=steps, loss="-", rate="")

        def show(step: int, loss: float) -> None:
            speed = progress.tasks[0].speed
            rate = f"{speed * batch * crop / 1000:.0f} k samples/s" if speed else ""
            progress.update(task, completed=step, loss=f"{loss:.3f}", rate=rate)

        try:
            run_training(data, out, settings, cache, init=start, resume=resume, validation=validate,
                         command=command, log=progress.console.log, on_step=show)
        except (ValueError, FileNotFoundError, CheckpointError) as error:
            fail(str(error))


def detection_settings(threshold: Optional[str], tolerance: float, min_run: int):
    from .detection import DetectionSettings, parse_threshold

    if tolerance < 0:
        fail("--tolerance must be >= 0")
    if min_run < 1:
        fail("--min-run must be >= 1")
    try:
        return DetectionSettings(tolerance, min_run, parse_threshold(threshold) if threshold else None)
    except ValueError as error:
        fail(str(error))


def gather_inputs(paths: List[Path], pattern: str) -> list[Path]:
    """Every input file (folders are searched recursively), or a one-line error."""
    from .batch import PlanError, find_inputs

    try:
        return [path for path, _ in find_inputs(paths, pattern)]
    except PlanError as error:
        fail(str(error))


def format_levels(levels) -> str:
    import math

    if levels is None:
        return "-"
    parts = []
    for c in range(levels.channels):
        up, low = levels.upper[c], levels.lower[c]
        if not (math.isfinite(up) or math.isfinite(low)):
            parts.append("none")
        else:
            parts.append("/".join(f"{v:+.3f}" if math.isfinite(v) else "-" for v in (up, low)))
    return "\n".join(parts)


def progress_display():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console, transient=True)


@app.command()
def fix(
    paths: List[Path] = typer.Argument(..., help="Clipped audio files, or folders to search."),
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="Output file (one input) or folder (mirrors the input tree)."),
    in_place: bool = typer.Option(False, "--in-place", help="Replace each input with its restoration."),
    glob: str = typer.Option("*", help="Pattern for files inside folders, e.g. '*.wav'."),
    skip_existing: bool = typer.Option(False, help="Leave files whose output already exists (resume a batch)."),
    model: Optional[str] = typer.Option(None, help="Checkpoint path or shipped model name (default: small)."),
    symmetric: bool = typer.Option(False, help=SYMMETRIC_HELP),
    method: str = typer.Option("network", help="network; aspade: the model-free sparse baseline (A-SPADE, "
                                               "several times slower than real time); hybrid: the weighted "
                                               "mean of the two with the large model "
                                               "unless --model is given: the best quality, as slow as A-SPADE."),
    sparse_share: float = typer.Option(SPARSE_SHARE, help="A-SPADE's weight in --method hybrid."),
    sparse_speedup: int = typer.Option(1, help=SPEEDUP_HELP),
    headroom: str = typer.Option("auto", help="float: keep float samples; gain: scale so restored peaks fit the "
                                             "input's sample format; auto: float where the container allows."),
    ceiling: float = typer.Option(-0.1, help="Restored peak in dBFS when a make-up gain is applied."),
    threshold: Optional[str] = typer.Option(None, help="Clipping level instead of detection: '-0.3dB', '0.95', "
                                                       "or per polarity '0.95,-0.9'."),
    tolerance: float = typer.Option(1e-4, help="How far below the level a sample still counts as saturated, relative to the level."),
    min_run: int = typer.Option(1, help="Shortest run of saturated samples that is restored."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    precision: str = typer.Option("auto", help="auto (bf16 where fast), bf16 or fp32."),
    window: int = typer.Option(EngineSettings().window, help="Samples per network window."),
    batch: int = typer.Option(EngineSettings().batch, help="Windows per network call."),
    threads: Optional[int] = typer.Option(None, help="Torch CPU threads (default: one per core, at most 8)."),
    json_output: bool = typer.Option(False, "--json", help="Print a JSON report instead of a table."),
) -> None:
    """Detect clipping, restore it, and write the result."""
    from .api import METHODS, load_model, method_model, restore_file
    from .batch import PlanError, plan_jobs, run_jobs
    from .checkpoint import CheckpointError
    from .engine import resolve_device
    from .sparse import ASpadeSettings

    set_threads(threads)
    settings = detection_settings(threshold, tolerance, min_run)
    if headroom not in ("auto", "float", "gain"):
        fail(f"--headroom must be auto, float or gain, not {headroom!r}")
    if method not in METHODS:
        fail(f"--method must be {', '.join(METHODS)}, not {method!r}")
    try:  # inputs and outputs first: a wrong path must not wait for the model
        jobs = plan_jobs(paths, output, in_place, glob)
        resolve_device(device)
        check_share(sparse_share)
        sparse_settings = ASpadeSettings().quicker(sparse_speedup)
        network = None if method == "aspade" else load_model(method_model(method, model), symmetric)
    except (PlanError, CheckpointError, ValueError) as error:
        fail(str(error))
    engine = EngineSettings(window=window, batch=batch, device=device, precision=precision)
    with progress_display() as progress:
        files_task = progress.add_task("files", total=len(jobs))

        def work(job):
            file_task = progress.add_task(shown(job.source.name), total=1)

            def show(stage: str, done: int, total: int) -> None:
                progress.update(file_task, description=f"{stage} {shown(job.source.name)}", completed=done,
                                total=max(total, 1))

            try:
                return restore_file(job.source, job.target, network, settings, engine, headroom, ceiling, show,
                                    method, sparse_share, sparse_settings)
            finally:
                progress.remove_task(file_task)

        reports = run_jobs(jobs, work, skip_existing, lambda _: progress.advance(files_task))
    if json_output:
        print(json.dumps([r.to_json() for r in reports], indent=2))
    else:
        print_fix_summary(reports)
    if any(r.error for r in reports):
        raise typer.Exit(1)


def print_fix_summary(reports) -> None:
    import math

    from rich.table import Table

    table = Table(title="declipper fix")
    for column in ("file → output", "ch", "clipped %", "levels", "restored peak", "written", "s"):
        left = column in ("file → output", "levels", "written")
        table.add_column(column, justify="left" if left else "right", overflow="fold" if left else "ellipsis")
    for r in reports:
        if r.error:
            table.add_row(shown(r.source), "", "", "", "", "[red]failed[/red]", "")
            continue
        clipped = "\n".join(f"{100 * f:.2f}" for f in r.clipped_fraction) or "-"
        peak = f"{20 * math.log10(r.restored_peak):+.2f} dBFS" if r.restored_peak > 0 else "-"
        name = shown(f"{r.source}\n→ {r.target}" if r.target else r.source)
        name += "\n[yellow]warning: see below[/yellow]" if r.warnings else ""
        table.add_row(name, str(r.channels or ""), clipped, format_levels(r.levels), peak, shown(r.action),
                      f"{r.seconds:.1f}")
    Console().print(table)
    report_problems(reports)
    failed = [r for r in reports if r.error]
    console.print(f"{len(reports) - len(failed)} of {len(reports)} files done"
                  + (f", [red]{len(failed)} failed[/red]" if failed else ""))


def report_problems(reports) -> None:
    """Below the table, on stderr: what failed and why, warnings, and what was cleaned up."""
    for r in reports:
        for path in r.removed:
            console.print(f"removed a partial file of an interrupted run: {shown(path)}")
        for warning in r.warnings:
            console.print(f"[yellow]warning:[/yellow] {shown(r.source)}: {shown(warning)}")
        if r.error:
            console.print(f"[red]failed:[/red] {shown(r.source)}: {shown(r.error)}")


@app.command()
def scan(
    paths: List[Path] = typer.Argument(..., help="Audio files, or folders to search."),
    glob: str = typer.Option("*", help="Pattern for files inside folders."),
    json_output: bool = typer.Option(False, "--json", help="Print a JSON report instead of a table."),
    threshold: Optional[str] = typer.Option(None, help="Clipping level instead of detection."),
    tolerance: float = typer.Option(1e-4, help="How far below the level a sample still counts as saturated, relative to the level."),
    min_run: int = typer.Option(1, help="Shortest run of saturated samples that counts."),
) -> None:
    """Report clipping without writing audio."""
    import math

    from rich.table import Table

    from .api import FileReport, scan_file
    from .batch import Job, run_jobs

    settings = detection_settings(threshold, tolerance, min_run)
    jobs = [Job(source) for source in gather_inputs(paths, glob)]
    with progress_display() as progress:
        files_task = progress.add_task("files", total=len(jobs))

        def work(job: Job) -> FileReport:
            task = progress.add_task(shown(job.source.name), total=1)
            try:
                return scan_file(job.source, settings, lambda stage, done, total:
                                 progress.update(task, completed=done, total=max(total, 1)))
            finally:
                progress.remove_task(task)

        reports = run_jobs(jobs, work, on_done=lambda _: progress.advance(files_task))
    if json_output:
        print(json.dumps([r.to_json() for r in reports], indent=2))
    else:
        table = Table(title="declipper scan")
        for column in ("file", "ch", "clipped %", "longest run", "levels (+/-)", "peak", "severity"):
            left = column in ("file", "levels (+/-)", "severity")
            table.add_column(column, justify="left" if left else "right", overflow="fold" if left else "ellipsis")
        for r in reports:
            if r.error:
                table.add_row(shown(r.source), "", "", "", "", "", "[red]failed[/red]")
                continue
            peak = f"{20 * math.log10(r.input_peak):+.2f} dBFS" if r.input_peak else "-"
            name = shown(r.source) + ("\n[yellow]warning: see below[/yellow]" if r.warnings else "")
            table.add_row(name, str(r.channels), "\n".join(f"{100 * f:.3f}" for f in r.clipped_fraction),
                          "\n".join(map(str, r.longest_run)), format_levels(r.levels), peak, r.severity)
        Console().print(table)
        report_problems(reports)
    if any(r.error for r in reports):
        raise typer.Exit(1)


@app.command("eval")
def evaluate(
    clean: List[Path] = typer.Argument(..., help="Clean (unclipped) audio files or folders."),
    input_sdr: str = typer.Option("1,3,5,7,10,15,20", help="Input SDRs (dB) to clip at, comma-separated."),
    model: Optional[str] = typer.Option(None, help="Checkpoint path or shipped model name (default: small)."),
    symmetric: bool = typer.Option(False, help=SYMMETRIC_HELP),
    method: str = typer.Option("network", help="network, or hybrid: the weighted mean of the network (large "
                                               "unless --model is given) and A-SPADE; slow (with --baseline "
                                               "aspade and the survey's settings, A-SPADE runs once)."),
    sparse_share: float = typer.Option(SPARSE_SHARE, help="A-SPADE's weight in --method hybrid."),
    sparse_speedup: int = typer.Option(1, help="A-SPADE in --method hybrid N times faster (see fix --help); "
                                               "--baseline aspade keeps the survey's settings."),
    seconds: Optional[float] = typer.Option(None, help="Score excerpts of this many seconds, not whole files."),
    excerpts: int = typer.Option(1, help="Evenly spaced excerpts per file (with --seconds)."),
    glob: str = typer.Option("*", help="Pattern for files inside folders."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON (per item and summary) instead of tables."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    precision: str = typer.Option("auto", help="auto (bf16 where fast), bf16 or fp32."),
    window: int = typer.Option(EngineSettings().window, help="Samples per network window."),
    threads: Optional[int] = typer.Option(None, help="Torch CPU threads (default: one per core, at most 8)."),
    baseline: Optional[str] = typer.Option(None, help="aspade: also score the sparse baseline A-SPADE on the "
                                                      "same clipped files, side by side (slow; scores cached)."),
    baseline_cache: Path = typer.Option(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                                        / "declipper" / "scores", help="Where baseline scores are kept."),
) -> None:
    """Clip clean audio at given input SDRs (the survey's rule), restore it, and score the gain."""
    from rich.table import Table

    import numpy as np

    from .api import load_model, method_model, restore
    from .checkpoint import CheckpointError
    from .engine import resolve_device
    from .evaluation import PUBLISHED, ScoreCache, evaluate as run_evaluation, summarise
    from .hybrid import blend
    from .sparse import ASpadeSettings, aspade

    set_threads(threads)
    settings = ASpadeSettings()  # the baseline's: the survey's
    levels = number_list(input_sdr, "--input-sdr")
    if baseline not in (None, "aspade"):
        fail(f"--baseline must be aspade, not {baseline!r}")
    if method not in ("network", "hybrid"):
        fail(f"--method must be network or hybrid, not {method!r}")
    files = gather_inputs(clean, glob)  # before the model: a wrong path must not wait for it
    try:
        check_share(sparse_share)
        hybrid_settings = settings.quicker(sparse_speedup)
        network = load_model(method_model(method, model), symmetric)
        where = resolve_device(device)
    except (CheckpointError, ValueError) as error:
        fail(str(error))
    engine = EngineSettings(device=device, precision=precision, window=window)
    if where.type == "cuda":
        settings, hybrid_settings = (dataclasses.replace(s, batch=512) for s in (settings, hybrid_settings))
    kept: dict[bytes, np.ndarray] = {}
    shared = baseline is not None and hybrid_settings == settings  # the hybrid's A-SPADE is the baseline's

    def sparse_estimate(y: np.ndarray, rate: int, clip_levels, sparse_settings=settings,
                        keep: bool = False) -> np.ndarray:
        """A-SPADE's restoration; the hybrid keeps it for the baseline (same settings), so A-SPADE runs
        once per item."""
        key = hashlib.sha1(y.tobytes() + repr((clip_levels, sparse_settings)).encode()).digest()
        if key in kept:
            return kept.pop(key)
        estimate = aspade(y, clip_levels, sparse_settings, device=where)
        if keep:
            kept[key] = estimate
        return estimate

    def restore_item(y: np.ndarray, rate: int, clip_levels) -> np.ndarray:
        restored = restore(y, rate, network, levels=clip_levels, engine=engine)
        if method == "network":
            return restored
        return blend(restored, sparse_estimate(y, rate, clip_levels, hybrid_settings, keep=shared), sparse_share)

    with progress_display() as progress:
        task = progress.add_task(method, total=None)
        rows = run_evaluation(restore_item, files, levels, seconds, excerpts,
                              lambda done, total: progress.update(task, completed=done, total=total))
        baseline_rows = []
        if baseline:
            # the batch size changes the speed, not the result: it is left out of the cache's name
            cache = ScoreCache(baseline_cache, "aspade-" + hashlib.sha1(
                repr(dataclasses.replace(settings, batch=0)).encode()).hexdigest()[:10])
            task = progress.add_task("A-SPADE", total=None)
            baseline_rows = run_evaluation(sparse_estimate, files, levels, seconds, excerpts,
                                           lambda done, total: progress.update(task, completed=done, total=total),
                                           cache)
    summary = summarise(rows)
    baseline_summary = summarise(baseline_rows) if baseline_rows else []
    if json_output:
        print(json.dumps({"model": getattr(network, "metadata", {}).get("training", {}).get("command"),
                          "method": method,
                          **({"sparse_share": sparse_share, "sparse_speedup": sparse_speedup}
                             if method == "hybrid" else {}),
                          "summary": summary, "items": rows,
                          **({"baseline": {"method": baseline, "summary": baseline_summary, "items": baseline_rows}}
                             if baseline else {})}, indent=2))
        return
    table = Table(title=f"declipper eval: mean over {len(rows) // max(len(levels), 1)} items (dB)")
    columns = ["input SDR", "ΔSDR", "ΔSDR clipped samples"]
    if baseline:
        columns += ["A-SPADE ΔSDR", "A-SPADE clipped samples"]
    for column in columns + ["clipped %"]:
        table.add_column(column, justify="right")
    for index, row in enumerate(summary):
        cells = [f"{row['input_sdr']:g}", f"{row['delta_sdr']:.2f}", f"{row['delta_sdr_clipped']:.2f}"]
        if baseline:
            other = baseline_summary[index]
            cells += [f"{other['delta_sdr']:.2f}", f"{other['delta_sdr_clipped']:.2f}"]
        table.add_row(*cells, f"{100 * row['clipped_fraction']:.2f}")
    if summary:
        cells = ["mean", f"{sum(r['delta_sdr'] for r in summary) / len(summary):.2f}", ""]
        if baseline:
            cells += [f"{sum(r['delta_sdr'] for r in baseline_summary) / len(baseline_summary):.2f}", ""]
        table.add_row(*cells, "")
    Console().print(table)
    survey = Table(title="Published mean ΔSDR on the ten EBU SQAM excerpts (Záviška et al. 2021), "
                         "not on these files")
    survey.add_column("method")
    shown = [row for row in summary if row["published_sqam"]]
    for row in shown:
        survey.add_column(f"{row['input_sdr']:g} dB", justify="right")
    if shown:
        for method in PUBLISHED:
            survey.add_row(method, *(f"{row['published_sqam'][method]:.2f}" for row in shown))
        Console().print(survey)


def main() -> None:
    """The console entry point. Every file is written and closed by the time the command returns, so
    the process then leaves without Python's teardown of torch, which took 0.3-0.45 s here: a tenth
    of restoring a 3-minute song."""
    try:
        app()
        code = 0
    except SystemExit as leaving:
        code = leaving.code if isinstance(leaving.code, int) else (0 if leaving.code is None else 1)
        if isinstance(leaving.code, str):
            print(leaving.code, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
