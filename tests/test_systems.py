"""Every Table I system and Table II ablation: a few training steps on tiny data, then
``regnn generate``-style reactions of the right shape and ranges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from regnn import schema
from regnn.errors import ConfigError
from regnn.models.variants import VARIANTS, resolve, variant_overrides

TINY = {
    "model": {"width": 16, "heads": 2},
    "train": {"epochs": 2, "batch_size": 4, "clip_windows": 2, "val_items": 0, "threads": 1},
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_system_trains_and_generates_in_range_reactions(name: str, synthetic_root: Path,
                                                        tmp_path: Path) -> None:
    from regnn.generate import generate_predictions
    from regnn.train import train

    config = resolve("demo", name, TINY)
    summary = train(config, synthetic_root, tmp_path / "run", seed=0, progress=False,
                    max_steps=2)
    assert summary["model"] == config.model.name
    assert (tmp_path / "run" / "checkpoints" / "best.ckpt").is_file()
    if name.startswith("huang"):  # the sketch (PCA of the training listeners) was fitted
        from regnn.train import load_module

        module = load_module(tmp_path / "run")
        assert bool(module.sketch_fitted)
        basis = module.model.sketch_basis
        torch.testing.assert_close(basis.T @ basis, torch.eye(basis.shape[1]), atol=1e-4,
                                   rtol=0)
        assert float(basis[10:].abs().sum()) > 0  # not the unfitted identity-like basis
    gen = generate_predictions(tmp_path / "run", synthetic_root, "test", tmp_path / "pred",
                               samples=3, seed=1, progress=False, limit=2)
    assert gen["items"] == 2
    files = sorted((tmp_path / "pred" / "test").rglob("*.npy"))
    assert len(files) == 2
    for f in files:
        y = np.load(f)
        assert y.shape == (3, schema.CLIP_FRAMES, 25) and y.dtype == np.float32
        assert np.isfinite(y).all()
        assert (y >= schema.LOW - 1e-6).all() and (y <= schema.HIGH + 1e-6).all()
        np.testing.assert_allclose(y[..., schema.EXPRESSION_SLICE].sum(-1), 1.0, atol=1e-4)
        spread = float(((y[:, None] - y[None]) ** 2).mean())
        if name == "unet":
            assert spread == 0.0  # deterministic: K identical reactions
        else:
            assert spread > 0.0  # K different reactions


def test_variants_switch_the_documented_config_values() -> None:
    c = {n: resolve("demo", n).model for n in VARIANTS}
    assert not c["face-only"].use_audio and c["face-only"].use_face
    assert not c["audio-only"].use_face and c["audio-only"].use_audio
    assert c["no-afrdl"].objective == "mse" and c["regnn"].objective == "afrdl"
    assert c["no-mefl"].edge_channels == 1 and c["regnn"].edge_channels == 8
    assert c["iresnet-motor"].name == "iresnet-motor" and c["iresnet-motor"].motor == "iresnet"
    for b in ("huang-s", "huang-c", "unet", "l2l"):
        assert c[b].name == b and c[b].window == schema.CLIP_FRAMES
    assert resolve("demo", "unet").train.epochs == variant_overrides("unet", "demo")["train"][
        "epochs"]
    assert resolve("paper", "unet").train.epochs == 100
    with pytest.raises(ConfigError, match="unknown system 'nope'"):
        variant_overrides("nope")


def test_iresnet_ablation_keeps_regnn_but_swaps_the_motor() -> None:
    from regnn.models.iresnet import IResNetMotor
    from regnn.models.regnn import REGNN

    cfg = resolve("regnn", "iresnet-motor").model
    model = REGNN(cfg)  # the motor is chosen by name (model.motor = "iresnet")
    assert isinstance(model.motor, IResNetMotor)
    full = REGNN(resolve("regnn", "regnn").model)
    motor_size = sum(p.numel() for p in model.motor.parameters() if p.dim() > 1)
    regnn_size = sum(p.numel() for p in full.motor.parameters())
    assert abs(motor_size - regnn_size) / regnn_size < 0.02  # blocks of matching size
    face, audio = torch.rand(1, 100, 25), torch.randn(1, 100, 64)
    pred, info = model.generate(face, audio, k=2, sigma=0.6,
                                generator=torch.Generator().manual_seed(0))
    assert pred.shape == (1, 2, 100, 25) and info.converged


def test_train_cli_accepts_system_names(synthetic_root: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from regnn.cli import main

    assert main(["train", "--data", str(synthetic_root), "--out", str(tmp_path / "r"),
                 "--config", "demo", "--model", "no-mefl", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "edge_channels: 1" in out and "name: regnn" in out
    assert main(["train", "--data", str(synthetic_root), "--out", str(tmp_path / "r"),
                 "--config", "demo", "--model", "unet", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "name: unet" in out and "window: 750" in out
