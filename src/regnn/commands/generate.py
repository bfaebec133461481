"""``regnn generate``: K reactions per speaker item of a split, in the REACT prediction layout."""

from __future__ import annotations

import argparse

from regnn.commands._common import add_seed, subcommand
from regnn.utils.device import DEVICE_HELP


def register(sub: argparse._SubParsersAction) -> None:
    p = subcommand(
        sub, "generate", "generate K reactions per speaker with a trained run",
        "Write PRED/<split>/<speaker_path>.npy, one float32 (K, 750, 25) array per mirrored "
        "item (clipped to the attribute ranges, expression probabilities renormalised), and "
        "PRED/generation.json (wall time, reactions per second, the motor inverse's worst "
        "error and iteration count).",
    )
    p.add_argument("--run", required=True, help="training run folder (from regnn train)")
    p.add_argument("--data", required=True, help="dataset root (REACT layout)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--out", required=True, help="predictions folder (PRED)")
    p.add_argument("--samples", type=int, default=None,
                   help="reactions per speaker, K (default: the run's generate.samples, 10)")
    p.add_argument("--noise", default=None, choices=["residual", "gaussian", "scaled"],
                   help="sampling noise ε (default: the run's generate.noise): residual "
                        "(smooth, the real within-mode spread x --noise-scale), gaussian "
                        "(i.i.d. N(0, σ²), the paper's text), scaled (the authors' code)")
    p.add_argument("--noise-scale", type=float, default=None,
                   help="multiplier of the residual noise (default: the run's "
                        "generate.noise_scale; 0 = every reaction exactly on its mode)")
    p.add_argument("--sigma", type=float, default=None,
                   help="σ of the gaussian and scaled noise (default: the run's generate.sigma)")
    p.add_argument("--binarize-aus", action="store_true", default=None,
                   help="threshold AUs to {0, 1} (default: the run's generate.binarize_aus)")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    p.add_argument("--device", default="cpu",
                   help=f"where the model runs: {DEVICE_HELP} (the noise is drawn on the CPU: "
                        "a seed gives the same reactions on any device)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (0 = torch's default; 1 is faster on a busy machine)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_seed(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from regnn.generate import generate_predictions

    s = generate_predictions(args.run, args.data, args.split, args.out, samples=args.samples,
                             sigma=args.sigma, seed=args.seed, binarize=args.binarize_aus,
                             checkpoint=args.checkpoint, progress=not args.no_progress,
                             threads=args.threads, noise=args.noise,
                             noise_scale=args.noise_scale, device=args.device)
    mi = s["motor_inverse"]
    print(f"{s['items']} items x {s['samples']} reactions in {s['wall_s']:.2f} s "
          f"({s['reactions_per_s']} reactions/s); motor inverse: <= {mi['max_iterations']} "
          f"iterations, residual <= {mi['max_residual']:.2e}, error <= "
          f"{mi['max_certified_error']:.2e} (certified)")
    print(f"predictions in {args.out}/{args.split}/, summary in {args.out}/generation.json")
    return 0
