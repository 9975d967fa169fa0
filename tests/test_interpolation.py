"""Consistent cubic interpolation, the floor every restorer is measured against."""
import numpy as np

from declipper.evaluation import clip_at_input_sdr, delta_sdr
from declipper.interpolation import cubic_channel, cubic_restore
from declipper.physics import ClippingLevels


def test_a_clipped_parabola_comes_back_exactly():
    n = np.arange(200, dtype=np.float64)
    x = 1.0 - ((n - 100) / 60) ** 2  # one hump, a quadratic: the slopes' differences are exact on it
    saturated = x > 0.9
    y = np.minimum(x, 0.9)
    restored = cubic_channel(y, saturated, 0.9, -np.inf)
    assert saturated.sum() > 20
    assert np.abs(restored - x).max() < 1e-9


def test_restoration_is_consistent_and_keeps_the_shape():
    rng = np.random.default_rng(0)
    t = np.arange(22050) / 22050
    clean = (0.6 * np.sin(2 * np.pi * 330 * t) + 0.3 * np.sin(2 * np.pi * 495 * t + 1)
             + 0.01 * rng.standard_normal(t.size)).astype(np.float32)[:, None]
    clipped, levels = clip_at_input_sdr(clean, 20)
    restored = cubic_restore(clipped, levels)
    assert restored.shape == clipped.shape and restored.dtype == np.float32
    reliable = np.abs(clipped[:, 0]) < levels.upper[0]
    assert np.array_equal(restored[reliable], clipped[reliable])  # bit for bit
    high = clipped[:, 0] >= levels.upper[0]
    assert (restored[high, 0] >= levels.upper[0]).all() and (restored[~high & ~reliable, 0] <= levels.lower[0]).all()
    assert delta_sdr(clean, clipped, restored)["delta_sdr"] > 6  # smooth tones: short runs bridge well


def test_runs_at_the_edges_and_unclipped_channels():
    y = np.array([[0.5, 0.1], [0.5, -0.2], [0.3, 0.3], [0.1, 0.1], [-0.5, 0.0]], dtype=np.float32)
    levels = ClippingLevels((0.5, np.inf), (-0.5, -np.inf), (0.0, 0.0), (0.0, 0.0))
    restored = cubic_restore(y, levels)
    assert np.isfinite(restored).all()
    assert (restored[:2, 0] >= 0.5).all() and restored[4, 0] <= -0.5
    assert np.array_equal(restored[:, 1], y[:, 1])  # a channel that is not clipped is left as it is
