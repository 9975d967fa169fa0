"""The shipped model on the shipped example: it must really restore, and say where it came from."""
import numpy as np
import pytest
import soundfile as sf

from declipper import EngineSettings, load_model, restore
from declipper.checkpoint import default_model_path
from declipper.evaluation import clip_at_input_sdr, sdr
from tests.conftest import EXAMPLES


@pytest.fixture(scope="module")
def shipped():
    return load_model()


def test_metadata_records_how_it_was_made(shipped):
    meta = shipped.metadata
    assert default_model_path().name == "declipper-small.pt"
    assert meta["training"]["command"].startswith("declipper train")
    assert meta["training"]["steps"] > 1000 and meta["training"]["mode"] == "supervised"
    assert {44100, 48000} <= set(meta["sample_rates"])
    assert meta["architecture"] == "unet1d"


def test_restores_the_example_clip(shipped):
    """The shipped clip is the clean excerpt clipped at 10 dB input SDR, scaled to full scale, in 16 bit."""
    clean, rate = sf.read(EXAMPLES / "feelings-clean.flac", dtype="float32", always_2d=True)
    clipped, _ = sf.read(EXAMPLES / "feelings-clipped.wav", dtype="float32", always_2d=True)
    _, levels = clip_at_input_sdr(clean, 10.0)
    reference = clean * (32767 / 32768) / levels.upper[0]  # the clean signal at the clipped file's scale
    restored = restore(clipped, rate, shipped)  # levels found by detection, as `declipper fix` does
    gain = sdr(reference, restored) - sdr(reference, clipped)
    assert gain > 5.0, f"delta-SDR on the example fell to {gain:.2f} dB"  # measured: 6.6 dB


def test_windows_blend_without_seams(shipped):
    """Restoring in the default windows agrees with one pass over the whole 3 s."""
    clipped, rate = sf.read(EXAMPLES / "feelings-clipped.wav", dtype="float32", always_2d=True)
    clipped = clipped[: 3 * rate]
    fp32 = dict(precision="fp32")
    windowed = restore(clipped, rate, shipped, engine=EngineSettings(**fp32))
    whole = restore(clipped, rate, shipped, engine=EngineSettings(window=2 * len(clipped), **fp32))
    inner = slice(8192, -8192)
    excess = whole[inner] - clipped[inner]
    seam = windowed[inner] - whole[inner]
    # the windowed excess matches the one-pass excess to 40 dB (measured: 49 dB with windows of 65536
    # and 1/8 overlap; 44 dB with 32768 and 1/4; 39 dB with 32768 and 1/8; the mean delta-SDR on
    # held-out music moved by less than 0.01 dB between all three)
    assert 10 * np.log10((excess**2).sum() / (seam**2).sum()) > 40.0


def test_bf16_restores_as_fp32_does(shipped):
    """bf16 is the fast path on CPUs with AMX and on GPUs; it must give the same audio, near enough.
    (A oneDNN bug once made bf16 strided convolutions return garbage here: delta-SDR fell by 5 dB.)"""
    clipped, rate = sf.read(EXAMPLES / "feelings-clipped.wav", dtype="float32", always_2d=True)
    fp32 = restore(clipped, rate, shipped, engine=EngineSettings(precision="fp32"))
    bf16 = restore(clipped, rate, shipped, engine=EngineSettings(precision="bf16"))
    excess, error = fp32 - clipped, bf16 - fp32
    assert 10 * np.log10((excess**2).sum() / (error**2).sum()) > 30.0  # measured: 47.8 dB (7.7 dB with the bug)


def test_the_large_model_restores_the_example_clip_better():
    """`--model large`: the waveform network (half the estimate) and a spectral one per frame length
    (a sixth each). On the example (clipped at 10 dB input SDR) it gains about 3 dB more than the default."""
    large = load_model("large")
    assert [member["scales"] for member in large.metadata["config"]["members"]] == [[1], [1], [2], [4]]
    assert [member["domain"] for member in large.metadata["config"]["members"]] == ["time", "stft", "stft", "stft"]
    assert large.metadata["config"]["weights"] == pytest.approx([1 / 2, 1 / 6, 1 / 6, 1 / 6])
    assert large.metadata["stages"][-1]["command"].startswith("declipper train")
    clean, rate = sf.read(EXAMPLES / "feelings-clean.flac", dtype="float32", always_2d=True)
    clipped, _ = sf.read(EXAMPLES / "feelings-clipped.wav", dtype="float32", always_2d=True)
    _, levels = clip_at_input_sdr(clean, 10.0)
    reference = clean * (32767 / 32768) / levels.upper[0]
    gain = sdr(reference, restore(clipped, rate, large)) - sdr(reference, clipped)
    assert gain > 8.5, f"delta-SDR of the large model on the example fell to {gain:.2f} dB"  # measured: 9.5 dB
