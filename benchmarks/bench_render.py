"""Rendering speed: a 30-s clip with 1 + 1 + 10 faces (target < 60 s on 2 cores), the report.

Run: PYTHONPATH=src python benchmarks/bench_render.py [--face-size 160] [--gif]
Prints wall-clock seconds and os.getloadavg(), so figures measured on a busy machine are
recognisable. Uses a small synthetic dataset and noisy copies of the real reactions as
"generated" ones (rendering cost does not depend on where the numbers come from).
"""

from __future__ import annotations

from regnn.mkl import apply_vendor_fix

apply_vendor_fix()  # an entry point: the MKL vendor fix before torch loads

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from regnn.data.react import ReactSplit  # noqa: E402
from regnn.data.synthetic import write_synthetic  # noqa: E402
from regnn.render.clip import render_item  # noqa: E402
from regnn.render.video import probe_video  # noqa: E402
from regnn.report import write_report  # noqa: E402
from regnn.schema import clip_to_ranges  # noqa: E402
from regnn.utils.io import save_npy  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--face-size", type=int, default=160)
    ap.add_argument("--gif", action="store_true", help="also time the GIF writer")
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()}  cpus: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        root, pred = Path(tmp) / "data", Path(tmp) / "pred"
        write_synthetic(root, dyads=12, seed=0)
        ds = ReactSplit(root, "test", audio=False)
        rng = np.random.default_rng(0)
        for i, item in enumerate(ds.items):
            noisy = ds.listener(i)[None] + rng.normal(0, 0.1, (10, 750, 25))
            save_npy(pred / "test" / f"{item.speaker_path}.npy", clip_to_ranges(noisy))
        outs = [Path(tmp) / "clip.mp4"] + ([Path(tmp) / "clip.gif"] if args.gif else [])
        for out in outs:
            t0 = time.perf_counter()
            info = render_item(root, "test", 0, out, pred_dir=pred, max_generated=10,
                               face_size=args.face_size, progress=False)
            wall = time.perf_counter() - t0
            n, secs = probe_video(info.path)
            print(f"render {out.suffix}: 12 faces x {info.frames} frames ({secs:.2f} s clip, "
                  f"{n} frames decoded), {info.width}x{info.height}, audio={info.audio}: "
                  f"{wall:.1f} s wall ({info.frames / wall:.1f} frames/s), "
                  f"{out.stat().st_size / 1e6:.1f} MB; load {os.getloadavg()}")
        t0 = time.perf_counter()
        write_report(None, pred, root, Path(tmp) / "report.html", progress=False)
        wall = time.perf_counter() - t0
        size = (Path(tmp) / "report.html").stat().st_size / 1e6
        print(f"report (defaults: 2 items, 8-s GIFs of 5 faces at 96 px, 12.5 fps): {wall:.1f} s "
              f"wall, {size:.1f} MB; load {os.getloadavg()}")


if __name__ == "__main__":
    main()
