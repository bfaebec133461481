"""Appropriateness table on the test split: a trained run vs the trivial REACT references.

    python benchmarks/table_demo.py --run RUN --data DATA [--pred PRED] [--samples 10]

Generates (unless --pred holds predictions already), builds the references (Random, Mime,
MeanSeq, MeanFr from the train split) and prints FRCorr / FRDist / FRDiv. Uses
``regnn.metrics`` when it is installed, else the plain implementation of regnn.validation.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from regnn.data.react import ReactSplit
from regnn.generate import generate_predictions
from regnn.schema import clip_to_ranges
from regnn.validation import subset_scores


def fr_div(pred: np.ndarray) -> float:
    N, K = pred.shape[:2]
    if K < 2:
        return 0.0
    flat = pred.reshape(N, K, -1).astype(np.float64)
    d = ((flat[:, :, None] - flat[:, None]) ** 2).sum(-1)
    return float((d.sum((1, 2)) / (K * (K - 1) * flat.shape[-1])).mean())


def references(train: ReactSplit, test: ReactSplit, k: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    n = len(test)
    tl = train.listeners()
    shape = (n, k, 750, 25)
    return {
        "Random": clip_to_ranges(rng.uniform(0, 1, shape).astype(np.float32)
                                 * (1 - np.r_[np.zeros(15), 2 * np.ones(2), np.zeros(8)])
                                 - np.r_[np.zeros(15), np.ones(2), np.zeros(8)]),
        "Mime": np.repeat(test.speakers()[:, None], k, axis=1),
        "MeanSeq": np.broadcast_to(tl.mean(0), shape).copy(),
        "MeanFr": np.broadcast_to(tl.mean((0, 1)), shape).copy(),
    }


def table(run: str | Path, data: str | Path, pred_dir: str | Path, samples: int = 10,
          sigma: float = 0.6) -> dict[str, dict[str, float]]:
    """Generate into ``pred_dir`` (if empty) and score REGNN and the references on test."""
    pred_dir = Path(pred_dir)
    if not (pred_dir / "generation.json").is_file():
        generate_predictions(run, data, "test", pred_dir, samples, sigma, progress=False)
    test = ReactSplit(data, "test")
    train = ReactSplit(data, "train", audio=False)
    pred = np.stack([np.load(pred_dir / "test" / f"{it.speaker_path}.npy") for it in test.items])
    listeners, nb = test.listeners(), test.neighbours
    rows = {"REGNN": pred, **references(train, test, pred.shape[1])}
    out = {}
    for name, p in rows.items():
        s = subset_scores(p, listeners, nb)
        out[name] = {"FRCorr": s["FRCorr"], "FRDist": s["FRDist"], "FRDiv": fr_div(p)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--pred", default=None)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--sigma", type=float, default=0.6)
    args = ap.parse_args()
    pred_dir = Path(args.pred or Path(args.run) / "pred")
    t0 = time.perf_counter()
    rows = table(args.run, args.data, pred_dir, args.samples, args.sigma)
    print(f"{'method':10s} {'FRCorr':>8s} {'FRDist':>8s} {'FRDiv':>8s}")
    for name, s in rows.items():
        print(f"{name:10s} {s['FRCorr']:8.4f} {s['FRDist']:8.3f} {s['FRDiv']:8.4f}")
    print(f"({time.perf_counter() - t0:.1f} s; load average {os.getloadavg()})")


if __name__ == "__main__":
    main()
