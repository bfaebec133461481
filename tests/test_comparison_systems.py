"""The Table I comparison systems on random tensors: shapes, ranges, diversity, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from regnn import schema
from regnn.models.baselines import HuangCGAN, LearningToListen, UNet1D
from regnn.models.baselines.common import to_ranges

T = 96
torch.set_num_threads(1)  # tiny models: extra threads only contend on a shared 2-core machine


def smooth(x: torch.Tensor, width: int = 9) -> torch.Tensor:
    """Moving average along time, so random clips look like slowly varying behaviour."""
    k = torch.ones(x.shape[-1], 1, width) / width
    y = torch.nn.functional.conv1d(x.transpose(1, 2), k, padding=width // 2, groups=x.shape[-1])
    return y.transpose(1, 2)


def random_clips(n: int = 3, t: int = T, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    face = to_ranges(3 * smooth(torch.randn(n, t, 25, generator=g)))
    audio = torch.randn(n, t, 64, generator=g)
    offset = torch.randn(1, 1, 25, generator=g)
    listener = to_ranges(offset + 3 * smooth(torch.randn(n, t, 25, generator=g)))
    return face, audio, listener


def assert_in_ranges(y: torch.Tensor) -> None:
    arr = y.detach().numpy()
    assert np.isfinite(arr).all()
    assert (arr >= schema.LOW - 1e-6).all() and (arr <= schema.HIGH + 1e-6).all()
    np.testing.assert_allclose(arr[..., schema.EXPRESSION_SLICE].sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(schema.clip_to_ranges(arr), arr, atol=1e-6)


def test_to_ranges_maps_extremes_inside_and_rejects_wrong_width() -> None:
    y = to_ranges(torch.tensor([[-1e4] * 25, [1e4] * 25, [0.0] * 25]))
    assert_in_ranges(y)
    assert y[0, 15] == -1 and y[1, 0] == 1  # saturated tanh / sigmoid hit the bounds
    with pytest.raises(ValueError, match="25 values"):
        to_ranges(torch.zeros(3, 24))


def pairwise_diversity(y: torch.Tensor) -> float:
    """Mean squared difference between different reactions to the same speaker."""
    d = (y[:, :, None] - y[:, None, :]).pow(2).mean(dim=(-1, -2))  # (N, K, K)
    k = y.shape[1]
    return float(d.sum() / (y.shape[0] * k * (k - 1)))


# ---------------------------------------------------------------------------- Huang cGAN
@pytest.mark.parametrize("variant,cols", [("s", 15), ("c", 8)])
def test_huang_conditions_are_ten_frame_windows_of_the_right_columns(variant: str,
                                                                      cols: int) -> None:
    model = HuangCGAN(variant)
    face, _, _ = random_clips()
    c = model.conditions(face)
    assert c.shape == (3, T - 9, 10 * cols)
    sl = schema.AU_SLICE if variant == "s" else schema.EXPRESSION_SLICE
    # row r holds frames r..r+9 of the conditioning columns, frame-major
    torch.testing.assert_close(c[1, 5].reshape(10, cols), face[1, 5:15, sl])


@pytest.mark.parametrize("variant", ["s", "c"])
def test_huang_generates_diverse_in_range_reactions_with_padded_first_frames(variant: str
                                                                             ) -> None:
    torch.manual_seed(0)
    model = HuangCGAN(variant).eval()
    face, _, _ = random_clips()
    y = model.generate(face, None, k=4, generator=torch.Generator().manual_seed(1))
    assert y.shape == (3, 4, T, 25)
    assert_in_ranges(y)
    # the first 9 frames cannot be predicted from a 10-frame window: they repeat frame 9
    torch.testing.assert_close(y[:, :, :9], y[:, :, 9:10].expand(-1, -1, 9, -1))
    assert pairwise_diversity(y) > 1e-4
    y2 = model.generate(face, None, k=4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(y, y2)  # same generator seed, same reactions


def test_huang_sketch_is_the_pca_of_the_listeners() -> None:
    model = HuangCGAN("s", sketch_dim=4)
    _, _, listener = random_clips(n=4)
    model.fit_sketch(listener.numpy())
    flat = listener.reshape(-1, 25)
    h = model.sketch(flat)
    assert h.shape == (flat.shape[0], 4)
    torch.testing.assert_close(h.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    var = h.var(0)
    assert torch.all(var[:-1] >= var[1:] - 1e-6)  # principal components, decreasing variance
    torch.testing.assert_close(model.sketch_basis.T @ model.sketch_basis, torch.eye(4),
                               atol=1e-5, rtol=0)


def test_huang_training_steps_reduce_the_l1_loss_and_keep_discriminators_apart() -> None:
    torch.manual_seed(0)
    model = HuangCGAN("s", hidden=64)
    face, _, listener = random_clips(n=2)
    model.fit_sketch(listener)
    opt_g = torch.optim.Adam(model.generator_parameters(), lr=2e-3)
    opt_d = torch.optim.Adam(model.discriminator_parameters(), lr=2e-3)
    first = None
    for _ in range(40):
        g, d = model.gan_losses(face, listener)
        opt_g.zero_grad()
        g["loss"].backward()
        opt_g.step()
        opt_g.zero_grad(set_to_none=True)
        opt_d.zero_grad()
        d["loss"].backward()  # the fakes are detached: no generator gradient
        assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.generator_parameters())
        opt_d.step()
        first = first if first is not None else float(g["l1_stage2"])
    assert float(g["l1_stage2"]) < 0.8 * first


def test_huang_frame_subsampling_draws_matching_condition_and_target_rows() -> None:
    torch.manual_seed(0)
    model = HuangCGAN("c", l1_weight=1.0)
    face, _, listener = random_clips(n=2)
    g_all, _ = model.gan_losses(face, listener, torch.Generator().manual_seed(0))
    g_sub, d_sub = model.gan_losses(face, listener, torch.Generator().manual_seed(0), frames=16)
    assert torch.isfinite(g_sub["loss"]) and torch.isfinite(d_sub["loss"])
    # subsampled frames estimate the same L1 as all frames (same model, same noise law)
    assert abs(float(g_sub["l1_stage1"]) - float(g_all["l1_stage1"])) < 0.5 * float(
        g_all["l1_stage1"])
    # condition row r and target row r belong to the same reaction frame, also subsampled
    c = torch.arange(2 * 50, dtype=torch.float32).reshape(2, 50, 1).expand(2, 50, 3)
    y = torch.arange(2 * 50, dtype=torch.float32).reshape(2, 50, 1).expand(2, 50, 25)
    cs, ys = HuangCGAN.sample_frames(c, y, 7, torch.Generator().manual_seed(0))
    assert cs.shape == (2, 7, 3) and ys.shape == (2, 7, 25)
    torch.testing.assert_close(cs[..., 0], ys[..., 0])
    assert (cs[0, :, 0] < 50).all() and (cs[1, :, 0] >= 50).all()  # rows stay in their clip


def test_huang_rejects_unknown_variant_and_short_clips() -> None:
    with pytest.raises(ValueError, match="unknown Huang variant"):
        HuangCGAN("x")
    with pytest.raises(ValueError, match="shorter than the 10-frame"):
        HuangCGAN("s").conditions(torch.zeros(1, 5, 25))


# ---------------------------------------------------------------------------- UNet
def test_unet_maps_sequences_to_sequences_and_is_deterministic() -> None:
    torch.manual_seed(0)
    model = UNet1D(levels=4).eval()
    face, _, _ = random_clips(t=750)
    y = model.generate(face, None, k=3)
    assert y.shape == (3, 3, 750, 25)
    assert_in_ranges(y)
    assert pairwise_diversity(y) == 0.0  # deterministic: K identical reactions, FRDiv = 0
    assert model.levels == 4 and len(model.down) == 4 and len(model.up) == 4


def test_unet_with_audio_and_odd_lengths() -> None:
    model = UNet1D(use_audio=True, levels=4, base=8).eval()
    face, audio, _ = random_clips(t=37)
    assert model(face, audio).shape == (3, 37, 25)
    with pytest.raises(ValueError, match="audio"):
        model(face, None)


def test_unet_training_steps_reduce_the_mse() -> None:
    torch.manual_seed(0)
    model = UNet1D(base=16)
    face, _, listener = random_clips(n=2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = model.losses(face, None, listener)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]


# ---------------------------------------------------------------------------- Learning to Listen
def small_l2l(**kw) -> LearningToListen:
    return LearningToListen(codes=16, code_dim=8, width=32, downsample=3, **kw)


def test_l2l_vq_roundtrip_shapes_and_ranges() -> None:
    torch.manual_seed(0)
    model = small_l2l().eval()
    _, _, listener = random_clips()
    idx = model.code_sequence(listener)
    assert idx.shape == (3, T // 8) and idx.dtype == torch.long
    assert int(idx.min()) >= 0 and int(idx.max()) < 16
    y = model.decode_codes(idx, T)
    assert y.shape == (3, T, 25)
    assert_in_ranges(y)


def test_l2l_generates_diverse_samples_and_greedy_is_deterministic() -> None:
    torch.manual_seed(0)
    model = small_l2l().eval()
    face, audio, _ = random_clips(t=750)
    memory = model.speaker_memory(face, audio).repeat_interleave(3, dim=0)
    codes = model.sample_codes(memory, 94, torch.Generator().manual_seed(0))
    codes = codes.reshape(3, 3, 94)
    assert (codes[:, 0] != codes[:, 1]).float().mean() > 0.5  # samples, not one sequence
    y = model.generate(face, audio, k=3, generator=torch.Generator().manual_seed(0))
    assert y.shape == (3, 3, 750, 25)
    assert_in_ranges(y)
    # the reactions are the decoded sampled code sequences (an untrained decoder varies little)
    torch.testing.assert_close(y, model.decode_codes(codes.reshape(9, 94), 750).reshape(y.shape))
    assert pairwise_diversity(y) > 0.0
    torch.testing.assert_close(
        y, model.generate(face, audio, k=3, generator=torch.Generator().manual_seed(0)))
    model.temperature = 0.0
    greedy = model.generate(face, audio, k=2)
    assert pairwise_diversity(greedy) == 0.0


def test_l2l_both_phases_learn_and_leave_the_other_phase_alone() -> None:
    torch.manual_seed(0)
    model = small_l2l(use_audio=False)
    face, _, listener = random_clips(n=2)
    opt = torch.optim.Adam(model.phase_parameters("vq"), lr=3e-3)
    prior_before = [p.detach().clone() for p in model.phase_parameters("prior")]
    first = None
    for _ in range(30):
        out = model.losses(face, None, listener, phase="vq")
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        first = first if first is not None else float(out["recon"])
    assert float(out["recon"]) < 0.7 * first
    for a, b in zip(prior_before, model.phase_parameters("prior")):
        torch.testing.assert_close(a, b)
    model.eval()  # fixed codebook while the predictor learns
    opt = torch.optim.Adam(model.phase_parameters("prior"), lr=3e-3)
    ce = []
    for _ in range(30):
        out = model.losses(face, None, listener, phase="prior")
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        ce.append(float(out["cross_entropy"]))
    assert ce[-1] < 0.7 * ce[0]
    with pytest.raises(ValueError, match="unknown Learning-to-Listen phase"):
        model.losses(face, None, listener, phase="both")
