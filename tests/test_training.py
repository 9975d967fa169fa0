"""Training on tiny synthetic data: it learns, it resumes exactly, it runs data-parallel."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from declipper.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from declipper.network import Declipper, Ensemble, UNetConfig
from declipper.training import TrainSettings, train
from tests.conftest import music

TINY = dict(batch=4, crop=2048, widths=(8, 16), precision="fp32", device="cpu", learning_rate=3e-3)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    for seed in range(3):
        sf.write(folder / f"clean{seed}.wav", music(3, 16000, seed=seed), 16000, subtype="FLOAT")
    (folder / "broken.wav").write_bytes(b"RIFF broken")  # skipped with a warning
    return folder


@pytest.fixture(scope="module")
def clipped_corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clipped")
    for seed in range(2):
        sf.write(folder / f"clipped{seed}.wav", np.clip(music(3, 16000, seed=10 + seed), -0.4, 0.4), 16000,
                 subtype="PCM_16")
    return folder


def weights(path):
    return read_checkpoint(path)["state_dict"]


@pytest.mark.parametrize("mode, extra", [("supervised", {}), ("self-supervised", {"teacher_decay": 0.99})])
def test_a_short_run_lowers_the_loss(tmp_path, corpus, mode, extra):
    """At a fixed input SDR the loss falls; self-supervised, the hidden clean signal shows it restores."""
    settings = TrainSettings(mode=mode, steps=60, checkpoint_every=20, input_sdr=(5.0, 5.0),
                             **{**TINY, "batch": 8}, **extra)
    with pytest.warns(UserWarning, match="broken"):
        train([corpus], tmp_path / "m.pt", settings, tmp_path / "cache", log=lambda m: None)
    metadata = read_checkpoint(tmp_path / "m.pt")["metadata"]
    records = json.loads(read_checkpoint(tmp_path / "m.pt.resume")["training"]["history"])
    assert records[-1]["loss"] < records[0]["loss"]
    if mode == "self-supervised":
        assert records[-1]["sdr_gain"] > records[0]["sdr_gain"] + 1.0
    assert metadata["training"]["steps"] == 60 and metadata["training"]["mode"] == mode


def test_self_supervised_on_real_clipped_audio(tmp_path, clipped_corpus):
    settings = TrainSettings(mode="self-supervised", simulate_clipping=False, steps=4, checkpoint_every=2, **TINY)
    train([clipped_corpus], tmp_path / "m.pt", settings, tmp_path / "cache", log=lambda m: None)
    model, metadata = load_checkpoint(tmp_path / "m.pt")
    assert metadata["training"]["settings"]["simulate_clipping"] is False


def test_clean_audio_is_refused_for_real_clipping(tmp_path, corpus):
    settings = TrainSettings(mode="self-supervised", simulate_clipping=False, steps=2, **TINY)
    with pytest.raises(ValueError, match="no clipping found"):
        train([corpus], tmp_path / "m.pt", settings, tmp_path / "cache", log=lambda m: None)


def test_crops_too_short_for_the_network_are_refused(tmp_path, corpus):
    spectral = Declipper(UNetConfig(widths=(4, 8, 16, 32), kernel=3, stride=2, domain="stft", n_fft=1024, hop=256,
                                    scales=(1, 2)))
    save_checkpoint(tmp_path / "s.pt", spectral, {})
    settings = TrainSettings(steps=2, **TINY)  # 2048-sample crops; the network needs 2 * 256 * 2 ** 3
    with pytest.raises(ValueError, match="--crop must be a multiple of 512 and at least 4096"):
        train([corpus], tmp_path / "m.pt", settings, tmp_path / "cache", init=tmp_path / "s.pt", log=lambda m: None)


@pytest.mark.parametrize("mode", ["supervised", "self-supervised"])
def test_resume_continues_exactly(tmp_path, corpus, mode):
    settings = TrainSettings(mode=mode, steps=8, checkpoint_every=4, teacher_decay=0.9, **TINY)
    train([corpus], tmp_path / "full.pt", settings, tmp_path / "cache", log=lambda m: None)

    def interrupt(step, loss):
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train([corpus], tmp_path / "cut.pt", settings, tmp_path / "cache", log=lambda m: None, on_step=interrupt)
    train([corpus], tmp_path / "cut.pt", settings, tmp_path / "cache", resume=True, log=lambda m: None)
    for name, tensor in weights(tmp_path / "full.pt").items():
        assert torch.equal(tensor, weights(tmp_path / "cut.pt")[name]), name
    commands = read_checkpoint(tmp_path / "cut.pt")["metadata"]["training"]["commands"]
    assert [c["from_step"] for c in commands] == [0, 4]


def test_an_ensemble_fine_tunes_jointly_and_resumes(tmp_path, corpus, random_model_path):
    """Both members of an ensemble learn, and an interrupted run picks the ensemble up again."""
    spectral = Declipper(UNetConfig(widths=(4, 8), kernel=3, stride=2, domain="stft", n_fft=256, hop=64))
    ensemble = Ensemble.of([load_checkpoint(random_model_path)[0], spectral])
    save_checkpoint(tmp_path / "start.pt", ensemble, {})
    settings = TrainSettings(steps=4, checkpoint_every=2, **{**TINY, "crop": 4096})

    def interrupt(step, loss):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train([corpus], tmp_path / "e.pt", settings, tmp_path / "cache", init=tmp_path / "start.pt",
              log=lambda m: None, on_step=interrupt)
    train([corpus], tmp_path / "e.pt", settings, tmp_path / "cache", init=tmp_path / "start.pt", resume=True,
          log=lambda m: None)
    trained, metadata = load_checkpoint(tmp_path / "e.pt")
    assert isinstance(trained, Ensemble) and metadata["training"]["steps"] == 4
    for before, after in zip(ensemble.members, trained.members):
        assert any(not torch.equal(a, b) for a, b in zip(before.state_dict().values(), after.state_dict().values()))


def test_two_processes_train_data_parallel(tmp_path, corpus):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "declipper", "train", str(corpus), "--out", str(tmp_path / "ddp.pt"), "--init", "none",
               "--steps", "4", "--checkpoint-every", "2", "--batch", "2", "--crop", "2048", "--widths", "8,16",
               "--precision", "fp32", "--device", "cpu", "--threads", "1", "--cache", str(tmp_path / "cache")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    metadata = read_checkpoint(tmp_path / "ddp.pt")["metadata"]
    assert metadata["training"]["processes"] == 2 and metadata["training"]["steps"] == 4
    assert len(json.loads(read_checkpoint(tmp_path / "ddp.pt.resume")["training"]["sources"])) == 2


def test_fine_tuning_defaults_to_a_frozen_teacher_and_scratch_to_the_reliable_region(tmp_path, clipped_corpus,
                                                                                     random_model_path):
    """The measured defaults (docs/experiments.md): a frozen copy of the starting model anchors long plateaus."""
    from typer.testing import CliRunner

    from declipper.cli import app

    common = [str(clipped_corpus), "--mode", "self-supervised", "--steps", "2", "--batch", "2", "--crop", "2048",
              "--precision", "fp32", "--device", "cpu", "--cache", str(tmp_path / "cache")]
    runner = CliRunner()
    result = runner.invoke(app, ["train", *common, "--init", str(random_model_path), "--out", str(tmp_path / "f.pt")])
    assert result.exit_code == 0, result.output
    settings = read_checkpoint(tmp_path / "f.pt")["metadata"]["training"]["settings"]
    assert settings["ei_region"] == "all" and settings["teacher_decay"] == 1.0 and settings["gains"] == [1.0, 2.0]
    assert "teacher" in read_checkpoint(tmp_path / "f.pt.resume")["training"]
    result = runner.invoke(app, ["train", *common, "--init", "none", "--widths", "8,16", "--out", str(tmp_path / "s.pt")])
    assert result.exit_code == 0, result.output
    settings = read_checkpoint(tmp_path / "s.pt")["metadata"]["training"]["settings"]
    assert settings["ei_region"] == "reliable" and settings["teacher_decay"] == 0.0 and settings["gains"] == [1.0, 6.0]


def test_a_time_budget_ends_the_run_with_a_checkpoint(tmp_path, corpus):
    """--minutes stops a run long before its step count, and what it learned is saved."""
    settings = TrainSettings(steps=100000, checkpoint_every=100000, minutes=2 / 60, **TINY)
    train([corpus], tmp_path / "m.pt", settings, tmp_path / "cache", log=lambda m: None)
    metadata = read_checkpoint(tmp_path / "m.pt")["metadata"]["training"]
    assert 0 < metadata["steps"] < 100000 and metadata["wall_time_s"] >= 2.0




def test_coded_crops_are_clipped_at_the_band_the_detector_flags(tmp_path, corpus):
    """Half the crops go through a codec after clipping at full scale: their input is clipped at the
    bottom of the decoded band, every sample there counts as saturated, and the clean signal mostly
    lies beyond it; the uncoded half is plain clipping at full scale."""
    from declipper.data import AudioCorpus
    from declipper.training import CodedClipping

    settings = TrainSettings(codecs=("mp3-64", "vorbis-q4", "opus-32"), coded_share=0.5, crop=8192)
    # the corpus is at 16 kHz, where libsndfile codes Vorbis and Opus; at 44.1 kHz MP3 too
    source = CodedClipping(AudioCorpus([corpus], tmp_path / "cache", (44100,)), settings, seed=0)
    y, physics, clean = source.batch(16, torch.device("cpu"))
    level = physics.upper
    assert (y.abs() <= level + 1e-6).all()
    full_scale = CodedClipping.FULL_SCALE
    coded = (level < full_scale).flatten()
    plain = (y == clean.clamp(-full_scale, full_scale)).all(dim=1)
    assert 2 <= int(coded.sum()) and 2 <= int(plain.sum())  # both kinds in a batch
    assert (level[coded] > 0.6).all()  # the band's edge lies near full scale: the codec lined up
    mask = physics.mask(y)
    assert ((mask != 0).float().mean(dim=1)[coded] > 0).all()
    beyond = (clean.abs() >= 0.9 * level)[mask != 0].float().mean()
    assert beyond > 0.95
    with pytest.raises(ValueError, match="unknown codec"):
        TrainSettings(codecs=("aac-128",)).check()


def test_training_on_coded_crops_runs_and_records_its_codecs(tmp_path, corpus):
    settings = TrainSettings(steps=2, codecs=("mp3-64",), **{**TINY, "crop": 4096})
    train([corpus], tmp_path / "m.pt", settings, tmp_path / "cache", log=lambda m: None)
    metadata = read_checkpoint(tmp_path / "m.pt")["metadata"]
    assert metadata["training"]["settings"]["codecs"] == ["mp3-64"]
