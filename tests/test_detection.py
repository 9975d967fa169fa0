"""Detection on the cases users bring: each must find the level, and unclipped audio must stay alone."""
import io

import numpy as np
import pytest
import soundfile as sf

from declipper import detect
from declipper.api import scan_file
from declipper.codecs import Codec
from declipper.detection import MaskStatistics, parse_threshold
from tests.conftest import music

RATE = 44100


def hard_clip(x, upper, lower=None):
    return np.clip(x, -upper if lower is None else lower, upper)


def true_mask_agreement(found, clean, upper, lower):
    truth = (clean >= upper) | (clean <= lower)
    flagged = found.mask != 0
    return (truth == flagged).mean()


def test_hard_clipping_at_full_scale_in_16_bit():
    clean = music(8, RATE, seed=1, peak=1.6)
    buffer = io.BytesIO()
    sf.write(buffer, hard_clip(clean, 1.0), RATE, subtype="PCM_16", format="WAV")
    buffer.seek(0)
    y, _ = sf.read(buffer, dtype="float32", always_2d=True)
    found = detect(y)
    for c in range(2):
        assert found.levels.upper[c] == pytest.approx(32767 / 32768, abs=1e-4)
        assert found.levels.lower[c] == pytest.approx(-1.0, abs=1e-4)
    assert true_mask_agreement(found, clean, 0.99997, -0.99997) > 0.9999


def test_clipping_at_a_lower_level_after_turning_down():
    clean = music(8, RATE, seed=2)
    y = 0.5 * hard_clip(clean, 0.45)
    found = detect(y)
    assert found.levels.upper == pytest.approx((0.225, 0.225), rel=1e-4)
    assert found.levels.lower == pytest.approx((-0.225, -0.225), rel=1e-4)
    assert true_mask_agreement(found, clean, 0.45, -0.45) > 0.9999


def test_asymmetric_levels_with_dc_offset():
    clean = music(8, RATE, seed=3) + 0.05
    y = hard_clip(clean, 0.55, -0.4)
    found = detect(y)
    assert found.levels.upper == pytest.approx((0.55, 0.55), rel=1e-4)
    assert found.levels.lower == pytest.approx((-0.4, -0.4), rel=1e-4)


def test_dithered_clipping():
    rng = np.random.default_rng(0)
    clean = music(8, RATE, seed=4)
    lsb = 1 / 32768
    y = hard_clip(clean, 0.7) + (rng.uniform(-lsb, lsb, clean.shape) + rng.uniform(-lsb, lsb, clean.shape))
    y = (np.round(y * 32768) / 32768).astype(np.float32)
    found = detect(y)
    assert found.levels.upper == pytest.approx((0.7, 0.7), abs=3 * lsb)
    assert true_mask_agreement(found, clean, 0.7, -0.7) > 0.999


@pytest.mark.parametrize("codec", ["vorbis-q4", "mp3-128"])
def test_clipping_then_lossy_coding(codec, tmp_path):
    """A master clipped at full scale, then coded: the plateaus become a bump that overshoots
    full scale. The band flagged around it holds nearly every clipped sample, and the clipped
    share reported is the truth's, not the (wider) band's."""
    clean = music(10, RATE, seed=5, peak=2.0)
    path = tmp_path / f"clipped{Codec(codec).suffix}"
    path.write_bytes(Codec(codec).encode(hard_clip(clean, 1.0), RATE))
    y, _ = sf.read(path, dtype="float32", always_2d=True)
    assert np.abs(y).max() > 1.0  # the decoded plateaus ripple above the level: never clamp
    found = detect(y)
    truth = np.abs(clean) >= 1.0
    flagged = found.mask != 0
    for c in range(2):
        assert found.levels.upper[c] + found.levels.upper_smear[c] == pytest.approx(1.0, rel=0.08)
        assert found.levels.lower[c] - found.levels.lower_smear[c] == pytest.approx(-1.0, rel=0.08)
        assert 0.01 < found.levels.upper_smear[c] < 0.4  # the band reaches below the old level
    assert (flagged & truth).sum() / truth.sum() > 0.95  # nearly every clipped sample is flagged
    assert np.abs(clean[flagged & ~truth]).min() > 0.6  # the rest were close to the level
    report = scan_file(path)
    for c in range(2):
        assert report.clipped_fraction[c] == pytest.approx(truth[:, c].mean(), rel=0.25)
        assert report.flagged_fraction[c] > report.clipped_fraction[c]


@pytest.mark.parametrize("codec", ["vorbis-q4", "mp3-128"])
def test_coded_clipping_decoded_to_16_bit(codec):
    """Decoders that write integers (ffmpeg's default WAV) clip the codec's overshoot again at full
    scale: a hard plateau sits on top of the coded band, and the band is what must be flagged."""
    clean = music(10, RATE, seed=5, peak=2.0)
    decoded = Codec(codec).round_trip(hard_clip(clean, 1.0), RATE)
    y = (np.clip(np.round(decoded * 32768), -32768, 32767) / 32768).astype(np.float32)
    found = detect(y)
    truth = np.abs(clean) >= 1.0
    for c in range(2):
        assert found.levels.upper[c] < 0.97 and found.levels.upper_smear[c] > 0.01
    assert ((found.mask != 0) & truth).sum() / truth.sum() > 0.95


@pytest.mark.parametrize("codec", ["vorbis-q4", "mp3-128", "mp3-320"])
def test_unclipped_music_coded_at_full_scale_is_not_flagged(codec):
    clean = music(10, RATE, seed=9, peak=1 - 2**-15)
    assert not detect(Codec(codec).round_trip(clean, RATE)).levels.any_clipped


def loud_master(seconds, seed):
    """An unclipped master pushed into a look-ahead brick-wall limiter at -0.1 dBFS, in 16 bit."""
    x = music(seconds, RATE, seed=seed, peak=3.0).astype(np.float64)
    ceiling = 10 ** (-0.1 / 20)
    need = np.minimum(1.0, ceiling / np.maximum(np.abs(x).max(axis=1), 1e-9))
    lookahead = 64
    padded = np.concatenate([need, np.ones(lookahead)])
    gain = np.array([padded[i : i + lookahead].min() for i in range(len(need))])
    release = np.empty_like(gain)
    level = 1.0
    for i, g in enumerate(gain):  # instant attack (already looked ahead), smooth release
        level = g if g < level else level + (g - level) * 0.001
        release[i] = level
    kernel = np.hanning(2 * lookahead + 1)
    smooth = np.convolve(release, kernel / kernel.sum(), mode="same")
    y = x * np.minimum(smooth, release)[:, None]
    y *= ceiling / np.abs(y).max()
    return (np.round(y * 32767) / 32768).astype(np.float32)


def test_unclipped_loud_master_is_left_alone():
    y = loud_master(20, seed=6)
    found = detect(y)
    assert (found.mask != 0).mean() < 1e-4


@pytest.mark.parametrize("seed", [7, 8])
def test_unclipped_music_is_not_flagged(seed):
    found = detect(music(10, RATE, seed=seed))
    assert not found.levels.any_clipped
    assert (found.mask != 0).sum() == 0


def test_threshold_override_and_parsing():
    assert parse_threshold("0.9") == (0.9, -0.9)
    assert parse_threshold("0.9,-0.8") == (0.9, -0.8)
    upper, lower = parse_threshold("-6dB")
    assert upper == pytest.approx(0.501187, rel=1e-5) and lower == pytest.approx(-0.501187, rel=1e-5)
    for bad in ("", "loud", "3dB", "0", "1,2,3"):
        with pytest.raises(ValueError):
            parse_threshold(bad)
    y = hard_clip(music(2, RATE, seed=9), 0.5)
    found = detect(y, threshold=(0.4, -0.4))
    assert found.levels.upper == (0.4, 0.4)
    assert ((found.mask != 0) == (np.abs(y) >= 0.4 * (1 - 1e-4))).all()


def test_min_run_drops_isolated_samples():
    y = hard_clip(music(4, RATE, seed=10), 0.5)
    one = detect(y, min_run=1).mask
    three = detect(y, min_run=3).mask
    assert (three != 0).sum() < (one != 0).sum()
    assert ((three != 0) <= (one != 0)).all()


def test_mask_statistics_follow_runs_across_blocks():
    mask = np.array([0, 1, 1, 1, 0, -1, -1, 1, 1, 1, 1, 1, 0], dtype=np.int8)[:, None]
    whole = MaskStatistics(1)
    whole.update(mask)
    pieces = MaskStatistics(1)
    for part in np.array_split(mask, [2, 9, 10]):
        pieces.update(part)
    for stats in (whole, pieces):
        assert stats.longest.tolist() == [5]
        assert stats.high.tolist() == [8] and stats.low.tolist() == [2]
