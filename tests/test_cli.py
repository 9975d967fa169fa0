"""The command line on real files: outputs, folders, resuming, errors, and never re-clipping."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from declipper.cli import app
from declipper.codecs import Codec
from tests.conftest import music

RATE = 44100
runner = CliRunner()


@pytest.fixture(autouse=True)
def use_random_model(random_model_path, monkeypatch):
    monkeypatch.setenv("DECLIPPER_MODEL", str(random_model_path))


def write_clipped(path: Path, subtype="PCM_16", seed=0, seconds=2.0, rate=RATE, level=0.5):
    clean = music(seconds, rate, seed=seed)
    y = np.clip(clean, -level, level) / level * (32767 / 32768)
    sf.write(path, y, rate, subtype=subtype)
    return y


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def test_fix_writes_float_beside_the_input(tmp_path):
    source = tmp_path / "song.wav"
    write_clipped(source)
    result = run("fix", source)
    assert result.exit_code == 0, result.output
    out = tmp_path / "song.declipped.wav"
    restored, rate = sf.read(out, dtype="float32", always_2d=True)
    original, _ = sf.read(source, dtype="float32", always_2d=True)
    assert sf.info(out).subtype == "FLOAT" and rate == RATE and restored.shape == original.shape
    assert np.abs(restored).max() > 1.0  # the restored peaks are kept, not clipped again
    reliable = np.abs(original) < 0.9999
    assert np.array_equal(restored[reliable], original[reliable])
    assert "float" in result.output
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # a normal file, not a private temporary one
    # --symmetric averages the restorations of the signal and of its negation: still consistent, not the same
    result = run("fix", source, "--symmetric", "-o", tmp_path / "symmetric.wav")
    assert result.exit_code == 0, result.output
    symmetric, _ = sf.read(tmp_path / "symmetric.wav", dtype="float32", always_2d=True)
    assert np.array_equal(symmetric[reliable], original[reliable]) and (np.abs(symmetric[~reliable]) >= 0.9999).all()
    assert not np.array_equal(symmetric, restored)


@pytest.mark.parametrize("codec", ["mp3-128", "vorbis-q4"])
def test_lossy_input_is_restored_into_float_wav_unless_named(tmp_path, codec):
    """Coding the restoration again would lose part of it: by default it goes to float WAV, with
    the smeared band flagged and restored, and the reliable samples as decoded. -o x.mp3 is honoured."""
    codec = Codec(codec)
    clean = music(10, RATE, seed=5, peak=2.0)
    source = tmp_path / f"song{codec.suffix}"
    source.write_bytes(codec.encode(np.clip(clean, -1, 1), RATE))
    result = run("fix", source, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)[0]
    out = tmp_path / "song.declipped.wav"
    assert report["output"] == str(out) and sf.info(out).subtype == "FLOAT"
    assert report["action"].startswith("lossy input written losslessly")
    assert all(band["upper_smear"] > 0 for band in report["levels"])
    decoded, _ = sf.read(source, dtype="float32", always_2d=True)
    restored, _ = sf.read(out, dtype="float32", always_2d=True)
    assert restored.shape == decoded.shape
    upper = np.array([band["upper"] for band in report["levels"]])
    lower = np.array([band["lower"] for band in report["levels"]])
    reliable = (decoded < upper * (1 - 1e-4)) & (decoded > lower * (1 - 1e-4))  # below the default tolerance
    assert np.array_equal(restored[reliable], decoded[reliable])
    assert (restored[decoded >= upper] >= (upper * np.ones_like(decoded))[decoded >= upper]).all()
    assert report["flagged_fraction"][0] > report["clipped_fraction"][0] > 0
    again = run("fix", source, "-o", tmp_path / f"kept{codec.suffix}")
    assert again.exit_code == 0, again.output
    assert sf.info(tmp_path / f"kept{codec.suffix}").subtype == sf.info(source).subtype


@pytest.mark.parametrize("suffix, subtype", [(".flac", "PCM_16"), (".wav", "PCM_24")])
def test_no_written_file_is_clipped_again(tmp_path, suffix, subtype):
    """Integer outputs get one make-up gain: scaled back, they equal the float restoration."""
    source = tmp_path / f"song{suffix}"
    write_clipped(source, subtype=subtype)
    args = ["fix", source] + (["--headroom", "gain"] if suffix == ".wav" else [])
    result = run(*args)
    assert result.exit_code == 0, result.output
    out = tmp_path / f"song.declipped{suffix}"
    assert sf.info(out).subtype == subtype  # the input's sample format ...
    written, _ = sf.read(out, dtype="float32", always_2d=True)
    assert np.abs(written).max() <= 10 ** (-0.1 / 20) + 1e-4  # ... below full scale ...
    assert run("fix", source, "-o", tmp_path / "float.wav", "--headroom", "float").exit_code == 0
    restored, _ = sf.read(tmp_path / "float.wav", dtype="float32", always_2d=True)
    gain = np.abs(written).max() / np.abs(restored).max()
    assert gain < 1
    lsb = 2.0 ** -(15 if subtype == "PCM_16" else 23)
    np.testing.assert_allclose(written, gain * restored, atol=1.5 * lsb)  # ... and nothing clamped
    assert "gain" in result.output  # the summary says what was done


def test_unclipped_file_is_copied_bit_for_bit(tmp_path):
    source = tmp_path / "clean.flac"
    sf.write(source, music(2, RATE, seed=3), RATE, subtype="PCM_24")
    result = run("fix", source)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "clean.declipped.flac").read_bytes() == source.read_bytes()
    assert "no clipping" in result.output
    assert run("fix", source, "-o", tmp_path / "clean.wav").exit_code == 0  # another container:
    original, _ = sf.read(source, dtype="float32")
    converted, _ = sf.read(tmp_path / "clean.wav", dtype="float32")
    assert np.array_equal(original, converted)  # same samples


def test_folders_are_mirrored_and_a_bad_file_does_not_stop_the_batch(tmp_path):
    inputs = tmp_path / "in"
    (inputs / "a" / "b").mkdir(parents=True)
    write_clipped(inputs / "one.wav", seed=1)
    write_clipped(inputs / "a" / "b" / "two.wav", seed=2)
    (inputs / "a" / "broken.wav").write_bytes(b"RIFF not really audio")
    (inputs / "notes.txt").write_text("not audio")
    result = run("fix", inputs, "-o", tmp_path / "out")
    assert result.exit_code == 1  # one file failed
    assert (tmp_path / "out" / "one.wav").exists() and (tmp_path / "out" / "a" / "b" / "two.wav").exists()
    assert "broken.wav" in result.output and "2 of 3 files done" in result.output
    assert not list((tmp_path / "out").rglob("*.partial*"))  # nothing half-written is left behind


def test_glob_and_skip_existing(tmp_path):
    write_clipped(tmp_path / "one.wav", seed=1)
    write_clipped(tmp_path / "two.wav", seed=2)
    sf.write(tmp_path / "three.flac", music(1, RATE), RATE)
    out = tmp_path / "out"
    assert run("fix", tmp_path, "-o", out, "--glob", "t*.wav").exit_code == 0
    assert [p.name for p in out.rglob("*")] == ["two.wav"]
    stamp = (out / "two.wav").stat().st_mtime_ns
    result = run("fix", tmp_path, "-o", out, "--glob", "*.wav", "--skip-existing")
    assert result.exit_code == 0 and "skipped" in result.output
    assert (out / "two.wav").stat().st_mtime_ns == stamp and (out / "one.wav").exists()


def test_in_place_replaces_only_when_asked(tmp_path):
    source = tmp_path / "song.wav"
    write_clipped(source)
    before = source.read_bytes()
    assert run("fix", source, "-o", source.with_name("other.wav")).exit_code == 0
    assert source.read_bytes() == before
    assert run("fix", source, "--in-place").exit_code == 0
    assert sf.info(source).subtype == "FLOAT" and source.read_bytes() != before


def test_scan_reports_json(tmp_path):
    write_clipped(tmp_path / "song.wav")
    result = run("scan", tmp_path / "song.wav", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)[0]
    assert report["levels"][0]["upper"] == pytest.approx(32767 / 32768, abs=1e-4)
    assert report["clipped_fraction"][0] > 0.001 and report["longest_run"][0] > 1
    assert report["severity"] in ("light", "moderate", "heavy", "severe")


def test_threshold_option(tmp_path):
    source = tmp_path / "song.wav"
    write_clipped(source)
    result = run("scan", source, "--threshold", "-0.5dB", "--json")
    report = json.loads(result.stdout)[0]
    assert report["levels"][0]["upper"] == pytest.approx(10 ** (-0.5 / 20))
    assert run("scan", source, "--threshold", "loud").exit_code == 2


def test_errors_are_one_line(tmp_path, monkeypatch):
    source = tmp_path / "song.wav"
    write_clipped(source)
    result = run("fix", tmp_path / "missing.wav")
    assert result.exit_code == 2 and "no such file" in result.output
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage")
    for model, message in ((corrupt, "cannot read model checkpoint"), (tmp_path / "none.pt", "not found")):
        result = run("fix", source, "--model", model)
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    result = run("fix", source, "--device", "tpu")
    assert result.exit_code == 2 and "unknown device" in result.output


def test_python_dash_m_entry_point(tmp_path):
    result = subprocess.run([sys.executable, "-m", "declipper", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "fix" in result.stdout and "scan" in result.stdout
    # the entry point leaves without Python's teardown: output and exit status must survive that
    source = tmp_path / "song.wav"
    write_clipped(source, seconds=0.5, rate=16000)
    result = subprocess.run([sys.executable, "-m", "declipper", "scan", str(source), "--json"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and json.loads(result.stdout)[0]["channels"] == 2
    result = subprocess.run([sys.executable, "-m", "declipper", "fix", str(tmp_path / "missing.wav")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "missing.wav" in result.stderr


def test_fix_with_the_aspade_baseline_needs_no_model(tmp_path, monkeypatch):
    monkeypatch.setenv("DECLIPPER_MODEL", str(tmp_path / "no-such-model.pt"))  # must not be loaded
    source = tmp_path / "song.wav"
    original = write_clipped(source, seconds=0.5, rate=16000)
    result = run("fix", source, "--method", "aspade")
    assert result.exit_code == 0, result.output
    restored, _ = sf.read(tmp_path / "song.declipped.wav", dtype="float32", always_2d=True)
    written, _ = sf.read(source, dtype="float32", always_2d=True)
    reliable = np.abs(written) < 0.9999
    assert restored.shape == original.shape and np.array_equal(restored[reliable], written[reliable])
    assert np.abs(restored).max() > 1.0
    assert run("fix", source, "--method", "magic").exit_code != 0
    result = run("fix", source, "--method", "aspade", "--sparse-speedup", "4", "-o", tmp_path / "quick.wav")
    assert result.exit_code == 0, result.output
    quick, _ = sf.read(tmp_path / "quick.wav", dtype="float32", always_2d=True)
    assert np.array_equal(quick[reliable], written[reliable]) and (np.abs(quick[~reliable]) >= 0.9999).all()
    assert not np.array_equal(quick, restored)  # fewer iterations: another (consistent) restoration
    result = run("fix", source, "--method", "aspade", "--sparse-speedup", "0", "-o", tmp_path / "none.wav")
    assert result.exit_code != 0 and "speed-up" in result.output and not (tmp_path / "none.wav").exists()


def test_eval_scores_the_baseline_side_by_side_and_caches_it(tmp_path):
    clean = tmp_path / "clean.wav"
    sf.write(clean, music(0.5, 16000, seed=3), 16000, subtype="FLOAT")
    args = ("eval", clean, "--input-sdr", "5", "--baseline", "aspade", "--baseline-cache", tmp_path / "scores", "--json")
    first = run(*args)
    assert first.exit_code == 0, first.output
    report = json.loads(first.output)
    assert list(report["baselines"]) == ["aspade"]
    assert report["baselines"]["aspade"]["summary"][0]["delta_sdr"] > 3.0  # sparse tones restore well
    cached = next((tmp_path / "scores").glob("aspade-*.json"))
    scores = json.loads(cached.read_text())
    assert len(scores) == 1
    key = next(iter(scores))
    scores[key]["delta_sdr"] = 123.0  # a cached score is reused, not recomputed
    cached.write_text(json.dumps(scores))
    again = json.loads(run(*args).output)
    assert again["baselines"]["aspade"]["summary"][0]["delta_sdr"] == 123.0
    copy = tmp_path / "elsewhere" / "clean.wav"  # scores follow the samples, not the file's path or date
    copy.parent.mkdir()
    copy.write_bytes(clean.read_bytes())
    moved = json.loads(run("eval", copy, *args[2:]).output)
    assert moved["baselines"]["aspade"]["summary"][0]["delta_sdr"] == 123.0


def test_fix_with_the_hybrid_method_is_consistent(tmp_path, random_model_path):
    source = tmp_path / "song.wav"
    write_clipped(source, seconds=0.5, rate=16000)
    result = run("fix", source, "--method", "hybrid", "--sparse-share", "0.4", "--model", random_model_path)
    assert result.exit_code == 0, result.output
    restored, _ = sf.read(tmp_path / "song.declipped.wav", dtype="float32", always_2d=True)
    written, _ = sf.read(source, dtype="float32", always_2d=True)
    reliable = np.abs(written) < 0.9999
    assert restored.shape == written.shape and np.array_equal(restored[reliable], written[reliable])
    assert (np.abs(restored[~reliable]) >= 0.9999).all() and np.abs(restored).max() > 1.0
    result = run("fix", source, "--method", "hybrid", "--sparse-share", "2", "-o", tmp_path / "other.wav")
    assert result.exit_code != 0 and "share" in result.output


def test_eval_of_the_hybrid_keeps_the_baseline_apart_and_its_ends_are_the_two_methods(tmp_path, monkeypatch,
                                                                                       random_model_path):
    import declipper.sparse
    from declipper.evaluation import clip_at_input_sdr, delta_sdr
    from declipper.sparse import ASpadeSettings

    clean = tmp_path / "clean.wav"
    sf.write(clean, music(0.5, 16000, seed=3), 16000, subtype="FLOAT")
    calls = []
    original = declipper.sparse.aspade
    monkeypatch.setattr(declipper.sparse, "aspade", lambda *a, **k: calls.append(1) or original(*a, **k))
    # the survey's bound runs blocks for minutes; what is checked here is only that the baseline is its own run
    monkeypatch.setattr(declipper.sparse, "SURVEY_ASPADE", ASpadeSettings(max_iterations=200, dtype="float64"))
    common = ("--input-sdr", "5,10", "--baseline", "aspade", "--json")
    scores = {}
    for share in ("0", "0.5", "1"):
        result = run("eval", clean, "--method", "hybrid", "--model", random_model_path, "--sparse-share", share, *common,
                     "--baseline-cache", tmp_path / f"scores-{share}")
        assert result.exit_code == 0, result.output
        scores[share] = json.loads(result.output)
        assert scores[share]["method"] == "hybrid" and scores[share]["sparse_share"] == float(share)
    assert len(calls) == 3 * 2 * 2  # per item and level: the hybrid's A-SPADE, and the survey's for the baseline
    result = run("eval", clean, "--method", "hybrid", "--model", random_model_path, "--sparse-speedup", "4", *common,
                 "--baseline-cache", tmp_path / "scores-quick")
    assert result.exit_code == 0, result.output
    quick = json.loads(result.output)
    assert quick["sparse_speedup"] == 4 and len(calls) == 3 * 2 * 2 + 2 * 2
    assert quick["baselines"]["aspade"]["summary"] == scores["0.5"]["baselines"]["aspade"]["summary"]
    network = json.loads(run("eval", clean, "--input-sdr", "5,10", "--json").output)
    for level in range(2):
        assert scores["0"]["summary"][level]["delta_sdr"] == pytest.approx(network["summary"][level]["delta_sdr"])
        clean_audio = sf.read(clean, dtype="float32", always_2d=True)[0]
        clipped, clip_levels = clip_at_input_sdr(clean_audio, (5, 10)[level])
        alone = delta_sdr(clean_audio, clipped, original(clipped, clip_levels, ASpadeSettings()))["delta_sdr"]
        assert scores["1"]["summary"][level]["delta_sdr"] == pytest.approx(alone)  # all A-SPADE, as fix runs it
    assert run("eval", clean, "--method", "aspade").exit_code != 0
    from declipper import load_model  # without --model the hybrid takes the large model, not the default

    monkeypatch.delenv("DECLIPPER_MODEL")  # shipped names are looked up beside the default model
    result = run("eval", clean, "--method", "hybrid", "--input-sdr", "10", "--json")
    assert result.exit_code == 0, result.output
    alone = json.loads(result.output)
    assert alone["model"] == load_model("large").metadata["training"]["command"] != network["model"]


def test_quality_presets_map_to_models_and_methods():
    from declipper.presets import resolve

    assert resolve("fast") == (None, "network", 1)  # the default model
    assert resolve("balanced") == ("large", "network", 1)
    assert resolve("best") == ("large", "hybrid", 4)
    assert resolve("fast", method="hybrid") == ("large", "hybrid", 1)  # the hybrid takes the large network
    assert resolve("best", model="mine.pt", sparse_speedup=1) == ("mine.pt", "hybrid", 1)  # experts override
    with pytest.raises(ValueError, match="--quality"):
        resolve("ultra")


def test_fix_with_the_best_preset_and_the_models_listing(tmp_path, monkeypatch):
    monkeypatch.delenv("DECLIPPER_MODEL")  # the shipped models themselves
    source = tmp_path / "song.wav"
    write_clipped(source, seconds=0.5, rate=16000)
    result = run("fix", source, "--quality", "best", "--json")
    assert result.exit_code == 0, result.output
    restored, written = (sf.read(p, dtype="float32", always_2d=True)[0] for p in (tmp_path / "song.declipped.wav", source))
    reliable = np.abs(written) < 0.9999
    assert np.array_equal(restored[reliable], written[reliable]) and np.abs(restored).max() > 1.0
    assert run("fix", source, "--quality", "ultra").exit_code == 2
    listing = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert listing.exit_code == 0
    for word in ("small", "large", "fast", "balanced", "best", "hybrid"):
        assert word in listing.output


def test_help_speaks_plainly():
    for command in ("fix", "scan", "eval", "train", "models"):
        text = runner.invoke(app, [command, "--help"], env={"COLUMNS": "80"}).output
        assert not re.search(r"[0-9]\.?[0-9]* ?dB\b", text) and "<bool>" not in text and "μ" not in text
        assert "L_MC" not in text and "L_EI" not in text
    assert len(runner.invoke(app, ["fix", "--help"], env={"COLUMNS": "80"}).output.splitlines()) <= 65


def test_eval_shows_the_published_scores_only_when_asked(tmp_path):
    clean = tmp_path / "clean.wav"
    sf.write(clean, music(0.5, 16000, seed=3), 16000, subtype="FLOAT")
    plain = run("eval", clean, "--input-sdr", "5,10")
    assert plain.exit_code == 0 and "Published" not in plain.output and "clipped samples" not in plain.output
    asked = run("eval", clean, "--input-sdr", "5,10", "--published")
    assert asked.exit_code == 0 and "Published" in asked.output and "A-SPADE" in asked.output
    report = json.loads(run("eval", clean, "--input-sdr", "10", "--published", "--json").output)
    assert report["published_sqam"]["10"]["A-SPADE"] == 17.28


def test_eval_scores_cubic_interpolation_beside_the_network(tmp_path):
    clean = tmp_path / "clean.wav"
    sf.write(clean, music(0.5, 16000, seed=4), 16000, subtype="FLOAT")
    result = run("eval", clean, "--input-sdr", "10,20", "--baseline", "cubic", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    cubic = report["baselines"]["cubic"]["summary"]
    assert [row["input_sdr"] for row in cubic] == [10, 20] and all(row["delta_sdr"] > 0 for row in cubic)
    wrong = run("eval", clean, "--baseline", "spline")
    assert wrong.exit_code == 2 and "aspade, cubic" in wrong.output


def test_the_model_for_lossy_input_restores_only_coded_clipping(tmp_path, random_model):
    """fix's default preset restores clipping a codec smeared with its model for lossy input, and
    everything else with the default model; a model of one's own is never swapped."""
    import torch

    from declipper.api import restore_file
    from declipper.network import Declipper, UNetConfig
    from declipper.presets import lossy_model

    torch.manual_seed(1)
    other = Declipper(UNetConfig(widths=(8, 16, 32), kernel=5, stride=4)).eval()
    clean = music(10, RATE, seed=5, peak=2.0)
    coded = tmp_path / "song.ogg"
    coded.write_bytes(Codec("vorbis-q4").encode(np.clip(clean, -1, 1), RATE))
    lossless = tmp_path / "song.wav"
    sf.write(lossless, np.clip(clean, -1, 1), RATE, subtype="PCM_16")
    for source, swapped in ((coded, True), (lossless, False)):
        alone = restore_file(source, tmp_path / "alone.wav", random_model)
        both = restore_file(source, tmp_path / "both.wav", random_model, lossy_model=other)
        same = np.array_equal(sf.read(tmp_path / "alone.wav")[0], sf.read(tmp_path / "both.wav")[0])
        assert same != swapped and ("model for lossy input" in both.action) == swapped
        assert "model for lossy input" not in alone.action
    assert lossy_model("fast", None) is None  # the tests set DECLIPPER_MODEL: one's own model stays
    assert lossy_model("fast", "large") is None and lossy_model("balanced", None) is None


def test_the_default_preset_names_the_shipped_model_for_lossy_input(monkeypatch):
    from declipper import load_model
    from declipper.presets import lossy_model

    monkeypatch.delenv("DECLIPPER_MODEL")
    name = lossy_model("fast", None)
    assert name == "small-lossy"
    assert load_model(name).metadata["stages"][-1]["steps"] > 0  # a real training run, recorded
