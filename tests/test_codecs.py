"""The lossy codecs that benchmarks and training put clipped audio through: the bit rates asked
for, and decoded audio that lines up with the input sample for sample."""
import numpy as np
import pytest

from declipper.codecs import Codec
from tests.conftest import music


@pytest.mark.parametrize("name, rate", [("mp3-128", 44100), ("mp3-320", 48000), ("vorbis-q4", 44100),
                                        ("opus-128", 48000)])
def test_round_trip_keeps_length_and_alignment(name, rate):
    x = music(2, rate, seed=1)
    y = Codec(name).round_trip(x, rate)
    assert y.shape == x.shape and y.dtype == np.float32
    lags = range(-300, 301)
    correlation = [np.dot(x[1000:-1000, 0], np.roll(y[:, 0], -lag)[1000:-1000]) for lag in lags]
    assert lags[int(np.argmax(correlation))] == 0
    error = y - x
    assert 10 * np.log10((x**2).sum() / (error**2).sum()) > 10  # coded, not garbled


@pytest.mark.parametrize("name, kbps", [("mp3-128", 128), ("mp3-320", 320), ("opus-128", 128)])
def test_constant_bit_rates_are_the_ones_asked_for(name, kbps):
    x = music(6, 48000, seed=2)
    size = len(Codec(name).encode(x, 48000))
    assert size * 8 / 6 / 1000 == pytest.approx(kbps, rel=0.1)


def test_unknown_codecs_and_rates_are_refused():
    with pytest.raises(ValueError, match="unknown codec"):
        Codec("aac-128")
    assert not Codec("opus-64").takes(44100) and not Codec("mp3-128").takes(22050)
    with pytest.raises(ValueError, match="cannot code audio at 44100 Hz"):
        Codec("opus-64").encode(music(1, 44100), 44100)
