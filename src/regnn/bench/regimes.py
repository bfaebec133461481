"""``regnn bench --regimes``: the bench on several synthetic regimes, and which claims hold where.

For each regime (:mod:`regnn.data.regimes`) a dataset is written once to
``OUT/data/<regime>`` (``regnn synth --regime NAME --seed DATA_SEED``, built beside and moved
into place when complete), the bench runs on it into ``OUT/<regime>/`` (its own tables,
claims and results, resumable like any bench folder), and ``OUT/regimes.md`` gathers, per
regime, REGNN's FRCorr / FRDist beside the references and whether each claim holds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from regnn.errors import ConfigError
from regnn.utils.io import staged_folder, write_json, write_text

#: what runs on each regime unless --systems says otherwise: REGNN against the references
REGIME_SYSTEMS: tuple[str, ...] = ("regnn",)
#: the claims of the summary: (label, system, other, metric)
SUMMARY_CLAIMS: tuple[tuple[str, str, str, str], ...] = (
    ("REGNN beats Mime (FRCorr)", "regnn", "Mime", "FRCorr"),
    ("REGNN beats Mime (FRDist)", "regnn", "Mime", "FRDist"),
    ("REGNN beats MeanSeq (FRCorr)", "regnn", "MeanSeq", "FRCorr"),
    ("REGNN beats MeanSeq (FRDist)", "regnn", "MeanSeq", "FRDist"),
    ("REGNN beats Random (FRDist)", "regnn", "Random", "FRDist"),
    ("REGNN beats the NN retrieval (FRCorr)", "regnn", "NN", "FRCorr"),
    ("REGNN beats the NN retrieval (FRDist)", "regnn", "NN", "FRDist"),
)


def resolve_regimes(names: list[str]) -> list[str]:
    """``all`` or regime names -> the regime names, checked."""
    from regnn.data.regimes import regime_names

    known = regime_names()
    if names == ["all"]:
        return list(known)
    bad = [n for n in names if n not in known]
    if bad:
        raise ConfigError(f"unknown regime(s) {', '.join(bad)}; expected 'all' or any of "
                          f"{', '.join(known)}")
    return list(dict.fromkeys(names))


def regime_data(out: Path, regime: str, data_seed: int, dyads: int = 80) -> Path:
    """The regime's dataset under ``OUT/data``, written once (atomically)."""
    from regnn.data.synthetic import write_synthetic

    root = out / "data" / f"{regime}-seed{data_seed}"
    if (root / "synthetic_truth.json").is_file() or (root / "train.csv").is_file():
        return root
    with staged_folder(root, replace=True) as tmp:
        write_synthetic(tmp, dyads=dyads, seed=data_seed, regime=regime)
    return root


def run_regimes(out_dir: str | Path, regimes: list[str], *, data_seed: int = 0,
                systems: list[str] | tuple[str, ...] = REGIME_SYSTEMS, log: Any = print,
                dyads: int = 80, **bench: Any) -> dict[str, Any]:
    """Run the bench (``bench`` are :func:`regnn.bench.runner.run_bench`'s options) on each
    regime and write ``OUT/regimes.md`` and ``OUT/regimes.json``."""
    from regnn.bench.runner import run_bench

    out = Path(out_dir)
    names = resolve_regimes(regimes)
    rows: dict[str, dict[str, Any]] = {}
    for i, regime in enumerate(names, 1):
        log(f"== regime {regime} ({i}/{len(names)})")
        root = regime_data(out, regime, data_seed, dyads)
        run_bench(root, out / regime, systems=list(systems), log=log, **bench)
        rows[regime] = _regime_row(out / regime)
    text = regimes_markdown(rows, names, data_seed, bench)
    write_text(out / "regimes.md", text)
    write_json(out / "regimes.json", {"regimes": rows, "data_seed": data_seed,
                                      "systems": list(systems)})
    return {"regimes": rows}


def _regime_row(folder: Path) -> dict[str, Any]:
    import pandas as pd

    df = pd.read_csv(folder / "results.csv")
    means = df.groupby("system")[["FRCorr", "FRDist", "Jitter", "FRCov"]].mean()
    values = {s: {m: (None if math.isnan(v) else float(v)) for m, v in row.items()}
              for s, row in means.iterrows()}
    claims = {}
    for label, a, b, metric in SUMMARY_CLAIMS:
        va, vb = values.get(a, {}).get(metric), values.get(b, {}).get(metric)
        claims[label] = None if va is None or vb is None else (
            va < vb if metric == "FRDist" else va > vb)
    return {"values": values, "claims": claims}


def regimes_markdown(rows: dict[str, dict[str, Any]], names: list[str], data_seed: int,
                     bench: dict[str, Any]) -> str:
    from regnn.data.regimes import get_regime

    systems = ("regnn", "Mime", "MeanSeq", "Random", "NN")
    lines = ["## REGNN across synthetic regimes", "",
             f"_regnn bench --regimes, data seed {data_seed}, budget "
             f"`{bench.get('budget', 'demo')}`, {bench.get('seeds', 3)} training seed(s); "
             "FRCorr / FRDist, mean over seeds._", "",
             "| regime | " + " | ".join(systems) + " |", "|---|" + "---|" * len(systems)]
    for r in names:
        v = rows[r]["values"]
        cells = []
        for s in systems:
            x = v.get(s)
            cells.append("n/a" if not x or x["FRCorr"] is None else
                         f"{x['FRCorr']:.3f} / {x['FRDist']:.1f}")
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    lines += ["", "| claim | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, *_ in SUMMARY_CLAIMS:
        marks = {True: "yes", False: "**no**", None: "n/a"}
        lines.append(f"| {label} | " + " | ".join(marks[rows[r]["claims"][label]]
                                                  for r in names) + " |")
    lines += ["", "What each regime stresses:", ""]
    lines += [f"- `{r}`: {get_regime(r).stresses}" for r in names]
    return "\n".join(lines) + "\n"
