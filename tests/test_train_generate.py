"""``regnn train`` / ``regnn generate``, checkpoints, determinism, resume and the Python API."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import train_tiny_run
from regnn import mkl, schema
from regnn.cli import main


@pytest.fixture(scope="module")
def trained_run(synthetic_root, tiny_config, tmp_path_factory) -> Path:
    return train_tiny_run(synthetic_root, tiny_config, tmp_path_factory.mktemp("runs") / "run", 3)


def _state(run: Path, which: str = "last") -> dict:
    return torch.load(run / "checkpoints" / f"{which}.ckpt", map_location="cpu",
                      weights_only=False)["state_dict"]


def test_train_writes_a_complete_run(trained_run, capsys):
    for rel in ("config.yaml", "train.json", "checkpoints/best.ckpt", "checkpoints/last.ckpt",
                "logs/metrics.csv"):
        assert (trained_run / rel).is_file(), rel
    assert any((trained_run / "tb").rglob("events.out.tfevents*"))
    cfg = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert cfg["model"]["width"] == 16 and cfg["data"]["seed"] == 3 and cfg["base"].endswith(
        "tiny.yaml")
    csv = (trained_run / "logs" / "metrics.csv").read_text()
    assert "val/FRCorr" in csv and "train/loss" in csv
    import json

    summary = json.loads((trained_run / "train.json").read_text())
    mc = summary["motor_check"]
    assert mc["inverse_forward_max_abs_error"] <= 1e-4
    assert mc["forward_inverse_max_abs_error"] <= 1e-4 and mc["converged"]
    assert all(b <= 0.9 + 1e-6 for b in summary["motor_lipschitz_bounds"])
    # windows, not samples: with clip_windows > 1 a sample is a chunk of windows
    chunk = cfg["train"]["clip_windows"]
    assert chunk > 1 and summary["train_windows"] == summary["train_samples"] * chunk
    per_epoch = sum(summary["seconds_per_epoch"]) / len(summary["seconds_per_epoch"])
    assert summary["windows_per_s"] == pytest.approx(summary["train_windows"] / per_epoch,
                                                     rel=2e-2)  # epochs rounded to ms


def test_same_seed_same_checkpoint(trained_run, synthetic_root, tiny_config, tmp_path):
    run2 = tmp_path / "run2"
    assert main(["train", "--data", str(synthetic_root), "--out", str(run2), "--config",
                 str(tiny_config), "--seed", "3", "--no-progress"]) == 0
    a, b = _state(trained_run), _state(run2)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_continues_and_refuses_overwrite(trained_run, synthetic_root, tiny_config,
                                                tmp_path, capsys):
    import shutil

    run = tmp_path / "resumed"
    shutil.copytree(trained_run, run)
    assert main(["train", "--data", str(synthetic_root), "--out", str(run), "--config",
                 str(tiny_config), "--seed", "3", "--no-progress"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--data", str(synthetic_root), "--out", str(run), "--config",
                 str(tiny_config), "--seed", "3", "--epochs", "2", "--resume",
                 "--no-progress"]) == 0
    ck = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ck["epoch"] == 1
    before, after = _state(trained_run), ck["state_dict"]
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_generate_layout_ranges_and_determinism(trained_run, synthetic_root, tmp_path):
    from regnn.data.react import ReactSplit

    pred = tmp_path / "pred"
    args = ["generate", "--run", str(trained_run), "--data", str(synthetic_root), "--split",
            "test", "--out", str(pred), "--samples", "3", "--seed", "5", "--no-progress"]
    assert main(args) == 0
    ds = ReactSplit(synthetic_root, "test")
    arrays = []
    for item in ds.items:
        arr = np.load(pred / "test" / f"{item.speaker_path}.npy")
        assert arr.shape == (3, 750, 25) and arr.dtype == np.float32
        assert (arr >= schema.LOW - 1e-6).all() and (arr <= schema.HIGH + 1e-6).all()
        np.testing.assert_allclose(arr[..., 17:].sum(-1), 1.0, atol=1e-5)
        assert np.abs(arr[0] - arr[1]).max() > 0  # the K reactions differ
        arrays.append(arr)
    import json

    g = json.loads((pred / "generation.json").read_text())
    assert g["items"] == len(ds) and g["samples"] == 3 and g["reactions_per_s"] > 0
    assert g["mkl"] == mkl.status()  # the BLAS branch the figures were measured on
    mi = g["motor_inverse"]
    # residual bounded from the last fixed-point step (not measured): c ‖x_k - x_{k-1}‖_F, and
    # the stop rule max|x_k - x_{k-1}| <= tol = 1e-5 keeps it below c sqrt(I D) tol
    assert mi["converged"] and mi["residual_measured"] is False
    assert 0 < mi["max_residual"] <= 0.9 * (25 * 50) ** 0.5 * 1e-5
    assert mi["max_certified_error"] == pytest.approx(mi["max_residual"] / (1 - 0.9))
    pred2 = tmp_path / "pred2"
    args2 = [str(pred2) if a == str(pred) else a for a in args]
    assert main(args2) == 0
    for item, arr in zip(ds.items, arrays):
        np.testing.assert_array_equal(np.load(pred2 / "test" / f"{item.speaker_path}.npy"), arr)


def test_generate_binarize_and_errors(trained_run, synthetic_root, tmp_path, capsys):
    pred = tmp_path / "pb"
    assert main(["generate", "--run", str(trained_run), "--data", str(synthetic_root),
                 "--split", "val", "--out", str(pred), "--samples", "2", "--binarize-aus",
                 "--no-progress"]) == 0
    arr = np.load(next((pred / "val").rglob("*.npy")))
    assert set(np.unique(arr[..., :15])) <= {0.0, 1.0}
    assert main(["generate", "--run", str(tmp_path / "missing"), "--data",
                 str(synthetic_root), "--out", str(pred)]) == 2
    assert "not a training run" in capsys.readouterr().err


def test_checkpoint_roundtrip_and_api(trained_run):
    from regnn.api import ReactionGenerator
    from regnn.errors import ConfigError
    from regnn.train import load_module

    m1, m2 = load_module(trained_run, "last"), load_module(trained_run, "last")
    for (k, a), (_, b) in zip(m1.state_dict().items(), m2.state_dict().items()):
        assert torch.equal(a, b), k
    gen = ReactionGenerator.from_run(trained_run, "last")
    rng = np.random.default_rng(0)
    face = schema.clip_to_ranges(rng.uniform(0, 1, (120, 25)))
    t = np.arange(int(44100 * 120 / 25)) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)], 1) * 0.3
    out = gen.generate(face, stereo, 44100, k=4, seed=1)
    assert out.shape == (4, 120, 25) and out.dtype == np.float32
    np.testing.assert_array_equal(out, gen.generate(face, stereo, 44100, k=4, seed=1))
    assert not np.array_equal(out, gen.generate(face, stereo, 44100, k=4, seed=2))
    assert gen.last_info is not None and gen.last_info.converged
    with pytest.raises(ConfigError, match="audio_samples"):
        gen.generate(face)
    with pytest.raises(ConfigError, match="at least one window"):
        gen.generate(face[:30], stereo, 44100)


def test_train_help_and_print_config(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--resume" in capsys.readouterr().out
    assert main(["train", "--data", "x", "--out", "y", "--config", "demo", "--print-config",
                 "--set", "model.edge_channels=1"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["model"]["edge_channels"] == 1 and cfg["base"] == "demo"


def test_generate_takes_unset_settings_from_the_run(trained_run, synthetic_root, tmp_path):
    """generate.samples and generate.binarize_aus of the run's config are honoured when the
    command line does not set them; the command line wins when it does."""

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    last = run / "checkpoints" / "last.ckpt"  # the run's config travels in its checkpoints
    ck = torch.load(last, weights_only=True)
    ck["hyper_parameters"]["config"]["generate"].update(samples=3, binarize_aus=True)
    torch.save(ck, last)
    base = ["generate", "--run", str(run), "--data", str(synthetic_root), "--split", "val",
            "--no-progress", "--checkpoint", "last"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    arr = np.load(next((tmp_path / "a" / "val").rglob("*.npy")))
    assert arr.shape[0] == 3 and set(np.unique(arr[..., :15])) <= {0.0, 1.0}
    summary = json.loads((tmp_path / "a" / "generation.json").read_text())
    assert summary["samples"] == 3 and summary["binarize_aus"] is True
    assert main([*base, "--out", str(tmp_path / "b"), "--samples", "2"]) == 0
    assert np.load(next((tmp_path / "b" / "val").rglob("*.npy"))).shape[0] == 2
