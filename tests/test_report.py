"""The HTML report, the render/report commands, and the readers they rely on."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from regnn.cli import main
from regnn.data.react import ReactSplit
from regnn.errors import ConfigError, DataError
from regnn.render.video import probe_video
from regnn.report import ReportOptions, choose_items, write_report
from regnn.results import load_prediction, read_scores
from regnn.schema import CLIP_FRAMES, FPS, clip_to_ranges
from regnn.utils.io import save_npy, write_json

K = 4
FAST = {"n_items": 1, "gif_seconds": 2.0, "face_size": 48, "n_generated": 2, "progress": False}


def make_predictions(root: Path, pred: Path, split: str = "test", k: int = K) -> ReactSplit:
    """Noisy copies of each item's real listener reaction, in the PRED layout."""
    ds = ReactSplit(root, split, audio=False)
    rng = np.random.default_rng(0)
    for i, item in enumerate(ds.items):
        noisy = ds.listener(i)[None] + rng.normal(0, 0.1, (k, CLIP_FRAMES, 25))
        save_npy(pred / split / f"{item.speaker_path}.npy", clip_to_ranges(noisy))
    return ds


def write_lightning_log(run: Path) -> Path:
    path = run / "lightning_logs" / "version_0" / "metrics.csv"
    path.parent.mkdir(parents=True)
    rows = ["epoch,step,train_loss,val_loss"]
    rows += [f"{e},{10 * e + 9},{1 / (e + 1):.4f}," for e in range(5)]
    rows += [f"{e},{10 * e + 9},,{1.2 / (e + 1):.4f}" for e in range(5)]
    path.write_text("\n".join(rows) + "\n")
    return path


def gifs_in(page: str) -> list[Image.Image]:
    out = []
    for b64 in re.findall(r'src="data:image/gif;base64,([A-Za-z0-9+/=]+)"', page):
        out.append(Image.open(io.BytesIO(base64.b64decode(b64))))
    return out


@pytest.fixture(scope="module")
def full_report(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("report")
    pred, run = base / "pred", base / "run"
    make_predictions(synthetic_root, pred)
    write_json(pred / "scores.json", {
        "split": "test", "K": K,
        "scores": {"FRC": 0.31, "FRD": 5.25, "S-MSE": 0.04, "FRVar": 0.06, "FRDvs": 0.11,
                   "PCC": 0.2, "Synchrony": 30.5, "FRRea": {"value": 12.5, "kind": "fd"}},
    })
    write_lightning_log(run)
    out = write_report(run, pred, synthetic_root, base / "report.html", **FAST)
    return out, pred


def test_report_has_metrics_curves_plots_and_animation(full_report: tuple[Path, Path]) -> None:
    out, _ = full_report
    page = out.read_text(encoding="utf-8")
    table = page[page.index('<table class="metrics">'):page.index("</table>",
                                                                  page.index('class="metrics"'))]
    for name, value in [("FRCorr", "0.3100"), ("FRDist", "5.2500"), ("FRDiv", "0.0400"),
                        ("TLCC", "30.50"), ("FRRea", "12.50"), ("PCC", "0.2000")]:
        assert re.search(rf"<th>{name}</th><td class=\"num\">{re.escape(value)}</td>", table), name
    assert "No metrics" not in page and "No training curves" not in page
    assert "metrics.csv" in page
    pngs = re.findall(r'src="data:image/png;base64,', page)
    assert len(pngs) == 3  # training curves, distribution, one item's time series
    gifs = gifs_in(page)
    assert len(gifs) == 1
    assert gifs[0].n_frames == int(2.0 * 12.5)  # 2 s at 12.5 fps
    # self-contained: nothing fetched from elsewhere, no script
    assert "<script" not in page and not re.search(r'(src|href)="(https?:|file:|/)', page)


def test_report_without_scores_or_logs_says_so(synthetic_root: Path, full_report, tmp_path
                                                ) -> None:
    _, pred = full_report
    bare = tmp_path / "pred"
    bare.mkdir()
    (bare / "test").symlink_to(pred / "test", target_is_directory=True)  # no scores.json
    out = write_report(tmp_path / "no-run", bare, synthetic_root, tmp_path / "r.html",
                       **{**FAST, "n_items": 0})
    page = out.read_text(encoding="utf-8")
    assert "No metrics" in page and "scores.json does not exist" in page
    assert "No training curves" in page
    assert len(gifs_in(page)) == 0 and "The split has no items" in page


def test_report_without_predictions_shows_real_data(synthetic_root: Path, tmp_path: Path
                                                    ) -> None:
    out = write_report(None, None, synthetic_root, tmp_path / "r.html", **FAST)
    page = out.read_text(encoding="utf-8")
    assert "No prediction folder given" in page and "No metrics" in page
    assert "no distribution plot" in page
    gifs = gifs_in(page)
    assert len(gifs) == 1 and gifs[0].size[0] > 0


def test_write_report_rejects_unknown_option(synthetic_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown report option"):
        write_report(None, None, synthetic_root, tmp_path / "r.html", n_itmes=1)


def test_choose_items() -> None:
    opts = ReportOptions(n_items=3)
    assert choose_items(8, [True] * 8, opts) == [0, 4, 7]
    assert choose_items(8, [i in (2, 5) for i in range(8)], opts) == [2, 5]
    assert choose_items(8, [False] * 8, ReportOptions(n_items=1)) == [0]
    assert choose_items(8, [True] * 8, ReportOptions(items=[3, 3, 1])) == [3, 1]
    with pytest.raises(ConfigError, match="out of range"):
        choose_items(8, [True] * 8, ReportOptions(items=[8]))


def test_read_scores_is_tolerant(tmp_path: Path) -> None:
    assert read_scores(tmp_path / "none.json") is None
    p = tmp_path / "scores.json"
    p.write_text(json.dumps({"FRCorr": 0.5, "TLCC": 12, "n_items": 32,
                             "scores": {"FRCorr": 0.9, "frdist": 3.0, "FRRea": {"score": 7}}}))
    s = read_scores(p)
    assert s.values["FRCorr"] == 0.5  # the top level wins
    assert s.values["FRDist"] == 3.0 and s.values["TLCC"] == 12.0 and s.values["FRRea"] == 7
    assert s.values["FRDiv"] is None
    assert s.extras == {"n_items": 32.0}
    p.write_text("{not json")
    with pytest.raises(DataError, match="cannot read scores"):
        read_scores(p)


def test_reference_rows_appear_beside_the_run(synthetic_root: Path, tmp_path: Path) -> None:
    p = tmp_path / "scores.json"
    p.write_text(json.dumps({"scores": {"FRCorr": 4.5, "FRDist": 150.0},
                             "references": {"mime": {"FRCorr": 4.25, "FRDist": 173.5},
                                            "random": {"FRCorr": 0.03125}}}))
    s = read_scores(p)
    assert s.values["FRCorr"] == 4.5 and s.references["mime"]["FRDist"] == 173.5
    from regnn.report import _metrics_section

    html = _metrics_section(s, tmp_path)
    assert "<th>mime</th><th>random</th>" in html and "173.50" in html and "0.0312" in html


def test_load_prediction_checks_shape(tmp_path: Path) -> None:
    assert load_prediction(tmp_path, "test", "A/b/c/1") is None
    save_npy(tmp_path / "test" / "A/b/c/1.npy", np.zeros((2, 750, 24), np.float32))
    with pytest.raises(DataError, match=r"\(K, T, 25\).*|.*1\.npy"):
        load_prediction(tmp_path, "test", "A/b/c/1")
    save_npy(tmp_path / "test" / "A/b/c/2.npy", np.zeros((2, 700, 25), np.float32))
    with pytest.raises(DataError, match="700 frames"):
        load_prediction(tmp_path, "test", "A/b/c/2", frames=750)



def test_load_prediction_reads_the_official_pth_layout(tmp_path: Path) -> None:
    import torch

    folder = tmp_path / "test" / "A/b/c/3"
    folder.mkdir(parents=True)
    for j in range(3):
        torch.save(torch.full((750, 25), float(j) / 10), folder / f"result-{j}.pth")
    arr = load_prediction(tmp_path, "test", "A/b/c/3", frames=750)
    assert arr.shape == (3, 750, 25) and arr[2, 0, 0] == pytest.approx(0.2)


def test_render_command_mp4_has_clip_frames_duration_and_audio(
        synthetic_root: Path, full_report, tmp_path: Path, capsys) -> None:
    _, pred = full_report
    out = tmp_path / "item.mp4"
    status = main(["render", "--data", str(synthetic_root), "--split", "test", "--item", "1",
                   "--pred", str(pred), "--out", str(out), "--face-size", "48",
                   "--max-generated", "2"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "750 frames at 25 fps (30.00 s)" in printed and "with audio" in printed
    n, secs = probe_video(out)
    assert n == CLIP_FRAMES and secs == pytest.approx(CLIP_FRAMES / FPS)


def test_render_command_gif_and_errors(synthetic_root: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "item.gif"
    assert main(["render", "--data", str(synthetic_root), "--item", "0", "--out", str(out),
                 "--face-size", "48", "--seconds", "1"]) == 0
    assert probe_video(out) == (25, pytest.approx(1.0))
    assert main(["render", "--data", str(synthetic_root), "--item", "99",
                 "--out", str(out)]) == 2
    assert "item 99 out of range" in capsys.readouterr().err
    assert main(["render", "--data", str(synthetic_root), "--item", "0", "--pred",
                 str(tmp_path / "nopred"), "--out", str(out)]) == 2
    assert "no predictions for this item" in capsys.readouterr().err


def test_report_command(synthetic_root: Path, full_report, tmp_path: Path, capsys) -> None:
    _, pred = full_report
    out = tmp_path / "r.html"
    assert main(["report", "--pred", str(pred), "--data", str(synthetic_root), "--out", str(out),
                 "--n-items", "0", "--face-size", "48"]) == 0
    assert f"report: {out.resolve()}" in capsys.readouterr().out
    assert out.is_file() and "FRCorr" in out.read_text(encoding="utf-8")


def test_plots_are_deterministic_pngs() -> None:
    from regnn.render.plots import figure_png, plot_embedding

    rng = np.random.default_rng(1)
    real = rng.random((4, 100, 25)).astype(np.float32)
    gen = rng.random((4, 2, 100, 25)).astype(np.float32)
    first = figure_png(plot_embedding(real, gen), dpi=30)
    second = figure_png(plot_embedding(real, gen), dpi=30)
    assert first[:8] == b"\x89PNG\r\n\x1a\n" and first == second


def test_embedding_places_generated_in_the_real_pca_frame() -> None:
    from regnn.render.plots import embed_windows

    rng = np.random.default_rng(2)
    real = rng.random((6, 100, 25)).astype(np.float32)
    zr, zg, label = embed_windows(real, real.copy())  # identical sets embed identically
    assert zr.shape == zg.shape == (6 * 3, 2) and np.allclose(zr, zg, atol=1e-4)
    assert label.startswith("PC1 (")
    # generated reactions collapsed onto the real mean reaction cluster tightly
    collapsed = np.broadcast_to(real.mean(axis=0), real.shape)
    zc = embed_windows(real, collapsed)[1]
    assert zc.std(axis=0).max() < 0.5 * zr.std(axis=0).min()
