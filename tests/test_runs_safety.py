"""Runs from others and runs that fail: safe checkpoint loading, resumes that write nothing
when refused, and a killed training that resumes to the same weights."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import train_tiny_run
from regnn.cli import main
from regnn.errors import CheckpointError
from regnn.models.runs import load_module, read_checkpoint


@pytest.fixture(scope="module")
def run(synthetic_root, tiny_config, tmp_path_factory) -> Path:
    return train_tiny_run(synthetic_root, tiny_config,
                          tmp_path_factory.mktemp("safety") / "run", 1)


def _copy(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


class _Payload:
    """A pickle that runs a shell command when loaded without weights_only."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_checkpoint_never_runs_code(run, synthetic_root, tmp_path, monkeypatch,
                                              capsys):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # torch's unsafe override
    evil = _copy(run, tmp_path)
    marker = tmp_path / "pwned"
    ck = torch.load(evil / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    ck["hyper_parameters"]["extra"] = _Payload(marker)
    torch.save(ck, evil / "checkpoints" / "best.ckpt")
    code = main(["generate", "--run", str(evil), "--data", str(synthetic_root), "--out",
                 str(tmp_path / "pred"), "--samples", "2", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and not marker.exists()
    assert "best.ckpt" in err and "cannot be read as a regnn checkpoint" in err
    assert "weights_only=False" not in err
    with pytest.raises(CheckpointError, match="best.ckpt"):
        load_module(evil)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other-model"])
def test_a_refused_resume_writes_nothing(run, synthetic_root, tiny_config, tmp_path, damage,
                                         capsys):
    bad = _copy(run, tmp_path)
    last = bad / "checkpoints" / "last.ckpt"
    args = ["train", "--data", str(synthetic_root), "--out", str(bad), "--config",
            str(tiny_config), "--seed", "1", "--epochs", "2", "--resume", "--no-progress"]
    if damage == "garbage":
        last.write_bytes(b"this is not a checkpoint")
        expect = "cannot be read as a regnn checkpoint"
    elif damage == "truncated":
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
        expect = "cannot be read as a regnn checkpoint"
    else:
        args += ["--set", "model.width=24"]
        expect = "model.width: checkpoint 16, requested 24"
    config_before = (bad / "config.yaml").read_text()
    logs_before = sorted(p.name for p in (bad / "logs").iterdir())
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "last.ckpt" in err and expect in err
    assert (bad / "config.yaml").read_text() == config_before  # untouched
    assert sorted(p.name for p in (bad / "logs").iterdir()) == logs_before  # no resumeN
    load_module(bad)  # best.ckpt still loads


def test_read_checkpoint_names_what_is_missing(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "x.ckpt")
    with pytest.raises(CheckpointError, match=r"x.ckpt: is not a regnn checkpoint: no "
                                              r"'state_dict'"):
        read_checkpoint(tmp_path / "x.ckpt")
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        read_checkpoint(tmp_path / "missing.ckpt")


def _train_cmd(data: Path, out: Path, config: Path, epochs: int, resume: bool = False
               ) -> list[str]:
    cmd = [sys.executable, "-m", "regnn", "train", "--data", str(data), "--out", str(out),
           "--config", str(config), "--seed", "4", "--epochs", str(epochs), "--no-progress"]
    return cmd + (["--resume"] if resume else [])


def test_a_killed_training_resumes_to_the_same_weights(synthetic_root, tmp_path):
    """SIGKILL in the middle of the second of 4 epochs: the resumed run restarts from the end
    of the first (last.ckpt) and ends with the weights of an uninterrupted run of the same
    seed."""
    cfg = tmp_path / "slow.yaml"
    # small model, small steps, so that an epoch lasts long enough to be interrupted
    cfg.write_text("base: demo\nmodel:\n  width: 16\n  heads: 2\n  edge_channels: 2\n"
                   "  modes: 2\ntrain:\n  batch_size: 2\n  clip_windows: 1\n  appropriate: 3\n"
                   "  val_items: 0\n  threads: 1\n  milestones: []\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full = tmp_path / "full"
    subprocess.run(_train_cmd(synthetic_root, full, cfg, 4), env=env, check=True,
                   capture_output=True, timeout=600)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(synthetic_root, killed, cfg, 4), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = killed / "logs" / "metrics.csv"
    deadline = time.time() + 300
    try:  # wait until the first epoch has been checkpointed, then kill during the second
        while time.time() < deadline and not (killed / "checkpoints" / "last.ckpt").is_file():
            time.sleep(0.02)
        first = read_checkpoint(killed / "checkpoints" / "last.ckpt")["epoch"]
        time.sleep(0.2)
        assert proc.poll() is None, "training finished before it could be interrupted"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert metrics.parent.is_dir()
    at_kill = read_checkpoint(killed / "checkpoints" / "last.ckpt")["epoch"]
    assert at_kill in (first, first + 1)  # at most the interrupted epoch is lost
    subprocess.run(_train_cmd(synthetic_root, killed, cfg, 4, resume=True), env=env,
                   check=True, capture_output=True, timeout=600)
    a = read_checkpoint(full / "checkpoints" / "last.ckpt")
    b = read_checkpoint(killed / "checkpoints" / "last.ckpt")
    assert a["epoch"] == b["epoch"] and a["global_step"] == b["global_step"]
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=0, atol=0, msg=key)
