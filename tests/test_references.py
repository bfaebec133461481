from pathlib import Path

import numpy as np
import pytest

from regnn import schema
from regnn.data.react import ReactSplit
from regnn.errors import ConfigError
from regnn.references import TRIVIAL, nearest_neighbour_predictions, trivial_predictions


def test_trivial_references(synthetic_root: Path):
    test = ReactSplit(synthetic_root, "test", audio=False)
    train = ReactSplit(synthetic_root, "train", audio=False)
    preds = {n: trivial_predictions(n, test, train, k=3, seed=1) for n in TRIVIAL}
    for p in preds.values():
        assert p.shape == (len(test), 3, 750, 25) and p.dtype == np.float32
        assert (p >= schema.LOW - 1e-6).all() and (p <= schema.HIGH + 1e-6).all()
        np.testing.assert_allclose(p[..., 17:].sum(-1), 1.0, atol=1e-4)
    np.testing.assert_array_equal(preds["gt"][:, 2], test.listeners())
    np.testing.assert_array_equal(preds["mime"][:, 0], test.speakers())
    np.testing.assert_allclose(preds["meanseq"][0, 0], train.listeners().mean(0), atol=1e-5)
    np.testing.assert_allclose(preds["meanfr"][3, 1, 100], train.listeners().mean((0, 1)),
                               atol=1e-5)
    r = preds["random"]
    assert set(np.unique(r[..., :15])) == {0.0, 1.0}
    assert abs(r[..., 15:17]).max() <= 1 and 0.4 < r[..., 15:17].std() < 0.5
    assert not np.array_equal(r[:, 0], r[:, 1])  # K independent draws
    np.testing.assert_array_equal(r, trivial_predictions("random", test, k=3, seed=1))


def test_trivial_reference_errors(synthetic_root: Path):
    test = ReactSplit(synthetic_root, "test", audio=False)
    with pytest.raises(ConfigError, match="unknown reference 'copy'"):
        trivial_predictions("copy", test)
    with pytest.raises(ConfigError, match="needs the train split"):
        trivial_predictions("meanseq", test)


def test_nn_reference_retrieves_the_train_listeners_of_the_nearest_speakers():
    rng = np.random.default_rng(0)
    t = np.arange(200)[:, None]
    # three train speakers with different time courses; the test speakers are noisy copies of
    # train speakers 2 and 0
    train_sp = np.stack([0.5 + 0.3 * np.sin(t / p + np.arange(25)) for p in (3.0, 7.0, 13.0)])
    train_li = rng.uniform(0, 1, (3, 200, 25)).astype(np.float32)
    test_sp = train_sp[[2, 0]] + rng.normal(0, 0.02, (2, 200, 25))
    pred = nearest_neighbour_predictions(test_sp, train_sp, train_li, k=4)
    assert pred.shape == (2, 4, 200, 25) and pred.dtype == np.float32
    np.testing.assert_array_equal(pred[0, 0], train_li[2])  # the nearest first
    np.testing.assert_array_equal(pred[1, 0], train_li[0])
    # K > train items: the ranking repeats, every train listener used
    for k in range(2):
        firsts = {tuple(pred[k, i, 0, :3]) for i in range(3)}
        assert len(firsts) == 3
        np.testing.assert_array_equal(pred[k, 3], pred[k, 0])
    with pytest.raises(ConfigError, match="K must be >= 1"):
        nearest_neighbour_predictions(test_sp, train_sp, train_li, k=0)


def test_baseline_nn_command_writes_the_layout(synthetic_root: Path, tmp_path: Path):
    from regnn.cli import main

    out = tmp_path / "nn"
    assert main(["baseline", "nn", "--data", str(synthetic_root), "--out", str(out),
                 "--samples", "3", "--no-progress"]) == 0
    test = ReactSplit(synthetic_root, "test", audio=False)
    train = ReactSplit(synthetic_root, "train", audio=False)
    got = np.load(out / "test" / f"{test.items[0].speaker_path}.npy")
    assert got.shape == (3, 750, 25)
    # every retrieved reaction is a real train listener reaction
    lis = train.listeners()
    for r in got:
        assert any(np.array_equal(r, x) for x in lis)
