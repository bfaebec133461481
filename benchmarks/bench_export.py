"""Exported graphs against PyTorch: per-frame cost of the online step, per-clip cost offline.

    python benchmarks/bench_export.py --online-run RUN_ONLINE [--offline-run RUN] [--ks 1,10]
    python benchmarks/bench_export.py        # demo-output/run (make demo) or an untrained
                                             # demo-size model, and an untrained online one

For each model it writes the export to a temporary folder (``regnn export``) and times, on one
thread each (``torch.set_num_threads(1)``, onnxruntime ``intra_op_num_threads=1``):

* **online** (an online run): a ``--frames``-frame speaker clip pushed frame by frame through

  - ``torch stream``: :class:`regnn.online.model.REGNNStream` (what ``regnn serve`` runs; its
    inverse stops at the run's ``inverse_tol`` step size, usually after a few iterations),
  - ``torch fixed-N``: the exported step module run by PyTorch (the certified fixed iteration
    counts of the export),
  - ``onnxruntime``: the exported step in ``examples/onnx_stream.py``'s loop (NumPy noise and
    buffering included),
  - ``ort early-stop``: the same with ``regnn export --early-stop --tol ES_TOL``,

  and prints the per-frame cost (total / frames) of each for every K in ``--ks``;
* **offline** (an offline run): K reactions for one ``--frames``-frame clip by
  ``REGNN.generate`` (tolerance-stopped inverse), the exported generator in PyTorch (fixed N)
  and in onnxruntime (median of ``--repeat``), and with ``--early-stop --tol ES_TOL``; with
  the largest difference between the onnxruntime and PyTorch outputs for the same inputs and
  noise.

The gap between "torch stream" and the fixed-N figures is the price of the certified
iteration count (the a-priori bound assumes the worst contraction ``c``); the gap between
"torch fixed-N" and onnxruntime is the runtimes'.
"""

from __future__ import annotations

from regnn.mkl import apply_vendor_fix

apply_vendor_fix()  # an entry point: the MKL vendor fix before torch loads

import argparse
import importlib.util
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def _example():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("onnx_stream", ROOT / "examples" /
                                                  "onnx_stream.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def speaker(frames: int, audio_dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None]
    face = (0.5 + 0.4 * np.sin(t / 11.0 + rng.uniform(0, 6, 25))).astype(np.float32)
    return face, rng.standard_normal((frames, audio_dim)).astype(np.float32)


def load(run: str | None, online: bool):  # noqa: ANN201
    """``(module, label)``: a run's module, or an UNTRAINED demo-size one."""
    if run:
        from regnn.models.runs import load_module

        return load_module(run), run
    from regnn.config import load_config, merge
    from regnn.models.registry import model_class
    from regnn.online.model import online_overrides

    torch.manual_seed(0)
    cfg = load_config("demo")
    if online:
        cfg = merge(cfg, online_overrides())
    module = model_class(cfg.model.name)(cfg.to_dict()).eval()
    return module, f"UNTRAINED demo-size {cfg.model.name}"


def bench_online(run: str | None, ks: list[int], frames: int, es_tol: float) -> None:
    from regnn.export import OnlineStep, export_module, online_example
    from regnn.online.model import open_stream

    module, run = load(run, online=True)
    cfg = module.config.model
    face, audio = speaker(frames, cfg.audio_dim)
    example = _example()
    print(f"online run {run}: graph window D = {module.online.graph}, hop H = "
          f"{module.online.hop}; {frames} frames pushed one at a time, 1 thread")
    print(f"{'K':>3}  {'torch stream':>13}  {'torch fixed-N':>14}  {'onnxruntime':>12}  "
          f"{'ort early-stop':>15}  (ms per frame)   fixed N, tolerance; early-stop cap")
    for k in ks:
        with tempfile.TemporaryDirectory() as tmp:
            meta = export_module(module, tmp, run, samples=k, verify=False)
            inv = meta["inverse"]
            stream = open_stream(module, k=k, seed=0)
            t0 = time.perf_counter()
            for t in range(frames):
                stream.push_features(face[t:t + 1], audio[t:t + 1])
            torch_stream = (time.perf_counter() - t0) / frames
            # the exported step module in PyTorch, one call per chunk
            step = OnlineStep(module.online, k, inv["iterations"]).eval()
            inputs = online_example(step, torch.Generator().manual_seed(0), 1)
            chunks = frames // step.hop
            with torch.no_grad():
                t0 = time.perf_counter()
                for _ in range(chunks):
                    step(*inputs.values())
                torch_fixed = (time.perf_counter() - t0) / (chunks * step.hop)
            onnx_stream = example.OnnxStream(tmp, seed=0, threads=1)
            t0 = time.perf_counter()
            for t in range(frames):
                onnx_stream.push(face[t:t + 1], audio[t:t + 1])
            ort_frame = (time.perf_counter() - t0) / frames
        with tempfile.TemporaryDirectory() as tmp:
            es = export_module(module, tmp, run, samples=k, verify=False, early_stop=True,
                               tol=es_tol)
            onnx_stream = example.OnnxStream(tmp, seed=0, threads=1)
            t0 = time.perf_counter()
            for t in range(frames):
                onnx_stream.push(face[t:t + 1], audio[t:t + 1])
            es_frame = (time.perf_counter() - t0) / frames
        print(f"{k:>3}  {torch_stream * 1e3:>13.3f}  {torch_fixed * 1e3:>14.3f}  "
              f"{ort_frame * 1e3:>12.3f}  {es_frame * 1e3:>15.3f}                   "
              f"{'+'.join(map(str, inv['iterations']))}, {inv['tolerance']:g}; "
              f"{'+'.join(map(str, es['inverse']['iterations']))}, {es_tol:g}")


def bench_offline(run: str | None, k: int, frames: int, repeat: int, es_tol: float) -> None:
    from regnn.export import OfflineGenerator, export_module, offline_draws

    module, run = load(run, online=False)
    net, gen = module.model, module.config.generate
    with tempfile.TemporaryDirectory() as tmp:
        meta = export_module(module, tmp, run, samples=k, frames=frames, verify=False)
        inv = meta["inverse"]
        g = torch.Generator().manual_seed(0)
        face = torch.rand((1, frames, net.cfg.face_dim), generator=g)
        audio = torch.randn((1, frames, net.cfg.audio_dim), generator=g)
        draws = offline_draws(net, 1, frames, k, torch.Generator().manual_seed(1), gen.sigma,
                              gen.noise_scale, gen.noise)
        inputs = {"face": face, "audio": audio, **draws}
        graph = OfflineGenerator(net, k, frames, gen.noise, inv["iterations"]).eval()
        inputs = {n: inputs[n] for n in graph.input_names}

        def timed(fn) -> float:  # noqa: ANN001
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            return statistics.median(times)

        with torch.no_grad():
            t_generate = timed(lambda: net.generate(
                face, audio, k, gen.sigma, gen.noise, torch.Generator().manual_seed(1),
                gen.noise_scale))
            t_fixed = timed(lambda: graph(*inputs.values()))
            ref = net.generate(face, audio, k, gen.sigma, gen.noise,
                               torch.Generator().manual_seed(1), gen.noise_scale)[0].numpy()
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(Path(tmp) / meta["offline"]["file"]), opts,
                                    providers=["CPUExecutionProvider"])
        feed = {n: v.numpy() for n, v in inputs.items()}
        t_ort = timed(lambda: sess.run(None, feed))
        raw = sess.run(["raw"], feed)[0]
    with tempfile.TemporaryDirectory() as tmp:
        es = export_module(module, tmp, run, samples=k, frames=frames, verify=False,
                           early_stop=True, tol=es_tol)
        sess = ort.InferenceSession(str(Path(tmp) / es["offline"]["file"]), opts,
                                    providers=["CPUExecutionProvider"])
        t_es = timed(lambda: sess.run(None, feed))
        raw_es = sess.run(["raw"], feed)[0]
    print(f"offline run {run}: K = {k} reactions of a {frames}-frame clip, 1 thread, median "
          f"of {repeat}")
    print(f"  torch generate (tolerance-stopped inverse): {t_generate * 1e3:8.1f} ms")
    print(f"  torch, exported module (fixed {'+'.join(map(str, inv['iterations']))} "
          f"iterations): {t_fixed * 1e3:8.1f} ms")
    print(f"  onnxruntime (same fixed iterations):        {t_ort * 1e3:8.1f} ms")
    print(f"  onnxruntime --early-stop --tol {es_tol:g} (cap "
          f"{'+'.join(map(str, es['inverse']['iterations']))}): {t_es * 1e3:8.1f} ms")
    print(f"  max |onnxruntime - torch generate| = {np.abs(raw - ref).max():.2e} "
          f"(inverse tolerance {inv['tolerance']:g}); early-stop: "
          f"{np.abs(raw_es - ref).max():.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--online-run", help="an online run (regnn train --online; default: an "
                    "untrained demo-size online model)")
    ap.add_argument("--offline-run", help="an offline run (regnn train; default: "
                    "demo-output/run when it exists, else an untrained demo-size model)")
    ap.add_argument("--ks", default="1,10", help="K values of the online part")
    ap.add_argument("--k", type=int, default=10, help="K of the offline part")
    ap.add_argument("--frames", type=int, default=750)
    ap.add_argument("--repeat", type=int, default=3, help="offline repetitions (median)")
    ap.add_argument("--es-tol", type=float, default=1e-4,
                    help="inverse tolerance of the --early-stop exports")
    ap.add_argument("--skip-online", action="store_true")
    ap.add_argument("--skip-offline", action="store_true")
    args = ap.parse_args()
    if args.offline_run is None and (ROOT / "demo-output" / "run" / "config.yaml").is_file():
        args.offline_run = str(ROOT / "demo-output" / "run")
    torch.set_num_threads(1)
    print("[start] load average (1, 5, 15 min): " +
          ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    if not args.skip_online:
        bench_online(args.online_run, [int(k) for k in args.ks.split(",")], args.frames,
                     args.es_tol)
    if not args.skip_offline:
        bench_offline(args.offline_run, args.k, args.frames, args.repeat, args.es_tol)
    print("[end] load average (1, 5, 15 min): " +
          ", ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
