"""Atomic outputs: nothing half-written under the final name, and the user's umask honoured."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from regnn.utils.io import atomic_open, current_umask, save_npy, write_json, write_text


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_get_the_permissions_of_the_umask(tmp_path: Path, mask: int, mode: int):
    before = os.umask(mask)
    try:
        assert current_umask() == mask
        for path in (write_text(tmp_path / "a.txt", "x"), write_json(tmp_path / "b.json", {}),
                     save_npy(tmp_path / "c.npy", np.zeros(3))):
            assert stat.S_IMODE(path.stat().st_mode) == mode, path
    finally:
        os.umask(before)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path):
    target = tmp_path / "out.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
