"""The regimes of ``regnn synth --regime``: each truth file matches its data; the default is
unchanged."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from regnn.cli import main
from regnn.data import regimes
from regnn.data.layout import matrix_file
from regnn.data.react import ReactSplit
from regnn.data.synthetic import write_synthetic

DYADS = 16  # 4 sessions: 2 train, 1 val, 1 test


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("regimes")
    out = {}
    for name in regimes.regime_names():
        root = base / name
        write_synthetic(root, dyads=DYADS, seed=5, regime=name)
        out[name] = root
    return out


def test_registry_lists_the_regimes_default_first():
    names = regimes.regime_names()
    assert names[0] == regimes.DEFAULT_REGIME == "aligned"
    assert set(names) == {"aligned", "episodes", "styles1", "styles5", "idiosyncratic", "weak",
                          "audio"}
    for name in names:
        assert regimes.get_regime(name).stresses
    with pytest.raises(ValueError, match="unknown regime 'nope'"):
        regimes.get_regime("nope")


def test_cli_rejects_an_unknown_regime(tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["synth", "--out", str(tmp_path / "x"), "--regime", "nope"])
    assert exc.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err


def test_default_regime_is_the_unchanged_demo_data(tmp_path: Path):
    """Split lists, truth file and matrices are byte-identical to those written before regimes
    existed (digest taken from the code at that time), and the attribute values too."""
    write_synthetic(tmp_path / "d", dyads=9, seed=3)
    h = hashlib.sha256()
    for name in ("train.csv", "val.csv", "test.csv", "synthetic_truth.json",
                 "data_indices.csv"):
        h.update((tmp_path / "d" / name).read_bytes())
    for split in ("train", "val", "test"):
        h.update(np.load(matrix_file(tmp_path / "d", split)).tobytes())
    assert h.hexdigest() == "01262133061d1c5265eaf2f23cfc98c7b93a42c49c45290900dc47f897b44bf1"
    csv = tmp_path / "d/train/Emotion/NoXI/001_2016-03-01_Paris/Expert_video/1.csv"
    rows = csv.read_text().splitlines()
    np.testing.assert_allclose(
        [float(v) for v in rows[1].split(",")[:4]], [0.926210, 0.050797, 0.566275, 0.958538],
        atol=2e-6)
    np.testing.assert_allclose(
        [float(v) for v in rows[400].split(",")[:4]], [0.146641, 0.794102, 0.291954, 0.346544],
        atol=2e-6)
    # naming the default explicitly writes the same files
    main(["synth", "--out", str(tmp_path / "e"), "--dyads", "9", "--seed", "3", "--regime",
          "aligned"])
    for name in ("synthetic_truth.json", "train.csv"):
        assert (tmp_path / "d" / name).read_bytes() == (tmp_path / "e" / name).read_bytes()
    assert (csv.read_bytes() == (tmp_path / "e" / csv.relative_to(tmp_path / "d")).read_bytes())


@pytest.mark.parametrize("name", regimes.regime_names())
def test_truth_file_matches_the_data(written: dict[str, Path], name: str):
    root = written[name]
    truth = json.loads((root / "synthetic_truth.json").read_text())
    meta = json.loads((root / "synthetic.json").read_text())
    r = regimes.get_regime(name)
    cfg = meta["config"]
    assert cfg["regime"] == name and meta["summary"]["regime"] == name
    assert (cfg["clusters"], cfg["styles"]) == (r.clusters, r.styles)
    for split in ("train", "val", "test"):
        ds = ReactSplit(root, split)
        n = len(ds) // 2
        groups = np.asarray(truth["groups"][split])
        clusters = np.asarray(truth["clusters"][split])
        styles = np.asarray(truth["styles"][split])
        assert groups.shape == (2 * n,) and clusters.shape == styles.shape == (n,)
        # the groups are the generator's: first persons by cluster, second by (cluster, style)
        np.testing.assert_array_equal(groups[:n], clusters)
        np.testing.assert_array_equal(groups[n:], r.clusters + clusters * r.styles + styles)
        assert clusters.max() < r.clusters and styles.max() < r.styles
        np.testing.assert_array_equal(ds.neighbours, groups[:, None] == groups[None, :])
        assert ds.speaker(0).shape == (750, 25)
        if name == "aligned":
            continue
        assert truth["regime"] == name and truth["stresses"] == r.stresses
        cuts = np.asarray(truth["cuts"][split])
        assert cuts.shape == (n, regimes.EPISODES_PER_SCRIPT - 1)
        lo, hi = regimes.CUT_RANGE
        assert (cuts >= lo * 751 - 1).all() and (cuts <= hi * 751 + 1).all()
        lengths = np.diff(np.concatenate([np.zeros((n, 1)), cuts, np.full((n, 1), 751)], 1))
        assert (lengths >= regimes.MIN_EPISODE * 751 - 1).all()
        gains = np.asarray(truth["listener_gains"][split])
        assert ((gains >= r.listener_gain[0]) & (gains <= r.listener_gain[1])).all()
    if name != "aligned":
        scripts = [tuple(s) for s in truth["scripts"]]
        assert len(scripts) == r.clusters == len(set(scripts))
        assert truth["face_shows_episodes"] == r.face_shows_episodes


def test_episode_boundaries_differ_within_a_context_and_show_in_the_faces(
        written: dict[str, Path]):
    root = written["episodes"]
    truth = json.loads((root / "synthetic_truth.json").read_text())
    cuts = np.asarray(truth["cuts"]["train"])
    clusters = np.asarray(truth["clusters"]["train"])
    for c in np.unique(clusters):
        same = cuts[clusters == c]
        if len(same) > 1:
            assert len({tuple(x) for x in same}) == len(same)  # nobody is time-locked
    ds = ReactSplit(root, "train")
    # the face of a first person: the mean of each episode between its own cut points is
    # closer to the same episode of another speaker of its context than to a different one
    segs = []
    for i in range(len(clusters)):
        x = ds.speaker(i)
        b = [0, *cuts[i], 750]
        segs.append([x[b[j]:b[j + 1]].mean(0) for j in range(len(b) - 1)])
    segs_a = np.asarray(segs)
    hits = total = 0
    for i in range(len(clusters)):
        for k in range(len(clusters)):
            if k != i and clusters[k] == clusters[i]:
                for j in range(segs_a.shape[1]):
                    same_ep = np.linalg.norm(segs_a[i, j] - segs_a[k, j])
                    other = min(np.linalg.norm(segs_a[i, j] - segs_a[k, m])
                                for m in range(segs_a.shape[1]) if m != j)
                    hits += same_ep < other
                    total += 1
    assert total and hits / total > 0.9


def test_audio_regime_faces_do_not_show_the_context(written: dict[str, Path]):
    """First persons' faces carry no episodes; the second persons react to the voice."""
    for name, expect_context in (("audio", False), ("episodes", True)):
        root = written[name]
        truth = json.loads((root / "synthetic_truth.json").read_text())
        cuts = np.asarray(truth["cuts"]["train"])
        ds = ReactSplit(root, "train")
        # episode changes show as jumps of the 2-s mean face across each cut point
        jumps, calm = [], []
        for i in range(len(cuts)):
            x = ds.speaker(i)
            for c in cuts[i]:
                jumps.append(np.linalg.norm(x[c - 60:c - 10].mean(0) - x[c + 10:c + 60].mean(0)))
            calm.append(np.linalg.norm(x[100:150].mean(0) - x[170:220].mean(0)))
        assert (np.median(jumps) > 2 * np.median(calm)) == expect_context, name


def test_styles_and_listeners_per_context(written: dict[str, Path]):
    t1 = json.loads((written["styles1"] / "synthetic_truth.json").read_text())
    assert set(sum(t1["styles"].values(), [])) == {0}
    t5 = json.loads((written["styles5"] / "synthetic_truth.json").read_text())
    meta5 = json.loads((written["styles5"] / "synthetic.json").read_text())["config"]
    assert (meta5["styles"], meta5["clusters"], len(t5["scripts"])) == (5, 6, 6)
    # the style is a trait of a session's second person, balanced over the sessions
    assert set(sum(t5["styles"].values(), [])) <= set(range(5))
    ti = json.loads((written["idiosyncratic"] / "synthetic_truth.json").read_text())
    gains = sum(ti["listener_gains"].values(), [])
    assert len(set(gains)) > 1  # every listener its own gain
    te = json.loads((written["episodes"] / "synthetic_truth.json").read_text())
    assert set(sum(te["listener_gains"].values(), [])) == {1.0}


def test_neighbours_cli_reports_its_choice_on_shifted_episodes(written: dict[str, Path],
                                                               tmp_path: Path, capsys):
    root = written["episodes"]
    assert main(["data", "neighbours", str(root), "--split", "train", "--out",
                 str(tmp_path / "m.npy")]) == 0
    out = capsys.readouterr().out
    # motion finds no structure where speakers are not time-locked; the choice is reported
    assert "method dtw" in out and "auto: first of motion/dtw with silhouette > 0.25" in out
    assert "vs synthetic truth" in out
