"""Network + A-SPADE: the blend stays consistent, is the weighted mean, its adaptive share follows how
far apart the two restorations are, and it streams like the engine."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from declipper import ASpadeSettings, restore
from declipper.evaluation import clip_at_input_sdr
from declipper.hybrid import STRETCH, adaptive_share, blend, check_share, combine
from declipper.sparse import aspade
from tests.conftest import music


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def clipped_song(random_model):
    """A clipped stereo song with its network and A-SPADE restorations."""
    clean = music(0.6, 16000, seed=5)
    y, levels = clip_at_input_sdr(clean, 5)
    network = restore(y, 16000, random_model, levels=levels)
    sparse = aspade(y, levels)
    return y, levels, network, sparse


def test_the_blend_is_consistent_and_the_weighted_mean(clipped_song):
    y, levels, network, sparse = clipped_song
    saturated = np.abs(y) >= np.array(levels.upper, dtype=np.float32) * (1 - 1e-6)
    assert saturated.any() and not np.array_equal(network[saturated], sparse[saturated])
    mixed = blend(network, sparse, 0.35)
    assert mixed.dtype == np.float32 and mixed.shape == y.shape
    assert np.array_equal(mixed[~saturated], y[~saturated])  # reliable samples bit for bit
    assert (np.abs(mixed[saturated]) >= np.abs(y[saturated])).all()  # never below the level again
    assert (np.sign(mixed[saturated]) == np.sign(y[saturated])).all()
    np.testing.assert_allclose(mixed, 0.65 * network + 0.35 * sparse, atol=1e-6)
    assert np.array_equal(blend(network, sparse, 0.0), network) and np.array_equal(blend(network, sparse, 1.0), sparse)


def test_the_hybrid_method_restores_what_the_blend_of_the_two_gives(clipped_song, random_model):
    y, levels, network, sparse = clipped_song
    hybrid = restore(y, 16000, random_model, levels=levels, method="hybrid", sparse_share=0.35)
    np.testing.assert_allclose(hybrid, blend(network, sparse, 0.35), atol=1e-6)
    quick = ASpadeSettings().quicker(4)
    quicker = restore(y, 16000, random_model, levels=levels, method="hybrid", sparse_settings=quick)
    np.testing.assert_allclose(quicker, combine(y, network, aspade(y, levels, quick)), atol=1e-6)
    assert not np.allclose(quicker, hybrid, atol=1e-4)  # the settings reach A-SPADE


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_a_share_outside_zero_to_one_is_refused(share, clipped_song, random_model):
    with pytest.raises(ValueError, match="share"):
        check_share(share)
    y, levels, _, _ = clipped_song
    with pytest.raises(ValueError, match="share"):
        restore(y, 16000, random_model, levels=levels, method="hybrid", sparse_share=share)


def test_the_adaptive_share_trusts_a_sparse_estimate_the_network_agrees_with():
    """Three stretches of a clipped song, restored (consistently) by a stand-in network with the clean
    signal and by a stand-in A-SPADE that equals it (they agree: share 1), then leaves y (it restored
    nothing the network sees: share 0), then goes half way (in between)."""
    clean = music(1.6, 16000, seed=3)
    y, levels = clip_at_input_sdr(clean, 5)
    frames = 3 * STRETCH
    y, network = y[:frames], clean[:frames]
    sparse = np.concatenate([network[:STRETCH], y[STRETCH : 2 * STRETCH],
                             (y + 0.5 * (network - y))[2 * STRETCH :]]).astype(np.float32)
    share = adaptive_share(y, network, sparse)
    assert share.shape == (frames, 1) and share.dtype == np.float32
    first, second, third = share[((np.arange(3) + 0.5) * STRETCH).astype(int), 0]
    assert first == pytest.approx(1.0) and second == pytest.approx(0.0, abs=1e-6) and 0.1 < third < 0.9
    assert np.abs(np.diff(share[:, 0])).max() <= 1.0 / STRETCH + 1e-6  # never jumps: linear between centres
    mixed = combine(y, network, sparse)
    saturated = np.abs(y) >= np.array(levels.upper, dtype=np.float32) * (1 - 1e-6)
    assert saturated[STRETCH : 2 * STRETCH].any()
    assert np.array_equal(mixed[~saturated], y[~saturated])  # reliable samples bit for bit
    assert (np.abs(mixed[saturated]) >= np.abs(y[saturated]) * (1 - 1e-6)).all()
    middle = slice(STRETCH + STRETCH // 2 - 8, STRETCH + STRETCH // 2 + 8)
    np.testing.assert_allclose(mixed[middle], network[middle], atol=1e-3)


def test_the_adaptive_share_of_an_unrestored_signal_leaves_it_as_it_is():
    y = music(0.3, 16000, seed=2) * 0.5
    assert np.array_equal(adaptive_share(y, y, y), np.zeros((len(y), 1), np.float32))
    assert np.array_equal(combine(y, y, y), y)
