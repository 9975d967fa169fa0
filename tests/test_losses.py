"""Losses on hand-made cases: zero where they should be, and gradients where L_NMC has none."""
import torch

from declipper.losses import AmplitudeGain, EquivarianceLoss, measurement_consistency, naive_consistency
from declipper.network import Declipper, UNetConfig
from declipper.physics import Clipping


def case():
    physics = Clipping(torch.tensor([[0.5]]), torch.tensor([[-0.4]]))
    y = torch.tensor([[0.1, 0.5, 0.5, -0.2, -0.4]])
    return physics, y


def test_consistent_estimates_cost_nothing():
    physics, y = case()
    consistent = torch.tensor([[0.1, 0.7, 0.5, -0.2, -0.9]])
    assert measurement_consistency(consistent, y, physics) == 0
    assert naive_consistency(consistent, y, physics) == 0


def test_mc_penalises_only_what_breaks_consistency():
    physics, y = case()
    estimate = torch.tensor([[0.2, 0.3, 0.9, -0.2, -0.1]])  # reliable off by 0.1, two saturated fall short
    expected = (0.1**2 + 0.2**2 + 0.3**2) / 0.45**2 / 5
    assert torch.isclose(measurement_consistency(estimate, y, physics), torch.tensor(expected))


def test_mc_has_gradient_where_the_naive_loss_has_none():
    physics, y = case()
    # on the saturated samples the estimate is *above* the level: clip() is flat there
    estimate = torch.tensor([[0.3, 0.8, 0.6, -0.2, -0.1]], requires_grad=True)
    naive_consistency(estimate, y, physics).backward()
    assert estimate.grad[0, 1:3].abs().sum() == 0
    estimate.grad = None
    shortfall = torch.tensor([[0.1, 0.45, 0.6, -0.2, -0.1]], requires_grad=True)
    naive = torch.tensor([[0.1, 0.45, 0.6, -0.2, -0.1]], requires_grad=True)
    measurement_consistency(shortfall, y, physics).backward()
    naive_consistency(naive, y, physics).backward()
    assert shortfall.grad[0, 4] != 0 and shortfall.grad[0, 1] != 0
    assert naive.grad[0, 2] == 0 and shortfall.grad[0, 2] == 0  # beyond the level: fine for both


def test_ei_with_unit_gain_is_the_restoration_error_of_x_hat_itself():
    """With g = 1, L_EI = ||x_hat - f(clip(x_hat))||^2: zero for a consistent x_hat that f keeps."""
    torch.manual_seed(0)
    model = Declipper(UNetConfig(widths=(8, 16), kernel=3, stride=4))
    physics = Clipping.symmetric(torch.tensor([0.5]))
    x = torch.sin(torch.linspace(0, 40, 256)).unsqueeze(0)
    x_hat = physics.restore(model, physics(x)).detach()
    loss = EquivarianceLoss(AmplitudeGain(1.0, 1.0))
    again = physics.restore(model, physics(x_hat))
    expected = ((again - x_hat).pow(2) / 0.25).mean()
    assert torch.isclose(loss(x_hat, physics, model, gains=torch.ones(1, 1)), expected)
    # f(clip(x_hat)) = f(y) = x_hat, because x_hat is consistent: clip(x_hat) = y
    assert torch.isclose(expected, torch.tensor(0.0), atol=1e-10)


def test_gains_are_drawn_in_range():
    g = AmplitudeGain(0.5, 2.0).sample(1000, generator=torch.Generator().manual_seed(0))
    assert g.min() >= 0.5 and g.max() <= 2.0 and g.shape == (1000, 1)


def test_a_free_network_is_judged_raw_and_served_projected():
    """The free output's raw estimate breaks consistency (L_MC > 0, with a gradient into the network);
    what users get is its projection, which clips back to y exactly."""
    torch.manual_seed(0)
    model = Declipper(UNetConfig(widths=(8, 16), kernel=3, stride=4, output="free"))
    physics = Clipping.symmetric(torch.tensor([0.5]))
    y = physics(torch.sin(torch.linspace(0, 40, 256)).unsqueeze(0))
    raw = physics.restore(model, y, project=False)
    loss = measurement_consistency(raw, y, physics)
    loss.backward()
    assert loss > 0 and all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    served = physics.restore(model, y)
    assert torch.equal(physics(served), y) and not torch.equal(raw, served)
    assert measurement_consistency(served, y, physics) == 0


def test_a_consistent_network_gives_mc_nothing_to_learn():
    """Why the default output makes L_MC identically zero, and L_EI the only self-supervised signal."""
    torch.manual_seed(0)
    model = Declipper(UNetConfig(widths=(8, 16), kernel=3, stride=4))
    physics = Clipping.symmetric(torch.tensor([0.5]))
    y = physics(torch.sin(torch.linspace(0, 40, 256)).unsqueeze(0))
    assert measurement_consistency(physics.restore(model, y, project=False), y, physics) == 0
