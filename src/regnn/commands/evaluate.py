"""``regnn evaluate``: the REACT metrics of a predictions folder."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from regnn.commands._common import subcommand

    p = subcommand(
        sub, "evaluate", "score predictions with the REACT metrics",
        "Read PRED/<split>/<speaker_path>.npy (K, 750, 25) for every mirrored item of the "
        "split (or the official tools' <speaker_path>/result-<j>.pth files), compute FRCorr, "
        "FRDist, FRDiv, FRVar, FRDvs, PCC, TLCC and the weight-free FRRea with the official "
        "REACT semantics, print a table and write the scores, item count, K, dataset, commit "
        "and timings as JSON. Refuses missing items or wrong shapes, listing the first few.",
    )
    p.add_argument("--data", required=True, help="dataset root (REACT layout)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--pred", required=True, help="predictions folder (PRED)")
    p.add_argument("--out", default=None, help="scores JSON path (default PRED/scores.json)")
    p.add_argument("--workers", type=int, default=None,
                   help="threads for the metric kernels (default: all cores)")
    p.add_argument("--tlcc-first-only", action="store_true",
                   help="score TLCC on prediction 0 of each speaker only, like the official "
                        "multi-process helper (to reproduce numbers published with it)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from regnn.errors import ConfigError
    from regnn.evaluate import evaluate_predictions, format_table

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    res = evaluate_predictions(args.data, args.split, args.pred, out=args.out,
                               workers=args.workers, tlcc_first_only=args.tlcc_first_only,
                               progress=not args.no_progress)
    print(f"{res['items']} items x K = {res['K']} ({args.split}); "
          f"{res['timing']['total_s']:.1f} s")
    print(format_table(res))
    print(f"scores written to {res['written_to']}")
    return 0
