"""The reliability battery: every bad input and every fault a user or a hostile tester brings,
handled with one clear line and without losing or inventing anything."""
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from declipper.api import FileReport
from declipper.audio import DiskFull
from declipper.batch import Job, run_jobs
from declipper.cli import app
from tests.conftest import music

RATE = 44100
runner = CliRunner()


@pytest.fixture(autouse=True)
def use_random_model(random_model_path, monkeypatch):
    monkeypatch.setenv("DECLIPPER_MODEL", str(random_model_path))


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def clipped(seconds=1.0, rate=RATE, channels=2, seed=0, level=0.5):
    """Music clipped at ``level`` in every channel and brought up to full scale, as a clipped master is."""
    x = music(seconds, rate, channels=channels, seed=seed)
    x = x / np.abs(x).max(axis=0) * 0.9
    return np.clip(x, -level, level) / level * (32767 / 32768)


def write(path: Path, audio, rate=RATE, subtype="PCM_16") -> Path:
    sf.write(path, audio, rate, subtype=subtype)
    return path


def read(path: Path) -> np.ndarray:
    return sf.read(path, dtype="float32", always_2d=True)[0]


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".partial" in p.name or ".declipped.declipped" in p.name]


# --- outputs never land on inputs ---------------------------------------------------------------

def test_an_output_on_its_own_input_is_refused(tmp_path):
    source = write(tmp_path / "a.wav", clipped())
    before = source.read_bytes()
    (tmp_path / "link.wav").symlink_to(source)
    os.link(source, tmp_path / "hard.wav")
    for output in (source, tmp_path / "link.wav", tmp_path / "hard.wav"):
        result = run("fix", source, "-o", output)
        assert result.exit_code == 2 and "would overwrite its input" in result.output and "--in-place" in result.output
    result = run("fix", tmp_path, "-o", tmp_path, "--glob", "a.wav")
    assert result.exit_code == 2 and "would overwrite" in result.output
    assert source.read_bytes() == before and not leftovers(tmp_path)
    assert run("fix", source, "--in-place").exit_code == 0  # asked for: replaced
    assert sf.info(source).subtype == "FLOAT"


def test_an_output_on_another_input_or_two_inputs_on_one_output_are_refused(tmp_path):
    (tmp_path / "sub").mkdir()
    first = write(tmp_path / "a.wav", clipped(seed=1))
    second = write(tmp_path / "sub" / "a.wav", clipped(seed=2))
    before = second.read_bytes()
    result = run("fix", first, second, "-o", tmp_path / "sub")
    assert result.exit_code == 2 and "another input" in result.output
    assert second.read_bytes() == before
    result = run("fix", first, second, "-o", tmp_path / "out")
    assert result.exit_code == 2 and "both be written" in result.output and not (tmp_path / "out").exists()


def test_a_read_only_input_is_not_replaced_in_place(tmp_path):
    source = write(tmp_path / "a.wav", clipped())
    other = write(tmp_path / "b.wav", clipped(seed=3))
    before = source.read_bytes()
    source.chmod(0o444)
    result = run("fix", source, other, "--in-place")
    assert result.exit_code == 1 and "read-only" in result.output and "1 of 2 files done" in result.output
    assert source.read_bytes() == before and sf.info(other).subtype == "FLOAT"


# --- inputs that are not what they claim -------------------------------------------------------

@pytest.mark.parametrize("bad", ["inf", "-inf", "nan"])
def test_non_finite_samples_fail_that_file_and_the_batch_goes_on(tmp_path, bad):
    folder = tmp_path / "in"
    folder.mkdir()
    write(folder / "1.wav", clipped(seed=1))
    poisoned = clipped(seed=2).astype(np.float32)
    poisoned[1000, 0] = float(bad)
    write(folder / "2.wav", poisoned, subtype="FLOAT")
    write(folder / "3.wav", clipped(seed=3))
    result = run("fix", folder, "-o", tmp_path / "out")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "contains non-finite samples" in result.output and "2 of 3 files done" in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1.wav", "3.wav"]  # nothing written for 2
    scanned = run("scan", folder / "2.wav", "--json")
    assert scanned.exit_code == 1 and "non-finite" in json.loads(scanned.stdout)[0]["error"]


def test_a_channel_with_nothing_reliable_is_left_as_it_is(tmp_path):
    dc = write(tmp_path / "dc.wav", np.ones((RATE, 1), np.float32), subtype="FLOAT")
    result = run("fix", dc, "--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)[0]
    assert report["clipped_fraction"] == [1.0] and "nothing to restore from" in report["action"]
    assert np.array_equal(read(tmp_path / "dc.declipped.wav"), read(dc))
    # one channel music, the other stuck at full scale: the first restored, the second untouched
    mixed = clipped(channels=2)
    mixed[:, 1] = 32767 / 32768
    source = write(tmp_path / "mixed.wav", mixed)
    result = run("fix", source, "--json")
    report = json.loads(result.stdout)[0]
    assert result.exit_code == 0 and report["clipped_fraction"][1] == 1.0
    assert any("channel 2" in w and "nothing to restore from" in w for w in report["warnings"])
    restored, original = read(tmp_path / "mixed.declipped.wav"), read(source)
    assert np.array_equal(restored[:, 1], original[:, 1]) and np.abs(restored[:, 0]).max() > 1.0


def test_a_truncated_wav_is_restored_with_a_warning(tmp_path):
    whole = write(tmp_path / "whole.wav", clipped(seconds=1.0))
    truncated = tmp_path / "cut.wav"
    truncated.write_bytes(whole.read_bytes()[: 44 + 4 * 20000])
    result = run("fix", truncated)
    assert result.exit_code == 0 and "truncated" in result.output
    assert sf.info(tmp_path / "cut.declipped.wav").frames == 20000
    report = json.loads(run("scan", truncated, "--json").stdout)[0]
    assert report["warnings"] == [f"truncated: the header declares {RATE} frames, the file holds 20000"]
    assert json.loads(run("scan", whole, "--json").stdout)[0]["warnings"] == []


@pytest.mark.parametrize("content", [b"", b"hello, this is not audio\n" * 20, b"RIFF\x00\x00"])
def test_files_that_are_not_audio_fail_clearly(tmp_path, content):
    (tmp_path / "bad.wav").write_bytes(content)
    good = write(tmp_path / "good.wav", clipped())
    result = run("fix", tmp_path / "bad.wav", good, "-o", tmp_path / "out")
    assert result.exit_code == 1 and "cannot read" in result.output and "Traceback" not in result.output
    assert (tmp_path / "out" / "good.wav").exists() and not (tmp_path / "out" / "bad.wav").exists()


def test_zero_frames_one_sample_and_silence_come_back_unchanged(tmp_path):
    cases = {"zero.wav": np.zeros((0, 2)), "one.wav": np.array([[0.5]]), "silence.wav": np.zeros((RATE, 2))}
    for name, audio in cases.items():
        source = write(tmp_path / name, audio)
        result = run("fix", source, "-o", tmp_path / "out" / name)
        assert result.exit_code == 0, result.output
        assert (tmp_path / "out" / name).read_bytes() == source.read_bytes()  # copied bit for bit
    result = run("fix", tmp_path / "one.wav", "--threshold", "0.4", "-o", tmp_path / "forced.wav")
    assert result.exit_code == 0 and np.array_equal(read(tmp_path / "forced.wav"), read(tmp_path / "one.wav"))


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_every_sample_format(tmp_path, subtype):
    source = write(tmp_path / "in.wav", clipped(seconds=0.5) * (0.99 if subtype == "PCM_U8" else 1.0),
                   subtype=subtype)
    result = run("fix", source, "-o", tmp_path / "out.wav")
    assert result.exit_code == 0, result.output
    restored, original = read(tmp_path / "out.wav"), read(source)
    reliable = np.abs(original) < 0.98 * np.abs(original).max()
    assert restored.shape == original.shape and np.array_equal(restored[reliable], original[reliable])
    assert np.isfinite(restored).all()


@pytest.mark.parametrize("rate, channels", [(8000, 1), (192000, 2), (RATE, 6), (RATE, 12)])
def test_rates_and_channel_counts(tmp_path, rate, channels):
    source = write(tmp_path / "in.wav", clipped(seconds=0.4, rate=rate, channels=channels), rate=rate)
    result = run("fix", source, "-o", tmp_path / "out.wav", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)[0]
    info = sf.info(tmp_path / "out.wav")
    assert (info.samplerate, info.channels, info.frames) == (rate, channels, int(0.4 * rate))
    assert report["channels"] == channels and all(f > 0 for f in report["clipped_fraction"])
    restored, original = read(tmp_path / "out.wav"), read(source)
    assert np.abs(restored).max() > 1.0 and np.array_equal(restored[np.abs(original) < 0.999],
                                                         original[np.abs(original) < 0.999])


def test_a_folder_with_no_audio_and_a_wrong_path_fail_before_the_model_loads(tmp_path, monkeypatch):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage")
    monkeypatch.setenv("DECLIPPER_MODEL", str(corrupt))  # loading it would fail: it must not be reached
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("no audio here")
    result = run("fix", tmp_path / "docs")
    assert result.exit_code == 2 and "no audio files found" in result.output
    result = run("fix", tmp_path / "missing.wav")
    assert result.exit_code == 2 and "no such file or folder" in result.output and "checkpoint" not in result.output


# --- what declipper writes ---------------------------------------------------------------------

def test_unwritable_output_formats_are_refused_and_opus_is_real_opus(tmp_path):
    source = write(tmp_path / "a.wav", clipped(rate=48000), rate=48000)
    result = run("fix", source, "-o", tmp_path / "out.m4a")
    assert result.exit_code == 2 and ".flac" in result.output and ".wav" in result.output
    assert list(tmp_path.iterdir()) == [source]
    result = run("fix", source, "-o", tmp_path / "out.opus")
    assert result.exit_code == 0, result.output
    assert (sf.info(tmp_path / "out.opus").format, sf.info(tmp_path / "out.opus").subtype) == ("OGG", "OPUS")
    other = write(tmp_path / "b.wav", clipped())
    result = run("fix", other, "-o", tmp_path / "b.opus")
    assert result.exit_code == 1 and "Opus holds only" in result.output and not (tmp_path / "b.opus").exists()


def test_write_errors_name_the_output_asked_for(tmp_path):
    source = write(tmp_path / "a.wav", clipped())
    (tmp_path / "file").write_text("a file, not a folder")
    for target in (tmp_path / "file" / "out.wav", Path("/proc/declipper-test/out.wav")):
        result = run("fix", source, "-o", target)
        assert result.exit_code == 1 and f"cannot write {target}" in result.output
        assert ".partial" not in result.output


def test_the_same_input_gives_the_same_bytes(tmp_path):
    source = write(tmp_path / "a.wav", clipped())
    for suffix in (".wav", ".flac", ".aiff"):
        assert run("fix", source, "-o", tmp_path / f"first{suffix}").exit_code == 0
        time.sleep(1.1)  # libsndfile's PEAK chunk would carry the time of writing, to the second
        assert run("fix", source, "-o", tmp_path / f"second{suffix}").exit_code == 0
        assert (tmp_path / f"first{suffix}").read_bytes() == (tmp_path / f"second{suffix}").read_bytes()


def test_checkpoints_that_are_corrupt_or_carry_code_get_one_line_and_no_invitation(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    source = write(tmp_path / "a.wav", clipped())
    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"format": "declipper-checkpoint/1", "x": Payload()}, protocol=2))
    (tmp_path / "corrupt.pt").write_bytes(b"\x00garbage")
    for model, reason in (("evil.pt", "Python objects"), ("corrupt.pt", "damaged")):
        result = run("fix", source, "--model", tmp_path / model)
        assert result.exit_code == 2 and "not a declipper checkpoint" in result.output and reason in result.output
        assert "weights_only" not in result.output and "this must never run" not in result.output
        assert len(result.output.strip().splitlines()) == 1


# --- resuming and interruptions ----------------------------------------------------------------

def test_a_rerun_beside_the_inputs_never_takes_its_own_outputs_and_cleans_partial_files(tmp_path):
    write(tmp_path / "one.wav", clipped(seed=1))
    write(tmp_path / "two.wav", clipped(seed=2))
    assert run("fix", tmp_path).exit_code == 0
    stale = tmp_path / ".two.declipped.1234567-abcd_123.partial.wav"  # an interrupted run's, long dead
    old_style = tmp_path / ".two.declipped.hfvmr_bn.partial.wav"
    (tmp_path / "two.declipped.wav").unlink()
    for leftover in (stale, old_style):
        leftover.write_bytes(b"half a file")
    (tmp_path / "._one.wav").write_bytes(b"macOS metadata")
    result = run("fix", tmp_path, "--skip-existing")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["._one.wav", "one.declipped.wav", "one.wav",
                                                          "two.declipped.wav", "two.wav"]
    assert "skipped" in result.output and "removed a partial file" in result.output and stale.name in result.output
    # an output folder inside the input folder is not searched for inputs either
    assert run("fix", tmp_path, "-o", tmp_path / "restored").exit_code == 0
    again = run("fix", tmp_path, "-o", tmp_path / "restored", "--json")
    assert [Path(r["file"]).name for r in json.loads(again.stdout)] == ["one.wav", "two.wav"]


def test_a_partial_file_of_a_running_writer_is_kept(tmp_path):
    from declipper.audio import remove_stale_partials

    target = tmp_path / "out.wav"
    alive = tmp_path / f".out.{os.getpid()}-abc123.partial.wav"
    dead = tmp_path / ".out.999999999-abc123.partial.wav"
    staging = tmp_path / ".out.999999999-abc123.partial.staging.wav"
    unrelated = tmp_path / ".outer.999999999-abc123.partial.wav"
    for path in (alive, dead, staging, unrelated):
        path.write_bytes(b"x")
    assert sorted(remove_stale_partials(target)) == sorted([dead, staging])
    assert alive.exists() and unrelated.exists()


def test_a_full_disk_stops_the_batch_cleanly(tmp_path):
    """A real full device: a 1 MiB tmpfs in a private mount namespace (needs unshare and root)."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--mount", "true"]).returncode != 0:
        pytest.skip("no private mount namespace here")
    inputs = tmp_path / "in"
    inputs.mkdir()
    for k in range(3):
        write(inputs / f"{k}.wav", clipped(seconds=4.0, seed=k))
    full = tmp_path / "full"
    full.mkdir()
    script = (f"mount -t tmpfs -o size=1m tmpfs {full} && {sys.executable} -m declipper fix {inputs} -o {full}; "
              f"echo rc=$?; ls -A {full}")
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    if "mount:" in done.stderr:
        pytest.skip("tmpfs cannot be mounted here")
    assert f"no space left on device while writing {full / '0.wav'}" in done.stderr
    assert done.stderr.count("not processed: the output's disk is full") == 2 and "0 of 3 files done" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.strip().splitlines()[-1] == "rc=1"  # and nothing left behind: ls printed no file


def test_only_a_full_disk_stops_a_batch():
    jobs = [Job(Path(f"{k}.wav"), Path(f"out/{k}.wav")) for k in range(6)]

    def work(job):
        if job.source.name == "0.wav":
            raise ValueError("bad file")
        if job.source.name == "1.wav":
            raise KeyError("a bug")
        if job.source.name == "3.wav":
            raise DiskFull(f"no space left on device while writing {job.target}")
        return FileReport(job.source, job.target, action="done")

    reports = run_jobs(jobs, work)
    assert [r.error for r in reports] == ["bad file", "internal error (KeyError: 'a bug')", None,
                                          "no space left on device while writing out/3.wav",
                                          "not processed: the output's disk is full",
                                          "not processed: the output's disk is full"]


def test_kill_9_mid_batch_then_resume_gives_what_an_uninterrupted_run_gives(tmp_path, random_model_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for k in range(8):
        write(inputs / f"{k}.wav", clipped(seconds=6.0, seed=k))
    command = [sys.executable, "-m", "declipper", "fix", str(inputs), "--threads", "2"]
    env = {**os.environ, "DECLIPPER_MODEL": str(random_model_path), "COLUMNS": "200"}
    subprocess.run(command + ["-o", str(tmp_path / "reference")], check=True, capture_output=True, env=env)
    out = tmp_path / "out"
    process = subprocess.Popen(command + ["-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob("[0-9].wav"))) < 2:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = sorted(out.glob("[0-9].wav"))
    partial = [p.name for p in out.glob(".*.partial*")]  # the file being written when it died, if any
    assert 2 <= len(finished) < 8, "the kill must land mid-batch"
    for path in finished:  # everything under a final name is complete and equal to the reference
        assert np.array_equal(read(path), read(tmp_path / "reference" / path.name))
    resumed = subprocess.run(command + ["-o", str(out), "--skip-existing"], capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.count("skipped") == len(finished)
    assert all(name in resumed.stderr for name in partial)  # named as removed
    assert sorted(p.name for p in out.iterdir()) == [f"{k}.wav" for k in range(8)]  # no partial file remains
    differing = sum(int((read(out / f"{k}.wav") != read(tmp_path / "reference" / f"{k}.wav")).sum())
                    for k in range(8))
    print(f"kill -9: {len(finished)} files done before the kill, {8 - len(finished)} completed by the rerun, "
          f"{differing} samples differ from an uninterrupted run")
    assert differing == 0
