"""``regnn bench``: re-run the paper's comparison (Tables I and II) on a REACT-layout dataset.

:func:`run_bench` trains every system of :data:`SYSTEMS` (the Table I comparison systems,
REGNN and its Table II ablations, see :mod:`regnn.models.variants`) with the same data,
budget and seeds, generates K reactions per test speaker, scores them with every metric
(:mod:`regnn.bench.scoring`), adds the references (:mod:`regnn.references`: the REACT
trivial ones GT, Random, Mime, MeanSeq, MeanFr, and regnn's retrieval reference NN), and
writes into ``OUT``::

    runs/<system>/seed<s>/train/       the training run (regnn train layout)
    runs/<system>/seed<s>/pred/        the predictions (regnn generate layout)
    runs/<system>/seed<s>/scores.json  every metric + timings; its presence = job finished
    results.csv                        one row per (system, seed): every metric, timings
    table1.md  table2.md               the paper's layout, mean ± std over seeds, paper values
    multiple.md                        FRCorr/FRDist beside Jitter, FRDivRatio, FRCov
    claims.md                          the paper's central claims checked on these numbers
    fig_<family>.png                   a bar chart per metric family (mean, std error bars)
    bench.json                         settings, versions, load average, total wall time

Re-running the same command skips finished jobs (and resumes an interrupted training from its
last checkpoint), so a killed bench continues where it stopped. Budgets:

* ``demo``: the ``demo`` config (small REGNN) with :data:`DEMO_REGNN_TRAIN` training for the
  REGNN family and the ``demo`` settings of :data:`regnn.models.variants.BASELINE_TRAIN` for
  the comparison systems; sized so that 10 systems x 3 seeds finish in < 45 min on 2 CPU
  cores for the default synthetic dataset (80 dyads). Validation is off (the last checkpoint
  is used), for every system alike.
* ``full``: the paper's settings (``paper`` config, 100 epochs).
"""

from __future__ import annotations

from regnn.bench.runner import BUDGETS, DEMO_REGNN_TRAIN, SYSTEMS, bench_config, run_bench
from regnn.bench.tables import PAPER_TABLE1, PAPER_TABLE2, TABLE1_ROWS, TABLE2_GROUPS

__all__ = [
    "BUDGETS", "DEMO_REGNN_TRAIN", "PAPER_TABLE1", "PAPER_TABLE2", "SYSTEMS", "TABLE1_ROWS",
    "TABLE2_GROUPS", "bench_config", "run_bench",
]
