"""Files at the rates users bring, and checkpoints that load safely or fail clearly."""
import pickle

import numpy as np
import pytest
import soundfile as sf
import torch

from declipper import load_model
from declipper.api import restore_file, scan_file
from declipper.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from declipper.network import Declipper, UNetConfig
from tests.conftest import music


@pytest.mark.parametrize("rate", [16000, 44100, 48000, 96000])
def test_restore_file_keeps_length_rate_and_channels(tmp_path, random_model, rate):
    source = tmp_path / f"song-{rate}.wav"
    clean = music(1.5, rate, channels=2, seed=rate)
    y = np.clip(clean, -0.35, 0.35)
    sf.write(source, y, rate, subtype="FLOAT")
    report = restore_file(source, tmp_path / "out.wav", random_model)
    restored, out_rate = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)
    assert out_rate == rate and restored.shape == y.shape
    assert report.levels.upper == pytest.approx((0.35, 0.35))
    saturated = np.abs(y) >= 0.35 * (1 - 1e-4)  # within the detection tolerance of the level
    assert np.array_equal(restored[~saturated], y[~saturated])
    assert report.clipped_fraction == pytest.approx(saturated.mean(axis=0).tolist())


def test_mono_file_and_scan_agree(tmp_path, random_model):
    source = tmp_path / "mono.flac"
    y = np.clip(music(2, 22050, channels=1, seed=1), -0.4, 0.4)
    sf.write(source, y, 22050, subtype="PCM_24")
    scanned = scan_file(source)
    restored = restore_file(source, tmp_path / "mono.out.flac", random_model)
    assert scanned.channels == restored.channels == 1
    assert scanned.clipped_fraction == pytest.approx(restored.clipped_fraction)
    assert scanned.longest_run[0] > 1


def test_rate_outside_the_supported_range_is_refused(tmp_path, random_model):
    source = tmp_path / "low.wav"
    sf.write(source, np.clip(music(1, 4000, seed=2), -0.3, 0.3), 4000)
    with pytest.raises(ValueError, match="sample rate"):
        restore_file(source, tmp_path / "out.wav", random_model)


def test_checkpoint_round_trip_keeps_weights_and_metadata(tmp_path):
    model = Declipper(UNetConfig(widths=(8, 16), kernel=3, stride=2, output="free"))
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, {"training": {"command": "declipper train x --out m.pt"}, "sample_rates": [44100]})
    loaded, metadata = load_checkpoint(path)
    assert metadata["config"] == {"widths": [8, 16], "kernel": 3, "stride": 2, "output": "free", "domain": "time",
                                  "n_fft": 1024, "hop": 256, "scales": [1]}
    assert loaded.config == model.config
    assert metadata["training"]["command"].startswith("declipper train")
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_a_half_precision_checkpoint_is_half_the_size_and_loads_as_float32(tmp_path, random_model):
    """Shipped files store float16 weights; they load back as float32 and restore as before."""
    save_checkpoint(tmp_path / "full.pt", random_model, {})
    save_checkpoint(tmp_path / "half.pt", random_model, {}, half=True)
    assert (tmp_path / "half.pt").stat().st_size < 0.6 * (tmp_path / "full.pt").stat().st_size
    loaded, _ = load_checkpoint(tmp_path / "half.pt")
    for a, b in zip(random_model.state_dict().values(), loaded.state_dict().values()):
        assert b.dtype == torch.float32
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4)


def test_checkpoints_that_would_run_code_are_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"format": "declipper-checkpoint/1", "x": Payload()}, protocol=2))
    with pytest.raises(CheckpointError, match="cannot read"):
        load_model(path)


def test_foreign_and_mismatched_checkpoints_fail_clearly(tmp_path):
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not a declipper checkpoint"):
        load_model(foreign)
    mismatched = tmp_path / "mismatched.pt"
    save_checkpoint(mismatched, Declipper(UNetConfig(widths=(8, 16), kernel=3, stride=2)), {})
    payload = torch.load(mismatched, weights_only=True)
    payload["metadata"] = payload["metadata"].replace('"kernel": 3', '"kernel": 5')
    torch.save(payload, mismatched)
    with pytest.raises(CheckpointError, match="do not match"):
        load_model(mismatched)
