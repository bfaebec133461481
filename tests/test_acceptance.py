"""Acceptance (slow): demo-config training on the default synthetic data beats the trivial
references in appropriateness on the test split, and the K reactions differ."""

from __future__ import annotations

import pytest

from regnn.cli import main
from regnn.evaluate import evaluate_with_references


@pytest.mark.slow
def test_demo_training_beats_trivial_references(tmp_path):
    data, run, pred = tmp_path / "data", tmp_path / "run", tmp_path / "pred"
    assert main(["synth", "--out", str(data)]) == 0
    assert main(["train", "--data", str(data), "--out", str(run), "--config", "demo",
                 "--no-progress"]) == 0
    assert main(["generate", "--run", str(run), "--data", str(data), "--split", "test",
                 "--out", str(pred), "--samples", "10"]) == 0
    rows = evaluate_with_references(data, "test", pred, k=10)
    for name, s in rows.items():
        print(f"{name:10s} FRCorr {s['FRCorr']:.4f} FRDist {s['FRDist']:.3f} "
              f"FRDiv {s['FRDiv']:.4f}")
    ours = rows["REGNN"]
    for ref in ("random", "mime", "meanseq", "meanfr"):
        assert ours["FRCorr"] > rows[ref]["FRCorr"], ref
        assert ours["FRDist"] < rows[ref]["FRDist"], ref
    assert ours["FRDiv"] > 0
