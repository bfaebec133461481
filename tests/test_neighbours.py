"""Appropriateness matrices built from speaker behaviour (regnn data neighbours)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from regnn.cli import main
from regnn.data import neighbours as nb
from regnn.data.layout import matrix_file
from regnn.data.react import ReactSplit
from regnn.errors import ConfigError


def _clustered(groups: list[int], t: int = 300, c: int = 6, noise: float = 0.3, seed: int = 0
               ) -> np.ndarray:
    """Smooth sequences: items of one group share a prototype time course."""
    rng = np.random.default_rng(seed)
    protos = {g: gaussian_filter1d(rng.normal(size=(t, c)), 5, axis=0) for g in set(groups)}
    out = []
    for g in groups:
        x = protos[g] + noise * gaussian_filter1d(rng.normal(size=(t, c)), 5, axis=0)
        out.append(x + rng.normal(size=c))  # a per-person constant baseline
    return np.stack(out).astype(np.float32)


def _same_group(groups: list[int]) -> np.ndarray:
    g = np.asarray(groups)
    return g[:, None] == g[None, :]


# --------------------------------------------------------------------------- distances
@pytest.mark.parametrize("method", nb.DISTANCES)
def test_distances_are_symmetric_with_zero_diagonal(method):
    x = _clustered([0, 0, 1, 1, 2], t=100)
    d = nb.distance_matrix(x, method)
    assert d.shape == (5, 5)
    np.testing.assert_allclose(d, d.T, atol=1e-9)
    np.testing.assert_array_equal(np.diag(d), 0.0)
    assert (d >= 0).all() and np.isfinite(d).all()


def test_motion_distance_ignores_a_persons_constant_baseline_but_not_timing():
    x = _clustered([0, 1, 2], t=200)
    shifted = x[0] + np.array([0.5, -1, 2, 0, 0.3, 1], dtype=np.float32)
    lagged = np.roll(x[0], 8, axis=0)
    d = nb.distance_matrix(np.stack([x[0], shifted, lagged, x[1], x[2]]), "motion")
    assert d[0, 1] < 1e-5  # same behaviour, different baseline
    assert d[0, 2] > 0.3  # same behaviour 8 frames later is not the same behaviour


def test_correlation_distance_of_a_constant_item_is_one():
    x = _clustered([0, 1, 2], t=50)
    x[1] = 0.25
    d = nb.distance_matrix(x, "level")
    assert d[0, 1] == pytest.approx(1.0) and d[1, 2] == pytest.approx(1.0) and d[1, 1] == 0


def _naive_dtw_sq(a: np.ndarray, b: np.ndarray, band: int) -> float:
    n, m = len(a), len(b)
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            if abs(i - j) <= band:
                cost = float(((a[i - 1] - b[j - 1]) ** 2).sum())
                acc[i, j] = cost + min(acc[i - 1, j], acc[i, j - 1], acc[i - 1, j - 1])
    return float(acc[n, m])


def test_dtw_kernel_matches_a_naive_reference():
    from regnn.data._dtw_kernel import dtw_sq

    rng = np.random.default_rng(1)
    for band in (0, 2, 12):
        a = rng.normal(size=(12, 3)).astype(np.float32)
        b = rng.normal(size=(12, 3)).astype(np.float32)
        assert dtw_sq(a, b, band) == pytest.approx(_naive_dtw_sq(a, b, band), rel=1e-5)
    assert dtw_sq(a, a, 2) == 0.0


@pytest.mark.slow  # importing tslearn compiles its numba kernels (~40 s on 2 cores)
def test_dtw_kernel_matches_tslearn_with_a_band():
    tslearn = pytest.importorskip("tslearn.metrics")
    from regnn.data._dtw_kernel import dtw_sq

    rng = np.random.default_rng(1)
    for band in (1, 3, 30):
        a = rng.normal(size=(30, 4)).astype(np.float32)
        b = rng.normal(size=(30, 4)).astype(np.float32)
        ref = tslearn.dtw(a, b, global_constraint="sakoe_chiba", sakoe_chiba_radius=band) ** 2
        assert dtw_sq(a, b, band) == pytest.approx(ref, rel=1e-5)


def test_dtw_distance_of_a_time_warped_copy_is_smaller_than_of_another_behaviour():
    x = _clustered([0, 1], t=750, noise=0.0)
    warped = np.roll(x[0], 25, axis=0)  # one step later
    d = nb.distance_matrix(np.stack([x[0], warped, x[1]]), "dtw")
    assert d[0, 1] < 0.5 * d[0, 2]


def test_audio_channels_are_used():
    x = _clustered([0, 0, 1, 1], t=100)
    rng = np.random.default_rng(3)
    mel = rng.normal(size=(4, 100, 64)).astype(np.float32)
    d0 = nb.distance_matrix(x, "motion")
    d1 = nb.distance_matrix(x, "motion", audio=mel)
    assert not np.allclose(d0, d1)
    # frame-level jitter in the audio bands must not drown the smooth facial motion
    groups = [0] * 4 + [1] * 4 + [2] * 4
    x = _clustered(groups, t=300, seed=5)
    noise = np.random.default_rng(6).normal(size=(12, 300, 64)).astype(np.float32)
    g = nb.group(nb.distance_matrix(x, "motion", audio=noise))
    np.testing.assert_array_equal(g.matrix, _same_group(groups))
    with pytest.raises(ConfigError, match="do not match"):
        nb.distance_matrix(x, "motion", audio=mel[:, :50])


def test_unknown_method_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown method 'cosine'"):
        nb.distance_matrix(np.zeros((2, 10, 25)), "cosine")


# --------------------------------------------------------------------------- grouping
def test_silhouette_matches_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(40, 3))
    d = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
    labels = rng.integers(0, 6, size=40)
    labels[0] = 99  # a singleton
    ref = metrics.silhouette_score(d, labels, metric="precomputed")
    assert nb.silhouette(d, labels) == pytest.approx(ref, abs=1e-12)


def test_auto_threshold_recovers_planted_groups():
    groups = [0] * 5 + [1] * 4 + [2] * 3 + [3] * 2 + [4]
    x = _clustered(groups, seed=2)
    g = nb.group(nb.distance_matrix(x, "motion"))
    np.testing.assert_array_equal(g.matrix, _same_group(groups))
    assert g.threshold_rule == "auto" and g.silhouette > 0.3 and not g.warnings


def test_explicit_thresholds_and_pairwise_rule():
    d = np.array([[0, 0.1, 0.5, 0.9],
                  [0.1, 0, 0.2, 0.8],
                  [0.5, 0.2, 0, 0.3],
                  [0.9, 0.8, 0.3, 0]])
    pairs = nb.group(d, 0.25, "none").matrix
    np.testing.assert_array_equal(pairs, d <= 0.25)
    complete = nb.group(d, 0.25, "complete").matrix  # {0,1} then 2 alone, 3 alone
    assert complete[0, 1] and not complete[1, 2] and complete.sum() == 6
    single = nb.group(d, 0.35, "single").matrix  # chaining joins everything
    assert single.all()
    pct = nb.group(d, "50%", "none")
    assert pct.threshold == pytest.approx(np.percentile([0.1, 0.5, 0.9, 0.2, 0.8, 0.3], 50))
    # the 0th percentile is the smallest distance: only the closest pair joins (d <= t)
    assert nb.group(d, "0%", "complete").matrix.sum() == 6


@pytest.mark.parametrize("bad", ["abc", "-1", "150%", "nan"])
def test_bad_threshold_is_rejected(bad):
    with pytest.raises(ConfigError, match="threshold"):
        nb.parse_threshold(bad)


def test_too_few_items_keep_only_the_diagonal():
    g = nb.group(np.array([[0.0, 0.2], [0.2, 0.0]]))
    assert g.matrix.sum() == 2 and g.warnings


def test_summary_and_precision_recall():
    m = np.eye(4, dtype=bool)
    m[0, 1] = m[1, 0] = True
    s = nb.summarise(m)
    assert (s["items"], s["appropriate_min"], s["appropriate_max"], s["isolated"]) == (4, 1, 2, 2)
    assert s["appropriate_mean"] == pytest.approx(1.5)
    truth = np.ones((4, 4), dtype=bool)
    pr = nb.precision_recall(m, truth)
    assert pr["precision"] == 1.0 and pr["recall"] == pytest.approx(2 / 12)


# --------------------------------------------------------------------------- on datasets
@pytest.fixture(scope="module")
def root24(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 dyads: a train split of 4 sessions (16 rows, 32 items) with all 3 styles."""
    from regnn.data.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("syn24") / "react"
    write_synthetic(root, dyads=24, seed=7)
    return root


def _truth(root: Path, split: str) -> np.ndarray:
    g = np.asarray(json.loads((root / "synthetic_truth.json").read_text())["groups"][split])
    return g[:, None] == g[None, :]


def test_recovers_the_synthetic_truth(root24: Path):
    res = nb.build_neighbours(root24, "train")
    truth = _truth(root24, "train")
    assert truth.sum() > 2 * len(truth)  # groups with several members exist
    pr = nb.precision_recall(res.matrix, truth)
    assert pr["precision"] >= 0.9 and pr["recall"] >= 0.9, pr
    assert res.summary["threshold_rule"] == "auto" and res.grouping.silhouette > 0.25


def test_parallel_reading_gives_the_same_arrays(synthetic_root: Path):
    serial, _ = nb.load_behaviours(synthetic_root, "val", workers=1)
    parallel, _ = nb.load_behaviours(synthetic_root, "val", workers=2, parallel_min=1)
    np.testing.assert_array_equal(serial, parallel)
    ds = ReactSplit(synthetic_root, "val")
    np.testing.assert_array_equal(serial[5], ds.speaker(5))


def test_no_structure_keeps_the_diagonal(synthetic_root: Path):
    # the small fixture's splits have 8 items in 8 different true groups
    res = nb.build_neighbours(synthetic_root, "test")
    np.testing.assert_array_equal(res.matrix, _truth(synthetic_root, "test"))
    assert res.matrix.sum() == 8 and res.summary["isolated"] == 8
    assert "no substantial cluster structure" in res.grouping.warnings[0]


def test_cli_writes_a_valid_matrix_and_refuses_to_overwrite(dataset_copy: Path, capsys):
    target = matrix_file(dataset_copy, "test")
    before = np.load(target)
    assert main(["data", "neighbours", str(dataset_copy), "--split", "test"]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err
    np.testing.assert_array_equal(np.load(target), before)  # untouched

    assert main(["data", "neighbours", str(dataset_copy), "--split", "test", "--force"]) == 0
    out = capsys.readouterr().out
    assert "isolated speakers (own listener only): 8" in out and "8 items" in out
    assert "precision n/a" in out  # no pair built, none true
    m = np.load(target)
    assert m.shape == (8, 8) and m.dtype == np.float64
    assert set(np.unique(m)) <= {0.0, 1.0} and (np.diag(m) == 1).all()
    np.testing.assert_array_equal(m, m.T)
    assert ReactSplit(dataset_copy, "test").neighbours.shape == (8, 8)
    assert main(["data", "check", str(dataset_copy), "--no-audio"]) == 0


def test_cli_out_all_splits_json_and_determinism(dataset_copy: Path, tmp_path: Path, capsys):
    out1, out2 = tmp_path / "m1", tmp_path / "m2"
    for out in (out1, out2):
        assert main(["data", "neighbours", str(dataset_copy), "--split", "all", "--out",
                     str(out), "--method", "level", "--threshold", "0.5", "--json"]) == 0
    summaries = json.loads(capsys.readouterr().out.split("\n]\n")[0] + "\n]")
    assert [s["split"] for s in summaries] == ["train", "val", "test"]
    assert summaries[0]["threshold_rule"] == "distance" and summaries[0]["threshold"] == 0.5
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(np.load(matrix_file(out1, split)),
                                      np.load(matrix_file(out2, split)))


def test_cli_bad_threshold_fails_before_reading(dataset_copy: Path, capsys):
    assert main(["data", "neighbours", str(dataset_copy), "--split", "val", "--threshold",
                 "lots", "--out", str(dataset_copy / "x.npy")]) == 2
    assert "threshold 'lots'" in capsys.readouterr().err
    assert not (dataset_copy / "x.npy").exists()


@pytest.mark.parametrize("name", ["neighbours", "split", "import"])
def test_data_subcommands_have_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["data", name, "--help"])
    assert exc.value.code == 0
    assert "usage: regnn data " + name in capsys.readouterr().out


# --------------------------------------------------------------------------- auto, timing shifts
def _scripted(groups: list[int], t: int = 750, c: int = 8, seed: int = 0) -> np.ndarray:
    """Hand-built time-shifted episodes: each group plays its own script of 3 behaviour
    states (means drawn from a bank of 5, shared between scripts), every item with its own
    boundaries anywhere between 15 % and 85 % of the clip, plus smooth noise and a baseline."""
    rng = np.random.default_rng(seed)
    bank = rng.normal(0, 1.5, (5, c))
    scripts = {0: (0, 1, 2), 1: (2, 1, 0), 2: (3, 0, 4), 3: (1, 4, 3)}
    out = []
    for g in groups:
        while True:
            cuts = np.sort(rng.uniform(0.15 * t, 0.85 * t, 2)).astype(int)
            if min(np.diff([0, *cuts, t])) >= 0.1 * t:
                break
        x = np.empty((t, c))
        for e, a, b in zip(scripts[g], [0, *cuts], [*cuts, t], strict=True):
            x[a:b] = bank[e]
        x = gaussian_filter1d(x, 8, axis=0)
        x += 0.4 * gaussian_filter1d(rng.normal(size=(t, c)), 10, axis=0) / 0.2
        out.append(x + 0.3 * rng.normal(size=c))
    return np.stack(out).astype(np.float32)


def test_auto_recovers_a_hand_built_time_shifted_case():
    groups = [0] * 5 + [1] * 5 + [2] * 4 + [3] * 4
    x = _scripted(groups, seed=3)
    choice = nb.build_from_arrays(x, mirrored=False)  # default method: auto
    assert choice.method == "dtw", choice.rule
    assert [c["method"] for c in choice.candidates] == ["motion", "dtw"]
    assert not choice.candidates[0]["structure"] and choice.candidates[1]["structure"]
    assert "motion" in choice.rule and "dtw" in choice.rule  # the criterion is reported
    pr = nb.precision_recall(choice.grouping.matrix, _same_group(groups))
    assert pr["precision"] == 1.0 and pr["recall"] == 1.0, pr
    # the time-locked distance alone finds nothing there
    assert nb.group(nb.distance_matrix(x, "motion")).threshold_rule == "singletons"


def test_auto_keeps_motion_where_speakers_are_time_locked():
    groups = [0] * 5 + [1] * 4 + [2] * 3 + [3] * 2 + [4]
    choice = nb.build_from_arrays(_clustered(groups, seed=2), mirrored=False)
    assert choice.method == "motion" and len(choice.candidates) == 1
    np.testing.assert_array_equal(choice.grouping.matrix, _same_group(groups))


def test_auto_declines_and_names_the_alternative():
    rng = np.random.default_rng(4)
    x = gaussian_filter1d(rng.normal(size=(12, 300, 6)), 5, axis=1).astype(np.float32)
    choice = nb.build_from_arrays(x, mirrored=False)
    g = choice.grouping
    assert g.threshold_rule == "singletons" and g.matrix.sum() == 12
    assert {c["method"] for c in choice.candidates} == set(nb.DISTANCES)
    (warning,) = g.warnings
    assert "no substantial cluster structure under any distance" in warning
    best = max(choice.candidates, key=lambda c: c["silhouette"])
    assert f"--method {best['method']} --threshold {best['threshold']:.4g}" in warning
    assert f"would make {best['groups']} groups" in warning
    # and the alternative does what the warning says
    alt = nb.group(nb.distance_matrix(x, best["method"]), best["threshold"])
    assert len(np.unique(alt.labels)) == best["groups"]


def test_auto_with_a_fixed_threshold_is_refused():
    with pytest.raises(ConfigError, match="needs a named distance"):
        nb.check_method("auto", "0.5")
    nb.check_method("auto", "auto")
    nb.check_method("dtw", "0.5")


def test_nested_groups_are_split_again():
    """Two far-apart families (e.g. listener styles), each holding two groups (contexts)."""
    groups = [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5
    x = _clustered(groups, seed=8, noise=0.5)
    d = nb.distance_matrix(x, "motion")
    family = np.asarray(groups) // 2
    d = d + 3.0 * (family[:, None] != family[None, :])  # families far apart
    np.fill_diagonal(d, 0.0)
    flat = nb.group(d, nested=False)
    assert len(np.unique(flat.labels)) == 2  # the silhouette-best cut stops at the families
    g = nb.group(d)
    assert g.nested_splits == 2
    np.testing.assert_array_equal(g.matrix, _same_group(groups))


def test_partners_of_a_clip_are_never_grouped_under_dtw():
    # four clips: each listener echoes its own speaker a little later
    x = _clustered([0, 1, 2, 3], t=750, noise=0.0)
    items = np.concatenate([x, np.roll(x, 12, axis=1) * 0.9])  # mirrored order
    np.testing.assert_array_equal(nb.mirrored_partners(8), [4, 5, 6, 7, 0, 1, 2, 3])
    echoed = nb.group(nb.distance_matrix(items, "dtw"))
    assert echoed.matrix[0, 4]  # without the rule, speaker and echo are one group
    choice = nb.build_from_arrays(items, method="dtw")
    assert choice.grouping.matrix.sum() == 8  # with it, nothing else is alike
    with pytest.raises(ConfigError, match="pairs"):
        nb.mirrored_partners(5)
