import hashlib
import json
from pathlib import Path

import pytest

from regnn.cli import build_parser, main


def _digest(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "synthetic.json" and ".regnn-cache" not in p.parts:
            out[str(p.relative_to(root))] = hashlib.sha1(p.read_bytes()).hexdigest()
    return out


def test_synth_is_deterministic_for_a_seed(tmp_path: Path, capsys):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        assert main(["synth", "--out", str(tmp_path / name), "--dyads", "9", "--seed",
                     str(seed)]) == 0
    a, b, c = (_digest(tmp_path / n) for n in "abc")
    assert a == b and len(a) > 20
    assert a != c and a.keys() == c.keys()
    out = capsys.readouterr().out
    assert "one-to-many" in out and "synthetic REACT dataset" in out


def test_synth_one_to_many_figure_and_summary(tmp_path: Path):
    assert main(["synth", "--out", str(tmp_path / "d"), "--dyads", "12", "--json"]) == 0
    meta = json.loads((tmp_path / "d" / "synthetic.json").read_text())["summary"]
    o = meta["one_to_many"]
    # reactions of one style to one speaker agree; different styles clearly differ
    assert o["ccc_same_style"] > 0.5 > 0.2 > o["ccc_different_style"]
    assert o["ccc_same_style_other_speaker_cluster"] < 0.2
    assert meta["splits"]["test"]["items"] == 8


def test_synth_rejects_too_few_dyads(tmp_path: Path, capsys):
    assert main(["synth", "--out", str(tmp_path / "x"), "--dyads", "4"]) == 2
    assert "need at least 3" in capsys.readouterr().err


def test_every_command_has_help(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in sub.choices:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        assert "usage: regnn " + name in capsys.readouterr().out


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline(tmp_path: Path, capsys):
    out_dir = tmp_path / "demo"
    args = ["demo", "--out", str(out_dir), "--dyads", "12", "--epochs", "1", "--samples", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "OK: no problems" in out and "report:" in out
    for name in ("REGNN", "gt", "random", "mime", "meanseq", "meanfr"):
        assert f"\n  {name} " in out
    scores = json.loads((out_dir / "pred" / "scores.json").read_text())
    assert scores["K"] == 2 and scores["scores"]["FRDiv"] > 0
    assert scores["references"]["gt"]["FRDist"] == 0.0
    assert (out_dir / "report.html").stat().st_size > 10_000
    # a second run reuses the finished stages
    assert main(args) == 0
    assert "reusing the finished run" in capsys.readouterr().out
