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
from regnn.data.windows import make_windows, window_starts
from regnn.errors import ConfigError, RegnnError
from regnn.models.invertible import fixed_point, iterations_for
from regnn.models.motor import REGNNMotor
from regnn.models.regnn import REGNN

META_NAME = "regnn_export.json"
OFFLINE_NAME = "offline.onnx"
ONLINE_NAME = "online_step.onnx"
OPSET = 17
FORMAT = "regnn-onnx/1"
I = schema.NUM_ATTRIBUTES


# -- the fixed-iteration inverse ------------------------------------------------------------
def inverse_schedule(motor: REGNNMotor, tol: float) -> list[dict[str, float | int]]:
    r"""Iterations per motor layer (in layer order) that guarantee a decoded window within
    ``tol`` of the exact inverse (Frobenius norm over the ``I x D`` graph, hence also in every
    entry), whatever the latent and the edges.

    The motor is ``f = f_L ∘ … ∘ f_1``; its inverse inverts ``f_L`` first. If layer ``i``'s
    fixed point is reached within ``t_i`` of the exact inverse *of its (inexact) input*, the
    error of the final result is at most ``Σ_i t_i Π_{j<i} 1/(1 - c_j)`` (``f_j^{-1}`` is
    ``1/(1 - c_j)``-Lipschitz, ``c_j`` the layer's certified constant
    :meth:`~regnn.models.invertible.ContractiveResidual.certified_lipschitz`). The split
    ``t_i = tol / (L Π_{j<i} 1/(1 - c_j))`` makes the sum ``tol`` and minimises the total
    number of iterations; each layer then runs ``N_i = iterations_for(t_i, c_i, b_i)``
    (Banach's a-priori estimate ``c^N/(1-c) · ‖φ(y)‖ <= t``) with ``b_i`` the input-independent
    first-step bound :meth:`~regnn.models.motor.REGNNLayer.first_step_bound`.
    """
    if not tol > 0:
        raise ConfigError(f"the inverse tolerance must be > 0, got {tol}")
    layers = list(motor.layers)
    amplification, out = 1.0, []
    for layer in layers:
        c = min(max(layer.certified_lipschitz(), 1e-6), layer.c + 1e-6)
        first = layer.first_step_bound()
        share = tol / (len(layers) * amplification)
        out.append({"lipschitz": c, "first_step_bound": first, "tolerance": share,
                    "amplification": amplification,
                    "iterations": iterations_for(share, c, first)})
        amplification /= 1.0 - c
    return out


def _iterate_eager(y: torch.Tensor, iterations: int, w_qm: torch.Tensor, key_dim: int,
             e_r: torch.Tensor, e_p: torch.Tensor, w: torch.Tensor, scale: torch.Tensor,
             shift: torch.Tensor, adjacency: torch.Tensor, safe: bool,
             stop: float = -1.0) -> torch.Tensor:
    """``iterations`` steps ``x <- y - φ(x)`` from ``x = y`` with the φ of
    :meth:`regnn.models.motor.REGNNLayer.inverse_phi` (its precomputed operands given), in
    TorchScript: traced into an export, it becomes one ONNX ``Loop`` instead of
    ``iterations`` unrolled copies (a small graph, exported in seconds).

    ``stop > 0`` ends the loop early once the largest step ``max_graph ‖x_{k+1} - x_k‖_F``
    is at most ``stop`` (see :class:`FixedInverse`); ``iterations`` stays the cap."""
    x = y
    k = 0
    go = True
    while go and k < iterations:
        s = torch.sigmoid(x * scale + shift)
        qk = s @ w_qm
        logits = qk[..., :key_dim] @ qk[..., key_dim:].transpose(-1, -2)
        if safe:
            logits = logits.masked_fill(~adjacency[:, None], float("-inf"))
            logits = logits - logits.amax(dim=-1, keepdim=True)
        a = logits.exp().transpose(1, 2).contiguous()
        coef = (a @ e_r).reciprocal() * w @ e_p
        x_new = y - (coef * a).transpose(1, 2).contiguous() @ s
        if stop > 0.0:
            go = bool((x_new - x).flatten(-2).square().sum(-1).max() > stop * stop)
        x = x_new
        k += 1
    return x


with warnings.catch_warnings():  # TorchScript is deprecated in favour of torch.export, but
    warnings.simplefilter("ignore")  # the TorchScript ONNX exporter turns it into a Loop
    _iterate = torch.jit.script(_iterate_eager)


class FixedInverse(nn.Module):
    """The motor inverse with ``iterations[i]`` fixed-point steps for layer ``i``
    (:func:`inverse_schedule`): ``(z (B, M, I, D), edges, adjacency) -> x (B, M, I, D)``.

    In PyTorch it runs :func:`~regnn.models.invertible.fixed_point` with ``iterations``;
    while traced for export, the same steps as :func:`_iterate` (an ONNX ``Loop``). The tests
    check the two against each other through onnxruntime.

    ``early_stop``: layer ``i`` stops as soon as Banach's *a-posteriori* estimate certifies its
    share ``t_i``: ``‖x_{k+1} - x*‖ <= c/(1-c) ‖x_{k+1} - x_k‖ <= t_i`` (the step is the
    residual of the previous iterate, so the check costs no extra ``φ``), and runs at most
    ``iterations[i]`` steps, where the a-priori estimate certifies it anyway. The same
    guarantee, a data-dependent number of steps (then :func:`_iterate` also in PyTorch).
    """

    def __init__(self, motor: REGNNMotor, iterations: list[int],
                 stops: list[float] | None = None) -> None:
        super().__init__()
        if len(iterations) != len(motor.layers) or (stops is not None and
                                                    len(stops) != len(iterations)):
            raise ConfigError(f"{len(iterations)} iteration counts for {len(motor.layers)} layers")
        self.motor, self.iterations = motor, list(iterations)
        self.stops = stops
        self.constants = motor.inverse_constants()

    def forward(self, z: torch.Tensor, edges: torch.Tensor, adjacency: torch.Tensor
                ) -> torch.Tensor:
        (e0, adj), options = self.motor.conditions(edges, adjacency)
        x = z.contiguous()
        for i in reversed(range(len(self.motor.layers))):
            layer, n = self.motor.layers[i], self.iterations[i]
            const = self.constants[i]
            if torch.jit.is_tracing() or self.stops is not None:
                e_r, e_p = options["operands"]
                norm = layer.norm
                one = x.new_ones(())
                stop = -1.0 if self.stops is None else float(self.stops[i])
                x = _iterate(x, n, layer.qk_weight().detach(), layer.key_dim, e_r, e_p,
                             (layer.w_e * const["gamma"]).detach(),
                             layer.log_a.exp().detach() if norm else one,
                             layer.b.detach() if norm else one * 0.0, adj,
                             bool(const["safe_exp"]), stop)
            else:
                phi = layer.inverse_phi(e0, adj, **options, **const)
                x, _ = fixed_point(phi, x, layer.c, certify=False, iterations=n)
        return x


def early_stops(schedule: list[dict[str, float | int]]) -> list[float]:
    """Per layer the step size below which the a-posteriori estimate certifies its share:
    ``t_i (1 - c_i) / c_i`` (:class:`FixedInverse`)."""
    return [float(s["tolerance"]) * (1.0 - float(s["lipschitz"])) / float(s["lipschitz"])
            for s in schedule]


def clip_to_ranges(x: torch.Tensor) -> torch.Tensor:
    """:func:`regnn.schema.clip_to_ranges` in torch (so that it is part of the graph)."""
    low, high = torch.from_numpy(schema.LOW), torch.from_numpy(schema.HIGH)
    out = torch.minimum(torch.maximum(x, low), high)
    sl = schema.EXPRESSION_SLICE
    e = out[..., sl]
    s = e.sum(dim=-1, keepdim=True)
    e = torch.where(s > 1e-6, e / s.clamp_min(1e-12), torch.full_like(e, 1.0 / e.shape[-1]))
    return torch.cat([out[..., : sl.start], e, out[..., sl.stop:]], dim=-1)


def _check_exportable(net: REGNN, path: str) -> None:
    if net.cfg.objective == "mse" or not isinstance(net.motor, REGNNMotor):
        raise ConfigError(f"{path}: regnn export supports the REGNN motor with the AFRDL "
                          f"objective, not model.motor={net.cfg.motor!r}, "
                          f"objective={net.cfg.objective!r}")


# -- the offline generator ------------------------------------------------------------------
class OfflineGenerator(nn.Module):
    """:meth:`REGNN.generate` as a graph: ``(face (N, T, F), audio (N, T, A), u (N, K),
    noise) -> (reactions, raw) (N, K, T, 25)``, ``raw`` as ``generate`` returns it,
    ``reactions`` clipped to the attribute ranges (what ``regnn generate`` writes).

    ``face``/``audio`` are present when the model uses them, ``u`` when ``model.modes > 1``.
    ``noise`` is ``(N, K, T, 25)`` per frame for the ``residual`` noise (windowed in the graph,
    so overlapping windows share it, as in ``generate``) and ``(N, K, W, D, 25)`` per window
    for ``gaussian``/``scaled``.
    """

    def __init__(self, net: REGNN, k: int, frames: int, noise: str, iterations: list[int],
                 stops: list[float] | None = None) -> None:
        super().__init__()
        self.net, self.k, self.frames = net, k, frames
        self.frame_noise = noise == "residual"
        self.window, self.stride = net.cfg.window, net.cfg.stride
        self.windows = len(window_starts(frames, self.window, self.stride))
        self.inverse = FixedInverse(net.motor, iterations, stops)
        names = []
        if net.cfg.use_face:
            names.append("face")
        if net.cfg.use_audio:
            names.append("audio")
        if net.cfg.modes > 1:
            names.append("u")
        self.input_names = [*names, "noise"]

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        got = dict(zip(self.input_names, inputs))
        D, stride, W, k = self.window, self.stride, self.windows, self.k
        face, audio = got.get("face"), got.get("audio")

        def flat(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else make_windows(x, D, stride).reshape(-1, D, x.shape[-1])

        modes, logits, edges, adjacency = self.net.mixture(flat(face), flat(audio))
        Q = modes.shape[1]
        modes = modes.reshape(-1, W, Q, I, D)
        N = modes.shape[0]  # traced as a size: the batch axis stays dynamic
        if Q == 1:
            latents = modes.expand(N, W, k, I, D)
        else:  # regnn.models.regnn.stratified_components with u given
            cdf = torch.softmax(logits, -1).reshape(-1, W, Q).mean(dim=1).cumsum(-1)
            pick = (cdf[:, None, :] <= got["u"][:, :, None]).sum(-1).clamp(max=Q - 1)
            latents = modes.gather(2, pick[:, None, :, None, None].expand(N, W, k, I, D))
        eps = got["noise"]
        if self.frame_noise:
            eps = make_windows(eps, D, stride)  # (N, K, W, D, I)
        eps = eps.permute(0, 2, 1, 4, 3)  # (N, W, K, I, D)
        x = self.inverse((latents + eps).reshape(-1, k, I, D), edges, adjacency)
        win = x.transpose(-1, -2).reshape(-1, W, k, D, I).transpose(1, 2)  # (N, K, W, D, 25)
        raw = self.stitch(win)
        return clip_to_ranges(raw), raw

    def stitch(self, win: torch.Tensor) -> torch.Tensor:
        """:func:`regnn.data.windows.stitch` (overlap averaging) as a gather of the ``C``
        window frames covering each frame and their mean weights (``index_add`` has no
        exportable form): ``(N, K, W, D, 25) -> (N, K, T, 25)``."""
        idx, weight = _stitch_plan(self.frames, self.window, self.stride)
        flat = win.flatten(2, 3)  # (N, K, W*D, 25)
        flat = torch.cat([flat, torch.zeros_like(flat[:, :, :1])], dim=2)  # a zero slot
        picked = flat[:, :, torch.from_numpy(idx.ravel())]  # (N, K, T*C, 25)
        picked = picked.unflatten(2, idx.shape)  # (N, K, T, C, 25)
        return (picked * torch.from_numpy(weight)[:, :, None]).sum(dim=3)

    def example_inputs(self, n: int, generator: torch.Generator, sigma: float,
                       noise_scale: float, mode: str) -> dict[str, torch.Tensor]:
        """Random speaker features and the draws of :meth:`REGNN.generate` in its order (the
        noise with the run's recipe), as inputs of this graph."""
        cfg, T, k = self.net.cfg, self.frames, self.k
        face = torch.rand((n, T, cfg.face_dim), generator=generator)
        audio = torch.randn((n, T, cfg.audio_dim), generator=generator)
        draws = offline_draws(self.net, n, T, k, generator, sigma, noise_scale, mode)
        out = {"face": face, "audio": audio, **draws}
        return {name: out[name] for name in self.input_names}


def _stitch_plan(frames: int, size: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """For each frame the flat indices ``w * size + j`` of the window frames covering it,
    padded with the zero slot ``W * size``, and their weights ``1 / count`` (0 on padding)."""
    starts = window_starts(frames, size, stride)
    cover: list[list[int]] = [[] for _ in range(frames)]
    for w, s0 in enumerate(starts):
        for j in range(size):
            cover[s0 + j].append(w * size + j)
    c = max(len(x) for x in cover)
    pad = len(starts) * size
    idx = np.full((frames, c), pad, dtype=np.int64)
    weight = np.zeros((frames, c), dtype=np.float32)
    for t, x in enumerate(cover):
        idx[t, : len(x)] = x
        weight[t, : len(x)] = 1.0 / len(x)
    return idx, weight


def offline_draws(net: REGNN, n: int, frames: int, k: int, generator: torch.Generator,
                  sigma: float, noise_scale: float, mode: str) -> dict[str, torch.Tensor]:
    """``u`` and ``noise`` as :meth:`REGNN.generate` draws them from ``generator`` (same
    order, same values), laid out as the offline graph's inputs."""
    from regnn.models.regnn import ar1_noise, sample_noise

    D, stride = net.cfg.window, net.cfg.stride
    W = len(window_starts(frames, D, stride))
    out: dict[str, torch.Tensor] = {}
    if net.cfg.modes > 1:
        u = (torch.arange(k, dtype=torch.float64)[None] + torch.rand(
            (n, k), generator=generator, dtype=torch.float64)) / k
        out["u"] = u.float()
    if mode == "residual":
        std, rho = net.residual_noise()
        out["noise"] = ar1_noise((n, k), frames, std * noise_scale, rho, generator)
    else:
        eps = sample_noise((n, W, k, I, D), sigma, mode, generator, torch.device("cpu"),
                           reduce_dims=(1, 3, 4))
        out["noise"] = eps.permute(0, 2, 1, 4, 3).contiguous()  # (N, K, W, D, I)
    return out


# -- the online step ------------------------------------------------------------------------
class OnlineStep(nn.Module):
    """One chunk of :class:`regnn.online.model.REGNNStream` (``smooth=True``,
    ``postprocess=True``) as a graph.

    Inputs: ``face (D, F)`` / ``audio (D, A)`` (the speaker context window), ``u (K,)``,
    ``component (K,)`` int64 (``-1`` before the first chunk: the component is then chosen from
    ``u``), ``noise_state (K, D-H, 25)`` (the noise of the frames shared with the previous
    window), ``noise_new (K, H, 25)`` and ``last_frame (K, 25)`` (the last emitted frame before
    clipping; ignored at the first chunk). Outputs: ``frames (K, H, 25)`` (clipped to the
    ranges), ``component``, ``noise_state``, ``last_frame``.
    """

    def __init__(self, online: nn.Module, k: int, iterations: list[int],
                 stops: list[float] | None = None) -> None:
        super().__init__()
        self.net: REGNN = online.net
        self.k, self.context, self.hop = k, online.graph, online.hop
        self.inverse = FixedInverse(self.net.motor, iterations, stops)
        H = self.hop
        self.register_buffer("fade", (1.0 - torch.arange(1, H + 1, dtype=torch.float32)
                                      / (H + 1))[None, :, None], persistent=False)
        names = []
        if self.net.cfg.use_face:
            names.append("face")
        if self.net.cfg.use_audio:
            names.append("audio")
        self.input_names = [*names, "u", "component", "noise_state", "noise_new", "last_frame"]
        self.output_names = ["frames", "component_out", "noise_state_out", "last_frame_out"]

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        got = dict(zip(self.input_names, inputs))
        D, H = self.context, self.hop
        face, audio = got.get("face"), got.get("audio")
        modes, logits, edges, adjacency = self.net.mixture(
            None if face is None else face[None], None if audio is None else audio[None])
        Q = modes.shape[1]
        component = got["component"]
        first = component < 0
        cdf = torch.softmax(logits[0], -1).cumsum(-1)
        pick = (cdf[None] <= got["u"][:, None]).sum(-1).clamp(max=Q - 1)
        component = torch.where(first, pick, component)
        eps = torch.cat([got["noise_state"], got["noise_new"]], dim=1)  # (K, D, 25)
        latents = modes[0][component] + eps.transpose(1, 2)  # (K, I, D)
        w = self.inverse(latents[None], edges, adjacency)[0].transpose(1, 2)  # (K, D, 25)
        new = w[:, D - H:]
        delta = (got["last_frame"] - w[:, D - H - 1])[:, None] * self.fade
        new = new + torch.where(first[:, None, None], torch.zeros_like(delta), delta)
        return clip_to_ranges(new), component, eps[:, H:], new[:, -1]


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
        _check_exportable(net, source)
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
        _check_exportable(net, source)
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
