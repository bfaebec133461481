"""REGNN on a GPU (prints its figures; skips with a message when there is no CUDA device).

* training at the paper configuration (D = 50, P = 8, 2 motor layers, 128-wide fusion,
  M = 10 appropriate reactions per window): windows/s for batches of 128 and 1024, split into
  batch assembly (``AppropriateWindows.__getitems__`` on the CPU, then the copy to the GPU) and
  compute (forward, backward, Adam step, synchronised);
* generation: K = 10 reactions for a 30-s clip (750 frames), latency and reactions/s;
* peak GPU memory of each.

    python benchmarks/bench_gpu.py [--device cuda:0] [--steps 20] [--repeats 20]

End-to-end ``regnn train`` throughput is measured by ``benchmarks/gpu_check.sh``.
"""

from __future__ import annotations

from regnn import mkl

mkl.apply_vendor_fix()  # an entry point: the MKL vendor fix before torch loads

# isort: split

import argparse
import statistics
import sys
import time

import numpy as np
import torch

from regnn.config import load_config
from regnn.data.training import AppropriateWindows
from regnn.models.module import make_adam
from regnn.models.regnn import REGNN


def _data(window: int, stride: int, clip_windows: int) -> AppropriateWindows:
    n, T = 128, 750
    rng = np.random.default_rng(0)
    return AppropriateWindows(rng.uniform(0, 1, (n, T, 25)).astype(np.float32),
                              rng.normal(0, 1, (n, T, 64)).astype(np.float32),
                              rng.uniform(0, 1, (n, T, 25)).astype(np.float32),
                              rng.uniform(size=(n, n)) < 0.3, window, stride, appropriate=10,
                              clip_windows=clip_windows)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def bench_training(model: REGNN, ds: AppropriateWindows, batch: int, steps: int,
                   dev: torch.device) -> dict:
    model.train()
    opt = make_adam(model.parameters(), lr=1e-4, weight_decay=5e-4)
    per_step = max(1, batch // ds.chunk)
    order = np.random.default_rng(1).permutation(len(ds))
    assembly, compute = [], []
    torch.cuda.reset_peak_memory_stats(dev)
    for s in range(steps + 2):
        idx = order[(s * per_step) % (len(order) - per_step):][:per_step].tolist()
        t0 = time.perf_counter()
        b = {k: v.to(dev, non_blocking=True) for k, v in ds.__getitems__(idx).items()}
        _sync(dev)
        t1 = time.perf_counter()
        out = model.losses(b["face"], b["audio"], b["reactions"], b["valid"], b["group"])
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        _sync(dev)
        t2 = time.perf_counter()
        if s >= 2:
            assembly.append(t1 - t0)
            compute.append(t2 - t1)
    a, c = statistics.median(assembly), statistics.median(compute)
    windows = per_step * ds.chunk
    return {"batch": windows, "assembly_ms": 1e3 * a, "compute_ms": 1e3 * c,
            "windows_per_s": windows / (a + c), "compute_windows_per_s": windows / c,
            "peak_mib": torch.cuda.max_memory_allocated(dev) / 2**20}


def bench_generation(model: REGNN, repeats: int, dev: torch.device, g) -> dict:
    model.eval()
    rng = np.random.default_rng(0)
    face = torch.from_numpy(rng.uniform(0, 1, (1, 750, 25)).astype(np.float32)).to(dev)
    audio = torch.from_numpy(rng.normal(0, 1, (1, 750, 64)).astype(np.float32)).to(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    times = []
    for r in range(repeats + 3):
        _sync(dev)
        t = time.perf_counter()
        pred, info = model.generate(face, audio, k=10, sigma=g.sigma, noise=g.noise,
                                    generator=torch.Generator().manual_seed(r),
                                    noise_scale=g.noise_scale)
        _sync(dev)
        if r >= 3:
            times.append(time.perf_counter() - t)
    assert pred.shape == (1, 10, 750, 25) and info.converged
    med = statistics.median(times)
    return {"median_ms": 1e3 * med, "reactions_per_s": 10 / med,
            "peak_mib": torch.cuda.max_memory_allocated(dev) / 2**20,
            "max_iterations": info.max_iterations}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--config", default="paper", help="model configuration (default: paper)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device on this machine: skipped (nothing measured)")
        return 0
    from regnn.utils.device import resolve_device

    dev = resolve_device(args.device)
    cfg = load_config(args.config)
    print(f"{torch.cuda.get_device_name(dev)}, torch {torch.__version__}, "
          f"config {args.config} (D={cfg.model.window}, P={cfg.model.edge_channels}, "
          f"width {cfg.model.width}, M = {cfg.train.appropriate})")
    torch.manual_seed(0)
    model = REGNN(cfg.model).to(dev)
    ds = _data(cfg.model.window, cfg.model.stride, cfg.train.clip_windows)
    print("training (batch assembly on the CPU + copy | compute on the GPU):")
    for batch in (128, 1024):
        r = bench_training(model, ds, batch, args.steps, dev)
        print(f"  batch {r['batch']:>5}: {r['windows_per_s']:>9,.0f} windows/s  (assembly "
              f"{r['assembly_ms']:.1f} ms, compute {r['compute_ms']:.1f} ms = "
              f"{r['compute_windows_per_s']:,.0f} windows/s alone; peak {r['peak_mib']:.0f} MiB)")
    r = bench_generation(model, args.repeats, dev, cfg.generate)
    print(f"generation, K = 10, 30-s clip: {r['median_ms']:.1f} ms median "
          f"({r['reactions_per_s']:.0f} reactions/s; <= {r['max_iterations']} inverse "
          f"iterations; peak {r['peak_mib']:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
