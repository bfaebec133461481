"""Open the report in headless Chromium as a person would: it loads cleanly and shows things.

Slow (starts a browser); needs the Debian package ``chromium`` (or $REGNN_CHROMIUM).
Keeps the screenshot in ``$REGNN_SCREENSHOT_DIR`` when set, to be looked at.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from regnn.render.browser import check_page, find_chromium
from regnn.report import write_report
from regnn.utils.io import write_json

pytestmark = pytest.mark.slow


@pytest.mark.skipif(find_chromium() is None,
                    reason="no Chromium found: apt-get install -y chromium (Debian) "
                           "or set REGNN_CHROMIUM to a Chrome/Chromium binary")
def test_report_in_headless_chromium(synthetic_root: Path, tmp_path: Path) -> None:
    from test_report import make_predictions, write_lightning_log  # tests/ is on sys.path

    pred, run = tmp_path / "pred", tmp_path / "run"
    make_predictions(synthetic_root, pred)
    write_json(pred / "scores.json", {"FRCorr": 0.31, "FRDist": 5.2, "FRDiv": 0.04,
                                      "FRVar": 0.06, "FRDvs": 0.11, "PCC": 0.2, "TLCC": 30.1})
    write_lightning_log(run)
    html = write_report(run, pred, synthetic_root, tmp_path / "report.html", n_items=2,
                        gif_seconds=4.0, progress=False)
    shot = tmp_path / "report.png"
    page = check_page(html, screenshot=shot, width=1280)

    assert page.console_errors == []
    assert page.title == "regnn report"
    metrics = next(t for t in page.tables if t["cls"] == "metrics")
    assert metrics["header"] == ["FRDist", "FRCorr", "PCC", "FRRea", "FRVar", "FRDvs",
                                 "FRDiv", "TLCC"]
    assert page.animations == 2  # one GIF per item, decoded and laid out
    assert all(im["loaded"] for im in page.images), page.images
    with Image.open(shot) as im:
        assert im.size[0] == 1280 and im.size[1] == page.height > 1500
    keep = os.environ.get("REGNN_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "report.png")
        shutil.copy(html, Path(keep) / "report.html")


@pytest.mark.skipif(find_chromium() is None, reason="no Chromium found")
def test_checker_notices_errors_and_broken_images(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><title>bad</title><link rel="icon" '
                   'href="data:,"></head><body><script>console.error("boom")</script>'
                   '<img alt="broken" src="data:image/gif;base64,AAAA"><table><tbody>'
                   "<tr><th>x</th></tr></tbody></table></body></html>")
    page = check_page(bad)
    assert any("boom" in e for e in page.console_errors)
    assert page.animations == 0 and page.images[0]["loaded"] is False
    assert page.tables[0]["header"] == ["x"]
