"""The bench loop: train, generate, score every (system, seed); resumable job by job."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from regnn.errors import ConfigError
from regnn.models.variants import BASELINES, VARIANTS, resolve
from regnn.utils.io import write_json

SYSTEMS: tuple[str, ...] = (
    "regnn", "huang-s", "huang-c", "unet", "l2l",
    "face-only", "audio-only", "no-afrdl", "iresnet-motor", "no-mefl",
    "regnn-paper", "regnn-authors",
)

# Training of the REGNN family under the demo budget, on top of the ``demo`` config (whose
# schedule make demo uses): no validation (the bench scores the test split itself).
DEMO_REGNN_TRAIN: dict[str, Any] = {"val_items": 0}

# A budget: the base config, then overrides for the REGNN family and for the baselines (on
# top of each system's variant overrides, regnn.models.variants).
BUDGETS: dict[str, dict[str, Any]] = {
    "demo": {"config": "demo", "regnn": {"train": DEMO_REGNN_TRAIN},
             "baselines": {"train": {"val_items": 0}}},
    "full": {"config": "regnn", "regnn": {}, "baselines": {}},
}


def bench_config(system: str, budget: str = "demo", threads: int = 0,
                 device: str = "cpu") -> Any:
    """The :class:`~regnn.config.RunConfig` that the bench trains ``system`` with (on one GPU
    when ``device`` is a CUDA device)."""
    if budget not in BUDGETS:
        raise ConfigError(f"unknown budget {budget!r}; expected one of {', '.join(BUDGETS)}")
    if system not in VARIANTS:
        raise ConfigError(f"unknown system {system!r}; known: {', '.join(VARIANTS)}")
    from regnn.models.variants import deep_merge

    b = BUDGETS[budget]
    ov = b["baselines"] if system in BASELINES else b["regnn"]
    if threads:
        ov = deep_merge(ov, {"train": {"threads": threads}})
    if str(device).startswith("cuda"):
        ov = deep_merge(ov, {"train": {"accelerator": "gpu", "devices": 1}})
    return resolve(b["config"], system, ov or None)


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        return []


class _SplitData:
    """The evaluation split's arrays, read once."""

    def __init__(self, root: Path, split: str) -> None:
        from regnn.data.react import ReactSplit

        self.ds = ReactSplit(root, split, audio=False)
        self.speakers = self.ds.speakers()
        self.listeners = self.ds.listeners()
        self.neighbours = self.ds.neighbours.astype(bool)
        self._train: Any = None
        self.root = root

    def train_split(self) -> Any:
        from regnn.data.react import ReactSplit

        if self._train is None:
            self._train = ReactSplit(self.root, "train", audio=False)
        return self._train

    def load_predictions(self, pred_dir: Path, k: int) -> np.ndarray:
        from regnn.results import load_predictions

        return load_predictions(pred_dir, self.ds.split,
                                [it.speaker_path for it in self.ds.items],
                                frames=self.listeners.shape[1], k=k)


def _score_job(data: _SplitData, pred: np.ndarray) -> tuple[dict[str, Any], float]:
    from regnn.bench.scoring import score

    t0 = time.perf_counter()
    s = score(pred, data.speakers, data.listeners, data.neighbours)
    return s, time.perf_counter() - t0


def run_system(system: str, seed: int, data_root: Path, out: Path, data: _SplitData,
               budget: str, k: int, threads: int, progress: bool,
               device: str = "cpu") -> dict[str, Any]:
    """Train, generate and score one (system, seed); skips the parts already done."""
    from regnn.generate import generate_predictions
    from regnn.train import train

    job = out / "runs" / system / f"seed{seed}"
    done = job / "scores.json"
    if done.is_file():
        import json

        from regnn.bench.scoring import canonical_record

        return {**canonical_record(json.loads(done.read_text("utf-8"))), "skipped": True}
    config = bench_config(system, budget, threads, device)
    run_dir, pred_dir = job / "train", job / "pred"
    t0 = time.perf_counter()
    if not (run_dir / "train.json").is_file():
        resume = (run_dir / "checkpoints" / "last.ckpt").is_file()
        train(config, data_root, run_dir, seed=seed, resume=resume, progress=progress)
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    if not (pred_dir / "generation.json").is_file():
        generate_predictions(run_dir, data_root, data.ds.split, pred_dir, samples=k,
                             seed=seed, checkpoint="best", progress=progress,
                             device=device)
    t_gen = time.perf_counter() - t0
    scores, t_score = _score_job(data, data.load_predictions(pred_dir, k))
    record = {"system": system, "seed": seed, "budget": budget, **scores,
              "train_s": round(t_train, 2), "generate_s": round(t_gen, 2),
              "score_s": round(t_score, 2), "loadavg": loadavg()}
    write_json(done, record)
    return record


# The references of regnn.references under their table names: the REACT challenge's trivial
# ones and the retrieval reference NN (regnn's).
REFERENCES: dict[str, str] = {"GT": "gt", "Random": "random", "Mime": "mime",
                              "MeanSeq": "meanseq", "MeanFr": "meanfr", "NN": "nn"}


def reference_predictions(name: str, data: _SplitData, k: int, seed: int) -> np.ndarray:
    """``(N, k, T, 25)`` predictions of a reference from :mod:`regnn.references`."""
    from regnn.references import reference_predictions as predictions

    return predictions(REFERENCES[name], data.ds, data.train_split(), k, seed)


def run_reference(name: str, seed: int, out: Path, data: _SplitData, k: int) -> dict[str, Any]:
    done = out / "runs" / name / f"seed{seed}" / "scores.json"
    if done.is_file():
        import json

        from regnn.bench.scoring import canonical_record

        return {**canonical_record(json.loads(done.read_text("utf-8"))), "skipped": True}
    pred = reference_predictions(name, data, k, seed)
    scores, t_score = _score_job(data, pred)
    record = {"system": name, "seed": seed, "budget": "none", **scores, "train_s": 0.0,
              "generate_s": 0.0, "score_s": round(t_score, 2), "loadavg": loadavg()}
    write_json(done, record)
    return record


def run_bench(data_root: str | Path, out_dir: str | Path, budget: str = "demo", seeds: int = 3,
              systems: tuple[str, ...] | list[str] = SYSTEMS, references: bool = True,
              k: int = 10, split: str = "test", threads: int = 0, progress: bool = True,
              log: Any = print, device: str = "cpu") -> dict[str, Any]:
    """Run (or resume) the bench; returns bench.json's dict. See the package doc. ``device``
    (cpu, cuda, cuda:N, auto): where the systems train and generate."""
    from regnn.bench.tables import write_outputs
    from regnn.utils.device import resolve_device

    device = str(resolve_device(device))
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    if k < 1:
        raise ConfigError(f"--samples must be >= 1, got {k}")
    for s in systems:
        bench_config(s, budget)  # fail early on an unknown system or budget
    data_root, out = Path(data_root), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    data = _SplitData(data_root, split)
    records: list[dict[str, Any]] = []
    if references:
        for name in REFERENCES:
            for seed in range(seeds if name == "Random" else 1):
                records.append(run_reference(name, seed, out, data, k))
    jobs = [(s, seed) for s in systems for seed in range(seeds)]
    bar = tqdm(jobs, desc="bench", unit="run", disable=not progress, position=0)
    for n, (system, seed) in enumerate(bar, 1):
        bar.set_description(f"bench {system} seed {seed}")
        rec = run_system(system, seed, data_root, out, data, budget, k, threads, progress,
                         device)
        records.append(rec)
        status = "done earlier" if rec.get("skipped") else (
            f"train {rec['train_s']:.1f} s, generate {rec['generate_s']:.1f} s, "
            f"score {rec['score_s']:.1f} s")
        log(f"[{n}/{len(jobs)}] {system} seed {seed}: {status}; FRCorr {rec['FRCorr']:.3f}, "
            f"FRDist {rec['FRDist']:.2f}, FRDiv {rec['FRDiv']:.4f} (load {rec['loadavg']})")
    wall = time.perf_counter() - t_start
    summary = {
        "data": str(data_root.resolve()), "split": split, "budget": budget, "seeds": seeds,
        "samples": k, "systems": list(systems), "references": references,
        "wall_s_this_call": round(wall, 1),
        "train_generate_score_s_total": round(sum(
            r.get("train_s", 0) + r.get("generate_s", 0) + r.get("score_s", 0)
            for r in records), 1),
        "loadavg_end": loadavg(), "cpu_count": os.cpu_count(),
        "python": platform.python_version(), "engine": sorted({r.get("engine", "?")
                                                               for r in records}),
    }
    write_outputs(records, out, summary)
    write_json(out / "bench.json", summary)
    return summary
