"""Jitter, FRDivRatio and FRCov (regnn.metrics.coverage) on hand-built cases."""

from __future__ import annotations

import numpy as np
import pytest

from regnn.metrics import compute_all, fr_cov, fr_div_ratio, jitter
from regnn.metrics.coverage import mean_abs_change, set_s_mse

T = 120


def _smooth(rng: np.random.Generator, n: int) -> np.ndarray:
    """n smooth, clearly different reactions in [0, 1] (T, 25)."""
    t = np.linspace(0, 1, T)[:, None]
    out = []
    for _ in range(n):
        freq = rng.uniform(1, 3, 25)
        phase = rng.uniform(0, 2 * np.pi, 25)
        out.append(0.5 + 0.4 * np.sin(2 * np.pi * freq * t + phase))
    return np.stack(out).astype(np.float32)


@pytest.fixture
def case():
    """3 speakers: speaker 0 has 3 appropriate reactions, speaker 1 has 2, speaker 2 one."""
    rng = np.random.default_rng(0)
    listener = _smooth(rng, 3)
    nb = np.array([[1, 1, 1], [1, 1, 0], [0, 0, 1]], dtype=bool)
    return listener, nb


def test_identical_samples_have_no_diversity_and_cover_one_reaction(case):
    listener, nb = case
    k = 4
    # every speaker: K copies of its first appropriate reaction
    pred = np.stack([np.repeat(listener[np.flatnonzero(row)[:1]], k, axis=0) for row in nb])
    assert fr_div_ratio(pred, listener, nb) == 0.0
    # speakers 0 and 1 (the ones with >= 2 appropriate reactions): 1/3 and 1/2
    assert fr_cov(pred, listener, nb) == pytest.approx((1 / 3 + 1 / 2) / 2)


def test_samples_equal_to_the_appropriate_set_cover_it_all(case):
    listener, nb = case
    pred = np.stack([listener[np.flatnonzero(row)[np.arange(6) % row.sum()]] for row in nb])
    assert fr_cov(pred, listener, nb) == 1.0
    # K = 6 samples repeat speaker 0's 3 reactions twice (4 of 5 other samples differ: 0.8 of
    # the set's S-MSE) and speaker 1's 2 reactions three times (3 of 5: 0.6)
    r0, r1 = set_s_mse(listener[nb[0]]), set_s_mse(listener[nb[1]])
    expected = (0.8 * r0 + 0.6 * r1) / (r0 + r1)
    assert fr_div_ratio(pred, listener, nb) == pytest.approx(expected, rel=1e-5)
    assert jitter(pred, listener, nb) == pytest.approx(1.0, rel=0.05)


def test_a_noisy_copy_jitters_and_a_smoothed_one_does_not(case):
    listener, nb = case
    rng = np.random.default_rng(1)
    clean = np.repeat(listener[:, None], 3, axis=1)
    noisy = clean + rng.normal(0, 0.05, clean.shape).astype(np.float32)
    assert jitter(noisy, listener, nb) > 1.5
    assert jitter(clean, listener, nb) == pytest.approx(1.0)
    still = np.repeat(listener.mean(axis=1, keepdims=True)[:, None], 3, axis=1)
    still = np.broadcast_to(still, clean.shape)
    assert jitter(still, listener, nb) == 0.0


def test_fr_div_ratio_is_the_ratio_of_the_two_s_mse(case):
    listener, nb = case
    rng = np.random.default_rng(2)
    pred = rng.uniform(0, 1, (3, 5, T, 25)).astype(np.float32)
    rows = [0, 1]  # speakers with >= 2 appropriate reactions
    gen = np.mean([set_s_mse(pred[k]) for k in rows])
    real = np.mean([set_s_mse(listener[nb[k]]) for k in rows])
    assert fr_div_ratio(pred, listener, nb) == pytest.approx(gen / real, rel=1e-9)
    # S-MSE of a set = mean squared distance over ordered pairs / (T * 25)
    x = pred[0]
    pairs = [np.square(x[i] - x[j]).sum() for i in range(5) for j in range(5) if i != j]
    assert set_s_mse(x) == pytest.approx(np.mean(pairs) / (T * 25), rel=1e-6)  # float32 sums


def test_mean_abs_change_and_undefined_cases(case):
    listener, _ = case
    x = np.zeros((2, 4, 3), np.float32)
    x[:, 1:] = 1.0  # one step of 1 in three steps, every column
    assert mean_abs_change(x) == pytest.approx(1 / 3)
    one = np.eye(3, dtype=bool)  # every speaker has a single appropriate reaction
    pred = np.repeat(listener[:, None], 2, axis=1)
    assert np.isnan(fr_div_ratio(pred, listener, one))
    assert np.isnan(fr_cov(pred, listener, one))


def test_compute_all_reports_the_additions(case):
    listener, nb = case
    pred = np.stack([listener[np.flatnonzero(row)[np.arange(4) % row.sum()]] for row in nb])
    scores = compute_all(pred, listener, listener, nb)
    assert scores["FRCov"] == 1.0
    assert scores["Jitter"] == pytest.approx(jitter(pred, listener, nb))
    assert scores["FRDivRatio"] == pytest.approx(fr_div_ratio(pred, listener, nb))
