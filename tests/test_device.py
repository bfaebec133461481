"""Devices on a machine without a GPU: ``--device`` parsing and its errors, noise drawn apart
from the model's device, checkpoints written on a GPU loading on the CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import train_tiny_run
from regnn.cli import main
from regnn.errors import ConfigError
from regnn.utils.device import resolve_device


def test_device_names_resolve_and_bad_ones_are_clear_errors(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="--device cuda: no CUDA device is available"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match=r"expected cpu, cuda, cuda:N or auto"):
        resolve_device("gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(ConfigError, match=r"cuda:3: this machine has 1 CUDA device"):
        resolve_device("cuda:3")


@pytest.mark.parametrize("command", [
    ["generate", "--run", "nowhere", "--data", "nowhere", "--out", "x"],
    ["evaluate", "--data", "nowhere", "--pred", "nowhere"],
    ["bench", "--data", "nowhere", "--out", "x"],
    ["serve", "--toy", "--port", "0"],
])
def test_commands_refuse_a_missing_gpu_before_any_work(command, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main([*command, "--device", "cuda"]) == 2
    assert "no CUDA device is available" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_noise_is_drawn_where_the_generator_lives_not_where_the_model_runs():
    """A CPU generator with a model on another device (the crash of a GPU validation step):
    the noise is drawn on the CPU and moved, so the same seed gives the same noise anywhere."""
    from regnn.models.regnn import ar1_noise, sample_noise, stratified_components

    meta = torch.device("meta")  # a device other than the generator's, present on every machine
    g = torch.Generator().manual_seed(0)
    eps = sample_noise((2, 3, 25, 8), 0.6, "gaussian", g, meta, reduce_dims=(1, 2, 3))
    assert eps.device == meta and eps.shape == (2, 3, 25, 8)
    ref = sample_noise((2, 3, 25, 8), 0.6, "gaussian", torch.Generator().manual_seed(0),
                       torch.device("cpu"), reduce_dims=(1, 2, 3))
    again = sample_noise((2, 3, 25, 8), 0.6, "gaussian", torch.Generator().manual_seed(0),
                         torch.device("cpu"), reduce_dims=(1, 2, 3))
    torch.testing.assert_close(ref, again)
    # the component draw and the AR(1) filter compute on the CPU from the model's values
    pi = torch.full((2, 4, 3), 1 / 3)
    assert torch.equal(stratified_components(pi, 5, torch.Generator().manual_seed(1)),
                       stratified_components(pi.double(), 5, torch.Generator().manual_seed(1)))
    std, rho = torch.full((25,), 0.1), torch.full((25,), 0.5)
    n = ar1_noise((1, 2), 30, std, rho, torch.Generator().manual_seed(2))
    assert n.shape == (1, 2, 30, 25) and n.device.type == "cpu"


def _save_as_if_on_cuda(src: Path, dst: Path) -> None:
    """Rewrite a checkpoint so that its tensors say they were saved on ``cuda:0`` (what a run
    trained on a GPU writes)."""
    from torch import serialization

    ck = torch.load(src, map_location="cpu", weights_only=True)
    original = serialization.location_tag
    serialization.location_tag = lambda storage: "cuda:0"
    try:
        torch.save(ck, dst)
    finally:
        serialization.location_tag = original


def test_a_checkpoint_saved_on_a_gpu_loads_on_the_cpu(synthetic_root, tiny_config,
                                                      tmp_path_factory):
    import shutil

    from regnn.api import ReactionGenerator
    from regnn.models.runs import load_module

    run = train_tiny_run(synthetic_root, tiny_config, tmp_path_factory.mktemp("gpu-run") / "run",
                         0, "--set", "train.val_items=0")
    cpu_copy = tmp_path_factory.mktemp("cpu") / "run"
    shutil.copytree(run, cpu_copy)
    for name in ("best.ckpt", "last.ckpt"):
        _save_as_if_on_cuda(cpu_copy / "checkpoints" / name, run / "checkpoints" / name)
    if not torch.cuda.is_available():  # the file really is a GPU checkpoint
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    a, b = load_module(run), load_module(cpu_copy)
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert x.device.type == "cpu" and torch.equal(x, y), k
    face = np.random.default_rng(0).uniform(0, 1, (80, 25)).astype(np.float32)
    audio = np.zeros((80, 64), np.float32)
    out = ReactionGenerator.from_run(run, device="cpu").generate_features(face, audio, k=2)
    ref = ReactionGenerator.from_run(cpu_copy).generate_features(face, audio, k=2)
    np.testing.assert_array_equal(out, ref)
