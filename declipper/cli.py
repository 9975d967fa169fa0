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
from .hybrid import check_share
from .network import UNetConfig
from .presets import DEFAULT_PRESET

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Restore clipped audio with a network trained to invert clipping.")
console = Console(stderr=True, soft_wrap=True)  # messages stay one line each, however long
ADVANCED = "Advanced"
BASELINES = {"aspade": "A-SPADE", "cubic": "cubic"}  # eval --baseline: name -> column
TRAINING_MODEL = "Network shape (with --init none)"
SYMMETRIC_HELP = "Also restore the signal upside down and average: a little better, twice the time."
SPEEDUP_HELP = "A-SPADE N times faster, with N times fewer iterations (1: the survey's settings)."
MODEL_HELP = "small, large (see 'declipper models') or a checkpoint file."
DEVICE_HELP = "auto (a GPU if there is one), cpu or cuda."
PRECISION_HELP = "auto (bf16 where fast and exact enough), bf16 or fp32."
THREADS_HELP = "CPU threads (default: one per core, up to 8)."
SHARE_HELP = ("A-SPADE's weight in the hybrid, from 0 to 1. By default it is set for every 8192 samples "
              "from how closely the network's and A-SPADE's restorations agree.")
TOLERANCE_HELP = "How far below the level a sample still counts as clipped (a share of it)."


def _flags_show_no_type(option, ctx):
    """Typer's rich help writes <bool> beside a flag as if it took a value: flags show as flags."""
    return "" if getattr(option, "is_flag", False) else _option_type(option, ctx)


_option_type = typer.core.TyperOption.display_type_rich
typer.core.TyperOption.display_type_rich = _flags_show_no_type


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
    mode: str = typer.Option("supervised", help="supervised: DATA is clean audio, clipped on the fly and scored "
                                                "against the original; self-supervised: DATA is clipped audio "
                                                "alone (your own recordings), no clean copy needed."),
    clipping: str = typer.Option("auto", help="simulate: DATA is clean and is clipped on the fly; real: DATA is "
                                              "clipped already (levels from the detector); auto: simulate for "
                                              "supervised, real for self-supervised."),
    init: str = typer.Option("shipped", help="Checkpoint to start from: 'shipped' (the default model), a path, "
                                             "or 'none' to start from scratch."),
    steps: int = typer.Option(5000, help="Optimizer steps in all."),
    batch: int = typer.Option(16, help="Crops per step (per process under torchrun)."),
    crop: int = typer.Option(16384, help="Samples per crop."),
    learning_rate: float = typer.Option(1e-3, "--lr", help="Peak learning rate (warm-up, then cosine decay)."),
    input_sdr: str = typer.Option("1,20", help="For simulated clipping: the range of clipping strengths, as the "
                                               "signal-to-distortion ratio (dB) of the clipped audio."),
    minutes: Optional[float] = typer.Option(None, help="Stop after this much training time; the learning-rate "
                                            "schedule then runs over the time, not the steps."),
    codecs: Optional[str] = typer.Option(None, help="Supervised: also learn from clipped audio that went through "
                                                    "these lossy codecs, e.g. mp3-64,vorbis-q4,opus-64 (bit rates "
                                                    "per channel: crops are mono)."),
    coded_share: float = typer.Option(0.5, help="With --codecs: the share of crops that are coded."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from OUT.resume."),
    validate: List[Path] = typer.Option([], help="Held-out clean audio scored at every checkpoint."),
    cache: Path = typer.Option(Path(".declipper-cache"), help="Where decoded audio is cached."),
    checkpoint_every: int = typer.Option(250, help="Steps between checkpoints."),
    seed: int = typer.Option(0, help="Seed of the crops, clipping strengths and initial weights."),
    consistency: str = typer.Option("mc", rich_help_panel=ADVANCED,
                                    help="Self-supervised: how restored samples are held to the clipped input: mc "
                                         "(only where they fall back below the clipping level) or nmc (naive: any "
                                         "change of a clipped sample counts), to compare."),
    ei_weight: float = typer.Option(1.0, rich_help_panel=ADVANCED,
                                    help="Self-supervised: weight of the equivariance loss (the restoration, scaled "
                                         "up and clipped again, must be restored to itself); 0: none."),
    gains: Optional[str] = typer.Option(None, rich_help_panel=ADVANCED,
                                        help="Self-supervised: range of the scale-ups in the equivariance loss "
                                             "(default 1,2 when fine-tuning, else 1,6)."),
    ei_region: Optional[str] = typer.Option(None, rich_help_panel=ADVANCED,
                                            help="Self-supervised: reliable (the equivariance loss only where the "
                                                 "input was not clipped) or all. Default: all when fine-tuning, "
                                                 "reliable from scratch."),
    teacher_decay: Optional[float] = typer.Option(None, rich_help_panel=ADVANCED,
                                                  help="Self-supervised: a slowly updated copy of the network makes "
                                                       "the equivariance targets; 1: the starting model, frozen; 0: "
                                                       "none. Default: 1 when fine-tuning, 0 from scratch."),
    device: str = typer.Option("auto", help=DEVICE_HELP, rich_help_panel=ADVANCED),
    precision: str = typer.Option("auto", help=PRECISION_HELP, rich_help_panel=ADVANCED),
    threads: Optional[int] = typer.Option(None, help=THREADS_HELP, rich_help_panel=ADVANCED),
    widths: str = typer.Option(",".join(map(str, UNetConfig().widths)), rich_help_panel=TRAINING_MODEL,
                               help="Channels per level of the U-Net."),
    kernel: int = typer.Option(UNetConfig().kernel, help="Kernel size.", rich_help_panel=TRAINING_MODEL),
    stride: int = typer.Option(UNetConfig().stride, help="Down-sampling factor per level.",
                               rich_help_panel=TRAINING_MODEL),
    domain: str = typer.Option("time", rich_help_panel=TRAINING_MODEL,
                               help="time (a U-Net on the waveform) or stft (on short-time spectra)."),
    n_fft: int = typer.Option(UNetConfig().n_fft, help="With --domain stft: frame length.",
                              rich_help_panel=TRAINING_MODEL),
    hop: int = typer.Option(UNetConfig().hop, help="With --domain stft: frame hop.", rich_help_panel=TRAINING_MODEL),
    scales: str = typer.Option(",".join(map(str, UNetConfig().scales)), rich_help_panel=TRAINING_MODEL,
                               help="With --domain stft: multiples of the frame length that the same weights also "
                                    "run at, averaged (1,2: frames of N and 2N)."),
    output: str = typer.Option("consistent", rich_help_panel=TRAINING_MODEL,
                               help="consistent (the network predicts only how far clipped samples went beyond "
                                    "the level) or free (a correction of every sample)."),
) -> None:
    """Train a model, or fine-tune one on your own clipped recordings (self-supervised)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .checkpoint import CheckpointError, default_model_path
    from .training import TrainSettings, train as run_training

    set_threads(threads)
    if clipping not in ("auto", "simulate", "real"):
        fail(f"--clipping must be auto, simulate or real, not {clipping!r}")
    simulate = clipping == "simulate" or (clipping == "auto" and mode == "supervised")
    # measured (docs/experiments.md): fine-tuning keeps long plateaus anchored with the starting model as a frozen
    # EI teacher; from scratch there is no teacher worth keeping, and L_EI only on reliable samples is stable
    fine_tuning = init != "none" and mode == "self-supervised"
    if ei_region is None:
        ei_region = "all" if fine_tuning else "reliable"
    if teacher_decay is None:
        teacher_decay = 1.0 if fine_tuning else 0.0
    if gains is None:  # measured (docs/experiments.md): fine-tuning with gains near 1 gains at light clipping too
        gains = "1,2" if fine_tuning else "1,6"
    low, high = number_list(input_sdr, "--input-sdr", 2)
    gain_low, gain_high = number_list(gains, "--gains", 2)
    settings = TrainSettings(
        mode=mode, simulate_clipping=simulate, steps=steps, batch=batch, crop=crop, learning_rate=learning_rate,
        input_sdr=(low, high), consistency=consistency, ei_weight=ei_weight, gains=(gain_low, gain_high),
        ei_region=ei_region, teacher_decay=teacher_decay, seed=seed, checkpoint_every=checkpoint_every,
        device=device, precision=precision, widths=tuple(int(w) for w in number_list(widths, "--widths")),
        kernel=kernel, stride=stride, output=output, domain=domain, n_fft=n_fft, hop=hop,
        scales=tuple(int(s) for s in number_list(scales, "--scales")), minutes=minutes,
        codecs=tuple(name.strip() for name in codecs.split(",")) if codecs else (), coded_share=coded_share)
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
    def pair(up: float, low: float) -> str:
        return "/".join(f"{v:+.3f}" if math.isfinite(v) else "-" for v in (up, low))

    parts = []
    for c in range(levels.channels):
        up, low = levels.upper[c], levels.lower[c]
        if not (math.isfinite(up) or math.isfinite(low)):
            parts.append("none")
        elif levels.upper_smear[c] or levels.lower_smear[c]:  # lossy: the old level, and where the band starts
            parts.append(f"{pair(up + levels.upper_smear[c], low - levels.lower_smear[c])} "
                         f"(lossy: from {pair(up, low)})")
        else:
            parts.append(pair(up, low))
    return "\n".join(parts)


def progress_display():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console, transient=True)


@app.command()
def fix(
    paths: List[Path] = typer.Argument(..., help="Clipped audio files, or folders to search.", metavar="PATH"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", show_default=False,
                                          help="Output file, or folder (mirrors the input tree). Default: "
                                               "NAME.declipped.EXT beside each input (for MP3, Vorbis or Opus "
                                               "input: NAME.declipped.wav, float, so nothing is lost again)."),
    quality: str = typer.Option(DEFAULT_PRESET, "-q", "--quality", show_default=False,
                                help="fast (default), balanced or best: see 'declipper models'."),
    in_place: bool = typer.Option(False, "--in-place", help="Replace each input with its restoration."),
    glob: str = typer.Option("*", help="Pattern for files inside folders, e.g. '*.wav'.", show_default=False),
    skip_existing: bool = typer.Option(False, "--skip-existing",
                                       help="Leave files whose output already exists (resume a batch)."),
    json_output: bool = typer.Option(False, "--json", help="Print a JSON report instead of a table."),
    model: Optional[str] = typer.Option(None, help=MODEL_HELP, rich_help_panel=ADVANCED),
    method: Optional[str] = typer.Option(None, rich_help_panel=ADVANCED,
                                         help="network, aspade (the sparse declipper alone) or hybrid (both)."),
    sparse_share: Optional[float] = typer.Option(None, help=SHARE_HELP, show_default=False,
                                                 rich_help_panel=ADVANCED),
    sparse_speedup: Optional[int] = typer.Option(None, help=SPEEDUP_HELP, metavar="N", rich_help_panel=ADVANCED),
    symmetric: bool = typer.Option(False, "--symmetric", help=SYMMETRIC_HELP, rich_help_panel=ADVANCED),
    headroom: str = typer.Option("auto", rich_help_panel=ADVANCED, show_default=False,
                                 help="auto (float where the format allows), float (keep float samples) or gain "
                                      "(one gain so peaks fit the input's format)."),
    ceiling: float = typer.Option(-0.1, help="Peak in dBFS after a make-up gain.", rich_help_panel=ADVANCED),
    threshold: Optional[str] = typer.Option(None, rich_help_panel=ADVANCED,
                                            help="A level instead of detection: -0.3dBFS, 0.95, or 0.95,-0.9."),
    tolerance: float = typer.Option(1e-4, help=TOLERANCE_HELP, rich_help_panel=ADVANCED),
    min_run: int = typer.Option(1, help="Shortest clipped run that is restored.", rich_help_panel=ADVANCED),
    device: str = typer.Option("auto", help=DEVICE_HELP, rich_help_panel=ADVANCED, show_default=False),
    precision: str = typer.Option("auto", help=PRECISION_HELP, rich_help_panel=ADVANCED, show_default=False),
    window: int = typer.Option(EngineSettings().window, help="Samples per network window.", rich_help_panel=ADVANCED),
    batch: int = typer.Option(EngineSettings().batch, help="Windows per network call.", rich_help_panel=ADVANCED),
    threads: Optional[int] = typer.Option(None, help=THREADS_HELP, rich_help_panel=ADVANCED),
) -> None:
    """Detect clipping, restore it, and write the result."""
    from .api import METHODS, load_model, restore_file
    from .batch import PlanError, plan_jobs, run_jobs
    from .checkpoint import CheckpointError
    from .engine import resolve_device
    from .presets import lossy_model, resolve
    from .sparse import ASpadeSettings

    set_threads(threads)
    settings = detection_settings(threshold, tolerance, min_run)
    if headroom not in ("auto", "float", "gain"):
        fail(f"--headroom must be auto, float or gain, not {headroom!r}")
    try:
        chosen_model = model
        model, method, sparse_speedup = resolve(quality, model, method, sparse_speedup)
    except ValueError as error:
        fail(str(error))
    if method not in METHODS:
        fail(f"--method must be {', '.join(METHODS)}, not {method!r}")
    try:  # inputs and outputs first: a wrong path must not wait for the model
        jobs = plan_jobs(paths, output, in_place, glob)
        resolve_device(device)
        check_share(sparse_share)
        sparse_settings = ASpadeSettings().quicker(sparse_speedup)
        network = None if method == "aspade" else load_model(model, symmetric)
        for_lossy = lossy_model(quality, chosen_model) if method == "network" else None
        lossy_network = load_model(for_lossy, symmetric) if for_lossy else None
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
                                    method, sparse_share, sparse_settings, lossy_network)
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
    paths: List[Path] = typer.Argument(..., help="Audio files, or folders to search.", metavar="PATH"),
    glob: str = typer.Option("*", help="Pattern for files inside folders, e.g. '*.wav'.", show_default=False),
    json_output: bool = typer.Option(False, "--json", help="Print a JSON report instead of a table."),
    threshold: Optional[str] = typer.Option(None, rich_help_panel=ADVANCED,
                                            help="A level instead of detection: -0.3dBFS, 0.95, or 0.95,-0.9."),
    tolerance: float = typer.Option(1e-4, help=TOLERANCE_HELP, rich_help_panel=ADVANCED),
    min_run: int = typer.Option(1, help="Shortest clipped run that counts.", rich_help_panel=ADVANCED),
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


@app.command()
def models() -> None:
    """List the shipped models and the quality presets that use them."""
    from rich.table import Table

    from .checkpoint import CheckpointError, load_checkpoint, shipped_models
    from .presets import PRESETS

    table = Table(title="shipped models (--model NAME)")
    for column in ("name", "what it is", "parameters", "trained on", "file"):
        table.add_column(column, justify="right" if column == "parameters" else "left")
    for name, path in shipped_models().items():
        try:
            network, metadata = load_checkpoint(path)
        except CheckpointError as error:
            table.add_row(name, f"[red]{shown(error)}[/red]", "", "", shown(path))
            continue
        members = getattr(network, "members", [network])
        spectral = sum(m.config.domain == "stft" for m in members)
        kinds = [f"{count} {kind}" for count, kind in ((len(members) - spectral, "waveform"), (spectral, "spectral"))
                 if count]
        what = f"{' + '.join(kinds)} networks, averaged" if len(members) > 1 else f"one {kinds[0].split()[1]} network"
        parameters = sum(p.numel() for p in network.parameters())
        data = ", ".join(metadata.get("training", {}).get("data", [])) or "-"
        table.add_row(name, what, f"{parameters / 1e6:.2f} M", shown(data), shown(path.name))
    Console().print(table)
    presets = Table(title="quality presets (fix --quality NAME)")
    for column in ("preset", "model", "method", "for"):
        presets.add_column(column)
    for name, preset in PRESETS.items():
        method = preset.method + (f", A-SPADE {preset.sparse_speedup}x quicker" if preset.method == "hybrid" else "")
        presets.add_row(name + (" (default)" if name == DEFAULT_PRESET else ""), preset.model or "the default (small)",
                        method, preset.purpose)
    Console().print(presets)


@app.command("eval")
def evaluate(
    clean: List[Path] = typer.Argument(..., help="Clean (unclipped) audio files or folders.", metavar="PATH"),
    input_sdr: str = typer.Option("1,3,5,7,10,15,20", help="Clipping strengths to test, as the signal-to-"
                                  "distortion ratio (dB) of the clipped audio, comma-separated."),
    quality: str = typer.Option(DEFAULT_PRESET, "-q", "--quality", show_default=False,
                                help="fast (default), balanced or best: see 'declipper models'."),
    baseline: Optional[str] = typer.Option(None, help="Also score, side by side on the same clipped files: aspade "
                                           "(the sparse declipper at the survey's settings; slow, scores cached), "
                                           "cubic (cubic interpolation across each clipped run), or both: aspade,cubic."),
    published: bool = typer.Option(False, "--published", help="Also show the survey's published scores "
                                   "(measured on its own excerpts, not on these files)."),
    seconds: Optional[float] = typer.Option(None, help="Score excerpts of this many seconds, not whole files."),
    excerpts: int = typer.Option(1, help="Evenly spaced excerpts per file (with --seconds)."),
    glob: str = typer.Option("*", help="Pattern for files inside folders, e.g. '*.wav'.", show_default=False),
    json_output: bool = typer.Option(False, "--json", help="Print JSON (per item and summary) instead of tables."),
    model: Optional[str] = typer.Option(None, help=MODEL_HELP, rich_help_panel=ADVANCED),
    method: Optional[str] = typer.Option(None, help="network or hybrid (the network and A-SPADE).",
                                         rich_help_panel=ADVANCED),
    sparse_share: Optional[float] = typer.Option(None, help=SHARE_HELP, show_default=False,
                                                 rich_help_panel=ADVANCED),
    sparse_speedup: Optional[int] = typer.Option(None, metavar="N", rich_help_panel=ADVANCED,
                                                 help=SPEEDUP_HELP + " The baseline keeps the survey's settings."),
    symmetric: bool = typer.Option(False, "--symmetric", help=SYMMETRIC_HELP, rich_help_panel=ADVANCED),
    device: str = typer.Option("auto", help=DEVICE_HELP, rich_help_panel=ADVANCED, show_default=False),
    precision: str = typer.Option("auto", help=PRECISION_HELP, rich_help_panel=ADVANCED, show_default=False),
    window: int = typer.Option(EngineSettings().window, help="Samples per network window.", rich_help_panel=ADVANCED),
    threads: Optional[int] = typer.Option(None, help=THREADS_HELP, rich_help_panel=ADVANCED),
    baseline_cache: Path = typer.Option(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                                        / "declipper" / "scores", help="Where baseline scores are kept.",
                                        rich_help_panel=ADVANCED),
) -> None:
    """Clip clean audio at given strengths (the survey's rule), restore it, and score the gain in SDR."""
    from rich.table import Table

    import numpy as np

    from .api import load_model, restore
    from .checkpoint import CheckpointError
    from .engine import resolve_device
    from .evaluation import PUBLISHED, ScoreCache, evaluate as run_evaluation, published as published_scores, summarise
    from .hybrid import combine
    from .interpolation import cubic_restore
    from .presets import resolve
    from .sparse import SURVEY_ASPADE, ASpadeSettings, aspade

    set_threads(threads)
    settings = SURVEY_ASPADE  # the baseline: the survey's algorithm and settings, uncapped, float64
    levels = number_list(input_sdr, "--input-sdr")
    baselines = [] if baseline is None else [name.strip() for name in baseline.split(",")]
    if any(name not in BASELINES for name in baselines):
        fail(f"--baseline must be aspade, cubic or aspade,cubic, not {baseline!r}")
    try:
        model, method, sparse_speedup = resolve(quality, model, method, sparse_speedup)
    except ValueError as error:
        fail(str(error))
    if method not in ("network", "hybrid"):
        fail(f"--method must be network or hybrid, not {method!r}")
    files = gather_inputs(clean, glob)  # before the model: a wrong path must not wait for it
    try:
        check_share(sparse_share)
        hybrid_settings = ASpadeSettings().quicker(sparse_speedup)  # what fix runs
        network = load_model(model, symmetric)
        where = resolve_device(device)
    except (CheckpointError, ValueError) as error:
        fail(str(error))
    engine = EngineSettings(device=device, precision=precision, window=window)
    if where.type == "cuda":
        settings, hybrid_settings = (dataclasses.replace(s, batch=512) for s in (settings, hybrid_settings))

    def sparse_estimate(y: np.ndarray, rate: int, clip_levels) -> np.ndarray:
        return aspade(y, clip_levels, settings, device=where)

    def restore_item(y: np.ndarray, rate: int, clip_levels) -> np.ndarray:
        restored = restore(y, rate, network, levels=clip_levels, engine=engine)
        if method == "network":
            return restored
        return combine(y, restored, aspade(y, clip_levels, hybrid_settings, device=where), sparse_share)

    with progress_display() as progress:
        task = progress.add_task(method, total=None)
        rows = run_evaluation(restore_item, files, levels, seconds, excerpts,
                              lambda done, total: progress.update(task, completed=done, total=total))
        baseline_rows = {}
        for name in baselines:
            cache = None
            if name == "aspade":  # the batch size changes the speed, not the result: not in the cache's name
                cache = ScoreCache(baseline_cache, "aspade-survey-" + hashlib.sha1(
                    repr(dataclasses.replace(settings, batch=0)).encode()).hexdigest()[:10])
            task = progress.add_task(BASELINES[name], total=None)
            restorer = sparse_estimate if name == "aspade" else lambda y, rate, clip_levels: cubic_restore(y, clip_levels)
            baseline_rows[name] = run_evaluation(restorer, files, levels, seconds, excerpts,
                                                 lambda done, total: progress.update(task, completed=done, total=total),
                                                 cache)
    summary = summarise(rows)
    baseline_summary = {name: summarise(found) for name, found in baseline_rows.items()}
    reported = [row["input_sdr"] for row in summary if published_scores(row["input_sdr"])]
    if json_output:
        print(json.dumps({"model": getattr(network, "metadata", {}).get("training", {}).get("command"),
                          "method": method,
                          **({"sparse_share": "adaptive" if sparse_share is None else sparse_share,
                              "sparse_speedup": sparse_speedup}
                             if method == "hybrid" else {}),
                          "summary": summary, "items": rows,
                          **({"baselines": {name: {"summary": baseline_summary[name], "items": baseline_rows[name]}
                                            for name in baselines}} if baselines else {}),
                          **({"published_sqam": {f"{level:g}": published_scores(level) for level in reported}}
                             if published else {})}, indent=2))
        return
    table = Table(title=f"declipper eval: mean over {len(rows) // max(len(levels), 1)} items (dB)")
    for column in ["input SDR", "ΔSDR"] + [f"{BASELINES[name]} ΔSDR" for name in baselines] + ["clipped %"]:
        table.add_column(column, justify="right")
    for index, row in enumerate(summary):
        cells = [f"{row['input_sdr']:g}", f"{row['delta_sdr']:.2f}"]
        cells += [f"{baseline_summary[name][index]['delta_sdr']:.2f}" for name in baselines]
        table.add_row(*cells, f"{100 * row['clipped_fraction']:.2f}")
    if summary:
        def mean(found: list[dict]) -> str:
            return f"{sum(r['delta_sdr'] for r in found) / len(found):.2f}"

        table.add_row("mean", mean(summary), *(mean(baseline_summary[name]) for name in baselines), "")
    Console().print(table)
    if published and reported:
        survey = Table(title="Published mean ΔSDR (dB) on the survey's ten EBU SQAM excerpts (Záviška et al. "
                             "2021): other recordings than these")
        survey.add_column("method")
        for level in reported:
            survey.add_column(f"{level:g} dB", justify="right")
        for name in PUBLISHED:
            survey.add_row(name, *(f"{published_scores(level)[name]:.2f}" for level in reported))
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
