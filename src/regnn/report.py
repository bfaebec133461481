"""One self-contained HTML page about a run: metrics, curves, plots and face animations.

:func:`write_report` reads

- the metrics from ``PRED/scores.json`` (written by ``regnn evaluate``),
- the training curves from the run folder's Lightning CSV logs (``RUN/**/metrics.csv``),
- the predictions ``PRED/<split>/<speaker_path>.npy`` and the data split itself,

and writes one HTML file with every image embedded (``data:`` URIs: PNG plots, GIF
animations), no script and no external resource, so it opens anywhere, offline. Whatever
is missing (no scores, no training log, no predictions) is said on the page instead of
failing. ``regnn demo`` calls :func:`write_report` at its end; ``regnn report`` is the
command-line form.
"""

from __future__ import annotations

import base64
import html
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from regnn.errors import ConfigError
from regnn.render.inputs import find_training_logs
from regnn.results import (
    METRIC,
    PAPER_ORDER,
    PAPER_REGNN,
    SCORES_FILE,
    Scores,
    load_prediction,
    read_scores,
)
from regnn.schema import FPS
from regnn.utils.io import write_text

log = logging.getLogger(__name__)


class Split(Protocol):
    """What the report needs from a data split (:class:`regnn.data.react.ReactSplit`)."""

    items: Sequence[Any]

    def __len__(self) -> int: ...
    def speaker(self, i: int) -> np.ndarray: ...
    def listener(self, i: int) -> np.ndarray: ...
    def listeners(self) -> np.ndarray: ...
    def appropriate(self, i: int) -> np.ndarray: ...


@dataclass
class ReportOptions:
    """How much the report shows; the defaults keep it to a few seconds of rendering."""

    n_items: int = 2  # items shown with plots and animations (evenly spaced over the split)
    items: Sequence[int] | None = None  # explicit item indices instead
    n_generated: int = 3  # generated reactions per animation
    gif_seconds: float = 8.0  # length of each animation (from the clip's start)
    gif_fps: float = 12.5  # frame rate of the animations (every 2nd frame at 25 fps)
    face_size: int = 96  # pixels per face in the animations
    embedding: str = "pca"  # 'pca' or 'tsne'
    seed: int = 0
    progress: bool = True
    title: str = "regnn report"
    notes: list[str] = field(default_factory=list)  # extra lines for the summary (e.g. demo)


def write_report(run_dir: str | Path | None, pred_dir: str | Path | None,
                 data_root: str | Path, out_html: str | Path, split: str = "test",
                 options: ReportOptions | None = None, **kwargs: Any) -> Path:
    """Write the HTML report to ``out_html`` (atomically) and return its path.

    ``run_dir`` (training logs) and ``pred_dir`` (predictions and ``scores.json``) may be
    None or missing; the page then says so. Keyword arguments override fields of
    :class:`ReportOptions` (e.g. ``n_items=1, gif_seconds=4``).
    """
    from regnn.data.react import ReactSplit

    opts = options or ReportOptions()
    for key, value in kwargs.items():
        if not hasattr(opts, key):
            raise ConfigError(f"unknown report option {key!r}")
        setattr(opts, key, value)
    ds = ReactSplit(data_root, split, audio=False)
    page = build_report_html(ds, split, run_dir=run_dir, pred_dir=pred_dir,
                             data_root=data_root, options=opts)
    return write_text(out_html, page)


# --------------------------------------------------------------------------- building


def _b64(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v: float | None) -> str:
    if v is None:
        return "&mdash;"
    if v != v:  # NaN
        return "NaN"
    if float(v).is_integer() and abs(v) >= 1:
        return str(int(v))
    a = abs(v)
    return f"{v:.4f}" if a < 10 else f"{v:.2f}"


def choose_items(n_total: int, have_pred: Sequence[bool], opts: ReportOptions) -> list[int]:
    """The items to show: ``opts.items`` if given, else evenly spaced ones with predictions."""
    if opts.items is not None:
        bad = [i for i in opts.items if not 0 <= i < n_total]
        if bad:
            raise ConfigError(f"item index {bad[0]} out of range: the split has {n_total} items")
        return list(dict.fromkeys(int(i) for i in opts.items))
    pool = [i for i in range(n_total) if have_pred[i]] or list(range(n_total))
    n = min(opts.n_items, len(pool))
    if n <= 0:
        return []
    picks = np.linspace(0, len(pool) - 1, n).round().astype(int)
    return [pool[p] for p in dict.fromkeys(picks.tolist())]


def build_report_html(ds: Split, split: str, run_dir: str | Path | None,
                      pred_dir: str | Path | None, data_root: str | Path | None = None,
                      options: ReportOptions | None = None) -> str:
    """The report page as a string (see :func:`write_report`)."""
    from regnn.render.plots import (
        figure_png,
        plot_embedding,
        plot_time_series,
        plot_training_curves,
    )
    from regnn.render.video import GridAnimator, Panel, write_video

    opts = options or ReportOptions()
    t_start = time.perf_counter()
    n = len(ds)
    notes: list[str] = list(opts.notes)
    frames = ds.speaker(0).shape[0] if n else 0

    # ---- predictions -------------------------------------------------------------------
    preds: dict[int, np.ndarray] = {}
    if pred_dir is not None and Path(pred_dir).is_dir():
        for i in range(n):
            p = load_prediction(pred_dir, split, ds.items[i].speaker_path, frames=frames)
            if p is not None:
                preds[i] = p
        if not preds:
            notes.append(f"No predictions found under {Path(pred_dir) / split}/ "
                         "(expected <speaker_path>.npy per item): generated reactions are "
                         "not shown.")
        elif len(preds) < n:
            notes.append(f"Predictions exist for {len(preds)} of {n} items; the others are "
                         "left out of the plots.")
    else:
        notes.append("No prediction folder given or found: only real data is shown.")
    ks = sorted({p.shape[0] for p in preds.values()})

    # ---- metrics -----------------------------------------------------------------------
    scores: Scores | None = None
    if pred_dir is not None:
        scores = read_scores(Path(pred_dir) / SCORES_FILE)
    metrics_html = _metrics_section(scores, pred_dir)

    # ---- training curves -----------------------------------------------------------------
    logs = find_training_logs(run_dir)
    curves_html: str
    if logs:
        fig = plot_training_curves(logs)
        if fig is None:
            curves_html = _missing(f"The training logs ({len(logs)} metrics.csv) hold no "
                                   "numeric columns.")
        else:
            curves_html = (f'<p>From {", ".join(_esc(p) for p in logs)}.</p>'
                           f'<img class="plot" alt="training curves" '
                           f'src="{_b64(figure_png(fig), "image/png")}">')
    else:
        where = "no run folder was given" if run_dir is None else \
            f"no metrics.csv under {_esc(run_dir)}"
        curves_html = _missing(f"No training curves: {where}.")

    # ---- distribution of generated vs real ------------------------------------------------
    if preds:
        real_all = ds.listeners()
        gen = np.concatenate([preds[i] for i in sorted(preds)])
        fig = plot_embedding(real_all, gen, method=opts.embedding, seed=opts.seed)
        dist_html = (
            "<p>Every reaction cut into 2-s windows (50 frames, stride 25) and embedded in 2-D "
            f"({'PCA fitted on the real windows' if opts.embedding == 'pca' else 't-SNE'}); "
            "right: the mean and spread of each attribute over all frames. Generated "
            "reactions that cover the real cloud, neither collapsed to one spot nor "
            "spread beyond it, resemble the real distribution (cf. the paper's Fig. 8).</p>"
            f'<img class="plot" alt="distribution of generated vs real reactions" '
            f'src="{_b64(figure_png(fig), "image/png")}">'
        )
    else:
        dist_html = _missing("No generated reactions, so no distribution plot.")

    # ---- items: animations and time series ---------------------------------------------
    chosen = choose_items(n, [i in preds for i in range(n)], opts)
    step = max(1, int(round(FPS / opts.gif_fps)))
    gif_frames = int(round(opts.gif_seconds * FPS))
    item_blocks = []
    with tempfile.TemporaryDirectory(prefix="regnn-report-") as tmp:
        for i in chosen:
            item = ds.items[i]
            speaker = ds.speaker(i)
            listener = ds.listener(i)
            appropriate = np.asarray(ds.appropriate(i), dtype=int)
            real = ds.listeners()[appropriate] if appropriate.size else listener[None]
            gen = preds.get(i)
            panels = [Panel("speaker", speaker, "speaker"),
                      Panel("real listener", listener, "listener")]
            if gen is not None:
                panels += [Panel(f"generated {k + 1}", gen[k])
                           for k in range(min(opts.n_generated, gen.shape[0]))]
            an = GridAnimator(panels, face_size=opts.face_size, columns=len(panels),
                              fps=FPS, supersample=2)
            info = write_video(an, Path(tmp) / f"item{i}.gif", step=step, max_frames=gif_frames,
                               progress=opts.progress)
            gif = info.path.read_bytes()
            fig = plot_time_series(speaker, real, gen, title=f"item {i}: {item.speaker_path}")
            ts_png = figure_png(fig, dpi=80)
            k_txt = f"{gen.shape[0]} generated" if gen is not None else "no generated reactions"
            item_blocks.append(
                f'<section class="item"><h3>Item {i}</h3>'
                f"<p>speaker <code>{_esc(item.speaker_path)}</code>, listener "
                f"<code>{_esc(item.listener_path)}</code>; {len(appropriate)} appropriate real "
                f"reaction(s), {k_txt}.</p>"
                f'<figure><img class="anim" alt="animation of item {i}" '
                f'src="{_b64(gif, "image/gif")}"><figcaption>First {info.duration:.1f} s at '
                f"{info.fps:g} fps: speaker, the real listener, then generated reactions. Each "
                "face follows its 25 attributes (brows AU1/2/4, eyes AU6/7, nose AU9, mouth "
                "AU10-AU26); top-right gauge: valence (x) and arousal (y); bottom bars: the 8 "
                "expression probabilities; the red cursor runs along the speaker's (blue) and "
                "listener's (green) mean AU activity.</figcaption></figure>"
                f'<figure><img class="plot" alt="attribute time series of item {i}" '
                f'src="{_b64(ts_png, "image/png")}"><figcaption>The 25 attribute time series: '
                "speaker, appropriate real reactions and generated reactions.</figcaption>"
                "</figure></section>"
            )
    if not chosen:
        item_blocks.append(_missing("The split has no items."))

    # ---- page ------------------------------------------------------------------------------
    summary = [
        ("data", f"{_esc(data_root) if data_root is not None else '(in memory)'}, split "
                 f"<b>{_esc(split)}</b>, {n} items ({frames} frames each)"),
        ("predictions", (f"{_esc(pred_dir)}: {len(preds)} items, K = "
                         f"{', '.join(map(str, ks))}") if preds else "none"),
        ("run", _esc(run_dir) if run_dir is not None else "none"),
    ]
    log.info("report page built in %.1f s", time.perf_counter() - t_start)
    summary_html = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in summary)
    notes_html = "".join(f"<li>{_esc(x)}</li>" for x in notes)
    return _PAGE.format(
        title=_esc(opts.title),
        summary=summary_html,
        notes=f'<ul class="notes">{notes_html}</ul>' if notes else "",
        metrics=metrics_html,
        curves=curves_html,
        distribution=dist_html,
        items="".join(item_blocks),
    )


def _missing(text: str) -> str:
    return f'<p class="missing">{_esc(text)}</p>'


def _metrics_section(scores: Scores | None, pred_dir: str | Path | None) -> str:
    if scores is None:
        where = "no prediction folder was given" if pred_dir is None else \
            f"{Path(pred_dir) / 'scores.json'} does not exist"
        return _missing(f"No metrics: {where}. Run `regnn evaluate` to compute them.")
    refs = scores.references
    rows = []
    for name in PAPER_ORDER:
        m = METRIC[name]
        v = scores.values.get(name)
        ref_cells = "".join(f'<td class="num">{_fmt(r.get(name))}</td>' for r in refs.values())
        rows.append(
            f'<tr><th>{name}</th><td class="num">{_fmt(v)}</td>'
            f'<td class="dir">{"&uarr; higher" if m.better == "higher" else "&darr; lower"}'
            f'</td>{ref_cells}'
            f'<td class="num">{_fmt(PAPER_REGNN.get(name))}</td>'
            f'<td>{_esc(m.family + ": " + m.description)}</td></tr>'
        )
    ref_head = "".join(f"<th>{_esc(r)}</th>" for r in refs)
    extras = ""
    if scores.extras:
        extras = "<p>Other numbers in scores.json: " + ", ".join(
            f"{_esc(k)} = {_fmt(v)}" for k, v in scores.extras.items()) + ".</p>"
    missing = [k for k, v in scores.values.items() if v is None]
    miss = _missing(f"Not in scores.json: {', '.join(missing)}.") if missing else ""
    return (
        f"<p>From <code>{_esc(scores.path)}</code>. The paper column is REGNN's Table I "
        "result on the real REACT test set, for orientation only: numbers on other data "
        "(e.g. the synthetic demo set) are not comparable.</p>"
        + ("<p>Beside this run: the trivial REACT references scored on the same split.</p>"
           if refs else "")
        + '<table class="metrics"><thead><tr><th>metric</th><th>this run</th><th>better</th>'
        + ref_head + "<th>paper REGNN</th><th>measures</th></tr></thead><tbody>"
        + "".join(rows) + "</tbody></table>" + miss + extras
    )


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em auto;
       max-width: 1150px; padding: 0 1em; color: #222; }}
h1 {{ margin-bottom: 0.2em; }} h2 {{ border-bottom: 1px solid #ddd; padding-bottom: 0.2em;
                                     margin-top: 1.6em; }}
table {{ border-collapse: collapse; margin: 0.5em 0; }}
th, td {{ border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left;
         vertical-align: top; }}
thead th {{ background: #f3f3f3; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
td.dir {{ color: #666; white-space: nowrap; }}
img.plot {{ max-width: 100%; height: auto; border: 1px solid #eee; }}
img.anim {{ max-width: 100%; image-rendering: auto; border: 1px solid #eee; }}
figure {{ margin: 0.8em 0; }} figcaption {{ color: #555; font-size: 0.9em; }}
p.missing {{ background: #fff6e0; border-left: 4px solid #e0a020; padding: 0.4em 0.8em; }}
ul.notes li {{ color: #7a5200; }}
code {{ background: #f5f5f5; padding: 0 0.2em; }}
</style></head>
<body>
<h1>{title}</h1>
<table class="summary">{summary}</table>
{notes}
<h2>Metrics</h2>
{metrics}
<h2>Training curves</h2>
{curves}
<h2>Generated vs real reactions</h2>
{distribution}
<h2>Examples</h2>
{items}
</body></html>
"""
