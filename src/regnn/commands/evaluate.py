"""``regnn evaluate``: the REACT metrics of a predictions folder (and, with Inception weights,
the image FID of the REACT protocol)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from regnn.commands._common import subcommand
    from regnn.utils.device import DEVICE_HELP

    p = subcommand(
        sub, "evaluate", "score predictions with the REACT metrics",
        "Read PRED/<split>/<speaker_path>.npy (K, 750, 25) for every mirrored item of the "
        "split (or the official tools' <speaker_path>/result-<j>.pth files), compute FRCorr, "
        "FRDist, FRDiv, FRVar, FRDvs, PCC, TLCC and the weight-free FRRea with the official "
        "REACT semantics, print a table and write the scores, item count, K, dataset, commit "
        "and timings as JSON. Refuses missing items or wrong shapes, listing the first few. "
        "With --fid-weights PATH (pytorch-fid's Inception file "
        "pt_inception-2015-12-05-6726825d.pth) it also computes FRRea_FID, the REACT "
        "protocol's image FID: real listener reactions and predictions are rendered with "
        "regnn's weight-free face renderer (or read from --fid-real/--fid-fake image folders) "
        "and compared with pytorch-fid's network, input handling and Fréchet distance. A FID "
        "is only comparable with the REACT protocol's or a paper's when the same renderer, "
        "frames and weights are used.",
    )
    p.add_argument("--data", default=None,
                   help="dataset root (REACT layout); required unless only a folder FID is asked")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--pred", default=None,
                   help="predictions folder (PRED); required unless only a folder FID is asked")
    p.add_argument("--out", default=None, help="scores JSON path (default PRED/scores.json)")
    p.add_argument("--workers", type=int, default=None,
                   help="threads for the metric kernels and the FID network "
                        "(default: all cores)")
    p.add_argument("--tlcc-first-only", action="store_true",
                   help="score TLCC on prediction 0 of each speaker only, like the official "
                        "multi-process helper (to reproduce numbers published with it)")
    p.add_argument("--device", default="cpu",
                   help=f"device of the GPU-capable metric paths (the FID network; the REACT "
                        f"metrics run on the CPU's compiled kernels): {DEVICE_HELP}")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    g = p.add_argument_group(
        "image FID (FRRea_FID)",
        "Only with --fid-weights; without it nothing of this is computed. Numbers are "
        "comparable with the REACT protocol's only when the same renderer, frames and "
        "Inception weights are used (the default renderer is regnn's cartoon face, not the "
        "REACT challenge's 3-D renderer). Cost on CPU: about 0.1-0.5 s per image (N items x "
        "frames real images, N x K x frames generated ones) plus about 40 s for the 2048-d "
        "Fréchet distance; --fid-device cuda where there is a GPU.")
    g.add_argument("--fid-weights", metavar="PATH", default=None,
                   help="Inception-v3 checkpoint: pytorch-fid's "
                        "pt_inception-2015-12-05-6726825d.pth (torch-fidelity's copy and "
                        "torchvision's ImageNet weights are accepted too)")
    g.add_argument("--fid-frames", type=int, default=10, metavar="N",
                   help="frames per reaction, evenly spaced over the clip, rendered for FID")
    g.add_argument("--fid-samples", type=int, default=None, metavar="K",
                   help="use only the first K predictions of each item (None: all K)")
    g.add_argument("--fid-size", type=int, default=256, metavar="PX",
                   help="size of the rendered faces in pixels (resized to 299 for Inception)")
    g.add_argument("--fid-real", metavar="DIR", default=None,
                   help="folder of real face images (PNG/JPG, e.g. rendered by another "
                        "renderer such as PIRender): FID between it and --fid-fake instead of "
                        "rendering; --data/--pred may then be left out")
    g.add_argument("--fid-fake", metavar="DIR", default=None,
                   help="folder of generated face images (with --fid-real)")
    g.add_argument("--fid-dims", type=int, default=2048, choices=[64, 192, 768, 2048],
                   help="Inception feature size (2048 = pool3, the FID standard; the smaller "
                        "ones are pytorch-fid's --dims options)")
    g.add_argument("--fid-batch-size", type=int, default=50, metavar="B",
                   help="images per Inception forward pass")
    g.add_argument("--fid-device", default=None, metavar="DEV",
                   help="torch device of the Inception network (default: --device)")
    g.add_argument("--fid-dump", metavar="DIR", default=None,
                   help="also write the rendered frames as PNG to DIR/real and DIR/fake (to "
                        "check with `python -m pytorch_fid DIR/real DIR/fake` elsewhere)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from regnn.errors import ConfigError
    from regnn.evaluate import evaluate_fid_folders, evaluate_predictions, format_table
    from regnn.fid import FIDSettings
    from regnn.utils.device import resolve_device

    resolve_device(args.device)  # a device this machine lacks is refused before any work
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    fid = None
    if args.fid_weights is not None:
        fid = FIDSettings(weights=args.fid_weights, frames=args.fid_frames,
                          samples=args.fid_samples, size=args.fid_size, dims=args.fid_dims,
                          batch_size=args.fid_batch_size,
                          device=str(resolve_device(args.fid_device or args.device)),
                          real_dir=args.fid_real, fake_dir=args.fid_fake,
                          dump_dir=args.fid_dump)
        fid.check()
    else:
        given = [f"--{name.replace('_', '-')}" for name in ("fid_real", "fid_fake", "fid_dump")
                 if getattr(args, name) is not None]
        if given:
            raise ConfigError(f"{', '.join(given)} need --fid-weights PATH (the Inception "
                              "checkpoint)")
    if args.data is None and args.pred is None and fid is not None and fid.real_dir is not None:
        res = evaluate_fid_folders(fid, out=args.out, workers=args.workers,
                                   progress=not args.no_progress)
        print(f"FID of {res['fid']['fake_images']} images in {args.fid_fake} against "
              f"{res['fid']['real_images']} in {args.fid_real}; "
              f"{res['timing']['total_s']:.1f} s")
        print(format_table(res))
        if "written_to" in res:
            print(f"scores written to {res['written_to']}")
        return 0
    missing = [opt for opt, val in (("--data", args.data), ("--pred", args.pred)) if val is None]
    if missing:
        raise ConfigError(f"{' and '.join(missing)} required (only a FID between two image "
                          "folders, --fid-weights with --fid-real/--fid-fake, needs neither)")
    res = evaluate_predictions(args.data, args.split, args.pred, out=args.out,
                               workers=args.workers, tlcc_first_only=args.tlcc_first_only,
                               progress=not args.no_progress, fid=fid)
    print(f"{res['items']} items x K = {res['K']} ({args.split}); "
          f"{res['timing']['total_s']:.1f} s")
    print(format_table(res))
    if "fid" in res:
        info = res["fid"]
        print(f"{res['scores']['FRRea_FID']:.5f} = FID of {info['fake_images']} generated vs "
              f"{info['real_images']} real images ({info['source']}, {info['weights_kind']} "
              f"weights); comparable only with FIDs of the same renderer, frames and weights")
    print(f"scores written to {res['written_to']}")
    return 0
