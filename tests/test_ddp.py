"""Data-parallel training (``regnn train --devices N --strategy ddp``) on CPU.

``train.batch_size`` is the global batch: each of N processes takes ``batch_size / N`` windows
and DDP averages their gradients, which must equal the gradient of the batch mean.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from regnn import mkl
from regnn.config import load_config
from regnn.errors import ConfigError
from regnn.models.regnn import REGNN
from regnn.train import per_process_batch


def test_per_process_batch_splits_the_global_batch():
    assert per_process_batch(128, 1) == 128
    assert per_process_batch(128, 2) == 64
    assert per_process_batch(96, 3) == 32
    with pytest.raises(ConfigError, match=r"batch_size 128 .* 3 training processes"):
        per_process_batch(128, 3)
    with pytest.raises(ConfigError, match="must be >= 1"):
        per_process_batch(0, 1)


@pytest.mark.parametrize("form", ["mixture", "min", "mean", "nll"])
def test_mean_of_half_batch_gradients_is_the_batch_gradient(form):
    """What DDP computes (the mean of each process's gradient on its share) equals the
    single-process gradient of the whole batch: the losses are means over windows."""
    torch.manual_seed(0)
    cfg = load_config("demo").model
    cfg.width, cfg.heads, cfg.distribution_loss = 16, 2, form
    if form != "mixture":
        cfg.modes = 1  # the other forms compare one Ẑp with the latents
    model = REGNN(cfg).double()
    rng = np.random.default_rng(1)
    B, M, D = 8, 4, cfg.window
    face = torch.from_numpy(rng.uniform(0, 1, (B, D, 25)))
    audio = torch.from_numpy(rng.normal(0, 1, (B, D, cfg.audio_dim)))
    reactions = torch.from_numpy(rng.uniform(0, 1, (B, M, D, 25)))
    valid = torch.ones(B, M, dtype=torch.bool)
    valid[1, 2:] = False  # padding: per-window means keep the halves exact

    def grads(sl: slice) -> list[torch.Tensor]:
        model.zero_grad(set_to_none=True)
        model.losses(face[sl], audio[sl], reactions[sl], valid[sl])["loss"].backward()
        return [p.grad.clone() for p in model.parameters()]

    full = grads(slice(None))
    halves = [grads(slice(0, B // 2)), grads(slice(B // 2, None))]
    for g, a, b in zip(full, *halves):
        torch.testing.assert_close((a + b) / 2, g, rtol=1e-9, atol=1e-12)


def _regnn(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "regnn", *args], capture_output=True,
                          text=True, env=env, timeout=600)


def _train_ddp(data: Path, config: Path, run: Path) -> subprocess.CompletedProcess:
    proc = _regnn("train", "--data", str(data), "--out", str(run), "--config", str(config),
                  "--devices", "2", "--strategy", "ddp", "--seed", "5", "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=False)["state_dict"]


def test_train_ddp_two_cpu_processes(synthetic_root, tiny_config, tmp_path):
    run = tmp_path / "ddp"
    proc = _train_ddp(synthetic_root, tiny_config, run)
    # only rank 0 reports and writes the summary
    assert proc.stdout.count("trained regnn") == 1, proc.stdout
    summary = json.loads((run / "train.json").read_text())
    assert summary["processes"] == 2 and summary["batch_per_process"] == 64
    assert summary["mkl"] == mkl.status()  # the DDP processes got the same MKL branch
    assert "val/FRCorr" in summary["final_metrics"]
    assert summary["motor_check"]["converged"]
    for rel in ("checkpoints/best.ckpt", "checkpoints/last.ckpt", "logs/metrics.csv"):
        assert (run / rel).is_file(), rel

    from regnn.train import load_module

    module = load_module(run)
    pred, _ = module.generate_clips(torch.rand(1, 100, 25), torch.randn(1, 100, 64), 2, 0.6,
                                    torch.Generator().manual_seed(0))
    assert pred.shape == (1, 2, 100, 25) and torch.isfinite(pred).all()

    # same seed, same weights under DDP too
    _train_ddp(synthetic_root, tiny_config, tmp_path / "again")
    first, again = _weights(run), _weights(tmp_path / "again")
    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)

    # an odd split of the global batch is refused before any process starts training
    bad = _regnn("train", "--data", str(synthetic_root), "--out", str(tmp_path / "bad"),
                 "--config", str(tiny_config), "--devices", "2", "--strategy", "ddp",
                 "--batch-size", "125", "--no-progress")
    assert bad.returncode == 2
    assert "must split evenly over the 2 training processes" in bad.stderr
    assert not (tmp_path / "bad").exists()  # nothing written
