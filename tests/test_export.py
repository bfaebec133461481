"""regnn export: the first-step bound, the fixed-iteration inverse's tolerance, onnxruntime
against PyTorch (offline and online), and examples/onnx_stream.py without torch."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from regnn.cli import main
from regnn.models.invertible import fixed_point
from regnn.models.motor import REGNNLayer, REGNNMotor, prepare_edges
from regnn.schema import ATTRIBUTE_NAMES, clip_to_ranges

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "onnx_stream.py"
TOL = 1e-5  # the export tolerance of these tests (the runs' default inverse_tol)
K = 3


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Small tensors, many steps: one torch thread (two threads on a busy 2-core machine
    made the fixed-point loops ~50x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _edges(B: int, P: int, nodes: int, top_k: int, g: torch.Generator
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random MEFL-like edges: ``top_k`` random in-edges per node plus the self loop."""
    scores = torch.rand((B, nodes, nodes), generator=g)
    idx = scores.topk(top_k, dim=-1).indices
    keep = torch.zeros_like(scores, dtype=torch.bool).scatter_(
        -1, idx, torch.ones_like(idx, dtype=torch.bool))
    adjacency = keep.transpose(-1, -2) | torch.eye(nodes, dtype=torch.bool)
    edges = torch.rand((B, P, nodes, nodes), generator=g) ** 3  # some tiny weights
    return edges * adjacency[:, None], adjacency


def _random_motor(g: torch.Generator, D: int = 12, layers: int = 2, norm: bool = False,
                  scale: float = 1.0) -> REGNNMotor:
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
    motor = REGNNMotor(D, 3, layers, key_dim=16, top_k=4, nodes=25, norm=norm).double()
    with torch.no_grad():
        for layer in motor.layers:
            layer.w_q.mul_(scale)
            layer.w_m.mul_(scale)
            layer.w_e.copy_(torch.randn(3, generator=g, dtype=torch.float64))  # signs too
    return motor.eval()


# -- the bound and the fixed-iteration inverse (PyTorch only) --------------------------------
@pytest.mark.parametrize("norm", [False, True])
@pytest.mark.parametrize("scale", [1.0, 30.0])
@torch.no_grad()
def test_first_step_bound_holds_for_any_input(norm: bool, scale: float) -> None:
    g = torch.Generator().manual_seed(int(norm) + int(scale))
    motor = _random_motor(g, norm=norm, scale=scale)
    edges, adjacency = _edges(4, 3, 25, 4, g)
    e0 = prepare_edges(edges.double(), adjacency)
    for layer in motor.layers:
        bound = layer.first_step_bound()
        for spread in (0.1, 3.0, 100.0):  # inputs near 0 and deep in the sigmoid's tails
            y = torch.randn((4, 5, 25, 12), generator=g, dtype=torch.float64) * spread
            step = layer.phi(y, e0, adjacency).flatten(-2).norm(dim=-1)
            assert float(step.max()) <= bound
        # nearly attained: every s -> 1 and every channel weight of one sign
        layer.w_e.abs_()
        y = torch.full((1, 1, 25, 12), 20.0, dtype=torch.float64)  # s = 1 - 2e-9
        got = float(layer.phi(y, e0[:1], adjacency[:1]).norm())
        assert got <= layer.first_step_bound() and got >= 0.99 * layer.first_step_bound()


@torch.no_grad()
def test_fixed_inverse_meets_its_tolerance_and_round_trips() -> None:
    from regnn.export import FixedInverse, early_stops, inverse_schedule

    g = torch.Generator().manual_seed(3)
    motor = _random_motor(g, D=12, layers=2)
    edges, adjacency = _edges(2, 3, 25, 4, g)
    edges = edges.double()
    z = torch.randn((2, 3, 25, 12), generator=g, dtype=torch.float64) * 2.0
    for tol in (1e-3, 1e-6):
        schedule = inverse_schedule(motor, tol)
        # the error shares add up to the tolerance after amplification by the later inverses
        assert math.isclose(sum(s["tolerance"] * s["amplification"] for s in schedule), tol)
        iterations = [int(s["iterations"]) for s in schedule]
        exact, info = motor.inverse(z, edges, adjacency, tol=1e-12, max_iter=5000)
        assert info.converged
        # fixed counts, and stopping early on the a-posteriori certificate
        for stops in (None, early_stops(schedule)):
            x = FixedInverse(motor, iterations, stops)(z, edges, adjacency)
            err = (x - exact).flatten(-2).norm(dim=-1).max()
            assert float(err) <= tol
            # round trip: ‖f(x) - z‖ <= Lip(f) ‖x - x*‖ <= Π(1 + c_i) tol
            lip = math.prod(1.0 + s["lipschitz"] for s in schedule)
            back = (motor(x, edges, adjacency) - z).flatten(-2).norm(dim=-1).max()
            assert float(back) <= lip * tol
    # fixed_point with iterations=N runs exactly N steps
    layer: REGNNLayer = motor.layers[0]
    e0 = prepare_edges(edges, adjacency)
    _, info1 = fixed_point(lambda v: layer.phi(v, e0, adjacency), z, layer.c, iterations=7)
    assert info1["iterations"] == 7


# -- exported runs -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def ort() -> ModuleType:
    pytest.importorskip("onnx")
    return pytest.importorskip("onnxruntime")


def _train(root: Path, cfg: Path, out: Path, *extra: str) -> Path:
    assert main(["train", "--data", str(root), "--out", str(out), "--config", str(cfg),
                 "--seed", "1", "--no-progress", "--set", "train.val_items=0", *extra]) == 0
    return out


@pytest.fixture(scope="module")
def offline_export(ort: ModuleType, synthetic_root: Path, tiny_config: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("export-offline")
    run = _train(synthetic_root, tiny_config, base / "run")
    out = base / "onnx"
    assert main(["export", "--run", str(run), "--out", str(out), "--samples", str(K),
                 "--frames", "75", "--tol", str(TOL), "--no-check"]) == 0
    return run, out


@pytest.fixture(scope="module")
def online_export(ort: ModuleType, synthetic_root: Path, tiny_config: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("export-online")
    run = _train(synthetic_root, tiny_config, base / "run", "--online", "--window", "10",
                 "--hop", "4")
    out = base / "onnx"
    assert main(["export", "--run", str(run), "--out", str(out), "--samples", str(K)]) == 0
    early = base / "onnx-early"
    assert main(["export", "--run", str(run), "--out", str(early), "--samples", str(K),
                 "--early-stop", "--tol", "1e-4", "--no-check"]) == 0
    return run, out


def _session(ort: ModuleType, path: Path):  # noqa: ANN202
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def test_offline_graph_equals_regnn_generate(ort: ModuleType,
                                             offline_export: tuple[Path, Path]) -> None:
    from regnn.export import offline_draws
    from regnn.models.runs import load_module

    run, out = offline_export
    meta = json.loads((out / "regnn_export.json").read_text())
    assert meta["attributes"] == list(ATTRIBUTE_NAMES) and "check" not in meta
    inv = meta["inverse"]
    assert inv["tolerance"] == TOL and inv["total_iterations"] == sum(inv["iterations"])
    sess = _session(ort, out / meta["offline"]["file"])
    declared = {i["name"]: i for i in meta["offline"]["inputs"]}
    assert [i.name for i in sess.get_inputs()] == list(declared) == ["face", "audio", "u",
                                                                     "noise"]
    net = load_module(run).model
    cfg, gen = net.cfg, load_module(run).config.generate
    N, T = 2, 75  # a batch of 2: the batch axis is dynamic
    g = torch.Generator().manual_seed(5)
    face, audio = torch.rand((N, T, cfg.face_dim), generator=g), torch.randn((N, T, 64),
                                                                             generator=g)
    draws = offline_draws(net, N, T, K, torch.Generator().manual_seed(9), gen.sigma,
                          gen.noise_scale, gen.noise)
    feed = {"face": face.numpy(), "audio": audio.numpy(),
            **{k: v.numpy() for k, v in draws.items()}}
    for name, spec in declared.items():
        assert list(feed[name].shape) == [N if d == "N" else d for d in spec["shape"]]
    reactions, raw = sess.run(["reactions", "raw"], feed)
    # regnn's own generate with the same generator draws the same u and noise
    ref, info = net.generate(face, audio, K, gen.sigma, gen.noise,
                             torch.Generator().manual_seed(9), gen.noise_scale)
    assert info.converged
    assert np.abs(raw - ref.numpy()).max() < 1e-4
    assert np.abs(reactions - clip_to_ranges(ref.numpy())).max() < 1e-4


def test_exported_inverse_meets_its_stated_tolerance(ort: ModuleType,
                                                     offline_export: tuple[Path, Path],
                                                     tmp_path: Path) -> None:
    """The inverse graph alone (what both graphs contain): onnxruntime's result against the
    tolerance-stopped PyTorch inverse and through the forward map; for the run's motor and
    for one whose logits need the softmax's overflow guard (as the demo run's do)."""
    from regnn.export import FixedInverse, _onnx_export, early_stops, inverse_schedule
    from regnn.models.runs import load_module

    run, out = offline_export
    meta = json.loads((out / "regnn_export.json").read_text())
    g = torch.Generator().manual_seed(2)
    big = _random_motor(g, D=50, layers=2, scale=30.0).float()
    assert all(c["safe_exp"] for c in big.inverse_constants())
    loose = inverse_schedule(big, 1e-3)
    motors = [(load_module(run).model.motor, meta["inverse"]["iterations"], None, TOL),
              (big, [int(s["iterations"]) for s in inverse_schedule(big, TOL)], None, TOL),
              (big, [int(s["iterations"]) for s in loose], early_stops(loose), 1e-3)]
    for i, (motor, iterations, stops, tol) in enumerate(motors):
        P = motor.layers[0].w_e.shape[0]
        edges, adjacency = _edges(2, P, 25, 6, g)
        z = torch.randn((2, K, 25, 50), generator=g)
        inputs = {"z": z, "edges": edges, "adjacency": adjacency}
        path = tmp_path / f"inverse{i}.onnx"
        _onnx_export(FixedInverse(motor, iterations, stops).eval(), inputs, ["x"], {}, path)
        (x,) = _session(ort, path).run(None, {k: v.numpy() for k, v in inputs.items()})
        motor = motor.double()
        with torch.no_grad():
            exact, info = motor.inverse(z.double(), edges.double(), adjacency, tol=1e-12,
                                        max_iter=5000)
            assert info.converged
            err = np.linalg.norm((x - exact.numpy()).reshape(2, K, -1), axis=-1).max()
            assert err <= tol
            lip = math.prod(1.0 + layer.certified_lipschitz() for layer in motor.layers)
            back = motor(torch.from_numpy(x).double(), edges.double(), adjacency) - z.double()
            assert float(back.flatten(-2).norm(dim=-1).max()) <= lip * tol
        motor.float()


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("onnx_stream_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_online_step_and_example_loop_equal_the_torch_stream(
        ort: ModuleType, online_export: tuple[Path, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from regnn.models.runs import load_module
    from regnn.online.model import REGNNStream, open_stream

    run, out = online_export
    meta = json.loads((out / "regnn_export.json").read_text())
    assert meta["model"] == "regnn-online" and "offline" not in meta
    assert meta["check"]["max_abs_diff_onnxruntime_vs_torch"] < 1e-4  # export's own check
    assert (meta["online"]["context"], meta["online"]["hop"]) == (10, 4)
    module = load_module(run)
    stream = open_stream(module, k=K, seed=3)
    noise: list[np.ndarray] = []
    draw = REGNNStream._residual_noise  # every stream's noise is drawn here, batched or not

    def spy(streams: list, frames: int, std: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
        eps = draw(streams, frames, std, rho)
        for s, e in zip(streams, eps):
            if s is stream:
                noise.append(e.numpy().transpose(0, 2, 1).copy())  # (K, frames, 25)
        return eps

    monkeypatch.setattr(REGNNStream, "_residual_noise", staticmethod(spy))
    rng = np.random.default_rng(0)
    T = 30
    face = rng.random((T, 25)).astype(np.float32)
    audio = rng.standard_normal((T, 64)).astype(np.float32)
    ref = np.concatenate([stream.push_features(face[t:t + 5], audio[t:t + 5])
                          for t in range(0, T, 5)], axis=1)

    example = _load_example()
    for folder in (out, out.parent / "onnx-early"):  # fixed counts; --early-stop --tol 1e-4
        inv = json.loads((folder / "regnn_export.json").read_text())["inverse"]
        assert inv["early_stop"] == (folder != out)
        onnx_stream = example.OnnxStream(folder, seed=0)
        onnx_stream.u = stream._u.float().numpy()
        draws = list(noise)
        onnx_stream._noise = lambda frames, draws=draws: draws.pop(0)
        got = np.concatenate([onnx_stream.push(face[t:t + 1], audio[t:t + 1])
                              for t in range(T)], axis=1)
        assert got.shape == ref.shape == (K, T, 25) and not draws
        assert np.abs(got - ref).max() < 1e-4


def test_example_runs_with_onnxruntime_and_numpy_only(ort: ModuleType,
                                                      online_export: tuple[Path, Path],
                                                      tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    for name in ("torch", "regnn"):  # importing either fails in the subprocess
        (blocked / f"{name}.py").write_text(f"raise ImportError('{name} is blocked here')\n")
    env = {**os.environ, "PYTHONPATH": str(blocked)}
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), str(online_export[1]), "--frames", "20", "--out",
         str(tmp_path / "r.npy")], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "ms per frame" in result.stdout
    reactions = np.load(tmp_path / "r.npy")
    assert reactions.shape == (K, 20, 25) and np.isfinite(reactions).all()


def test_importing_regnn_loads_no_onnx() -> None:
    code = ("import sys, regnn, regnn.cli; "
            "sys.exit(1 if {'onnx', 'onnxruntime'} & set(sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_export_errors_name_the_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["export", "--run", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "nope" in capsys.readouterr().err
