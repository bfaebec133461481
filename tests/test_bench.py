"""``regnn bench`` end to end on tiny data, its resumability, its tables and its scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from regnn.bench import runner
from regnn.bench.runner import REFERENCES
from regnn.metrics.catalogue import PAPER_ORDER as METRICS

TINY_BUDGET = {
    "config": "demo",
    "regnn": {"model": {"width": 16, "heads": 2},
              "train": {"epochs": 1, "batch_size": 32, "val_items": 0, "threads": 1}},
    "baselines": {"model": {"width": 16, "heads": 2},
                  "train": {"epochs": 1, "batch_size": 4, "val_items": 0, "threads": 1}},
}


@pytest.fixture
def tiny_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(runner.BUDGETS, "demo", TINY_BUDGET)


def test_bench_writes_tables_and_resumes(synthetic_root: Path, tmp_path: Path,
                                         tiny_budget: None) -> None:
    out = tmp_path / "bench"
    lines: list[str] = []
    summary = runner.run_bench(synthetic_root, out, budget="demo", seeds=1,
                               systems=["unet", "no-afrdl"], k=3, progress=False,
                               log=lines.append)
    assert len(lines) == 2 and "unet seed 0" in lines[0] and "FRCorr" in lines[0]
    df = pd.read_csv(out / "results.csv")
    assert set(df.system) == {"unet", "no-afrdl", *REFERENCES}
    assert list(df.columns[2:2 + len(METRICS)]) == list(METRICS)
    unet = df[df.system == "unet"].iloc[0]
    assert unet.FRDiv == 0.0  # deterministic system: K identical reactions
    gt = df[df.system == "GT"].iloc[0]
    assert gt.FRDist < unet.FRDist  # the real reaction is the closest appropriate one
    assert np.isclose(gt.FRCorr, 3.0, atol=1e-3)  # CCC 1 with itself, summed over K = 3
    t1 = (out / "table1.md").read_text()
    assert "| UNet |" in t1 and "| Huang et al. (S) cGAN | not run |" in t1
    assert "14.91" in t1  # the published numbers sit beside this run's
    t2 = (out / "table2.md").read_text()
    assert "| AFRDL | Without Graph |" in t2 and "11.60" in t2
    assert "AFRDL beats the same network trained with MSE" in (out / "claims.md").read_text()
    for family in ("appropriateness", "diversity", "realism", "synchrony"):
        assert (out / f"fig_{family}.png").stat().st_size > 1000
    assert summary["seeds"] == 1
    assert json.loads((out / "bench.json").read_text())["budget"] == "demo"
    # resumable: a finished job is not retrained
    stamp = (out / "runs" / "unet" / "seed0" / "train" / "train.json").stat().st_mtime_ns
    lines.clear()
    runner.run_bench(synthetic_root, out, budget="demo", seeds=1, systems=["unet", "no-afrdl"],
                     k=3, progress=False, log=lines.append)
    assert all("done earlier" in line for line in lines)
    assert (out / "runs" / "unet" / "seed0" / "train" / "train.json").stat().st_mtime_ns == stamp
    # an interrupted job (no scores yet) resumes from what it has
    (out / "runs" / "unet" / "seed0" / "scores.json").unlink()
    lines.clear()
    runner.run_bench(synthetic_root, out, budget="demo", seeds=1, systems=["unet"], k=3,
                     progress=False, log=lines.append)
    assert "done earlier" not in lines[0]
    assert (out / "runs" / "unet" / "seed0" / "train" / "train.json").stat().st_mtime_ns == stamp
    assert pd.read_csv(out / "results.csv").query("system == 'unet'").FRCorr.iloc[0] == \
        pytest.approx(unet.FRCorr)


def test_bench_cli_help_and_bad_input(synthetic_root: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from regnn.cli import main

    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    assert "--budget" in capsys.readouterr().out
    assert main(["bench", "--data", str(synthetic_root), "--out", str(tmp_path / "b"),
                 "--systems", "nope", "--no-progress"]) == 2
    assert "unknown system 'nope'" in capsys.readouterr().err
    assert main(["bench", "--data", str(synthetic_root), "--out", str(tmp_path / "b"),
                 "--seeds", "0", "--no-progress"]) == 2


def test_bench_configs_share_data_and_budget_within_a_family() -> None:
    regnn = runner.bench_config("regnn", "demo")
    for name in ("face-only", "audio-only", "no-afrdl", "iresnet-motor", "no-mefl"):
        c = runner.bench_config(name, "demo")
        assert c.train == regnn.train  # the ablations train exactly like REGNN
        assert c.model.width == regnn.model.width
    # the demo budget trains REGNN as make demo does (the demo config), without validation
    from regnn.config import load_config

    demo = load_config("demo").train
    assert (regnn.train.epochs, regnn.train.lr, regnn.train.val_items) == (demo.epochs, demo.lr, 0)
    for name in ("regnn-paper", "regnn-authors"):  # the other two configurations: same budget
        c = runner.bench_config(name, "demo")
        assert (c.train.epochs, c.train.lr, c.train.clip_windows) == (demo.epochs, demo.lr, 1)
    assert runner.bench_config("regnn", "full").train.epochs == 100
    assert runner.bench_config("unet", "demo", threads=1).train.threads == 1


# ---------------------------------------------------------------------------- references, metrics
def test_reference_rows_are_the_react_trivial_references(synthetic_root: Path,
                                                          tmp_path: Path) -> None:
    data = runner._SplitData(synthetic_root, "test")
    for name in REFERENCES:
        rec = runner.run_reference(name, 0, tmp_path, data, k=2)
        assert rec["system"] == name
        assert json.loads((tmp_path / "runs" / name / "seed0" / "scores.json").read_text())[
            "FRCorr"] == pytest.approx(rec["FRCorr"])
    gt = json.loads((tmp_path / "runs" / "GT" / "seed0" / "scores.json").read_text())
    assert gt["FRDist"] == pytest.approx(0.0, abs=1e-3) and gt["FRDiv"] == 0.0
    rnd = json.loads((tmp_path / "runs" / "Random" / "seed0" / "scores.json").read_text())
    assert rnd["FRDiv"] > 0 and rnd["FRCorr"] < gt["FRCorr"]


def test_bench_on_regimes_writes_a_table_per_regime_and_the_claims(tmp_path: Path,
                                                                  tiny_budget: None) -> None:
    from regnn.bench.regimes import run_regimes
    from regnn.errors import ConfigError

    out = tmp_path / "regimes"
    lines: list[str] = []
    run_regimes(out, ["aligned", "episodes"], dyads=12, budget="demo", seeds=1, k=2,
                progress=False, log=lines.append)
    for regime in ("aligned", "episodes"):
        assert (out / regime / "table1.md").is_file()
        assert (out / "data" / f"{regime}-seed0" / "train.csv").is_file()
    text = (out / "regimes.md").read_text()
    assert "| aligned |" in text and "| episodes |" in text
    assert "REGNN beats Mime (FRCorr)" in text and "time-locked" in text
    summary = json.loads((out / "regimes.json").read_text())
    row = summary["regimes"]["episodes"]
    assert set(row["values"]) >= {"regnn", "Mime", "MeanSeq", "Random", "NN"}
    expected = row["values"]["regnn"]["FRDist"] < row["values"]["Mime"]["FRDist"]
    assert row["claims"]["REGNN beats Mime (FRDist)"] is expected
    with pytest.raises(ConfigError, match="unknown regime"):
        run_regimes(out, ["nope"], budget="demo")
