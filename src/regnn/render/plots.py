"""Static plots of reactions (matplotlib ``Figure`` objects, no pyplot, no display needed).

- :func:`plot_time_series`: for one speaker clip, the 25 attribute time series of the
  speaker, its appropriate real listener reactions and the generated reactions, one row per
  attribute, grouped AU / valence-arousal / expressions.
- :func:`plot_embedding`: the distribution of generated vs real reactions, in the spirit of
  the paper's Fig. 8: every reaction is cut into windows (D = 50 frames, stride 25, as the
  model's graph windows), each window flattened, and all windows embedded in 2-D (PCA fitted
  on the real windows, or t-SNE on both); beside it the per-attribute mean and spread of
  real vs generated frames.
- :func:`plot_training_curves`: the numeric columns of Lightning ``metrics.csv`` logs.
- :func:`figure_png`: a figure as PNG bytes (deterministic: no timestamp metadata).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from regnn.render.video import ROLE_COLOURS
from regnn.schema import ATTRIBUTE_NAMES, FPS, GROUPS, NUM_ATTRIBUTES

_GROUP_TITLES = {"au": "action units (occurrence)", "affect": "valence / arousal",
                 "expression": "expression probabilities"}


def _rgb(role: str) -> tuple[float, float, float]:
    r, g, b = ROLE_COLOURS[role]
    return (r / 255, g / 255, b / 255)


def _as_stack(x: np.ndarray | None, name: str) -> np.ndarray:
    if x is None:
        return np.zeros((0, 0, NUM_ATTRIBUTES), dtype=np.float32)
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[-1] != NUM_ATTRIBUTES:
        raise ValueError(f"{name}: expected shape (M, T, 25) or (T, 25), got {a.shape}")
    return a


def plot_time_series(speaker: np.ndarray, real: np.ndarray | None = None,
                     generated: np.ndarray | None = None, fps: float = FPS,
                     title: str | None = None, max_lines: int = 10) -> Figure:
    """25 stacked rows, one per attribute: speaker (blue), appropriate real (green), generated.

    ``speaker`` is ``(T, 25)``; ``real`` ``(M, T, 25)`` appropriate real listener reactions;
    ``generated`` ``(K, T, 25)``. At most ``max_lines`` of each are drawn (thin, translucent)
    so the envelope stays readable; the legend says how many there are.
    """
    s = _as_stack(speaker, "speaker")[0]
    real_a = _as_stack(real, "real")[:max_lines]
    gen_a = _as_stack(generated, "generated")[:max_lines]
    t = np.arange(s.shape[0]) / fps
    height = 0.42 * NUM_ATTRIBUTES + 1.6
    fig = Figure(figsize=(11, height))
    # fixed margins: a constrained layout over 25 axes costs seconds per figure
    axes = fig.subplots(NUM_ATTRIBUTES, 1, sharex=True,
                        gridspec_kw={"hspace": 0.6, "left": 0.08, "right": 0.99,
                                     "top": 1 - 0.75 / height, "bottom": 0.55 / height})
    for j, ax in enumerate(axes):
        for r in real_a:
            ax.plot(t[: len(r)], r[:, j], color=_rgb("listener"), lw=0.6, alpha=0.45)
        for g in gen_a:
            ax.plot(t[: len(g)], g[:, j], color=_rgb("generated"), lw=0.6, alpha=0.45)
        ax.plot(t, s[:, j], color=_rgb("speaker"), lw=0.9)
        group = next(gr for gr in GROUPS if gr.slice.start <= j < gr.slice.stop)
        ax.set_ylim(group.low - 0.05 * (group.high - group.low),
                    group.high + 0.05 * (group.high - group.low))
        ax.set_yticks([])
        ax.set_ylabel(ATTRIBUTE_NAMES[j], rotation=0, ha="right", va="center", fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        if j == group.slice.start:
            ax.set_title(_GROUP_TITLES[group.name], fontsize=8, loc="left", pad=2)
    axes[-1].set_xlabel("time (s)", fontsize=8)
    handles = [
        Line2D([], [], color=_rgb("speaker"), lw=1.2, label="speaker"),
        Line2D([], [], color=_rgb("listener"), lw=1.2,
                                label=f"appropriate real reactions ({len(real_a)} shown)"),
        Line2D([], [], color=_rgb("generated"), lw=1.2,
                                label=f"generated reactions ({len(gen_a)} shown)"),
    ]
    fig.legend(handles=handles, loc="upper right", ncols=3, fontsize=8, frameon=False,
               bbox_to_anchor=(0.99, 1.0))
    if title:
        fig.text(0.01, 1 - 0.12 / height, title, fontsize=10, ha="left", va="top")
    return fig


def windows(x: np.ndarray, size: int = 50, stride: int = 25) -> np.ndarray:
    """``(..., T, 25)`` reactions -> ``(W, size * 25)`` flattened windows (all leading axes)."""
    a = np.asarray(x, dtype=np.float32)
    a = a.reshape(-1, a.shape[-2], a.shape[-1])
    if a.shape[1] < size:
        raise ValueError(f"reactions of {a.shape[1]} frames are shorter than a window of {size}")
    starts = range(0, a.shape[1] - size + 1, stride)
    return np.concatenate([a[:, s: s + size].reshape(a.shape[0], -1) for s in starts])


def embed_windows(real: np.ndarray, generated: np.ndarray, method: str = "pca",
                  seed: int = 0, window: int = 50, stride: int = 25,
                  max_points: int = 3000) -> tuple[np.ndarray, np.ndarray, str]:
    """2-D embeddings of real and generated reaction windows, and an axis-label prefix.

    PCA is fitted on the real windows only, so generated windows are placed in the real
    reactions' own coordinates; t-SNE embeds both together (slower: use for small sets).
    Both sets are cut to the same number of windows, at most ``max_points`` (a seeded
    random subset), so the two clouds' densities can be compared by eye.
    """
    rng = np.random.default_rng(seed)
    wr, wg = windows(real, window, stride), windows(generated, window, stride)
    n = min(max_points, len(wr), len(wg))
    if len(wr) > n:
        wr = wr[np.sort(rng.choice(len(wr), n, replace=False))]
    if len(wg) > n:
        wg = wg[np.sort(rng.choice(len(wg), n, replace=False))]
    if method == "pca":
        mean = wr.mean(axis=0)
        _, sv, vt = np.linalg.svd(wr - mean, full_matrices=False)
        comps = vt[:2] * np.sign(vt[:2, [0]] + (vt[:2, [0]] == 0))  # fixed sign per component
        ev = sv[:2] ** 2 / max(float((sv**2).sum()), 1e-12)
        return ((wr - mean) @ comps.T, (wg - mean) @ comps.T,
                f"PC1 ({ev[0]:.0%}) / PC2 ({ev[1]:.0%})")
    if method == "tsne":
        try:
            from sklearn.manifold import TSNE
        except ImportError:
            raise ValueError("the t-SNE embedding needs scikit-learn (pip install "
                             "scikit-learn); use method 'pca'") from None

        both = np.concatenate([wr, wg])
        perplexity = float(min(30.0, max(2.0, (len(both) - 1) / 3)))
        z = TSNE(n_components=2, random_state=seed, init="pca", perplexity=perplexity
                 ).fit_transform(both)
        return z[: len(wr)], z[len(wr):], "t-SNE 1 / t-SNE 2"
    raise ValueError(f"unknown embedding method {method!r}; use 'pca' or 'tsne'")


def plot_embedding(real: np.ndarray, generated: np.ndarray, method: str = "pca",
                   seed: int = 0, title: str | None = None) -> Figure:
    """Generated vs real reactions: 2-D embedding of windows, and per-attribute statistics.

    ``real`` is ``(N, T, 25)`` real listener reactions; ``generated`` ``(N, K, T, 25)`` or
    ``(M, T, 25)``.
    """
    real = _as_stack(real, "real")
    gen = np.asarray(generated, dtype=np.float32).reshape(-1, *real.shape[1:])
    zr, zg, axis_label = embed_windows(real, gen, method=method, seed=seed)
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.6]})
    ax1.scatter(zr[:, 0], zr[:, 1], s=5, alpha=0.5, color=_rgb("listener"),
                label=f"real ({len(zr)} windows)", linewidths=0)
    ax1.scatter(zg[:, 0], zg[:, 1], s=5, alpha=0.5, color=_rgb("generated"),
                label=f"generated ({len(zg)} windows)", linewidths=0)
    ax1.set_xlabel(axis_label.split(" / ")[0], fontsize=8)
    ax1.set_ylabel(axis_label.split(" / ")[1], fontsize=8)
    ax1.set_title("2-s windows of listener reactions", fontsize=9)
    ax1.legend(fontsize=7, markerscale=3)
    ax1.tick_params(labelsize=7)
    fr = real.reshape(-1, NUM_ATTRIBUTES)
    fg = gen.reshape(-1, NUM_ATTRIBUTES)
    x = np.arange(NUM_ATTRIBUTES)
    ax2.bar(x - 0.2, fr.mean(0), 0.4, yerr=fr.std(0), color=_rgb("listener"), label="real",
            error_kw={"lw": 0.6})
    ax2.bar(x + 0.2, fg.mean(0), 0.4, yerr=fg.std(0), color=_rgb("generated"),
            label="generated", error_kw={"lw": 0.6})
    ax2.set_xticks(x, ATTRIBUTE_NAMES, rotation=90, fontsize=7)
    ax2.axhline(0, color="k", lw=0.5)
    for gr in GROUPS[1:]:
        ax2.axvline(gr.slice.start - 0.5, color="grey", lw=0.5, ls=":")
    ax2.set_title("per-attribute mean ± std over all frames", fontsize=9)
    ax2.legend(fontsize=7)
    ax2.tick_params(axis="y", labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_training_curves(csv_paths: Sequence[str | Path]) -> Figure | None:
    """Lightning ``metrics.csv`` logs -> one panel per metric family, or None if nothing.

    Every numeric column other than ``epoch``/``step`` is drawn against ``step`` (rows
    where it is missing are skipped, as Lightning writes one metric per row). Columns
    that differ only by phase or aggregation (``train_loss``, ``val_loss``,
    ``train_loss_epoch``) share a panel, so train and validation curves sit together.
    """
    import pandas as pd

    frames = []
    for p in csv_paths:
        df = pd.read_csv(p)
        df["__run"] = Path(p).parent.name
        frames.append(df)
    if not frames:
        return None
    df = pd.concat(frames, ignore_index=True)
    x_col = "step" if "step" in df else ("epoch" if "epoch" in df else None)
    cols = [c for c in df.columns if c not in ("epoch", "step", "__run")
            and pd.api.types.is_numeric_dtype(df[c]) and df[c].notna().any()]
    if not cols:
        return None
    panels: dict[str, list[str]] = {}
    for c in cols:
        panels.setdefault(_metric_family(c), []).append(c)
    n = len(panels)
    ncols = min(3, n)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(4.2 * ncols, 2.8 * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    for ax, (name, members) in zip(axes, panels.items()):
        for c in members:
            sub = df[df[c].notna()]
            xs = sub[x_col] if x_col else np.arange(len(sub))
            ax.plot(xs, sub[c], lw=1, marker="o" if len(sub) < 30 else None, ms=3, label=c)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(x_col or "row", fontsize=8)
        ax.tick_params(labelsize=7)
        if len(members) > 1:
            ax.legend(fontsize=7)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig


def _metric_family(column: str) -> str:
    name = column
    for prefix in ("train_", "val_", "valid_", "test_", "train/", "val/", "valid/", "test/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    for suffix in ("_step", "_epoch"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name or column


def figure_png(fig: Figure, dpi: int = 90) -> bytes:
    """PNG bytes of a figure (no timestamp metadata, so the same figure gives the same bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()
