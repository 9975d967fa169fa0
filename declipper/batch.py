"""A run over many files: what its inputs are, where each output goes, and how one file's failure
becomes a row of the report instead of the end of the batch.

People run declipper unattended over their only copies of their recordings, so the plan is made
and checked before anything slow starts: an output that would land on an input (the same path, a
symlink or a hard link to it, or another input of the run) is refused unless ``in_place`` asks for
exactly that, and so is an output format that cannot be written.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .api import FileReport
from .audio import (AudioError, DiskFull, audio_files, check_writable, first_line, output_is_folder, output_path,
                    remove_stale_partials)


class PlanError(ValueError):
    """A run that must not start: a missing input, nothing to do, or outputs that collide."""


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path | None = None  # None: nothing is written (scan)


def _identity(path: Path) -> tuple:
    """What makes two names one file: the inode where the file exists (symlinks and hard links
    included), else the resolved path."""
    try:
        stat = os.stat(path)
        return ("inode", stat.st_dev, stat.st_ino)
    except OSError:
        return ("path", str(path.resolve()))


def find_inputs(paths: Iterable[Path], pattern: str = "*",
                output: Path | None = None) -> list[tuple[Path, Path | None]]:
    """(file, the folder it was found under, or None when named directly), in a stable order.
    Folder searches pass over declipper's own outputs, partial and hidden files, and the output
    folder when it lies inside an input folder."""
    exclude = [output] if output is not None and output.is_dir() else []
    found: list[tuple[Path, Path | None]] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend((f, path) for f in audio_files([path], pattern, exclude))
        elif path.exists():
            found.append((path, None))
        else:
            raise PlanError(f"no such file or folder: {path}")
    if not found:
        raise PlanError("no audio files found in " + ", ".join(map(str, paths)))
    return found


def plan_jobs(paths: Iterable[Path], output: Path | None = None, in_place: bool = False,
              pattern: str = "*") -> list[Job]:
    """Every input with its output, checked: nothing is overwritten that was not meant to be."""
    paths = list(map(Path, paths))
    if in_place and output is not None:
        raise PlanError("--in-place and --output exclude each other")
    inputs = find_inputs(paths, pattern, output)
    many = len(inputs) > 1 or any(root is not None for _, root in inputs)
    if output is not None and len(inputs) > 1 and not output_is_folder(output, False):
        raise PlanError(f"{len(inputs)} inputs need an output folder, not the file {output}")
    jobs = [Job(source, output_path(source, output, root, many, in_place)) for source, root in inputs]
    sources = {_identity(job.source): job.source for job in jobs}
    targets: dict[tuple, Path] = {}
    for job in jobs:
        check_writable(job.target)
        target = _identity(job.target)
        overwritten = sources.get(target)
        if overwritten is not None and not in_place:
            what = "its input" if _identity(job.source) == target else "another input,"
            raise PlanError(f"the output {job.target} would overwrite {what} {overwritten}: choose another "
                            "output, or give --in-place to replace the inputs")
        if target in targets:
            raise PlanError(f"{targets[target]} and {job.source} would both be written to {job.target}")
        targets[target] = job.source
    return jobs


def run_jobs(jobs: list[Job], work: Callable[[Job], FileReport], skip_existing: bool = False,
             on_done: Callable[[FileReport], None] | None = None) -> list[FileReport]:
    """Run ``work`` on every job. A file that fails becomes a report row with a one-line reason
    and the batch goes on; only a full disk, which dooms every later file, stops it. Partial files
    that an interrupted run left at a job's output are removed first."""
    reports: list[FileReport] = []
    for index, job in enumerate(jobs):
        removed = remove_stale_partials(job.target) if job.target is not None else []
        if skip_existing and job.target is not None and job.target != job.source and job.target.exists():
            report = FileReport(job.source, job.target, action="skipped: output exists")
        else:
            try:
                report = work(job)
            except DiskFull as error:
                reports.append(FileReport(job.source, job.target, error=first_line(error), removed=removed))
                reports.extend(FileReport(later.source, later.target, error="not processed: the output's disk is full")
                               for later in jobs[index + 1:])
                break
            except (AudioError, ValueError, RuntimeError, OSError, MemoryError) as error:
                report = FileReport(job.source, job.target, error=first_line(error))
            except Exception as error:  # a fault of declipper's own must not cost the rest of the batch
                report = FileReport(job.source, job.target,
                                    error=f"internal error ({type(error).__name__}: {first_line(error)})")
        report.removed = removed
        reports.append(report)
        if on_done:
            on_done(report)
    return reports
