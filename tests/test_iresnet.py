"""The i-ResNet motor: certified contraction, fixed-point inverse, REGNN-motor interface."""

from __future__ import annotations

import pytest
import torch

from regnn.models.iresnet import IResNetBlock, IResNetMotor, conv_norm_bound, matching_hidden

torch.set_num_threads(1)  # small tensors: extra threads only contend on a shared machine


def test_conv_norm_bound_bounds_the_convolution_operator() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(6, 5, 3, padding=1, bias=False)
    bound = float(conv_norm_bound(conv.weight))
    worst = 0.0
    for _ in range(50):
        x = torch.randn(1, 6, 40)
        worst = max(worst, float(conv(x).norm() / x.norm()))
    assert worst <= bound + 1e-6


@pytest.mark.parametrize("scale", [1.0, 50.0])
def test_block_is_a_contraction_whatever_the_weights(scale: float) -> None:
    torch.manual_seed(1)
    block = IResNetBlock(channels=25, hidden=10, lipschitz=0.7)
    with torch.no_grad():
        for conv in block.convs:
            conv.weight.mul_(scale)
    assert float(block.gamma() * block.lipschitz_bound()) <= 0.7 + 1e-6
    a, b = torch.randn(64, 25, 50), torch.randn(64, 25, 50)
    ratio = (block.phi(a) - block.phi(b)).flatten(1).norm(dim=1) / (a - b).flatten(1).norm(dim=1)
    assert float(ratio.max()) <= 0.7 + 1e-5
    # the map is bi-Lipschitz: (1 - c) |a - b| <= |f(a) - f(b)|
    lower = (block(a) - block(b)).flatten(1).norm(dim=1) / (a - b).flatten(1).norm(dim=1)
    assert float(lower.min()) >= 0.3 - 1e-5


def test_motor_inverse_reconstructs_and_reports_its_error() -> None:
    torch.manual_seed(2)
    motor = IResNetMotor(nodes=25, layers=2, hidden=10, lipschitz=0.9)
    with torch.no_grad():  # make the residual branch non-trivial
        for layer in motor.layers:
            for conv in layer.convs:
                conv.weight.mul_(20.0)
    x = torch.randn(4, 3, 25, 50)
    z = motor(x)
    assert z.shape == x.shape
    assert float((z - x).abs().max()) > 1e-2
    back, info = motor.inverse(z, None, None, tol=1e-6, max_iter=500)
    assert info.converged and len(info.iterations) == 2
    assert float((back - x).abs().max()) < 1e-4
    assert max(info.certified) < 1e-3
    assert all(b <= 0.9 + 1e-6 for b in motor.lipschitz_bounds())
    # FrEIA convention on one block
    block = motor.layers[0]
    torch.testing.assert_close(block(block(x[0]), rev=True), x[0], atol=1e-4, rtol=0)


def test_block_size_matches_a_regnn_motor_layer() -> None:
    from regnn.models.motor import REGNNLayer

    layer = REGNNLayer(node_dim=50, edge_channels=8, key_dim=16)
    target = sum(p.numel() for p in layer.parameters())
    assert target == 1608
    hidden = matching_hidden(target)
    block = IResNetBlock(channels=25, hidden=hidden)
    weights = sum(c.weight.numel() for c in block.convs)
    assert hidden == 10 and weights == 1600
    assert matching_hidden(2 * 32 * 16 + 8) == 7  # the ablation follows the REGNN config


def test_block_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        IResNetBlock(lipschitz=1.0)
    with pytest.raises(ValueError, match="odd"):
        IResNetBlock(kernels=(2, 1, 3))
