"""CPU per paced message on the server's model path, without the network.

    python benchmarks/bench_stream_cpu.py [--run RUN_ONLINE] [--sessions 64] [--against TREE]

N paced sessions (K reactions each, one speaker frame and 40 ms of 16 kHz audio per message,
session starts spread over one hop of 8 frames, as ``bench_online.py`` paces them) are
pushed through what ``regnn serve`` does per frame period: buffering, audio features, the
chunks due computed as one batch, the release of the frames. Prints the process CPU time per
message. ``--against TREE`` runs the same in another checkout (e.g. a ``git worktree`` of
the previous ``main``), alternated with this one in fresh processes, so that the machine's
drift hits both alike. 1 torch thread.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Runs in a fresh process with the tree's ``src`` first on the path; prints ms per message.
CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
from regnn.mkl import apply_vendor_fix
apply_vendor_fix()
import numpy as np, torch
torch.set_num_threads(1)
from regnn.models.runs import load_module
from regnn.online.model import open_stream
from regnn.online import stream as st
run, n, k, hop, periods = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), 8, 400
if run:
    module = load_module(run, "best")
    make = lambda i: open_stream(module, k=k, seed=i)
else:  # an untrained demo-size online model
    from regnn.config import load_config, merge
    from regnn.online.model import OnlineREGNN, online_overrides
    torch.manual_seed(0)
    model = OnlineREGNN(merge(load_config("demo"), online_overrides()).model).eval()
    make = lambda i: model.stream(k, seed=i)
rng = np.random.default_rng(0)
T = periods + 60
face = rng.random((T, 25)).astype(np.float32)
audio = (0.1 * rng.standard_normal(640 * T)).astype(np.float32)
streams = [make(i) for i in range(n)]
def period(p):
    jobs = []
    for i, s in enumerate(streams):
        f = p - i * hop // n  # session i starts i * hop / n frame periods late
        if f >= 0:
            jobs.append((s, face[f][None], audio[f * 640:(f + 1) * 640], 16000))
    if hasattr(st, "prepare_push"):  # buffered one by one, the chunks due as one batch
        prep = [(j[0], st.prepare_push(*j)) for j in jobs]
        for s, p_ in prep:
            if isinstance(p_, list) and not p_:
                st.finish_pushes([(s, p_)])
        st.finish_pushes([(s, p_) for s, p_ in prep if isinstance(p_, list) and p_])
    else:  # older trees: one push_many of the period's messages
        st.push_many(jobs)
    return len(jobs)
for p in range(40):
    period(p)
t, msgs = time.process_time(), 0
for p in range(40, 40 + periods):
    msgs += period(p)
print((time.process_time() - t) / msgs * 1e3)
"""


def measure(tree: Path, run: str, sessions: int, k: int) -> float:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([sys.executable, "-c", CHILD, str(tree / "src"), run, str(sessions),
                          str(k)], capture_output=True, text=True, env=env, check=False)
    if out.returncode:
        raise SystemExit(f"{tree}: {out.stderr.strip().splitlines()[-1]}")
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", default="", help="online run folder (regnn train --online; "
                    "default: an untrained demo-size online model)")
    ap.add_argument("--sessions", type=int, default=64)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--against", type=Path, help="another checkout to compare, alternated")
    args = ap.parse_args()
    trees = [ROOT] + ([args.against.resolve()] if args.against else [])
    got: dict[Path, list[float]] = {t: [] for t in trees}
    for r in range(args.rounds):
        for tree in trees:
            ms = measure(tree, args.run, args.sessions, args.k)
            got[tree].append(ms)
            print(f"round {r + 1}: {tree}: {ms:.3f} ms CPU per message", flush=True)
    for tree, v in got.items():
        print(f"{tree}: median {statistics.median(v):.3f} ms CPU per message "
              f"({args.sessions} paced sessions, K = {args.k})")


if __name__ == "__main__":
    main()
