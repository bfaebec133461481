"""Windowing/stitching, the training-sample dataset and typed configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from regnn.config import RunConfig, load_config, merge
from regnn.data.training import AppropriateWindows
from regnn.data.windows import coverage, make_windows, stitch, window_starts
from regnn.errors import ConfigError, DataError


@pytest.mark.parametrize("T,size,stride", [(750, 50, 25), (751, 50, 25), (100, 50, 50),
                                           (60, 50, 25), (50, 50, 10)])
def test_windows_roundtrip(T, size, stride):
    x = np.random.default_rng(0).normal(size=(2, T, 3)).astype(np.float32)
    w = make_windows(x, size, stride)
    starts = window_starts(T, size, stride)
    assert w.shape == (2, len(starts), size, 3) and starts[-1] + size == T
    np.testing.assert_allclose(stitch(w, T, stride), x, rtol=1e-6)
    xt = torch.from_numpy(x)
    torch.testing.assert_close(stitch(make_windows(xt, size, stride), T, stride), xt)
    assert coverage(T, size, stride).min() >= 1


def test_stitch_averages_overlaps():
    w = np.stack([np.zeros((50, 1)), np.ones((50, 1))])[None].astype(np.float32)  # 2 windows
    out = stitch(w, 75, 25)[0, :, 0]
    np.testing.assert_allclose(out[:25], 0.0)
    np.testing.assert_allclose(out[25:50], 0.5)
    np.testing.assert_allclose(out[50:], 1.0)
    assert len(window_starts(750, 50, 25)) == 29


def test_window_errors():
    with pytest.raises(ConfigError, match="shorter than one window"):
        window_starts(40, 50, 25)
    with pytest.raises(ConfigError, match="leaves gaps"):
        window_starts(100, 20, 30)
    with pytest.raises(ConfigError, match="windows given"):
        stitch(np.zeros((3, 50, 2)), 750, 25)


def _toy(n=6, T=100):
    rng = np.random.default_rng(1)
    nb = np.eye(n, dtype=bool)
    nb[0, [2, 3, 4]] = True
    nb[1, 5] = True
    return (rng.uniform(size=(n, T, 25)).astype(np.float32),
            rng.normal(size=(n, T, 64)).astype(np.float32),
            rng.uniform(size=(n, T, 25)).astype(np.float32), nb)


def test_appropriate_windows_samples():
    sp, au, li, nb = _toy()
    ds = AppropriateWindows(sp, au, li, nb, window=50, stride=25, appropriate=3, seed=0)
    assert len(ds) == 6 * 3
    b = ds.__getitems__([0, 1, 3, 4])  # items 0, 0, 1, 1; windows 0, 1, 0, 1
    assert b["face"].shape == (4, 50, 25) and b["audio"].shape == (4, 50, 64)
    assert b["reactions"].shape == (4, 3, 50, 25)
    np.testing.assert_array_equal(b["reactions"][1, 0].numpy(), li[0, 25:75])  # own listener
    assert b["valid"][0].all() and b["valid"][2].tolist() == [True, True, False]
    np.testing.assert_array_equal(b["reactions"][2, 1].numpy(), li[5, :50])  # only candidate
    assert (b["reactions"][2, 2] == 0).all()
    others = {j for j in range(6) if any(np.array_equal(b["reactions"][0, s].numpy(), li[j, :50])
                                         for s in (1, 2))}
    assert others <= {2, 3, 4} and len(others) == 2
    again = ds.__getitems__([0, 1, 3, 4])
    assert torch.equal(again["reactions"], b["reactions"])  # same (seed, epoch, index)
    single = ds[0]
    assert torch.equal(single["reactions"], b["reactions"][0])
    ds.set_epoch(1)
    draws = [ds._draw(0)[1:].tolist() for _ in range(1)]
    assert all(set(d) <= {2, 3, 4} for d in draws)


def test_appropriate_windows_errors():
    sp, au, li, nb = _toy()
    with pytest.raises(DataError, match="appropriateness matrix"):
        AppropriateWindows(sp, au, li, nb[:5, :5])
    with pytest.raises(DataError, match="audio features"):
        AppropriateWindows(sp, au[:, :90], li, nb)


def test_the_three_configurations_resolve_to_what_the_readme_says():
    default = load_config("regnn")
    assert default.model == RunConfig().model and default.generate == RunConfig().generate
    assert load_config().to_dict() == {**default.to_dict(), "base": "regnn"}
    m, g, t = default.model, default.generate, default.train
    assert (m.modes, m.distribution_loss, m.agreement, m.face_skip, m.motor_norm) == (
        4, "mixture", "component", False, False)
    assert (g.noise, g.noise_scale, t.clip_windows) == ("residual", 0.5, 8)
    paper, authors = load_config("paper"), load_config("authors")
    assert (paper.model.modes, paper.model.distribution_loss, paper.model.gmm_sigma,
            paper.model.agreement, paper.model.face_skip, paper.model.motor_norm) == (
        1, "nll", 0.6, "all", False, True)
    assert (paper.generate.noise, paper.generate.sigma, paper.train.clip_windows) == (
        "gaussian", 0.6, 1)
    assert (authors.model.modes, authors.model.distribution_loss, authors.model.agreement,
            authors.model.motor_norm) == (1, "min", "all", True)
    assert (authors.generate.noise, authors.generate.sigma) == ("scaled", 0.6)
    # the three share the paper's sizes and optimiser
    for c in (default, paper, authors):
        assert (c.train.lr, c.train.weight_decay, c.train.epochs) == (1e-4, 5e-4, 100)
        assert c.train.milestones == [20, 50] and c.train.batch_size == 128
        assert (c.model.window, c.model.edge_channels, c.model.width) == (50, 8, 128)


def test_configs_load_and_validate(tmp_path):
    paper = load_config("paper")
    demo = load_config("demo")
    assert demo.model.modes == paper.model.modes + 3  # demo is the default method, smaller
    assert demo.model.width < paper.model.width and demo.train.epochs < 100
    f = tmp_path / "c.yaml"
    f.write_text("base: demo\nmodel:\n  edge_channels: 1\n")
    c = load_config(f)
    assert c.model.edge_channels == 1 and c.model.width == demo.model.width
    f.write_text("model:\n  edge_chanels: 1\n")
    with pytest.raises(ConfigError, match="unknown config key 'model.edge_chanels'"):
        load_config(f)
    f.write_text("train:\n  epochs: many\n")
    with pytest.raises(ConfigError, match="'train.epochs' must be an integer"):
        load_config(f)
    with pytest.raises(ConfigError, match="lipschitz"):
        merge(paper, {"model": {"lipschitz": 1.5}})
    with pytest.raises(ConfigError, match="needs distribution_loss 'mixture'"):
        merge(paper, {"model": {"modes": 3}})
    with pytest.raises(ConfigError, match="generate.noise must be one of residual"):
        merge(paper, {"generate": {"noise": "pink"}})
    with pytest.raises(ConfigError, match="neither a built-in"):
        load_config("nope")
