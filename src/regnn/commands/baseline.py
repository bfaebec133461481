"""``regnn baseline``: the trivial REACT references and the retrieval reference ``nn``."""

from __future__ import annotations

import argparse

from regnn.commands._common import add_seed, subcommand


def register(sub: argparse._SubParsersAction) -> None:
    p = subcommand(
        sub, "baseline", "write a reference (GT, Random, Mime, MeanSeq, MeanFr, nn)",
        "Write the predictions of a trivial REACT reference for every mirrored item of a "
        "split as PRED/<split>/<speaker_path>.npy (float32, (K, 750, 25)) plus "
        "PRED/baseline.json, ready for `regnn evaluate`. gt: the real listener reaction; "
        "random: the official sampler (AUs uniform in {0,1}, valence/arousal a truncated "
        "normal(0, 0.5), expressions uniform then normalised); mime: the speaker's own "
        "behaviour; meanseq: the frame-by-frame mean of the train split's listener reactions; "
        "meanfr: the mean train-split listener frame held for all frames; nn (regnn's "
        "retrieval reference, not a REACT one): the real reactions of the K train listeners "
        "whose speakers are nearest by the `regnn data neighbours` distance.",
    )
    p.add_argument("name", choices=["gt", "random", "mime", "meanseq", "meanfr", "nn"],
                   help="which reference")
    p.add_argument("--data", required=True, help="dataset root (REACT layout)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--out", required=True, help="predictions folder (PRED)")
    p.add_argument("--samples", type=int, default=10, help="reactions per speaker (K)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_seed(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from regnn.references import write_baseline

    s = write_baseline(args.name, args.data, args.split, args.out, samples=args.samples,
                       seed=args.seed, progress=not args.no_progress)
    print(f"baseline {s['baseline']}: {s['items']} items x K = {s['K']} -> "
          f"{args.out}/{args.split}/")
    return 0
