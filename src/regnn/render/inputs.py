"""Reading the training logs the report shows: Lightning CSV logs, ``RUN/**/metrics.csv``
(the predictions and ``scores.json`` are read by :mod:`regnn.results`)."""

from __future__ import annotations

from pathlib import Path


def find_training_logs(run_dir: str | Path | None) -> list[Path]:
    """Lightning CSV logs under ``run_dir`` (``**/metrics.csv``), in a stable order."""
    if run_dir is None or not Path(run_dir).is_dir():
        return []
    return sorted(Path(run_dir).glob("**/metrics.csv"))
