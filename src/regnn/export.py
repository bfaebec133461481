r"""ONNX export of a trained generator (``regnn export``): REGNN without PyTorch.

``export_run(RUN, OUT)`` writes

* ``OUT/offline.onnx`` (an offline run, ``model.name == "regnn"``): whole speaker clips in,
  ``K`` reactions out — exactly :meth:`regnn.models.regnn.REGNN.generate` with its random
  draws made inputs;
* ``OUT/online_step.onnx`` (an online run, ``model.name == "regnn-online"``): one chunk of
  the stream of :class:`regnn.online.model.REGNNStream` — the speaker context window and the
  carried state in, the next ``H`` listener frames of ``K`` reactions and the new state out;
* ``OUT/regnn_export.json``: the graphs' inputs and outputs (names, shapes, dtypes, meaning),
  the attribute order (:data:`regnn.schema.ATTRIBUTE_NAMES`), the sampling recipe and its
  constants, and the inverse's iteration counts and certified tolerance.

**What is not in the graphs** (so that the outputs are reproducible and comparable with
PyTorch for the same draws): the random numbers. The noise ``ε`` of the sample ``Ẑp + ε``
(Eq. 5) is an input, already scaled (the JSON holds the recipe and, for the default
``residual`` noise, the per-attribute AR(1) ``std`` and ``rho``), and so is the uniform number
``u`` of each reaction's stratified component choice (the graph does the deterministic part,
the comparison with the mixture weights' cumulative sum). Audio enters as the per-frame
log-mel features of the data layer (:mod:`regnn.data.audio`), not as samples; the stream's
buffering (a context window of the last ``D`` speaker frames, frame 0 repeated at the start)
is left to the caller (``examples/onnx_stream.py`` does it in NumPy).

**The inverse** (Eq. 5 by Eq. 14) runs a fixed number of iterations per motor layer, derived
from the certified bound (:func:`inverse_schedule`): the graphs contain no data-dependent
loop (unless ``--early-stop``, :class:`FixedInverse`), and every decoded window is within the
stated tolerance of the exact inverse, for any input.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from regnn import __version__, schema
from regnn.data.windows import window_starts
from regnn.errors import ConfigError, RegnnError
from regnn.export_graphs import (
    FixedInverse,
    OfflineGenerator,
    OnlineStep,
    check_exportable,
    clip_to_ranges,
    early_stops,
    inverse_schedule,
    offline_draws,
)
from regnn.models.regnn import REGNN

__all__ = [
    "FORMAT", "META_NAME", "OFFLINE_NAME", "ONLINE_NAME", "FixedInverse", "OfflineGenerator",
    "OnlineStep", "check_exportable", "clip_to_ranges", "early_stops", "export_module",
    "export_run", "inverse_schedule", "offline_draws", "online_example", "run_onnx",
    "verify_graph",
]

I = schema.NUM_ATTRIBUTES
META_NAME = "regnn_export.json"
OFFLINE_NAME = "offline.onnx"
ONLINE_NAME = "online_step.onnx"
OPSET = 17
FORMAT = "regnn-onnx/1"


# -- the fixed-iteration inverse ------------------------------------------------------------


# -- export ---------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The TorchScript exporter's deprecation and tracer warnings (expected, not actionable)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _require(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise RegnnError(f"regnn export needs the '{module}' package: pip install "
                         "'regnn[export]'") from None


def _onnx_export(model: nn.Module, inputs: dict[str, torch.Tensor], outputs: list[str],
                 dynamic: dict[str, dict[int, str]], target: Path) -> None:
    from regnn.utils.io import atomic_path

    _require("onnx")
    with _quiet(), torch.no_grad(), atomic_path(target) as tmp:
        torch.onnx.export(model, tuple(inputs.values()), str(tmp), dynamo=False,
                          input_names=list(inputs), output_names=outputs,
                          dynamic_axes=dynamic or None, opset_version=OPSET,
                          do_constant_folding=True)


def _describe(values: dict[str, torch.Tensor], shapes: dict[str, list[int | str]],
              docs: dict[str, str]) -> list[dict[str, Any]]:
    return [{"name": name, "shape": shapes[name], "dtype": str(t.dtype).replace("torch.", ""),
             "doc": docs[name]} for name, t in values.items()]


def run_onnx(path: str | Path, inputs: dict[str, np.ndarray], threads: int = 1
             ) -> list[np.ndarray]:
    """Run an exported graph with onnxruntime (``threads`` intra-op threads)."""
    ort = _require("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, inputs)


def _np(values: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in values.items()}


def _inverse_meta(schedule: list[dict[str, float | int]], tol: float, D: int,
                  early_stop: bool = False) -> dict[str, Any]:
    return {
        "early_stop": early_stop,
        "early_stop_steps": early_stops(schedule) if early_stop else None,
        "tolerance": tol,
        "norm": f"Frobenius norm over one decoded {I} x {D} window (so also every entry)",
        "iterations": [int(s["iterations"]) for s in schedule],
        "total_iterations": int(sum(int(s["iterations"]) for s in schedule)),
        "layers": schedule,
        "guarantee": (
            "each motor layer i (in layer order) runs iterations[i] fixed-point steps "
            "x <- y - phi(x), enough by Banach's a-priori estimate c^N/(1-c) * b <= t_i for its "
            "certified Lipschitz constant c and the input-independent bound b of the first "
            "step; the shares t_i, amplified by the inverses of the layers decoded after it, "
            "add up to the tolerance: every decoded window is within it of the exact "
            "inverse, for any input (stitching averages windows, so a reaction frame is too); "
            "the estimate is for exact arithmetic: float32 rounding adds about 1e-6 "
            "(below 1e-5 in the tests)"
            + ("; early_stop: layer i stops before iterations[i] as soon as its largest step "
               "max_graph ||x_{k+1} - x_k|| is <= early_stop_steps[i] = t_i (1-c)/c, where "
               "the a-posteriori estimate c/(1-c) ||x_{k+1} - x_k|| certifies t_i" if early_stop
               else "")),
    }


def _sampling_meta(net: REGNN, mode: str, sigma: float, noise_scale: float) -> dict[str, Any]:
    std, rho = net.residual_noise()
    recipes = {
        "residual": ("per attribute i an AR(1) series over the frames: n_0 = w_0, "
                     "n_t = rho_i n_{t-1} + sqrt(1 - rho_i^2) w_t with w ~ N(0, 1), times "
                     "std_i (std already includes noise_scale)"),
        "gaussian": "i.i.d. N(0, sigma^2) per entry",
        "scaled": ("N(0, 1) per entry, rescaled where needed so that its largest magnitude "
                   "over one reaction (offline: all its windows; online: one chunk's new "
                   "frames, or the first window) is at most sqrt(sigma)"),
    }
    return {"noise": mode, "sigma": sigma, "noise_scale": noise_scale,
            "std": (std * noise_scale).tolist(), "rho": rho.tolist(),
            "recipe": recipes[mode],
            "components": ("reaction j draws u_j uniform on [j/K, (j+1)/K) (stratified); the "
                           "graph takes the component whose cumulative mixture weight "
                           "interval holds it")}


def export_run(run: str | Path, out: str | Path, checkpoint: str = "best",
               tol: float | None = None, samples: int | None = None, frames: int | None = None,
               seed: int = 0, verify: bool = True, early_stop: bool = False
               ) -> dict[str, Any]:
    """Export a trained run to ``out`` (module docstring); returns the JSON meta written.

    ``tol``: the inverse tolerance (default the run's ``model.inverse_tol``); ``samples``: K
    (default the run's ``generate.samples``); ``frames``: the offline graph's clip length
    (default :data:`regnn.schema.CLIP_FRAMES`); ``seed``: of the random inputs of the check
    that runs both graphs with onnxruntime and PyTorch (``verify``) and records the largest
    difference; ``early_stop``: the inverse stops once the a-posteriori estimate certifies
    the tolerance (:class:`FixedInverse`), the fixed counts as its cap.
    """
    from regnn.models.runs import load_module

    return export_module(load_module(run, checkpoint), out, str(run), checkpoint, tol,
                         samples, frames, seed, verify, early_stop)


def export_module(module: nn.Module, out: str | Path, source: str = "", checkpoint: str = "",
                  tol: float | None = None, samples: int | None = None,
                  frames: int | None = None, seed: int = 0, verify: bool = True,
                  early_stop: bool = False) -> dict[str, Any]:
    """:func:`export_run` of a loaded (Lightning) module of regnn; ``source`` names it in
    the JSON and in errors."""
    cfg = module.config
    name = cfg.model.name
    tol = float(cfg.model.inverse_tol if tol is None else tol)
    k = int(cfg.generate.samples if samples is None else samples)
    if k < 1:
        raise ConfigError(f"--samples must be >= 1, got {k}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    mode, sigma, scale = cfg.generate.noise, cfg.generate.sigma, cfg.generate.noise_scale
    g = torch.Generator().manual_seed(int(seed))
    meta: dict[str, Any] = {
        "format": FORMAT, "regnn_version": __version__, "torch_version": torch.__version__,
        "run": source, "checkpoint": checkpoint, "model": name, "opset": OPSET,
        "attributes": list(schema.ATTRIBUTE_NAMES), "fps": schema.FPS,
        "ranges": {"low": schema.LOW.tolist(), "high": schema.HIGH.tolist()},
        "samples": k, "seed": seed,
    }
    if name == "regnn-online":
        online = module.online
        net = online.net
        check_exportable(net, source)
        schedule = inverse_schedule(net.motor, tol)
        step = OnlineStep(online, k, [int(s["iterations"]) for s in schedule],
                          early_stops(schedule) if early_stop else None).eval()
        inputs = online_example(step, g, 0)
        D, H = step.context, step.hop
        target = out / ONLINE_NAME
        _onnx_export(step, inputs, step.output_names, {}, target)
        shapes = {"face": [D, net.cfg.face_dim], "audio": [D, net.cfg.audio_dim], "u": [k],
                  "component": [k], "noise_state": [k, D - H, I], "noise_new": [k, H, I],
                  "last_frame": [k, I]}
        docs = {
            "face": "speaker face features of the context window: frames t-D+1 .. t",
            "audio": "speaker log-mel features of the same frames",
            "u": "stratified uniforms of the component choice (used while component < 0)",
            "component": "carried: each reaction's mixture component; -1 before the first chunk",
            "noise_state": "carried: the noise of the window's first D-H frames (first chunk: "
                           "the first D-H of D fresh frames)",
            "noise_new": "the noise of the H new frames",
            "last_frame": "carried: the last emitted frame before clipping (any value at the "
                          "first chunk)",
        }
        out_values = dict(zip(step.output_names, step(*inputs.values())))
        out_shapes = {"frames": [k, H, I], "component_out": [k], "noise_state_out":
                      [k, D - H, I], "last_frame_out": [k, I]}
        out_docs = {"frames": "listener frames t .. t+H-1 of the K reactions (clipped to the "
                              "ranges, expression probabilities renormalised)",
                    "component_out": "state: pass as component next chunk",
                    "noise_state_out": "state: pass as noise_state next chunk",
                    "last_frame_out": "state: pass as last_frame next chunk"}
        meta["online"] = {
            "file": ONLINE_NAME, "context": D, "hop": H, "lag": online.lag,
            "inputs": _describe(inputs, shapes, docs),
            "outputs": _describe(out_values, out_shapes, out_docs),
            "stream": ("every H speaker frames, at frame t = c*H, run the step on the last D "
                       "speaker frames (before frame D-1: frame 0 repeated on the left); its "
                       "frames are listener frames t .. t+H-1 (released one per completed "
                       "speaker frame); feed the *_out state back in"),
        }
        graph, wrapper = target, step
    elif name == "regnn":
        net = module.model
        check_exportable(net, source)
        schedule = inverse_schedule(net.motor, tol)
        T = int(schema.CLIP_FRAMES if frames is None else frames)
        gen = OfflineGenerator(net, k, T, mode, [int(s["iterations"]) for s in schedule],
                               early_stops(schedule) if early_stop else None).eval()
        inputs = gen.example_inputs(1, g, sigma, scale, mode)
        target = out / OFFLINE_NAME
        dynamic = {n: {0: "N"} for n in [*gen.input_names, "reactions", "raw"]}
        _onnx_export(gen, inputs, ["reactions", "raw"], dynamic, target)
        W, D = gen.windows, net.cfg.window
        shapes = {"face": ["N", T, net.cfg.face_dim], "audio": ["N", T, net.cfg.audio_dim],
                  "u": ["N", k], "noise": ["N", k, T, I] if mode == "residual" else
                  ["N", k, W, D, I]}
        docs = {"face": "speaker face features per frame", "audio":
                "speaker log-mel features per frame", "u": "stratified uniforms of the "
                "component choice, one per reaction", "noise": "ε of each reaction, scaled "
                "(sampling.recipe), per frame" if mode == "residual" else
                "ε of each reaction per window (window_starts), scaled (sampling.recipe)"}
        meta["offline"] = {
            "file": OFFLINE_NAME, "frames": T, "window": D, "stride": net.cfg.stride,
            "window_starts": window_starts(T, D, net.cfg.stride).tolist(),
            "inputs": _describe(inputs, shapes, docs),
            "outputs": [
                {"name": "reactions", "shape": ["N", k, T, I], "dtype": "float32",
                 "doc": "K reactions, clipped to the ranges (expressions renormalised), as "
                        "regnn generate writes them"},
                {"name": "raw", "shape": ["N", k, T, I], "dtype": "float32",
                 "doc": "the same before clipping (REGNN.generate's output)"}],
        }
        graph, wrapper = target, gen
    else:
        raise ConfigError(f"{source}: regnn export supports the models 'regnn' and "
                          f"'regnn-online', not {name!r}")
    meta["inverse"] = _inverse_meta(schedule, tol, net.cfg.window, early_stop)
    meta["sampling"] = _sampling_meta(net, mode, sigma, scale)
    if net.cfg.use_audio:
        from regnn.data import audio as af

        meta["audio_features"] = {
            "version": af.FEATURE_VERSION, "sample_rate": af.SAMPLE_RATE, "hop": af.HOP,
            "n_fft": af.N_FFT, "n_mels": af.N_MELS,
            "definition": ("log(mel_power + 1e-6) per 40-ms frame of the mono signal at "
                           "16 kHz: librosa.feature.melspectrogram(sr=16000, n_fft=1024, "
                           "hop_length=640, n_mels=64, power=2.0), frame t centred on video "
                           "frame t (regnn.data.audio)")}
    meta["random_inputs"] = ("the graphs draw no random numbers: noise and u are inputs; "
                             "the sampling section says how regnn draws them")
    if verify:
        meta["check"] = verify_graph(graph, wrapper, inputs)
    from regnn.utils.io import write_json

    write_json(out / META_NAME, meta)
    return meta


def online_example(step: OnlineStep, generator: torch.Generator, chunk: int
                   ) -> dict[str, torch.Tensor]:
    """Random inputs of the online step (``chunk == 0``: the first chunk's state)."""
    cfg, D, H, k = step.net.cfg, step.context, step.hop, step.k
    values = {
        "face": torch.rand((D, cfg.face_dim), generator=generator),
        "audio": torch.randn((D, cfg.audio_dim), generator=generator),
        "u": (torch.arange(k) + torch.rand(k, generator=generator)) / k,
        "component": torch.full((k,), -1 if chunk == 0 else 0, dtype=torch.long),
        "noise_state": 0.3 * torch.randn((k, D - H, I), generator=generator),
        "noise_new": 0.3 * torch.randn((k, H, I), generator=generator),
        "last_frame": torch.rand((k, I), generator=generator),
    }
    return {name: values[name] for name in step.input_names}


@torch.no_grad()
def verify_graph(path: Path, model: nn.Module, inputs: dict[str, torch.Tensor]
                 ) -> dict[str, Any]:
    """Run the graph with onnxruntime and the module with PyTorch on the same inputs."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return {"skipped": "onnxruntime is not installed"}
    t0 = time.perf_counter()
    got = run_onnx(path, _np(inputs))
    ort_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = [r.numpy() for r in model(*inputs.values())]
    torch_s = time.perf_counter() - t0
    diff = max(float(np.abs(a.astype(np.float64) - b).max()) for a, b in zip(got, ref))
    return {"max_abs_diff_onnxruntime_vs_torch": diff, "onnxruntime_s": round(ort_s, 4),
            "torch_s": round(torch_s, 4),
            "inputs": "random speaker features, the run's noise recipe (seed)"}
