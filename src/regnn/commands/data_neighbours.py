"""``regnn data neighbours``: build a split's appropriateness matrix from speaker behaviour."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from regnn.commands._common import subcommand

DESCRIPTION = (
    "Build neighbour_emotion_<split>.npy, the appropriateness matrix of a split (mirrored "
    "order), on the REACT principle that speakers with similar behaviour share their "
    "listeners' reactions as appropriate. Distances between the speakers' z-scored attribute "
    "sequences (--method; 'auto' = the first of motion, dtw that shows cluster structure), "
    "then complete-linkage clustering cut at --threshold ('auto' = the cut of highest "
    "silhouette, groups with structure of their own split again). Prints items, appropriate "
    "reactions per speaker and isolated "
    "speakers; with synthetic_truth.json (regnn synth) also precision/recall against the "
    "truth. Refuses to overwrite an existing matrix without --force. See docs/neighbours.md.")


def register(sub: argparse._SubParsersAction) -> None:
    from regnn.data.neighbours import DEFAULT_LINKAGE, DEFAULT_METHOD, LINKAGES, METHODS

    p = subcommand(sub, "neighbours", "build a split's appropriateness matrix from speaker "
                   "behaviour", DESCRIPTION)
    p.add_argument("root", help="dataset folder (REACT layout)")
    p.add_argument("--split", required=True, choices=["train", "val", "test", "all"],
                   help="split to build ('all': the three splits)")
    p.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD,
                   help="behaviour distance: auto = motion if it shows cluster structure "
                   "(silhouette > 0.25), else dtw (reported, with what every distance showed); "
                   "motion = 1 - correlation of frame-to-frame changes; level = 1 - "
                   "correlation of levels; dtw = DTW without band of smoothed 2 s window "
                   "means (tolerates timing shifts); stats = time-invariant summary "
                   "statistics")
    p.add_argument("--threshold", default="auto",
                   help="'auto' (cut of highest mean silhouette), or, with a named --method, a "
                   "distance (e.g. 0.6) or a percentile of the off-diagonal distances (e.g. 5%%)")
    p.add_argument("--linkage", choices=LINKAGES, default=DEFAULT_LINKAGE,
                   help="agglomerative linkage; 'none' = plain pairwise rule d <= threshold")
    p.add_argument("--audio", action="store_true",
                   help="append 8 pooled log-mel bands of the speaker's audio as channels")
    p.add_argument("--out", default=None,
                   help="output file (default <root>/neighbour_emotion_<split>.npy); with "
                   "--split all, a folder")
    p.add_argument("--force", action="store_true", help="overwrite an existing matrix")
    p.add_argument("--json", action="store_true", help="print the summaries as JSON")
    p.set_defaults(func=run)


def _target(args: argparse.Namespace, split: str) -> Path:
    from regnn.data import layout

    if args.out is None:
        return layout.matrix_file(Path(args.root), split)
    out = Path(args.out)
    if args.split == "all" or out.is_dir():
        return layout.matrix_file(out, split)
    return out


def run(args: argparse.Namespace) -> int:
    from regnn.data.neighbours import build_neighbours, check_method, precision_recall
    from regnn.errors import ConfigError, DataError
    from regnn.utils.io import save_npy

    root = Path(args.root)
    if not root.is_dir():
        raise DataError("dataset folder not found", path=root, kind="missing-file")
    check_method(args.method, args.threshold)
    splits = ["train", "val", "test"] if args.split == "all" else [args.split]
    targets = {s: _target(args, s) for s in splits}
    existing = [str(t) for t in targets.values() if t.exists()]
    if existing and not args.force:
        raise ConfigError(f"{', '.join(existing)} already exists; pass --force to overwrite "
                          "(or --out to write elsewhere)")
    truth = _truth(root)
    summaries = []
    for split in splits:
        res = build_neighbours(root, split, args.method, args.threshold, args.linkage,
                               args.audio, progress=sys.stderr.isatty())
        s = dict(res.summary)
        if truth is not None and split in truth and len(truth[split]) == len(res.matrix):
            g = np.asarray(truth[split])
            s["vs_truth"] = precision_recall(res.matrix, g[:, None] == g[None, :])
        save_npy(targets[split], res.matrix.astype(np.float64))
        s["written"] = str(targets[split])
        for w in res.grouping.warnings:
            print(f"regnn data neighbours: warning: {split}: {w}", file=sys.stderr)
        summaries.append(s)
    if args.json:
        print(json.dumps(summaries, indent=2))
    else:
        for s in summaries:
            print_summary(s)
    return 0


def _truth(root: Path) -> dict | None:
    path = root / "synthetic_truth.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())["groups"]
    except (ValueError, KeyError):
        return None


def print_summary(s: dict) -> None:
    rule = {"auto": f"auto, silhouette {s['silhouette']:.3f}", "distance": "given distance",
            "percentile": "percentile of distances",
            "singletons": f"auto: no grouping, best silhouette {s['silhouette']:.3f}"
            }[s["threshold_rule"]]
    groups = f", {s['groups']} groups" if s.get("groups") is not None else ""
    nested = (f" (after {s['nested_splits']} nested splits)"
              if s.get("nested_splits") else "")
    print(f"{s['split']}: {s['items']} items; method {s['method']}"
          f"{' + audio' if s['audio'] else ''}, {s['linkage']} linkage, threshold "
          f"{s['threshold']:.4g} ({rule}){groups}{nested}")
    if s.get("method_rule", "given") != "given":
        print(f"  method {s['method_rule']}")
    print(f"  appropriate reactions per speaker: mean {s['appropriate_mean']:.2f}, "
          f"min {s['appropriate_min']}, max {s['appropriate_max']}; isolated speakers "
          f"(own listener only): {s['isolated']}")
    if "vs_truth" in s:
        v = s["vs_truth"]
        print(f"  vs synthetic truth (off-diagonal ones): precision {_fmt(v['precision'])}, "
              f"recall {_fmt(v['recall'])} ({v['true_positives']} of {v['predicted']} built "
              f"are true; {v['true']} true)")
    print(f"  wrote {s['written']}")


def _fmt(x: float) -> str:
    return "n/a" if x != x else f"{x:.3f}"
