from pathlib import Path

import numpy as np
import pytest

from regnn import schema
from regnn.baselines import TRIVIAL, trivial_predictions
from regnn.data.react import ReactSplit
from regnn.errors import ConfigError


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
