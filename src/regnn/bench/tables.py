"""Bench outputs: results.csv, the paper-layout tables, the claims check, bar charts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from regnn.bench.scoring import EXTRA, METRICS
from regnn.metrics.catalogue import METRIC, family_keys
from regnn.results import PAPER_TABLE1, PAPER_TABLE2
from regnn.utils.io import atomic_path, write_text

TABLE1_ROWS: tuple[tuple[str, str], ...] = (
    ("huang-s", "Huang et al. (S) cGAN"),
    ("huang-c", "Huang et al. (C) cGAN"),
    ("unet", "UNet"),
    ("l2l", "Ng et al. (VQ-VAE)"),
    ("regnn", "REGNN"),
)
REFERENCE_ROWS: tuple[tuple[str, str], ...] = (
    ("GT", "GT (real reaction)"), ("Random", "Random"), ("Mime", "Mime"),
    ("MeanSeq", "MeanSeq"), ("MeanFr", "MeanFr"), ("NN", "NN (retrieval, regnn's)"),
)
# the multiple-reactions table: the three REGNN configurations, then the other systems
MULTI_ROWS: tuple[tuple[str, str], ...] = (
    ("regnn", "REGNN, regnn's default"), ("regnn-paper", "REGNN as the paper's text"),
    ("regnn-authors", "REGNN as the authors' code"),
    ("huang-s", "Huang et al. (S) cGAN"), ("huang-c", "Huang et al. (C) cGAN"),
    ("unet", "UNet"), ("l2l", "Ng et al. (VQ-VAE)"),
)
MULTI_METRICS = ("FRCorr", "FRDist", "FRDiv", "TLCC", *EXTRA)
TABLE2_GROUPS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Modalities", (("face-only", "Video"), ("audio-only", "Audio"),
                    ("regnn", "Audio+Video"))),
    ("AFRDL", (("no-afrdl", "Without Graph"), ("regnn", "With AFRDL"))),
    ("Motor processor", (("iresnet-motor", "i-ResNet"), ("regnn", "REGNN"))),
    ("Edge feature", (("no-mefl", "Without MEFL"), ("regnn", "With MEFL"))),
)

DIGITS = {m: METRIC[m].digits for m in (*METRICS, *EXTRA)}
ARROW = {m: METRIC[m].arrow for m in (*METRICS, *EXTRA)}
FAMILIES = {f: family_keys(f) for f in ("appropriateness", "diversity", "realism", "synchrony")}


def _head(metrics: tuple[str, ...]) -> str:
    return " | ".join(f"{METRIC[m].title} {ARROW[m]}" for m in metrics)


def results_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    cols = ["system", "seed", *METRICS, *EXTRA, "train_s", "generate_s", "score_s", "engine"]
    df = pd.DataFrame([{c: r.get(c, np.nan) for c in cols} for r in records], columns=cols)
    return df.sort_values(["system", "seed"], kind="stable").reset_index(drop=True)


def summary_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (ddof 1; 0 for one seed) and number of seeds per system and metric."""
    g = df.groupby("system")[[*METRICS, *EXTRA]]
    mean, std = g.mean(), g.std(ddof=1).fillna(0.0)
    out = pd.concat({"mean": mean, "std": std}, axis=1)
    out["n"] = g.size()
    return out


def fmt(mean: float, std: float, n: int, metric: str) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    d = DIGITS[metric]
    return f"{mean:.{d}f}" if n <= 1 else f"{mean:.{d}f} ± {std:.{d}f}"


def _row(summary: pd.DataFrame, system: str,
         metrics: tuple[str, ...] = METRICS) -> list[str]:
    if system not in summary.index:
        return ["not run"] * len(metrics)
    n = int(summary.loc[system, ("n", "")])
    return [fmt(float(summary.loc[system, ("mean", m)]), float(summary.loc[system, ("std", m)]),
                n, m) for m in metrics]


def _paper_row(values: tuple[float, ...]) -> list[str]:
    return [f"{v:.{DIGITS[m]}f}" for v, m in zip(values, METRICS)]


def table1_markdown(summary: pd.DataFrame, header: str) -> str:
    head = "| method | " + _head(METRICS) + " |"
    sep = "|---|" + "---|" * len(METRICS)
    lines = [header, "", "### This run", "", head, sep]
    for key, label in TABLE1_ROWS:
        lines.append(f"| {label} | " + " | ".join(_row(summary, key)) + " |")
    present = [(k, lab) for k, lab in REFERENCE_ROWS if k in summary.index]
    if present:
        lines.append("| *REACT references* |" + " |" * len(METRICS))
        for key, label in present:
            lines.append(f"| {label} | " + " | ".join(_row(summary, key)) + " |")
    lines += ["", "### Published (paper, Table I; REACT NoXI + RECOLA test set)", "", head, sep]
    for key, label in TABLE1_ROWS:
        lines.append(f"| {label} | " + " | ".join(_paper_row(PAPER_TABLE1[key])) + " |")
    return "\n".join(lines) + "\n"


def table2_markdown(summary: pd.DataFrame, header: str) -> str:
    head = "| study | variant | " + _head(METRICS) + " |"
    sep = "|---|---|" + "---|" * len(METRICS)
    lines = [header, "", "### This run", "", head, sep]
    for group, rows in TABLE2_GROUPS:
        for i, (key, label) in enumerate(rows):
            lines.append(f"| {group if i == 0 else ''} | {label} | "
                         + " | ".join(_row(summary, key)) + " |")
    lines += ["", "### Published (paper, Table II)", "", head, sep]
    for group, rows in TABLE2_GROUPS:
        for i, (key, label) in enumerate(rows):
            lines.append(f"| {group if i == 0 else ''} | {label} | "
                         + " | ".join(_paper_row(PAPER_TABLE2[key])) + " |")
    return "\n".join(lines) + "\n"


def multi_markdown(summary: pd.DataFrame, header: str) -> str:
    """The multiple-reactions table: appropriateness beside regnn's Jitter, FRDivRatio and
    FRCov (closest to 1 is best for the first two), for every system and reference run."""
    m = MULTI_METRICS
    head = "| system | " + _head(m) + " |"
    lines = [header, "", head, "|---|" + "---|" * len(m)]
    rows = [r for r in MULTI_ROWS if r[0] in summary.index]
    rows += [r for r in REFERENCE_ROWS if r[0] in summary.index]
    for key, label in rows:
        lines.append(f"| {label} | " + " | ".join(_row(summary, key, m)) + " |")
    return "\n".join(lines) + "\n"


def claims(summary: pd.DataFrame) -> list[dict[str, Any]]:
    """The paper's claims that these numbers can check, each with its verdict."""
    out: list[dict[str, Any]] = []

    def mean(system: str, metric: str) -> float | None:
        if system not in summary.index:
            return None
        v = float(summary.loc[system, ("mean", metric)])
        return None if math.isnan(v) else v

    def check(claim: str, a: str, b: str, metric: str) -> None:
        va, vb = mean(a, metric), mean(b, metric)
        if va is None or vb is None:
            holds = None
        else:
            holds = va < vb if METRIC[metric].better == "lower" else va > vb
        out.append({"claim": claim, "metric": metric, "system": a, "versus": b, "value": va,
                    "versus_value": vb, "holds": holds})

    for metric in ("FRCorr", "FRDist"):
        check("AFRDL beats the same network trained with MSE", "regnn", "no-afrdl", metric)
        for key, label in TABLE1_ROWS[:-1]:
            check(f"REGNN beats {label}", "regnn", key, metric)
    for metric in ("FRCorr", "FRDist"):
        for ref in ("Mime", "NN"):
            check(f"REGNN beats the {ref} reference", "regnn", ref, metric)
    for metric in ("FRCorr", "FRDist"):
        check("audio + video beats video only", "regnn", "face-only", metric)
        check("audio + video beats audio only", "regnn", "audio-only", metric)
        check("the REGNN motor beats an i-ResNet motor", "regnn", "iresnet-motor", metric)
        check("multi-dimensional edges (MEFL) beat single-value edges", "regnn", "no-mefl",
              metric)
    return out


def claims_markdown(items: list[dict[str, Any]], header: str) -> str:
    lines = [header, "", "| claim | metric | REGNN | other | holds? |", "|---|---|---|---|---|"]
    for c in items:
        d = DIGITS[c["metric"]]
        v = "n/a" if c["value"] is None else f"{c['value']:.{d}f}"
        w = "n/a" if c["versus_value"] is None else f"{c['versus_value']:.{d}f}"
        verdict = {True: "yes", False: "**no**", None: "not measured"}[c["holds"]]
        lines.append(f"| {c['claim']} | {METRIC[c['metric']].title} {ARROW[c['metric']]} | {v} | "
                     f"{w} ({c['versus']}) | {verdict} |")
    return "\n".join(lines) + "\n"


def bar_charts(summary: pd.DataFrame, out: Path) -> list[Path]:
    """One PNG per metric family: a bar per system, std over seeds as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = [k for k, _ in TABLE1_ROWS] + [k for _, rows in TABLE2_GROUPS for k, _ in rows]
    order += [k for k, _ in REFERENCE_ROWS]
    systems = [s for s in dict.fromkeys(order) if s in summary.index]
    systems += [s for s in summary.index if s not in systems]
    written = []
    for family, metrics in FAMILIES.items():
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 4.2),
                                 squeeze=False)
        for ax, m in zip(axes[0], metrics):
            means = [float(summary.loc[s, ("mean", m)]) for s in systems]
            stds = [float(summary.loc[s, ("std", m)]) for s in systems]
            colors = ["tab:red" if s == "regnn" else "tab:gray" if s[0].isupper()
                      else "tab:blue" for s in systems]
            ax.bar(range(len(systems)), np.nan_to_num(means), yerr=stds, color=colors,
                   capsize=2)
            ax.set_xticks(range(len(systems)), systems, rotation=60, ha="right", fontsize=8)
            ax.set_title(f"{METRIC[m].title} {ARROW[m]}" + (" (not measured)" if all(
                math.isnan(v) for v in means) else ""))
        fig.suptitle(f"{family}: mean ± std over seeds (red: REGNN, grey: references)")
        fig.tight_layout()
        path = out / f"fig_{family}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def write_outputs(records: list[dict[str, Any]], out: Path, info: dict[str, Any]) -> None:
    df = results_frame(records)
    with atomic_path(out / "results.csv") as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    summary = summary_frame(df)
    header = (f"_regnn bench, budget `{info['budget']}`, {info['seeds']} seed(s), "
              f"K = {info['samples']}, split `{info['split']}` of `{info['data']}`; "
              "mean ± std over seeds._")
    write_text(out / "table1.md", table1_markdown(summary, "## Table I: comparison systems\n\n"
                                                  + header))
    write_text(out / "table2.md", table2_markdown(summary, "## Table II: ablations\n\n" + header))
    write_text(out / "multiple.md", multi_markdown(
        summary, "## Multiple appropriate reactions (Jitter, FRDivRatio, FRCov: regnn's "
        "metrics, not REACT's)\n\n" + header))
    items = claims(summary)
    write_text(out / "claims.md", claims_markdown(items, "## The paper's claims on this run\n\n"
                                                  + header))
    info["claims"] = items
    bar_charts(summary, out)
