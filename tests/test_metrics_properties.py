"""The compiled metrics against the naive reference (tests/react_reference.py) on random
small inputs, including degenerate ones, plus invariants of the individual scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import react_reference as ref
from regnn.metrics import (
    compute_all,
    fr_corr,
    fr_cov,
    fr_dist,
    fr_div,
    fr_div_ratio,
    fr_dvs,
    fr_rea,
    fr_var,
    jitter,
    pcc,
    tlcc,
    weighted_dtw_pair,
)
from regnn.metrics.dtw import min_weighted_dtw

SETTINGS = settings(max_examples=10, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
SLOW_SETTINGS = settings(max_examples=100, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow])


@st.composite
def react_inputs(draw):
    """Random (pred, speaker, listener, neighbours) with the degenerate cases the issue names:
    constant columns, K = 1, a speaker with a single appropriate reaction, T != 750."""
    n = draw(st.integers(1, 4))
    k = draw(st.sampled_from([1, 1, 2, 3]))
    t = draw(st.integers(51, 58))  # TLCC needs T > 49; short keeps the reference fast
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    smooth = draw(st.booleans())

    def seqs(*shape):
        x = rng.random(shape + (t, 25))
        if smooth:  # correlated in time, like real reactions
            x = np.cumsum(x - 0.5, axis=-2) / 4 + 0.5
        return x.astype(np.float32)

    pred, speaker, listener = seqs(n, k), seqs(n), seqs(n)
    for arr, count in ((pred, draw(st.integers(0, 3))), (listener, draw(st.integers(0, 2))),
                       (speaker, draw(st.integers(0, 1)))):
        for _ in range(count):  # constant columns (every correlation through them undefined)
            idx = tuple(rng.integers(0, s) for s in arr.shape[:-2])
            arr[idx + (slice(None), int(rng.integers(0, 25)))] = np.float32(rng.random())
    if draw(st.booleans()):  # a constant stretch: undefined correlation at some lags only
        idx = tuple(rng.integers(0, s) for s in pred.shape[:-2])
        col = int(rng.integers(0, 25))
        pred[idx + (slice(0, t - 10), col)] = pred[idx + (0, col)]
    neighbours = rng.random((n, n)) < 0.4
    np.fill_diagonal(neighbours, True)
    if n > 1 and draw(st.booleans()):
        neighbours[0] = False
        neighbours[0, n - 1] = True  # a single appropriate reaction, not its own
    return pred, speaker, listener, neighbours.astype(np.float64)


def _check_against_reference(inputs) -> None:
    pred, speaker, listener, neighbours = inputs
    got = compute_all(pred, speaker, listener, neighbours)
    # the reference (like the official code) takes means and variances in float32, the fast
    # code in float64: agreement is to float32 precision of the per-column terms
    assert got["FRCorr"] == pytest.approx(ref.fr_corr(pred, listener, neighbours),
                                          rel=1e-5, abs=1e-6)
    assert got["PCC"] == pytest.approx(ref.pcc(pred, listener, neighbours), rel=1e-5, abs=1e-6)
    assert got["FRDist"] == pytest.approx(ref.fr_dist(pred, listener, neighbours), rel=1e-5)
    assert got["FRDiv"] == pytest.approx(ref.fr_div(pred), rel=1e-6, abs=1e-12)
    assert got["FRDvs"] == pytest.approx(ref.fr_dvs(pred), rel=1e-6, abs=1e-12)
    assert got["FRVar"] == pytest.approx(ref.fr_var(pred), rel=1e-6)
    assert got["TLCC"] == ref.tlcc(pred, speaker)
    assert tlcc(pred, speaker, first_only=True) == ref.tlcc(pred, speaker, first_only=True)


@SETTINGS
@given(react_inputs())
def test_fast_metrics_equal_reference(inputs) -> None:
    _check_against_reference(inputs)


@pytest.mark.slow
@SLOW_SETTINGS
@given(react_inputs())
def test_fast_metrics_equal_reference_many(inputs) -> None:
    _check_against_reference(inputs)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**31 - 1))
def test_weighted_dtw_pair_equals_tslearn(n: int, m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.random((n, 25)).astype(np.float32)
    y = rng.random((m, 25)).astype(np.float32)
    assert weighted_dtw_pair(x, y) == pytest.approx(ref.weighted_dtw(x, y), rel=1e-6)


@pytest.mark.parametrize("smooth", [False, True])
def test_lazy_minimum_is_exact(smooth: bool) -> None:
    """Early abandoning and best-first order give the same minimum as the full search, on
    inputs where many candidates have nearly equal distances."""
    rng = np.random.default_rng(3)
    n, k, t = 6, 3, 80
    base = rng.random((1, t, 25))
    listener = base + 0.05 * rng.standard_normal((n, t, 25))
    pred = base[None] + 0.05 * rng.standard_normal((n, k, t, 25))
    if smooth:
        listener = np.cumsum(listener, axis=1) / t
        pred = np.cumsum(pred, axis=2) / t
    neighbours = np.ones((n, n), bool)
    lazy = min_weighted_dtw(pred.astype(np.float32), listener.astype(np.float32), neighbours)
    full = min_weighted_dtw(pred.astype(np.float32), listener.astype(np.float32), neighbours,
                            lazy=False)
    np.testing.assert_array_equal(lazy, full)


def test_ground_truth_predictions() -> None:
    rng = np.random.default_rng(0)
    listener = rng.random((5, 60, 25)).astype(np.float32)
    speaker = rng.random((5, 60, 25)).astype(np.float32)
    pred = np.repeat(listener[:, None], 3, axis=1)
    neighbours = np.eye(5)
    scores = compute_all(pred, speaker, listener, neighbours)
    assert scores["FRDist"] == 0.0
    assert scores["FRDiv"] == 0.0
    assert scores["PCC"] == pytest.approx(1.0)
    # CCC of a sequence with itself: var / (var + 1e-8) per column, summed over K = 3
    assert scores["FRCorr"] == pytest.approx(3.0, rel=1e-5)
    assert scores["FRRea"] == pytest.approx(0.0, abs=1e-9)


def test_torch_tensors_accepted() -> None:
    rng = np.random.default_rng(1)
    pred = rng.random((3, 2, 55, 25)).astype(np.float32)
    lis = rng.random((3, 55, 25)).astype(np.float32)
    nb = np.eye(3)
    assert fr_corr(torch.from_numpy(pred), torch.from_numpy(lis), torch.from_numpy(nb)) == \
        fr_corr(pred, lis, nb)
    assert fr_dist(torch.from_numpy(pred), torch.from_numpy(lis), nb) == fr_dist(pred, lis, nb)


def test_single_metric_functions_agree_with_compute_all() -> None:
    rng = np.random.default_rng(2)
    pred = rng.random((4, 2, 60, 25)).astype(np.float32)
    sp = rng.random((4, 60, 25)).astype(np.float32)
    lis = rng.random((4, 60, 25)).astype(np.float32)
    nb = (rng.random((4, 4)) < 0.5) | np.eye(4, dtype=bool)
    allm = compute_all(pred, sp, lis, nb, workers=1)
    assert allm["FRCorr"] == fr_corr(pred, lis, nb)
    assert allm["FRDist"] == fr_dist(pred, lis, nb)
    assert allm["PCC"] == pcc(pred, lis, nb)
    assert allm["FRDiv"] == fr_div(pred)
    assert allm["FRVar"] == fr_var(pred)
    assert allm["FRDvs"] == fr_dvs(pred)
    assert allm["TLCC"] == tlcc(pred, sp)
    assert allm["FRRea"] == fr_rea(pred, lis)
    assert allm["Jitter"] == jitter(pred, lis, nb)
    assert allm["FRDivRatio"] == fr_div_ratio(pred, lis, nb)
    assert allm["FRCov"] == fr_cov(pred, lis, nb)
    assert list(allm) == ["FRCorr", "FRDist", "FRDiv", "FRVar", "FRDvs", "PCC", "TLCC", "FRRea",
                          "Jitter", "FRDivRatio", "FRCov"]


def test_tlcc_known_lag() -> None:
    """A prediction that copies the speaker 7 frames late is 7 frames off."""
    rng = np.random.default_rng(4)
    speaker = np.cumsum(rng.standard_normal((1, 300, 25)), axis=1).astype(np.float32)
    pred = np.empty((1, 1, 300, 25), np.float32)
    pred[0, 0, 7:] = speaker[0, :-7]
    pred[0, 0, :7] = speaker[0, 0]
    assert tlcc(pred, speaker) == 7.0


def test_tlcc_constant_prediction_takes_first_lag() -> None:
    # every correlation is undefined: the official arg-max returns lag -49, offset 49
    speaker = np.random.default_rng(5).random((2, 120, 25)).astype(np.float32)
    pred = np.full((2, 3, 120, 25), 0.5, np.float32)
    assert tlcc(pred, speaker) == 49.0


def test_torch_mean_matches_one_dimensional_reduction() -> None:
    """The TLCC reduction averages a (lags, 25) block with one torch call; it must give the
    same float32 bits as the official per-lag ``torch.mean(torch.Tensor(list))``."""
    rng = np.random.default_rng(6)
    block = rng.uniform(-1, 1, (400, 25))
    batched = torch.from_numpy(block.astype(np.float32)).mean(dim=-1).numpy()
    single = np.array([torch.mean(torch.Tensor(list(row))).item() for row in block],
                      dtype=np.float32)
    np.testing.assert_array_equal(batched, single)


class TestFRRea:
    rng = np.random.default_rng(7)
    real = (np.cumsum(rng.standard_normal((12, 200, 25)), axis=1) / 20 + 0.5
            ).astype(np.float32)
    pred = real[:, None]

    def test_identical_sets_score_zero(self) -> None:
        assert fr_rea(np.repeat(self.pred, 4, axis=1), self.real) == pytest.approx(0, abs=1e-8)

    def test_grows_with_degradation(self) -> None:
        base = fr_rea(self.pred, self.real)
        kernel = np.ones(9) / 9
        smoothed = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), 2,
                                       self.pred)
        shuffled = self.pred[:, :, self.rng.permutation(200)]
        shifted = self.pred + 0.2
        for degraded in (smoothed, shuffled, shifted):
            assert fr_rea(degraded.astype(np.float32), self.real) > base + 1e-3
        # more smoothing, further away
        heavy = np.apply_along_axis(lambda v: np.convolve(v, np.ones(25) / 25, mode="same"),
                                    2, self.pred)
        assert fr_rea(heavy.astype(np.float32), self.real) > fr_rea(
            smoothed.astype(np.float32), self.real)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda p, n: (p[..., :24], n), "25 facial attributes"),
        (lambda p, n: (p[0], n), "expected 4 dimensions"),
        (lambda p, n: (np.where(np.arange(25) == 3, np.nan, p), n), "non-finite"),
        (lambda p, n: (p, n[:, :2]), "neighbours: expected shape"),
        (lambda p, n: (p, np.zeros_like(n)), "no appropriate reaction"),
    ],
)
def test_bad_input_is_refused(mutate, message) -> None:
    rng = np.random.default_rng(8)
    pred = rng.random((3, 2, 60, 25)).astype(np.float32)
    lis = rng.random((3, 60, 25)).astype(np.float32)
    pred, nb = mutate(pred, np.eye(3))
    with pytest.raises(ValueError, match=message):
        compute_all(pred, lis, lis, nb)


def test_speaker_subset_against_all_listeners() -> None:
    """(n, K, T, 25) predictions of a speaker subset, (M, T, 25) listeners, (n, M) matrix:
    the same numbers as the rows of the full problem (how training validation calls it)."""
    rng = np.random.default_rng(9)
    pred = rng.random((5, 2, 60, 25)).astype(np.float32)
    lis = rng.random((5, 60, 25)).astype(np.float32)
    nb = (rng.random((5, 5)) < 0.5) | np.eye(5, dtype=bool)
    rows = [1, 3]
    assert fr_corr(pred[rows], lis, nb[rows]) == pytest.approx(
        ref.fr_corr(pred[rows], lis, nb[rows]), rel=1e-5, abs=1e-6)
    assert fr_dist(pred[rows], lis, nb[rows]) == pytest.approx(
        ref.fr_dist(pred[rows], lis, nb[rows]), rel=1e-5)
    assert pcc(pred[rows], lis, nb[rows]) == pytest.approx(
        ref.pcc(pred[rows], lis, nb[rows]), rel=1e-5, abs=1e-6)
