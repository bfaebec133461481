"""Acceptance (slow): demo-config training on the default synthetic data beats the trivial
references in appropriateness on the test split, and the K reactions differ."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from regnn.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_training_beats_trivial_references(tmp_path):
    data, run, pred = tmp_path / "data", tmp_path / "run", tmp_path / "pred"
    assert main(["synth", "--out", str(data)]) == 0
    assert main(["train", "--data", str(data), "--out", str(run), "--config", "demo",
                 "--no-progress"]) == 0
    spec = importlib.util.spec_from_file_location("table_demo",
                                                  ROOT / "benchmarks" / "table_demo.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["table_demo"] = mod
    spec.loader.exec_module(mod)
    rows = mod.table(run, data, pred)
    for name, s in rows.items():
        print(f"{name:10s} FRCorr {s['FRCorr']:.4f} FRDist {s['FRDist']:.3f} "
              f"FRDiv {s['FRDiv']:.4f}")
    ours = rows["REGNN"]
    for ref in ("Random", "Mime", "MeanSeq", "MeanFr"):
        assert ours["FRCorr"] > rows[ref]["FRCorr"], ref
        assert ours["FRDist"] < rows[ref]["FRDist"], ref
    assert ours["FRDiv"] > 0
