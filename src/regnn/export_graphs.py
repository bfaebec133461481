"""The graphs of ``regnn export`` (:mod:`regnn.export`): torch modules written so that the
ONNX exporter can trace them — the fixed-iteration inverse with its certified schedule, the
offline generator with its random draws as inputs, and one step of the online stream."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from regnn import schema
from regnn.data.windows import make_windows, window_starts
from regnn.errors import ConfigError
from regnn.models.invertible import fixed_point, iterations_for
from regnn.models.motor import REGNNMotor
from regnn.models.regnn import REGNN

I = schema.NUM_ATTRIBUTES


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
            # motor.EXP_FLOOR, written out: TorchScript does not resolve module globals here
            logits = (logits - logits.amax(dim=-1, keepdim=True)).clamp_min(-80.0)
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


def check_exportable(net: REGNN, path: str) -> None:
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
