"""The core invariants over random signals, levels, polarities, rates and lengths (Hypothesis).

Examples are drawn from a fixed seed (derandomize) so that CI is repeatable; a failure prints the
example that broke the invariant."""
import math

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from declipper import ClippingLevels, EngineSettings, detect, restore

RATES = [8000, 16000, 22050, 44100, 48000, 96000, 192000]
EXACT = EngineSettings(precision="fp32", window=8192)
checked = settings(max_examples=40, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@st.composite
def signals(draw):
    """Tones with harmonics and noise at a random loudness: [frames, channels] float32."""
    rate = draw(st.sampled_from(RATES))
    frames = draw(st.integers(1, 12000))
    channels = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    t = np.arange(frames)[:, None] / rate
    x = np.zeros((frames, channels))
    for _ in range(draw(st.integers(1, 4))):
        f0 = rng.uniform(40, rate / 6)
        x += sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3, channels)) / k for k in (1, 2, 3))
    x += draw(st.floats(0, 0.3)) * rng.standard_normal(x.shape)
    peak = np.abs(x).max()
    x = x / (peak if peak > 0 else 1) * draw(st.floats(1e-3, 4.0))
    return x.astype(np.float32), rate


@st.composite
def clipped_signals(draw):
    """A signal clipped at random levels: one polarity or both, symmetric or not."""
    x, rate = draw(signals())
    peak = float(np.abs(x).max()) or 1.0
    upper = draw(st.floats(0.05, 1.0)) * peak if draw(st.booleans()) else math.inf
    lower = -draw(st.floats(0.05, 1.0)) * peak if draw(st.booleans()) or math.isinf(upper) else -math.inf
    levels = ClippingLevels.uniform(x.shape[1], upper, lower)
    y = np.clip(x, lower, upper).astype(np.float32)
    return y, rate, levels


@given(clipped_signals())
@checked
def test_restore_keeps_shape_reliable_samples_and_the_levels(random_model, case):
    y, rate, levels = case
    out = restore(y, rate, random_model, levels=levels, engine=EXACT)
    assert out.shape == y.shape and out.dtype == np.float32 and np.isfinite(out).all()
    high, low = y >= levels.upper[0], y <= levels.lower[0]
    reliable = ~(high | low)
    assert np.array_equal(out[reliable], y[reliable])  # bit for bit
    assert (out[high] >= levels.upper[0]).all() and (out[low] <= levels.lower[0]).all()
    assert (np.sign(out[high | low]) == np.sign(y[high | low])).all()


@given(clipped_signals(), st.floats(0.05, 20.0))
@checked
def test_scaling_the_input_and_levels_scales_the_restoration(random_model, case, gain):
    y, rate, levels = case
    upper, lower = (np.float32(level * gain) for level in (levels.upper[0], levels.lower[0]))
    # the saturated samples set to the scaled levels as stored, so that rounding cannot move one off its plateau
    y_scaled = np.where(y >= levels.upper[0], upper, np.where(y <= levels.lower[0], lower, y * np.float32(gain)))
    out = restore(y, rate, random_model, levels=levels, engine=EXACT)
    scaled = restore(y_scaled, rate, random_model, levels=ClippingLevels.uniform(y.shape[1], float(upper), float(lower)),
                     engine=EXACT)
    np.testing.assert_allclose(scaled, gain * out, rtol=2e-4, atol=2e-6 * gain * max(float(np.abs(y).max()), 1e-3))


@st.composite
def unclipped(draw):
    """Noise, or one sine (a test tone of at least two periods) at any rate, frequency, phase, level
    and length. Less than a period of a slow sine, ending at its crest, is a short flat run at the
    top, as a clipped one is: no amplitude statistic can tell them apart."""
    rate = draw(st.sampled_from(RATES))
    channels = draw(st.integers(1, 2))
    if draw(st.booleans()):
        frames = draw(st.integers(1, 20000))
        x = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).standard_normal((frames, channels))
    else:
        frequency = draw(st.floats(20, rate / 2.2))
        frames = draw(st.integers(int(2 * rate / frequency) + 1, 20000 + int(2 * rate / frequency)))
        t = np.arange(frames)[:, None] / rate
        phase = np.array([draw(st.floats(0, 6.3)) for _ in range(channels)])
        x = np.sin(2 * np.pi * frequency * t + phase)
    return (x / max(np.abs(x).max(), 1e-12) * draw(st.floats(1e-3, 4.0))).astype(np.float32)


@given(unclipped())
@checked
def test_detection_finds_no_clipping_in_unclipped_noise_and_tones(x):
    found = detect(x)
    assert not found.levels.any_clipped and not found.mask.any()
