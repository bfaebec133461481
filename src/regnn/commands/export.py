"""``regnn export``: ONNX graphs of a trained generator, for use without PyTorch."""

from __future__ import annotations

import argparse

from regnn.commands._common import subcommand


def register(sub: argparse._SubParsersAction) -> None:
    p = subcommand(
        sub, "export", "export a trained run's generator as ONNX graphs (onnxruntime, no torch)",
        "Write OUT/offline.onnx (an offline run: speaker face and audio features of whole "
        "clips, the reactions' noise and component uniforms in; K reactions out) or "
        "OUT/online_step.onnx (an online run, regnn train --online: one streaming step, the "
        "speaker context window and the carried state in; the next hop of listener frames and "
        "the new state out), and OUT/regnn_export.json naming the inputs, outputs and shapes, "
        "the attribute order, the noise recipe and the motor inverse's fixed iteration counts "
        "with the tolerance they guarantee (from the certified Lipschitz bound). The graphs "
        "draw no random numbers: the noise is an input, so their outputs can be compared with "
        "PyTorch's for the same draws. After writing, both are run on random inputs (--seed) "
        "with onnxruntime and PyTorch and the largest difference is printed and recorded. "
        "Needs the export extra: pip install 'regnn[export]'. See examples/onnx_stream.py "
        "for a streaming loop with onnxruntime and NumPy alone.",
    )
    p.add_argument("--run", required=True, help="training run folder (from regnn train)")
    p.add_argument("--out", required=True, help="folder for the graphs and their JSON")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    p.add_argument("--samples", type=int, default=None,
                   help="reactions per speaker, K, fixed in the graphs (default: the run's "
                        "generate.samples)")
    p.add_argument("--frames", type=int, default=None,
                   help="clip length T of the offline graph, fixed in it (default 750)")
    p.add_argument("--tol", type=float, default=None,
                   help="guaranteed error of the motor inverse per decoded window (default: "
                        "the run's model.inverse_tol); it sets the fixed iteration counts")
    p.add_argument("--early-stop", action="store_true",
                   help="let each layer's inverse stop as soon as the a-posteriori estimate "
                        "certifies its share of --tol (the fixed counts remain the cap and "
                        "the guarantee is the same; the number of steps then depends on the "
                        "input, usually far fewer)")
    p.add_argument("--no-check", action="store_true",
                   help="skip running the graphs with onnxruntime against PyTorch")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the random inputs of the onnxruntime-vs-PyTorch check (the "
                        "graphs themselves draw nothing)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from regnn.export import META_NAME, export_run

    meta = export_run(args.run, args.out, checkpoint=args.checkpoint, tol=args.tol,
                      samples=args.samples, frames=args.frames, seed=args.seed,
                      verify=not args.no_check, early_stop=args.early_stop)
    graph = meta.get("offline") or meta["online"]
    inv = meta["inverse"]
    print(f"{meta['model']} -> {args.out}/{graph['file']} (K = {meta['samples']}); motor "
          f"inverse: {'+'.join(map(str, inv['iterations']))} "
          f"{'at most' if inv['early_stop'] else 'fixed'} iterations, error <= "
          f"{inv['tolerance']:g} per window (certified)")
    check = meta.get("check", {})
    if "max_abs_diff_onnxruntime_vs_torch" in check:
        print(f"onnxruntime vs PyTorch on random inputs: max abs difference "
              f"{check['max_abs_diff_onnxruntime_vs_torch']:.2e}")
    elif "skipped" in check:
        print(f"check skipped: {check['skipped']}")
    print(f"inputs, outputs and shapes in {args.out}/{META_NAME}")
    return 0
