"""Shared fixtures: one small synthetic REACT dataset per test session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from regnn.mkl import apply_vendor_fix

apply_vendor_fix()  # the test run is an entry point: the MKL vendor fix before torch loads

SMALL_DYADS = 12  # 3 sessions of 4 clips: 4 rows per split, 8 mirrored items


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic REACT-layout dataset (do not modify: use ``dataset_copy``)."""
    from regnn.data.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("synthetic") / "react"
    write_synthetic(root, dyads=SMALL_DYADS, seed=7)
    return root


@pytest.fixture
def dataset_copy(synthetic_root: Path, tmp_path: Path) -> Path:
    """A private copy of the small dataset made of hard links: replace files with
    :func:`replace_file` (which unlinks first) so the shared original stays intact."""
    dst = tmp_path / "react"
    shutil.copytree(synthetic_root, dst, copy_function=os.link,
                    ignore=shutil.ignore_patterns(".regnn-cache"))
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

