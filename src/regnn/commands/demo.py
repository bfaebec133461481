"""``regnn demo``: the main job on the embedded synthetic data."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from regnn.commands._common import add_seed, subcommand


def register(sub: argparse._SubParsersAction) -> None:
    p = subcommand(sub, "demo", "run the demo pipeline on a fresh synthetic dataset",
                   "Synthesise the default synthetic REACT dataset, validate it and read it "
                   "back through the REACT reader. Finishes in minutes on 2 CPU cores.")
    p.add_argument("--out", default="demo-output", help="output folder")
    p.add_argument("--dyads", type=int, default=80, help="dyad clips in the synthetic data")
    add_seed(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from regnn.commands.synth import print_summary
    from regnn.data.check import check_dataset
    from regnn.data.react import ReactSplit
    from regnn.data.synthetic import write_synthetic

    t0 = time.perf_counter()
    out = Path(args.out)
    data = out / "data"
    print(f"[1] synthesising the REACT-layout dataset -> {data}")
    print_summary(write_synthetic(data, dyads=args.dyads, seed=args.seed, progress=True))
    print(f"[2] validating {data} (regnn data check)")
    problems, _ = check_dataset(data)
    if problems:
        for p in problems[:20]:
            print(f"  {p}")
        print(f"demo: the synthetic dataset has {len(problems)} problems")
        return 1
    print("  OK: no problems")
    print("[3] reading the test split through the REACT reader")
    ds = ReactSplit(data, "test")
    item = ds[0]
    print(f"  {len(ds)} mirrored items; item 0: speaker {ds.items[0].speaker_path}; "
          f"face {item['speaker_face'].shape}, audio {item['speaker_audio'].shape}, "
          f"listener {item['listener'].shape}, {len(ds.appropriate(0))} appropriate reactions")
    print(f"demo finished in {time.perf_counter() - t0:.1f} s; outputs in {out}/")
    return 0
