"""Shared fixtures: one small synthetic REACT dataset per test session."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from regnn.mkl import apply_vendor_fix

apply_vendor_fix()  # the test run is an entry point: the MKL vendor fix before torch loads

SMALL_DYADS = 12  # 3 sessions of 4 clips: 4 rows per split, 8 mirrored items


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A small synthetic REACT-layout dataset (do not modify: use ``dataset_copy``)."""
    from regnn.data.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("synthetic") / "react"
    write_synthetic(root, dyads=SMALL_DYADS, seed=7)
    before = _top_level_digest(root)
    yield root
    # a test that wrote through a hard link of dataset_copy would corrupt every later test
    assert _top_level_digest(root) == before, "a test modified the shared synthetic dataset"


def _top_level_digest(root: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(root.iterdir()) if f.is_file()}


@pytest.fixture
def dataset_copy(synthetic_root: Path, tmp_path: Path) -> Path:
    """A private copy of the small dataset: the per-person recordings are hard links (replace
    them with :func:`replace_file`, which unlinks first, so the shared original stays intact);
    the top-level files (split CSVs, appropriateness matrices) are real copies, safe to edit."""
    dst = tmp_path / "react"
    shutil.copytree(synthetic_root, dst, copy_function=os.link,
                    ignore=shutil.ignore_patterns(".regnn-cache"))
    for f in dst.iterdir():
        if f.is_file():
            data = f.read_bytes()
            f.unlink()
            f.write_bytes(data)
    return dst


@pytest.fixture(scope="session")
def gt_pred(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ground-truth predictions (``regnn baseline gt``, K = 3) for the small dataset's test
    split (read-only: ``regnn evaluate`` may add its ``scores.json``)."""
    from regnn.cli import main

    out = tmp_path_factory.mktemp("pred") / "gt"
    assert main(["baseline", "gt", "--data", str(synthetic_root), "--out", str(out),
                 "--samples", "3", "--no-progress"]) == 0
    return out


def replace_file(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` as a new file (never through a shared hard link)."""
    if path.exists():
        path.unlink()
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)


TINY_CONFIG = """\
base: demo
model:
  width: 16
  heads: 2
  edge_channels: 2
  modes: 2
train:
  epochs: 1
  batch_size: 128
  appropriate: 3
  val_items: 2
  val_samples: 2
  val_every: 1
  threads: 1
"""


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A training config small enough for one epoch in seconds (tests only)."""
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(TINY_CONFIG)
    return path


@pytest.fixture(scope="session")
def online_run(synthetic_root: Path, tiny_config: Path,
               tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny online run (``regnn train --online --window 10 --hop 4``)."""
    from regnn.cli import main

    run = tmp_path_factory.mktemp("runs") / "online"
    assert main(["train", "--data", str(synthetic_root), "--out", str(run), "--config",
                 str(tiny_config), "--online", "--window", "10", "--hop", "4", "--seed", "1",
                 "--no-progress"]) == 0
    return run


def train_tiny_run(root: Path, config: Path, out: Path, seed: int, *extra: str) -> Path:
    """Train a run with the tiny config (``regnn train``; ``extra`` CLI options) into ``out``."""
    from regnn.cli import main

    assert main(["train", "--data", str(root), "--out", str(out), "--config", str(config),
                 "--seed", str(seed), "--no-progress", *extra]) == 0
    return out
