"""Shapes, masks, MEFL top-K, the motor's invertibility guarantee and the AFRDL losses."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from regnn.config import ModelConfig, load_config
from regnn.data.windows import make_windows
from regnn.errors import ConfigError
from regnn.models.afrdl import agreement_loss, component_spread, distribution_loss, mixture_loss
from regnn.models.cognitive import MEFL, CognitiveProcessor, top_k_mask
from regnn.models.motor import InverseInfo, REGNNLayer, REGNNMotor, prepare_edges
from regnn.models.perceptual import PerceptualProcessor, causal_mask
from regnn.models.regnn import REGNN, ar1_noise, sample_noise, stratified_components

torch.set_num_threads(1)


def small_cfg(**kw) -> ModelConfig:
    base = dict(width=32, heads=4, window=20, stride=10, edge_channels=4, top_k=3)
    base.update(kw)
    return ModelConfig(**base)


# -- perceptual -------------------------------------------------------------------------------
def test_perceptual_shapes_and_modalities():
    torch.manual_seed(0)
    face, audio = torch.rand(3, 20, 25), torch.randn(3, 20, 64)
    both = PerceptualProcessor(width=32, heads=4)
    assert both(face, audio).shape == (3, 20, 32)
    face_only = PerceptualProcessor(width=32, heads=4, use_audio=False)
    assert len(face_only.cross) == 0 and face_only(face, None).shape == (3, 20, 32)
    audio_only = PerceptualProcessor(width=32, heads=4, use_face=False)
    assert audio_only(None, audio).shape == (3, 20, 32)
    with pytest.raises(ConfigError, match="no audio"):
        both(face, None)
    with pytest.raises(ConfigError, match="at least one modality"):
        PerceptualProcessor(use_face=False, use_audio=False)


def test_perceptual_causal_mask_hides_the_future():
    torch.manual_seed(0)
    net = PerceptualProcessor(width=32, heads=4).eval()
    face, audio = torch.rand(1, 20, 25), torch.randn(1, 20, 64)
    mask = causal_mask(20)
    out = net(face, audio, attn_mask=mask)
    face2, audio2 = face.clone(), audio.clone()
    face2[:, 12:] += 5.0
    audio2[:, 12:] -= 5.0
    out2 = net(face2, audio2, attn_mask=mask)
    torch.testing.assert_close(out[:, :12], out2[:, :12])
    assert (out[:, 12:] - out2[:, 12:]).abs().max() > 1e-3
    # without the mask the past does change
    assert (net(face, audio)[:, :12] - net(face2, audio2)[:, :12]).abs().max() > 1e-3
    torch.testing.assert_close(net(face, audio, causal=True), out)


# -- cognitive / MEFL -------------------------------------------------------------------------
def test_top_k_mask_keeps_the_k_largest_per_row():
    scores = torch.tensor([[[0.1, 0.9, 0.5, 0.3], [4.0, 3.0, 2.0, 1.0],
                            [0.0, 0.0, 1.0, 2.0], [1.0, 5.0, 3.0, 4.0]]])
    m = top_k_mask(scores, 2)
    expected = torch.tensor([[[0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 1, 0, 1]]]).bool()
    assert torch.equal(m, expected)
    assert top_k_mask(scores, 9).all()


@pytest.mark.parametrize("channels", [1, 8])
def test_mefl_edges_topk_and_self_loops(channels):
    torch.manual_seed(0)
    mefl = MEFL(node_dim=20, channels=channels, key_dim=8, top_k=3)
    edges, adj = mefl(torch.randn(2, 25, 20))
    assert edges.shape == (2, channels, 25, 25) and adj.shape == (2, 25, 25)
    eye = torch.eye(25, dtype=torch.bool)
    assert adj[:, eye].all()  # every node keeps a self loop
    out_degree = adj.sum(dim=-2)  # adj[i, j] = edge j -> i: column j = node j's out-edges
    assert out_degree.max() <= 3 + 1
    assert (edges * (~adj[:, None])).abs().max() == 0  # features only on kept edges
    # node j's kept out-edges are its top-3 by P-dim edge-feature norm (plus the self loop)
    z = torch.randn(2, 25, 20)
    edges, adj = mefl(z)
    q, k = mefl.qk(z).view(2, 25, 2, channels, 8).permute(2, 0, 3, 1, 4)
    attn = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, dim=-1)  # [b, p, src, dst]
    top = attn.norm(dim=1).topk(3, dim=-1).indices  # (B, src, 3)
    for b in range(2):
        for j in range(25):
            kept = set(torch.nonzero(adj[b, :, j]).flatten().tolist())
            assert set(top[b, j].tolist()) <= kept and kept <= set(top[b, j].tolist()) | {j}
            torch.testing.assert_close(edges[b, :, top[b, j], j], attn[b, :, j, top[b, j]])


def test_cognitive_shapes_and_window_check():
    cog = CognitiveProcessor(width=32, nodes=25, window=20, edge_channels=4, top_k=3)
    zp, edges, adj = cog(torch.randn(5, 20, 32))
    assert zp.shape == (5, 25, 20) and edges.shape == (5, 4, 25, 25) and adj.dtype == torch.bool
    with pytest.raises(ConfigError, match="20-frame windows"):
        cog(torch.randn(5, 30, 32))


# -- motor ------------------------------------------------------------------------------------
def _graph(B=3, M=2, P=4, D=20, seed=0, top_k=3):
    g = torch.Generator().manual_seed(seed)
    mefl = MEFL(D, P, 8, top_k)
    edges, adj = mefl(torch.randn(B, 25, D, generator=g))
    return edges.detach(), adj


def _scale_weights(motor, factor):
    with torch.no_grad():
        for layer in motor.layers:
            layer.w_q.mul_(factor)
            layer.w_m.mul_(factor)
            layer.w_e.mul_(factor)


@pytest.mark.parametrize("factor", [1.0, 30.0, 1000.0])
def test_motor_lipschitz_bound_holds_for_any_weights(factor):
    torch.manual_seed(1)
    edges, adj = _graph()
    motor = REGNNMotor(node_dim=20, edge_channels=4, layers=2, key_dim=8, top_k=3, lipschitz=0.9)
    _scale_weights(motor, factor)
    assert all(b <= 0.9 + 1e-6 for b in motor.lipschitz_bounds())
    layer = motor.layers[0]
    e0 = prepare_edges(edges, adj)
    # adversarial search for the largest ||φ(a) - φ(b)|| / ||a - b||
    a = (torch.randn(3, 2, 25, 20) * 3).requires_grad_()
    b = (a.detach() + 0.05 * torch.randn_like(a)).requires_grad_()
    opt = torch.optim.Adam([a, b], lr=0.05)
    worst = 0.0
    for _ in range(150):
        num = (layer.phi(a, e0, adj) - layer.phi(b, e0, adj)).flatten(-2).norm(dim=-1)
        ratio = num / (a - b).flatten(-2).norm(dim=-1).clamp_min(1e-9)
        worst = max(worst, ratio.max().item())
        opt.zero_grad()
        (-ratio.max()).backward()
        opt.step()
    assert worst < 0.9


def test_guarded_softmax_matches_the_plain_one_in_value_and_gradient():
    """The overflow guard (row shift without gradient, logits floored at EXP_FLOOR) changes
    neither φ nor its gradients where the plain exp is exact (float64, moderate logits)."""
    torch.manual_seed(4)
    edges, adj = _graph(M=3)
    layer = REGNNMotor(node_dim=20, edge_channels=4, layers=1, key_dim=8, top_k=3).layers[0]
    with torch.no_grad():
        layer.w_q.mul_(40.0)
        layer.w_m.mul_(40.0)
    layer = layer.double()
    assert layer.logit_bound() > 60.0  # the guard's regime
    e0 = prepare_edges(edges.double(), adj)
    x = torch.randn(3, 3, 25, 20, dtype=torch.float64, requires_grad=True)
    out = {}
    for safe in (True, False):
        y = layer.phi(x, e0, adj, safe_exp=safe)
        gx, gq = torch.autograd.grad((y * torch.cos(y)).sum(), (x, layer.w_q))
        out[safe] = (y.detach(), gx, gq)
    for a, b in zip(out[True], out[False]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("factor", [1.0, 300.0])
def test_inverse_certificate_from_the_last_step_bounds_the_measured_one(factor):
    """The free certificate (Banach's a-posteriori estimate from the last step) returns the same
    x as the measured one and bounds both the measured residual and the true error."""
    torch.manual_seed(3)
    edges, adj = _graph(M=4)
    motor = REGNNMotor(node_dim=20, edge_channels=4, layers=2, key_dim=8, top_k=3)
    _scale_weights(motor, factor)
    z = torch.randn(3, 4, 25, 20)
    x_ref, _ = motor.inverse(z, edges, adj, tol=0.0, max_iter=400,
                             certify=False)  # to float precision
    for tol in (1e-2, 1e-4):
        x_b, bound = motor.inverse(z, edges, adj, tol=tol)
        x_m, meas = motor.inverse(z, edges, adj, tol=tol, measure=True)
        assert torch.equal(x_b, x_m) and not bound.measured and meas.measured
        assert bound.iterations == meas.iterations
        # per block: measured residual <= its bound; the whole stack's error is checked below
        for rb, rm, cb in zip(bound.residual, meas.residual, bound.certified):
            assert rm <= rb + 1e-6 and cb == pytest.approx(rb / (1 - 0.9))
        assert bound.max_residual < 0.9 * (25 * 20) ** 0.5 * tol + 1e-6
        err = (x_b - x_ref).flatten(-2).norm(dim=-1).max().item()
        # each block's error is amplified by the blocks inverted after it ((1 - c)^-1 each)
        assert err <= bound.certified[0] / (1 - 0.9) + bound.certified[1] + 1e-5


@pytest.mark.parametrize("factor,scale", [(1.0, 1.0), (100.0, 1.0), (1.0, 50.0), (300.0, 20.0)])
def test_motor_two_way_invertibility(factor, scale):
    torch.manual_seed(2)
    edges, adj = _graph(M=4)
    motor = REGNNMotor(node_dim=20, edge_channels=4, layers=3, key_dim=8, top_k=3)
    _scale_weights(motor, factor)
    x = torch.randn(3, 4, 25, 20) * scale  # adversarially scaled inputs
    z = motor(x, edges, adj)
    x_back, info = motor.inverse(z, edges, adj, tol=1e-6, max_iter=200)
    assert info.converged and info.max_iterations <= 200
    assert (x_back - x).abs().max().item() <= 1e-4 * max(1.0, scale)
    assert len(info.iterations) == 3 and info.max_residual <= 1e-4 * max(1.0, scale)
    z2 = torch.randn(3, 4, 25, 20) * scale
    x2, info2 = motor.inverse(z2, edges, adj)
    assert (motor(x2, edges, adj) - z2).abs().max().item() <= 1e-4 * max(1.0, scale)


@pytest.mark.parametrize("factor", [1.0, 300.0])  # 300: logits large enough for safe_exp
def test_motor_inverse_phi_matches_phi(factor):
    """The inverse's allocation-saving φ is the same computation as :meth:`REGNNLayer.phi`."""
    torch.manual_seed(4)
    edges, adj = _graph(M=3)
    motor = REGNNMotor(node_dim=20, edge_channels=4, layers=1, key_dim=8, top_k=3)
    _scale_weights(motor, factor)
    layer = motor.layers[0]
    e0 = prepare_edges(edges, adj)
    x = torch.randn(3, 25, 3, 20).transpose(1, 2)  # a non-contiguous view, as in generate
    safe = layer.logit_bound() > 60.0
    assert safe == (factor > 1.0)
    with torch.no_grad():
        ref = layer.phi(x, e0, adj)
        fast = layer.inverse_phi(e0, adj, gamma=float(layer.gamma()), safe_exp=safe,
                                 operands=layer.edge_operands(e0))(x.contiguous())
    assert torch.allclose(fast, ref, rtol=1e-5, atol=1e-6)


def test_motor_bi_lipschitz_lower_bound():
    torch.manual_seed(3)
    edges, adj = _graph(M=1)
    layer_motor = REGNNMotor(node_dim=20, edge_channels=4, layers=1, key_dim=8, top_k=3)
    _scale_weights(layer_motor, 50.0)
    a, b = torch.randn(3, 1, 25, 20), torch.randn(3, 1, 25, 20)
    fa, fb = layer_motor(a, edges, adj), layer_motor(b, edges, adj)
    ratio = (fa - fb).flatten(-2).norm(dim=-1) / (a - b).flatten(-2).norm(dim=-1)
    assert ((ratio >= 0.1 - 1e-5) & (ratio <= 1.9 + 1e-5)).all()


def test_motor_rejects_bad_lipschitz():
    with pytest.raises(ConfigError, match="in \\(0, 1\\)"):
        REGNNLayer(20, 4, lipschitz=1.0)


def test_motor_invertible_after_training_steps():
    torch.manual_seed(4)
    model = REGNN(small_cfg(lipschitz=0.95))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)  # aggressive on purpose
    face, audio = torch.rand(6, 20, 25), torch.randn(6, 20, 64)
    reactions, valid = torch.rand(6, 3, 20, 25), torch.ones(6, 3, dtype=torch.bool)
    for _ in range(15):
        loss = model.losses(face, audio, reactions, valid)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        _, edges, adj = model.distribution(face, audio)
        x = reactions.transpose(-1, -2)
        z = model.motor(x, edges, adj)
        x_back, info = model.motor.inverse(z, edges, adj)
    assert (x_back - x).abs().max().item() <= 1e-4 and info.converged
    assert all(b <= 0.95 + 1e-6 for b in model.motor.lipschitz_bounds())


# -- losses -----------------------------------------------------------------------------------
def test_agreement_loss_hand_built():
    lat = torch.zeros(2, 3, 25, 4)
    valid = torch.ones(2, 3, dtype=torch.bool)
    assert agreement_loss(lat, valid).item() == 0.0  # all latents coincide
    lat[0, 1] = 1.0  # speaker 0: pairs (0,1)=1, (0,2)=0, (1,2)=1; speaker 1: all 0
    assert agreement_loss(lat, valid).item() == pytest.approx(2 / 6)
    valid[0, 1] = False  # the differing latent is padding -> ignored
    assert agreement_loss(lat, valid).item() == 0.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_agreement_loss_kernel_matches_cdist(dtype):
    """The CPU numba pass gives cdist's value and gradient (ties: sign(0) = 0, padding
    ignored, a row without pairs contributes nothing)."""
    from regnn.models.afrdl import _agreement_loss_cdist

    torch.manual_seed(5)
    lat = torch.randn(6, 5, 25, 8, dtype=dtype)
    lat[1, 2] = lat[1, 0]  # identical latents: every coordinate is a tie
    lat[2, 3, :, :4] = lat[2, 1, :, :4]  # partial ties
    valid = torch.rand(6, 5) < 0.7
    valid[:, 0] = True
    valid[1, 2] = True
    valid[4, 1:] = False  # no pair at all in row 4
    a, b = lat.clone().requires_grad_(), lat.clone().requires_grad_()
    va = agreement_loss(a, valid)
    vb = _agreement_loss_cdist(b.reshape(6, 5, -1), valid)
    va.backward()
    vb.backward()
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    assert va.dtype == dtype
    assert va.item() == pytest.approx(vb.item(), rel=tol)
    assert torch.allclose(a.grad, b.grad, rtol=tol, atol=tol * b.grad.abs().max().item())
    none = torch.zeros(6, 5, dtype=torch.bool)
    none[:, 0] = True  # one valid latent per row: no pair anywhere
    assert agreement_loss(a, none).item() == 0.0


def test_distribution_loss_forms():
    zp = torch.zeros(1, 25, 4)
    lat = torch.stack([torch.full((25, 4), 1.0), torch.full((25, 4), 3.0)])[None]
    valid = torch.ones(1, 2, dtype=torch.bool)
    assert distribution_loss(zp, lat, valid, "min").item() == pytest.approx(1.0)
    assert distribution_loss(zp, lat, valid, "mean").item() == pytest.approx(4.0)
    nll_small = distribution_loss(zp, lat, valid, "nll", sigma=0.05).item()
    nll_big = distribution_loss(zp, lat, valid, "nll", sigma=100.0).item()
    assert nll_small == pytest.approx(1.0 + 2 * 0.05**2 * np.log(2), rel=1e-4)
    assert nll_big == pytest.approx((1.0 + 9.0) / 2, rel=1e-3)
    valid[0, 0] = False
    assert distribution_loss(zp, lat, valid, "min").item() == pytest.approx(9.0)
    with pytest.raises(ConfigError):
        distribution_loss(zp, lat, valid, "median")


def test_distribution_loss_min_value_and_gradient():
    """"min" differentiates only the nearest valid latent: the same value and gradients as the
    masked amin over all M."""
    torch.manual_seed(6)
    zp0, lat0 = torch.randn(5, 25, 6), torch.randn(5, 4, 25, 6)
    valid = torch.rand(5, 4) < 0.6
    valid[:, 0] = True
    valid[2, 0] = False  # slot 0 padding: the nearest valid latent is elsewhere
    valid[2, 3] = True
    zp, lat = zp0.clone().requires_grad_(), lat0.clone().requires_grad_()
    distribution_loss(zp, lat, valid, "min").backward()
    zr, lr = zp0.clone().requires_grad_(), lat0.clone().requires_grad_()
    mse = ((zr[:, None] - lr) ** 2).mean(dim=(-1, -2))
    ref = mse.masked_fill(~valid, float("inf")).amin(dim=1).mean()
    ref.backward()
    assert distribution_loss(zp0, lat0, valid, "min").item() == pytest.approx(ref.item(), rel=1e-6)
    assert torch.allclose(zp.grad, zr.grad, atol=1e-7)
    assert torch.allclose(lat.grad, lr.grad, atol=1e-7)
    assert (lat.grad[~valid] == 0).all()
    valid[1] = False  # a row without any valid latent: inf, as the amin gives
    assert distribution_loss(zp0, lat0, valid, "min").item() == float("inf")


def test_noise_modes():
    g = torch.Generator().manual_seed(0)
    eps = sample_noise((2, 3, 4, 25, 20), 0.6, "scaled", g, torch.device("cpu"), (1, 3, 4))
    peak = eps.abs().amax(dim=(1, 3, 4))
    assert (peak <= 0.6**0.5 + 1e-6).all() and (peak > 0.5).all()
    eps = sample_noise((4000,), 0.6, "gaussian", g, torch.device("cpu"), ())
    assert eps.std().item() == pytest.approx(0.6, rel=0.05)


# -- whole model ------------------------------------------------------------------------------
def test_regnn_losses_and_generate_shapes():
    torch.manual_seed(5)
    model = REGNN(small_cfg())
    face, audio = torch.rand(4, 20, 25), torch.randn(4, 20, 64)
    out = model.losses(face, audio, torch.rand(4, 3, 20, 25), torch.ones(4, 3, dtype=torch.bool))
    assert set(out) == {"loss", "distribution", "agreement", "weights"}
    assert out["loss"].item() == pytest.approx(
        out["distribution"].item() + out["weights"].item() + out["agreement"].item(), rel=1e-5)
    model.eval()
    g = torch.Generator().manual_seed(0)
    pred, info = model.generate(torch.rand(2, 95, 25), torch.randn(2, 95, 64), k=3,
                                generator=g)
    assert pred.shape == (2, 3, 95, 25) and info.converged
    assert (pred[:, 0] - pred[:, 1]).abs().max() > 1e-4  # the K reactions differ


def test_single_mode_gaussian_sigma_zero_is_deterministic():
    torch.manual_seed(5)
    model = REGNN(small_cfg(modes=1, distribution_loss="min")).eval()
    face, audio = torch.rand(2, 95, 25), torch.randn(2, 95, 64)
    pred, _ = model.generate(face, audio, k=3, sigma=0.6, noise="gaussian")
    assert (pred[:, 0] - pred[:, 1]).abs().max() > 1e-4
    pred2, _ = model.generate(face, audio, k=3, sigma=0.0, noise="gaussian")
    torch.testing.assert_close(pred2[:, 0], pred2[:, 2])  # σ = 0: one deterministic reaction


def test_paper_sampling_adds_gaussian_noise_of_standard_deviation_sigma(monkeypatch):
    """The paper's ε ~ N(0, σ²) in latent space, σ = 0.6 as a standard deviation (the
    "scaled" noise of the authors' code has a far smaller effective σ on a 750-frame clip)."""
    cfg = load_config("paper")
    model = REGNN(dataclasses.replace(cfg.model, width=16, heads=2)).eval()
    seen = {}

    def capture(latents, edges, adjacency):
        seen["latents"] = latents.clone()
        return latents.transpose(-1, -2), InverseInfo()

    monkeypatch.setattr(model, "decode", capture)
    face, audio = torch.rand(1, 750, 25), torch.randn(1, 750, 64)
    g = cfg.generate
    model.generate(face, audio, k=4, sigma=g.sigma, noise=g.noise,
                   generator=torch.Generator().manual_seed(0))
    zp, _, _ = model.distribution(make_windows(face, 50, 25)[0], make_windows(audio, 50, 25)[0])
    eps = seen["latents"] - zp[:, None]
    assert eps.std().item() == pytest.approx(0.6, rel=0.02)
    assert abs(eps.mean().item()) < 0.01
    monkeypatch.setattr(model, "decode", capture)
    model.generate(face, audio, k=4, sigma=0.6, noise="scaled",
                   generator=torch.Generator().manual_seed(0))
    scaled = (seen["latents"] - zp[:, None]).std().item()
    assert scaled < 0.25  # the authors' noise: peak sqrt(0.6) over the clip


def test_mixture_loss_on_two_clusters():
    L = torch.zeros(1, 4, 2, 3)
    L[0, 2:] = 1.0  # latents 0, 1 at 0; latents 2, 3 at 1
    valid = torch.ones(1, 4, dtype=torch.bool)
    modes = torch.stack([torch.zeros(2, 3), torch.ones(2, 3), 3 * torch.ones(2, 3)])[None]
    logits = torch.zeros(1, 3, requires_grad=True)
    dist, weights, assign = mixture_loss(modes, logits, L, valid, precision_weight=0.5)
    assert assign.tolist() == [[0, 0, 1, 1]]
    # coverage 0; precision: modes 0, 1 sit on data, mode 2 is 2 away (MSE 4) -> 0.5 * 4/3
    assert dist.item() == pytest.approx(0.5 * 4 / 3)
    # weights: shares (1/2, 1/2, 0) against uniform logits: cross-entropy log 3
    assert weights.item() == pytest.approx(np.log(3))
    weights.backward()
    assert logits.grad[0, 2] > 0 > logits.grad[0, 0]  # the unused component loses weight
    # a padded latent is ignored, and with groups the assignment is decided over the group
    valid[0, 3] = False
    _, _, assign = mixture_loss(modes, logits, L, valid)
    assert assign[0, :3].tolist() == [0, 0, 1]
    L2 = torch.stack([L[0], L[0]])
    L2[1, 2:] = 0.45  # in window 1, latents 2, 3 lean to mode 0 (0.45 from 0, 0.55 from 1)
    two = torch.ones(2, 4, dtype=torch.bool)
    modes2, logits2 = modes.expand(2, -1, -1, -1), torch.zeros(2, 3)
    alone = mixture_loss(modes2, logits2, L2, two)[2]
    assert alone[1].tolist() == [0, 0, 0, 0]
    together = mixture_loss(modes2, logits2, L2, two, groups=torch.tensor([7, 7]))[2]
    assert together.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1]]


def test_component_spread_is_the_within_component_deviation():
    lat = torch.tensor([0.0, 2.0, 10.0, 7.0])[None, :, None, None].expand(1, 4, 1, 2)
    valid = torch.ones(1, 4, dtype=torch.bool)
    assign = torch.tensor([[0, 0, 1, 2]])
    dev, mask = component_spread(lat, valid, assign, 3)
    assert mask.tolist() == [[True, True, False, False]]  # singletons have no spread
    # deviations from the mean 1, scaled by sqrt(2 / 1)
    assert dev[0, :2, 0, 0].tolist() == pytest.approx([-np.sqrt(2), np.sqrt(2)])


def test_stratified_components_follow_the_weights_and_keep_one_per_clip():
    pi = torch.tensor([0.5, 0.3, 0.2, 0.0]).expand(3, 5, 4)  # 3 clips, 5 windows
    q = stratified_components(pi, 10, torch.Generator().manual_seed(0))
    assert q.shape == (3, 10)
    for row in q.tolist():  # stratified: exactly 5, 3 and 2 of 10, never the empty one
        assert [row.count(c) for c in range(4)] == [5, 3, 2, 0]


def test_ar1_noise_has_the_variance_and_the_step_it_is_given():
    std = torch.tensor([0.1, 0.5, 0.2])
    rho = torch.tensor([0.0, 0.9, 0.99])
    n = ar1_noise((400,), 300, std, rho, torch.Generator().manual_seed(0))
    assert n.shape == (400, 300, 3)
    assert n.std(dim=(0, 1)).tolist() == pytest.approx(std.tolist(), rel=0.05)
    step = n.diff(dim=1).square().mean(dim=(0, 1))
    assert step.tolist() == pytest.approx((2 * std**2 * (1 - rho)).tolist(), rel=0.05)
    # normalised by the sample second moment (with rho = 0.99 the series decorrelates over
    # ~100 frames, so the sample variance itself scatters by several percent around std²)
    lag1 = (n[:, 1:] * n[:, :-1]).mean(dim=(0, 1)) / n.square().mean(dim=(0, 1))
    assert lag1.tolist() == pytest.approx(rho.tolist(), abs=0.01)


def test_generate_keeps_one_component_per_reaction_for_the_whole_clip(monkeypatch):
    torch.manual_seed(3)
    model = REGNN(small_cfg(modes=3)).eval()
    face, audio = torch.rand(1, 95, 25), torch.randn(1, 95, 64)
    seen = {}

    def capture(latents, edges, adjacency):
        seen["latents"] = latents.clone()
        return latents.transpose(-1, -2), InverseInfo()

    monkeypatch.setattr(model, "decode", capture)
    model.generate(face, audio, k=6, generator=torch.Generator().manual_seed(1))
    modes, _, _, _ = model.mixture(make_windows(face, 20, 10)[0], make_windows(audio, 20, 10)[0])
    lat = seen["latents"]  # (W, K, I, D): untrained model, zero residual noise
    for j in range(6):
        hits = [[torch.allclose(lat[w, j], modes[w, q]) for q in range(3)]
                for w in range(lat.shape[0])]
        comp = {row.index(True) for row in hits}
        assert len(comp) == 1  # the same component in every window


def test_mse_objective_ablation_trains_and_generates():
    torch.manual_seed(6)
    model = REGNN(small_cfg(objective="mse", use_audio=False))
    out = model.losses(torch.rand(4, 20, 25), None, torch.rand(4, 2, 20, 25),
                       torch.ones(4, 2, dtype=torch.bool))
    assert out["agreement"].item() == 0.0 and out["loss"].item() > 0
    pred, _ = model.eval().generate(torch.rand(1, 40, 25), None, k=2, sigma=0.1)
    assert pred.shape == (1, 2, 40, 25)


def test_paper_config_sizes():
    cfg = load_config("paper").model
    model = REGNN(cfg)
    assert (cfg.window, cfg.edge_channels, cfg.motor_layers, cfg.width) == (50, 8, 2, 128)
    n = sum(p.numel() for p in model.parameters())
    assert 200_000 < n < 500_000


def test_face_skip_adds_the_speaker_series():
    torch.manual_seed(7)
    model = REGNN(small_cfg(face_skip=True))
    with torch.no_grad():
        model.cognitive.heads[-1].weight.zero_()
        model.cognitive.heads[-1].bias.zero_()
    face = torch.rand(2, 20, 25)
    zp, _, _ = model.distribution(face, torch.randn(2, 20, 64))
    torch.testing.assert_close(zp, face.transpose(1, 2))
    off = REGNN(small_cfg(face_skip=False))
    with torch.no_grad():
        off.cognitive.heads[-1].weight.zero_()
        off.cognitive.heads[-1].bias.zero_()
    assert off.distribution(face, torch.randn(2, 20, 64))[0].abs().max() == 0


def test_make_adam_fused_on_cpu_same_update():
    """regnn train's optimiser: Adam's fused kernel on CPU, the same steps up to rounding."""
    from regnn.models.module import make_adam

    torch.manual_seed(7)
    a = torch.nn.Linear(30, 20)
    b = torch.nn.Linear(30, 20)
    b.load_state_dict(a.state_dict())
    w0 = a.weight.detach().clone()
    opt_a = torch.optim.Adam(a.parameters(), lr=1e-2, weight_decay=5e-4)
    opt_b = make_adam(b.parameters(), lr=1e-2, weight_decay=5e-4)
    assert opt_b.defaults["fused"] is True
    for _ in range(5):
        x = torch.randn(8, 30)
        for m, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            (m(x) ** 2).mean().backward()
            opt.step()
    assert torch.allclose(a.weight, b.weight, atol=1e-6)
    assert (b.weight - w0).abs().max() > 1e-3  # the steps did move the weights


def test_ar1_filter_short_recursion_equals_lfilter(monkeypatch: pytest.MonkeyPatch) -> None:
    """The streaming path of ar1_filter (a recursion over all nodes at once, for a few frames)
    gives scipy lfilter's result bit for bit, from the stationary start and continuing."""
    from regnn.models import regnn as R

    rng = np.random.default_rng(4)
    rho = rng.uniform(0.0, 0.999, 25)
    cases = [(rng.standard_normal((10, 25, t)), prev) for t in (1, 8, 50)
             for prev in (None, rng.standard_normal((10, 25)))]
    short = [R.ar1_filter(w, rho, prev) for w, prev in cases]
    monkeypatch.setattr(R, "SHORT_AR1", 0)
    for (w, prev), got in zip(cases, short):
        want = R.ar1_filter(w, rho, prev)
        np.testing.assert_array_equal(got, want)
        first = w[..., 0] if prev is None else np.sqrt(1 - rho**2) * w[..., 0] + rho * prev
        np.testing.assert_allclose(got[..., 0], first, rtol=1e-12)
