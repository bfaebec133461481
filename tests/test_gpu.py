"""The GPU paths (``-m gpu``; skipped on machines without CUDA, such as this project's CI):
training with validation on one GPU, generation, the API and the stream on CUDA, each equal to
the CPU's result for the same seed (the noise is drawn on the CPU) up to float rounding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from regnn.cli import main

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture(scope="module")
def gpu_run(synthetic_root: Path, tiny_config: Path, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("gpu") / "run"
    # validation on: the first validation step crashed on a GPU before the noise was drawn
    # apart from the model's device
    assert main(["train", "--data", str(synthetic_root), "--out", str(run), "--config",
                 str(tiny_config), "--accelerator", "gpu", "--devices", "1",
                 "--no-progress"]) == 0
    return run


def test_generate_on_cuda_equals_the_cpu(gpu_run, synthetic_root, tmp_path):
    for dev in ("cpu", "cuda"):
        assert main(["generate", "--run", str(gpu_run), "--data", str(synthetic_root),
                     "--split", "val", "--out", str(tmp_path / dev), "--samples", "3",
                     "--device", dev, "--no-progress"]) == 0
    for f in (tmp_path / "cpu" / "val").rglob("*.npy"):
        g = tmp_path / "cuda" / f.relative_to(tmp_path / "cpu")
        np.testing.assert_allclose(np.load(g), np.load(f), atol=2e-4)
    assert main(["evaluate", "--data", str(synthetic_root), "--split", "val", "--pred",
                 str(tmp_path / "cuda"), "--device", "cuda", "--no-progress"]) == 0


def test_api_and_stream_on_cuda(gpu_run, online_run):
    from regnn.api import ReactionGenerator
    from regnn.online import open_stream

    face = np.random.default_rng(0).uniform(0, 1, (120, 25)).astype(np.float32)
    audio = np.zeros((120, 64), np.float32)
    out = {dev: ReactionGenerator.from_run(gpu_run, device=dev).generate_features(
        face, audio, k=2, seed=1) for dev in ("cpu", "cuda")}
    np.testing.assert_allclose(out["cuda"], out["cpu"], atol=2e-4)
    streams = {dev: open_stream(online_run, k=2, seed=3, device=dev) for dev in ("cpu", "cuda")}
    assert streams["cuda"].device.type == "cuda"
    a, b = (streams[d].push_features(face[:40], audio[:40]) for d in ("cpu", "cuda"))
    np.testing.assert_allclose(b, a, atol=2e-4)


def test_bench_gpu_prints_its_figures(capsys):
    import runpy
    import sys

    sys.argv = ["bench_gpu.py", "--steps", "2", "--repeats", "2", "--config", "demo"]
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(Path(__file__).parents[1] / "benchmarks" / "bench_gpu.py"),
                       run_name="__main__")
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "windows/s" in out and "generation, K = 10" in out
