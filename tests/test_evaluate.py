"""regnn baseline / regnn evaluate on the small synthetic dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from regnn.cli import main
from regnn.data.react import ReactSplit
from regnn.errors import DataError
from regnn.evaluate import evaluate_predictions, load_predictions
from regnn.references import trivial_predictions


def test_gt_scores_and_json(synthetic_root: Path, gt_pred: Path, capsys) -> None:
    assert main(["evaluate", "--data", str(synthetic_root), "--pred", str(gt_pred),
                 "--no-progress", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "FRDist" in printed and "scores written to" in printed
    res = json.loads((gt_pred / "scores.json").read_text())
    ds = ReactSplit(synthetic_root, "test", audio=False)
    assert res["items"] == len(ds) and res["K"] == 3 and res["split"] == "test"
    assert res["scores"]["FRDist"] == 0.0
    assert res["scores"]["FRDiv"] == 0.0
    assert res["scores"]["PCC"] == pytest.approx(1.0)
    assert res["scores"]["FRRea"] == pytest.approx(0.0, abs=1e-9)
    assert set(res["scores"]) == {"FRCorr", "FRDist", "FRDiv", "FRVar", "FRDvs", "PCC",
                                  "TLCC", "FRRea", "Jitter", "FRDivRatio", "FRCov"}
    assert res["scores"]["Jitter"] == pytest.approx(1.0)  # the real reactions themselves
    assert res["higher_is_better"]["Jitter"] is None  # closest to 1 is best
    assert res["dataset"]["items"] == len(ds) and "split_csv_sha256" in res["dataset"]
    assert "commit" in res and res["timing"]["total_s"] > 0
    assert res["timing"]["FRDist_s"] >= 0


def test_official_pth_layout_gives_same_scores(synthetic_root: Path, gt_pred: Path,
                                               tmp_path: Path) -> None:
    ds = ReactSplit(synthetic_root, "test", audio=False)
    for it in ds.items:
        arr = np.load(gt_pred / "test" / f"{it.speaker_path}.npy")
        folder = tmp_path / "official" / it.speaker_path
        folder.mkdir(parents=True)
        for j, reaction in enumerate(arr):
            torch.save(torch.from_numpy(reaction.copy())[None], folder / f"result-{j}.pth")
    a = evaluate_predictions(synthetic_root, "test", gt_pred, write=False, progress=False)
    b = evaluate_predictions(synthetic_root, "test", tmp_path / "official", write=False,
                             progress=False)
    assert a["scores"].keys() == b["scores"].keys()
    for key, value in a["scores"].items():  # NaN where the small split has no item with
        np.testing.assert_equal(b["scores"][key], value)  # two appropriate reactions


def test_missing_and_malformed_items_are_listed(synthetic_root: Path, gt_pred: Path,
                                                tmp_path: Path, capsys) -> None:
    ds = ReactSplit(synthetic_root, "test", audio=False)
    paths = [it.speaker_path for it in ds.items]
    bad = tmp_path / "bad"
    for sp in paths[2:]:
        target = bad / "test" / f"{sp}.npy"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((gt_pred / "test" / f"{sp}.npy").read_bytes())
    with pytest.raises(DataError, match=r"2 of \d+ items have no predictions.*" + paths[0]):
        load_predictions(bad, "test", paths)
    assert main(["evaluate", "--data", str(synthetic_root), "--pred", str(bad),
                 "--no-progress"]) == 2
    assert "have no predictions" in capsys.readouterr().err
    for sp in paths[:2]:
        np.save(bad / "test" / f"{sp}.npy", np.zeros((3, 700, 25), np.float32))
    with pytest.raises(DataError, match=r"2 prediction\(s\) refused.*shape \(3, 700, 25\)"):
        load_predictions(bad, "test", paths)
    np.save(bad / "test" / f"{paths[0]}.npy", np.zeros((2, 750, 25), np.float32))
    np.save(bad / "test" / f"{paths[1]}.npy", np.full((3, 750, 25), np.nan, np.float32))
    with pytest.raises(DataError, match="non-finite"):
        load_predictions(bad, "test", paths)
    np.save(bad / "test" / f"{paths[1]}.npy", np.zeros((3, 750, 25), np.float32))
    with pytest.raises(DataError, match="K = 2, most items have K = 3"):
        load_predictions(bad, "test", paths)


def test_baselines(synthetic_root: Path, tmp_path: Path) -> None:
    ds = ReactSplit(synthetic_root, "test", audio=False)
    for seed_run in ("a", "b"):
        assert main(["baseline", "random", "--data", str(synthetic_root), "--out",
                     str(tmp_path / seed_run), "--samples", "2", "--seed", "5",
                     "--no-progress"]) == 0
    sp = ds.items[0].speaker_path
    a = np.load(tmp_path / "a" / "test" / f"{sp}.npy")
    b = np.load(tmp_path / "b" / "test" / f"{sp}.npy")
    np.testing.assert_array_equal(a, b)  # same seed, same output
    assert a.shape == (2, 750, 25) and not np.array_equal(a[0], a[1])
    assert (a[..., 15:17] < 0).any() and (a >= -1).all() and (a <= 1).all()
    np.testing.assert_allclose(a[..., 17:].sum(-1), 1.0, rtol=1e-5)
    # means come from the train split's listener reactions
    train = ReactSplit(synthetic_root, "train", audio=False).listeners().astype(np.float64)
    train_split = ReactSplit(synthetic_root, "train", audio=False)
    seq = trivial_predictions("meanseq", ds, train_split, k=2)
    np.testing.assert_allclose(seq[0, 0], train.mean(0), rtol=1e-5, atol=1e-6)
    pred = trivial_predictions("meanfr", ds, train_split, k=2)
    assert pred.shape == (len(ds), 2, 750, 25)
    np.testing.assert_allclose(pred[1, 1, 5], train.mean((0, 1)), rtol=1e-5, atol=1e-6)
    mime = trivial_predictions("mime", ds, k=1)
    np.testing.assert_array_equal(mime[:, 0], ds.speakers())


@pytest.mark.parametrize("cmd", ["evaluate", "baseline"])
def test_help(cmd: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main([cmd, "--help"])
    assert exc.value.code == 0
    assert "--data" in capsys.readouterr().out


PTH_BAD = [  # what a result-<j>.pth holds, and what the error must say
    ({"pred": torch.zeros(750, 25)}, "holds a dict, expected a floating-point torch tensor"),
    ([1.0, 2.0], "holds a list, expected"),
    (torch.zeros(750, 25, dtype=torch.int64), "dtype torch.int64, expected"),
    (torch.zeros(750, 25, dtype=torch.bool), "dtype torch.bool, expected"),
    (torch.zeros(700, 25), r"shape \(700, 25\), expected .*\(750, 25\)"),
    (torch.zeros(2, 750, 25), r"shape \(2, 750, 25\)"),
    (torch.full((1, 750, 25), float("nan")), "18750 non-finite value"),
    (torch.tensor(float("inf")).expand(750, 25).clone(), "non-finite"),
]


@pytest.mark.parametrize(("value", "message"), PTH_BAD,
                         ids=["dict", "list", "int64", "bool", "short", "k2", "nan", "inf"])
def test_official_pth_that_is_not_a_prediction_is_named(
        synthetic_root: Path, gt_pred: Path, tmp_path: Path, capsys, value, message: str) -> None:
    """A result-<j>.pth holding a dict, a wrong dtype or shape or non-finite values is a
    DataError naming the file (not a raw TypeError traceback from numpy)."""
    ds = ReactSplit(synthetic_root, "test", audio=False)
    paths = [it.speaker_path for it in ds.items]
    pred = tmp_path / "official"
    for sp in paths:
        folder = pred / sp
        folder.mkdir(parents=True)
        for j, reaction in enumerate(np.load(gt_pred / "test" / f"{sp}.npy")):
            torch.save(torch.from_numpy(reaction.copy()), folder / f"result-{j}.pth")
    wrong = pred / paths[1] / "result-2.pth"
    torch.save(value, wrong)
    with pytest.raises(DataError, match=message) as err:
        load_predictions(pred, "test", paths)
    assert str(wrong) in str(err.value)
    assert main(["evaluate", "--data", str(synthetic_root), "--pred", str(pred),
                 "--no-progress"]) == 2
    printed = capsys.readouterr().err
    assert str(wrong) in printed and "Traceback" not in printed
    assert "weights_only=False" not in printed


def test_official_pth_unreadable_is_named(synthetic_root: Path, tmp_path: Path) -> None:
    ds = ReactSplit(synthetic_root, "test", audio=False)
    paths = [it.speaker_path for it in ds.items]
    folder = tmp_path / "p" / paths[0]
    folder.mkdir(parents=True)
    (folder / "result-0.pth").write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="result-0.pth: cannot read prediction"):
        load_predictions(tmp_path / "p", "test", paths[:1])
