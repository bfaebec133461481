"""Session-grouped splits (regnn data split)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from regnn.cli import main
from regnn.data import layout
from regnn.data.react import ReactSplit
from regnn.data.splits import assign_sessions, session_of, split_rows
from regnn.errors import ConfigError, DataError


def make_pool(src: Path, dst: Path) -> list[tuple[str, str]]:
    """A single-list dataset: all rows of ``src`` in ``dst/all.csv``, files under ``dst/all``."""
    rows = []
    for split in layout.SPLITS:
        s, li = layout.read_split_csv(src, split)
        rows += list(zip(s, li))
        for sub in (layout.EMOTION_DIR, layout.AUDIO_DIR):
            shutil.copytree(src / split / sub, dst / "all" / sub, copy_function=os.link,
                            dirs_exist_ok=True)
    (dst / "all.csv").write_text(",speaker_path,listener_path\n" + "".join(
        f"{i},{a},{b}\n" for i, (a, b) in enumerate(rows)))
    return rows


def test_session_of():
    assert session_of("NoXI/010_2016-03-25_Paris/Expert_video/3") == "NoXI/010_2016-03-25_Paris"
    assert session_of("UDIVA/animals/talk/001/FC1/2") == "UDIVA/animals/talk/001"
    with pytest.raises(ValueError, match="site/session/person/clip"):
        session_of("P1/3")


def test_assign_sessions_is_seeded_balanced_and_complete():
    sessions = {f"S/{k:02d}": 4 for k in range(20)}
    a = assign_sessions(sessions, (0.6, 0.2, 0.2), seed=3)
    assert a == assign_sessions(sessions, (0.6, 0.2, 0.2), seed=3)
    assert a != assign_sessions(sessions, (0.6, 0.2, 0.2), seed=4)
    counts = {s: sum(v == s for v in a.values()) for s in layout.SPLITS}
    assert counts == {"train": 12, "val": 4, "test": 4}
    with pytest.raises(ConfigError, match="2 sessions cannot fill 3 splits"):
        assign_sessions({"a/b": 1, "a/c": 1})
    with pytest.raises(ConfigError, match="non-negative"):
        assign_sessions(sessions, (0.5, -0.1, 0.6))


def test_split_rows_keeps_sessions_whole_and_names_a_bad_row():
    spk = [f"X/s{k % 7}/A/{k}" for k in range(30)]
    lis = [f"X/s{k % 7}/B/{k}" for k in range(30)]
    rows = split_rows(spk, lis, seed=1)
    assert sorted(sum(rows.values(), [])) == list(range(30))
    homes = {}
    for split, idx in rows.items():
        for i in idx:
            assert homes.setdefault(session_of(spk[i]), split) == split
    lis[4] = "X/other/B/4"
    with pytest.raises(DataError, match="row 5.*different sessions"):
        split_rows(spk, lis, source=Path("all.csv"))


def test_cli_splits_a_pool_links_files_builds_matrices(synthetic_root: Path, tmp_path: Path,
                                                       capsys):
    pool = tmp_path / "pool"
    rows = make_pool(synthetic_root, pool)
    assert main(["data", "split", str(pool), "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert "by session (seed 5)" in out and "neighbour_emotion_test.npy" in out
    seen, sessions = [], {}
    for split in layout.SPLITS:
        s, li = layout.read_split_csv(pool, split)
        seen += list(zip(s, li))
        for person in s:
            assert sessions.setdefault(session_of(person), split) == split
        ds = ReactSplit(pool, split)
        assert len(ds) == 2 * len(s) and ds.neighbours.shape == (len(ds), len(ds))
        assert ds.speakers().shape == (len(ds), 750, 25)
        assert ds.audio(0).shape == (750, 64)
        # hard links, not copies
        f = ds.emotion_path(s[0])
        assert f.stat().st_nlink >= 2
    assert sorted(seen) == sorted(rows)
    assert len(sessions) == 3  # the fixture has 3 sessions: one per split
    assert main(["data", "check", str(pool)]) == 0

    # refuses to overwrite without --force; a new seed with --force re-splits
    assert main(["data", "split", str(pool)]) == 2
    assert "already exist" in capsys.readouterr().err
    assert main(["data", "split", str(pool), "--force", "--seed", "6", "--no-neighbours"]) == 0


def test_cli_split_is_deterministic(synthetic_root: Path, tmp_path: Path):
    lists = []
    for name in ("a", "b"):
        make_pool(synthetic_root, tmp_path / name)
        assert main(["data", "split", str(tmp_path / name), "--seed", "2", "--link", "copy",
                     "--no-neighbours"]) == 0
        lists.append([(tmp_path / name / f"{s}.csv").read_text() for s in layout.SPLITS])
    assert lists[0] == lists[1]
    csv = next((tmp_path / "a" / "train" / layout.EMOTION_DIR).rglob("*.csv"))
    assert csv.stat().st_nlink == 1  # --link copy


def test_cli_split_errors(tmp_path: Path, synthetic_root: Path, capsys):
    assert main(["data", "split", str(tmp_path)]) == 2
    assert "all.csv" in capsys.readouterr().err
    pool = tmp_path / "pool"
    make_pool(synthetic_root, pool)
    victim = next((pool / "all" / layout.EMOTION_DIR).rglob("*.csv"))
    victim.unlink()
    assert main(["data", "split", str(pool)]) == 2
    assert "attribute CSV" in capsys.readouterr().err
    assert not (pool / "train.csv").exists() and not (pool / "train").exists()
    np.testing.assert_equal(sorted(p.name for p in pool.iterdir()), ["all", "all.csv"])
