import pytest
import torch

from declipper.physics import (ClippingLevels, channel_mask, clip, drop_short_runs, project_consistent, sdr_db,
                               threshold_for_input_sdr)
from tests.conftest import music


def test_clip_and_mask_agree():
    x = torch.from_numpy(music(1.0, 16000, 1).T.copy())
    levels = ClippingLevels.uniform(1, 0.5, -0.3)
    y = clip(x, 0.5, -0.3)
    mask = channel_mask(y, levels.as_tensors())
    assert y.max() == pytest.approx(0.5) and y.min() == pytest.approx(-0.3)
    assert torch.equal(mask > 0, x >= 0.5) and torch.equal(mask < 0, x <= -0.3)


@pytest.mark.parametrize("target", [1.0, 5.0, 10.0, 20.0])
def test_threshold_hits_the_input_sdr(target):
    x = torch.from_numpy(music(2.0, 16000, 1, seed=3)[:, 0]).double()
    theta = threshold_for_input_sdr(x, target, iterations=60)
    assert float(sdr_db(x, clip(x, theta, -theta))) == pytest.approx(target, abs=1e-3)


def test_projection_is_consistent_and_idempotent():
    y = torch.tensor([[0.1, 0.5, 0.5, -0.2, -0.5]])
    mask = torch.tensor([[0, 1, 1, 0, -1]], dtype=torch.int8)
    upper, lower = torch.tensor([[0.5]]), torch.tensor([[-0.5]])
    guess = torch.tensor([[0.3, 0.2, 0.9, 0.0, 0.1]])
    out = project_consistent(guess, y, mask, upper, lower)
    assert out[0].tolist() == pytest.approx([0.1, 0.5, 0.9, -0.2, -0.5])
    assert torch.equal(project_consistent(out, y, mask, upper, lower), out)
    assert torch.equal(clip(out, 0.5, -0.5), y)


def test_short_runs_are_dropped_and_long_runs_kept_whole():
    mask = torch.tensor([[0, 1, 0, 1, 1, 1, 0, -1, -1, 0, 1, 1]], dtype=torch.int8)
    assert drop_short_runs(mask, 2).tolist() == [[0, 0, 0, 1, 1, 1, 0, -1, -1, 0, 1, 1]]
    assert drop_short_runs(mask, 3).tolist() == [[0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 1]]  # a run at the end may go on
    assert torch.equal(drop_short_runs(mask, 1), mask)
