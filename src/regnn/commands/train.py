"""``regnn train``: train REGNN (or another registered model) with PyTorch Lightning."""

from __future__ import annotations

import argparse

import yaml

from regnn.commands._common import add_seed, subcommand


def register(sub: argparse._SubParsersAction) -> None:
    p = subcommand(
        sub, "train", "train a reaction generator (REGNN by default)",
        "Train on the train split of a REACT-layout dataset with PyTorch Lightning: progress "
        "bar, FRCorr/FRDist on a validation subset, best/last checkpoints, CSV and TensorBoard "
        "logs, the resolved config saved in RUN/config.yaml. CPU by default; "
        "--devices N --strategy ddp for N data-parallel processes (CPU cores or, with "
        "--accelerator gpu, GPUs); train.batch_size is the global batch, split between them. "
        "Same seed, same result on CPU.",
    )
    p.add_argument("--data", required=True, help="dataset root (REACT layout)")
    p.add_argument("--out", required=True, help="run folder to create (RUN)")
    p.add_argument("--config", default="regnn",
                   help="built-in config or a YAML file of overrides: regnn (the default "
                        "model, paper-size training), paper (what the paper's text "
                        "specifies), authors (what the authors' code does), demo (the default "
                        "model, small and short: make demo)")
    p.add_argument("--model", default=None,
                   help="registered model or named system (default: from config): regnn, "
                        "huang-s, huang-c, unet, l2l, iresnet-motor, or an ablation "
                        "(face-only, audio-only, no-afrdl, no-mefl)")
    p.add_argument("--variant", default=None,
                   help="named system of the paper's Tables I/II whose config overrides to "
                        "apply (see regnn.models.variants); same names as --model")
    p.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    p.add_argument("--batch-size", type=int, default=None, help="override train.batch_size")
    p.add_argument("--accelerator", default=None, help="cpu (default), gpu, auto")
    p.add_argument("--devices", type=int, default=None, help="number of devices")
    p.add_argument("--strategy", default=None, help="Lightning strategy, e.g. ddp")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (0 = default)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config value, e.g. --set model.edge_channels=1 "
                        "(repeatable; VALUE is parsed as YAML)")
    p.add_argument("--online", action="store_true",
                   help="train the causal online variant (regnn.online.model): listener frame t "
                        "depends on speaker frames <= t, generated chunk by chunk")
    p.add_argument("--window", type=int, default=None,
                   help="with --online: speaker frames one chunk sees (D, default 16)")
    p.add_argument("--hop", type=int, default=None,
                   help="with --online: listener frames generated per chunk (H, default 8)")
    p.add_argument("--resume", action="store_true", help="continue from RUN/checkpoints/last.ckpt")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_seed(p)
    p.set_defaults(func=run)


def overrides_from_args(args: argparse.Namespace) -> dict:
    from regnn.errors import ConfigError

    ov: dict = {}

    def put(path: str, value: object) -> None:
        node = ov
        keys = path.split(".")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value

    if getattr(args, "online", False):
        from regnn.online.model import DEFAULT_HOP, DEFAULT_WINDOW, online_overrides

        window = DEFAULT_WINDOW if args.window is None else args.window
        hop = DEFAULT_HOP if args.hop is None else args.hop
        for section, values in online_overrides(window, hop).items():
            for key, value in values.items():
                put(f"{section}.{key}", value)
    elif getattr(args, "window", None) is not None or getattr(args, "hop", None) is not None:
        raise ConfigError("--window and --hop set the online model's chunking: add --online")
    for item in args.set:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        put(key.strip(), yaml.safe_load(value))
    for attr, key in (("model", "model.name"), ("epochs", "train.epochs"),
                      ("batch_size", "train.batch_size"), ("accelerator", "train.accelerator"),
                      ("devices", "train.devices"), ("strategy", "train.strategy"),
                      ("threads", "train.threads")):
        value = getattr(args, attr, None)
        if value is not None:
            put(key, value)
    return ov


def run(args: argparse.Namespace) -> int:
    from regnn.models.variants import VARIANTS, resolve

    overrides = overrides_from_args(args)
    variant = args.variant or (args.model if args.model in VARIANTS else None)
    if variant is not None and args.model == variant:
        overrides["model"].pop("name")  # the variant says which model class it uses
    config = resolve(args.config, variant, overrides)
    if args.print_config:
        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
        return 0
    from regnn.train import train

    summary = train(config, args.data, args.out, seed=args.seed, resume=args.resume,
                    progress=not args.no_progress)
    if not summary:  # a DDP worker process: rank 0 reports
        return 0
    per_epoch = summary["seconds_per_epoch"]
    print(f"trained {summary['model']} ({summary['parameters']:,} parameters) for "
          f"{summary['epochs']} epochs in {summary['wall_s']:.1f} s "
          f"({(sum(per_epoch) / max(len(per_epoch), 1)):.2f} s per epoch, "
          f"{summary['windows_per_s']} windows/s)")
    if summary.get("best_score") is not None:
        print(f"best val FRCorr {summary['best_score']:.4f}")
    if "motor_check" in summary:
        mc = summary["motor_check"]
        print(f"motor inverse after training: inverse(forward(x)) max error "
              f"{mc['inverse_forward_max_abs_error']:.2e}, forward(inverse(z)) max error "
              f"{mc['forward_inverse_max_abs_error']:.2e}, <= {mc['max_iterations']} iterations")
    print(f"run folder: {args.out}")
    return 0
