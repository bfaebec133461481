"""The whole REGNN model: perceptual -> cognitive -> motor, its losses, sampling and generation
(the loss functions themselves are :mod:`regnn.models.afrdl`).

Paper Sec. IV. Training (AFRDL, Sec. IV-B): for a speaker window the cognitive processor
predicts ``Ẑp`` (Eq. 4) and MEFL edges; the ``M`` appropriate real listener windows go through
the motor forward (Eq. 6) *conditioned on those edges*, giving latents ``ḡ_1..ḡ_M``, and

* the distribution term (Eq. 9) compares the prediction with the GMM whose component means
  are the latents (Eq. 8). ``distribution_loss`` picks its form:

  - ``"mixture"`` (default, with ``model.modes = Q`` predicted components, see
    :mod:`regnn.models.cognitive`): the predicted mixture against the real one, as a set
    matching (:func:`mixture_loss`): every latent is pulled to its nearest predicted
    component (coverage: each appropriate reaction has a component), every component to its
    nearest latent (``precision_weight``: no component off the data), and the mixture
    weights learn the share of latents each component wins (cross-entropy). The appropriate
    reactions of one speaker often form separate modes (listeners who mirror, listeners who
    smile back ...): one ``Ẑp`` can only sit on one of them (``"min"``) or between them
    (``"mean"``), a mixture can cover them all;
  - ``"min"`` (the authors' code): ``min_m MSE(Ẑp, ḡ_m)``, the nearest latent only;
  - ``"mean"``: ``MSE(Ẑp, mean_m ḡ_m)`` (the GMM's first moment);
  - ``"nll"`` (the paper's text, ``paper`` config): the GMM negative log-likelihood with
    isotropic ``gmm_sigma`` per entry, scaled by ``2σ²`` and normalised per entry:
    ``-2σ² log mean_m exp(-MSE_m / 2σ²)``, a soft minimum that tends to ``"min"`` as
    ``σ -> 0`` and to the mean MSE as ``σ -> ∞``;

* the agreement term (Eq. 7) is the mean over pairs ``m1 < m2`` of the mean absolute
  difference ``|ḡ_m1 - ḡ_m2|`` (the paper's sum, normalised so that its weight does not
  depend on ``M``, ``I`` or ``D``): over all pairs (``agreement: all``, the paper) or over the
  pairs that the nearest predicted component shares (``agreement: component``, default: the
  latents of one mixture component are pulled together, different components are not pulled
  onto each other). The motor is bi-Lipschitz (see :mod:`regnn.models.motor`), so this term
  cannot collapse latents to a point.

Inference (Eq. 5): for each of the K reactions pick one component for the whole clip
(:func:`stratified_components`), add ``ε`` and decode with the motor inverse; the fusion and
the edges are computed once per window and shared by the K samples. ``ε`` (``generate.noise``,
:func:`sample_noise`):

* ``"residual"`` (default): per node ``i`` a stationary AR(1) series over the whole clip with
  the variance ``σ_i²`` and the mean squared frame-to-frame change of the real latents of one
  component around their mean (:func:`component_spread`; in a batch where no component holds
  two latents, of the latents around their component; running averages kept in the model's
  buffers while it trains), times ``generate.noise_scale``. At ``noise_scale = 1``
  the samples of one component differ as much as the real appropriate reactions of one mode
  differ, and as smoothly;
* ``"gaussian"`` (the paper's text): i.i.d. ``N(0, σ²)`` per node and frame;
* ``"scaled"`` (the authors' code): ``N(0, 1)`` rescaled so its peak over the clip is ``√σ``.

Design addition (``model.face_skip``, off by default): when the face input is the 25
attributes, ``Ẑp = heads(B̄) + F_S^T``, i.e. the projection heads predict a correction of the
speaker's own attribute series (a mirroring prior that biases the model towards copying the
speaker).

``objective="mse"`` is the paper's "without graph" ablation: the motor is used forward as a
decoder of ``Ẑp`` and trained with a plain MSE to the one ground-truth reaction (slot 0).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.signal import lfilter
from torch import nn

from regnn.config import NOISE_MODES, GenerateConfig, ModelConfig
from regnn.data.windows import make_windows, stitch
from regnn.errors import ConfigError
from regnn.models.afrdl import agreement_loss, component_spread, distribution_loss, mixture_loss
from regnn.models.cognitive import CognitiveProcessor
from regnn.models.invertible import InverseInfo, InvertibleStack
from regnn.models.iresnet import IResNetMotor, matching_hidden
from regnn.models.motor import REGNNMotor
from regnn.models.perceptual import PerceptualProcessor, causal_mask
from regnn.schema import NUM_ATTRIBUTES


def rng_device(generator: torch.Generator | None) -> torch.device:
    """Where ``generator`` draws (the CPU when None). Random numbers are drawn there and then
    moved, so a seed gives the same reactions whatever device the model runs on."""
    return generator.device if generator is not None else torch.device("cpu")


def sample_noise(shape: tuple[int, ...], sigma: float, mode: str,
                 generator: torch.Generator | None, device: torch.device,
                 reduce_dims: tuple[int, ...]) -> torch.Tensor:
    """``ε`` for sampling from ``Ẑp``, i.i.d. over its entries (``"gaussian"``, ``"scaled"``).

    ``"gaussian"``: i.i.d. ``N(0, σ²)``. ``"scaled"`` (the authors' published code): standard
    normal noise rescaled, when needed, so that its largest magnitude over ``reduce_dims``
    (one sampled reaction: all its windows, nodes and frames) is at most ``sqrt(σ)``.
    The ``"residual"`` noise is :func:`ar1_noise`.
    """
    if mode not in ("gaussian", "scaled"):
        raise ConfigError(f"unknown noise mode {mode!r}; expected one of {NOISE_MODES}")
    eps = torch.randn(shape, generator=generator, device=rng_device(generator)).to(device)
    if mode == "gaussian":
        return eps * sigma
    limit = sigma**0.5
    peak = eps.abs().amax(dim=reduce_dims, keepdim=True)
    return eps * torch.clamp(limit / peak, max=1.0)


#: Up to this many frames :func:`ar1_filter` runs the recursion over all nodes at once (the
#: streaming case: 0.03 ms instead of 0.8 ms for 25 nodes); longer clips use scipy's lfilter
#: per node. Both compute ``c w_t + ρ y_{t-1}`` in float64, to the same rounding.
SHORT_AR1 = 64


def ar1_filter(w: np.ndarray, rho: np.ndarray, prev: np.ndarray | None = None) -> np.ndarray:
    """``y_t = ρ_i y_{t-1} + sqrt(1 - ρ_i²) w_t`` along the last axis of ``w (..., I, T)``
    (float64), node ``i`` on the second-last: from ``y_0 = w_0`` (the stationary start) or,
    continuing a stream, from the previous value ``prev (..., I)``."""
    rho = np.asarray(rho, dtype=np.float64)
    if w.shape[-1] <= SHORT_AR1:  # a stream's few new frames: one recursion over all nodes
        c = np.sqrt(np.maximum(1.0 - rho * rho, 0.0))
        out = np.empty_like(w)
        # lfilter's arithmetic exactly: y_0 = c w_0 + zi, zi = (1 - c) w_0 or ρ prev
        zi = (1.0 - c) * w[..., 0] if prev is None else rho * prev
        out[..., 0] = c * w[..., 0] + zi
        for t in range(1, w.shape[-1]):
            out[..., t] = c * w[..., t] + rho * out[..., t - 1]
        return out
    out = np.empty_like(w)
    for i, r in enumerate(rho):
        c = float(np.sqrt(max(1.0 - r * r, 0.0)))
        zi = (1.0 - c) * w[..., i, :1] if prev is None else r * prev[..., i:i + 1]
        out[..., i, :], _ = lfilter([c], [1.0, -r], w[..., i, :], axis=-1, zi=zi)
    return out


def ar1_noise(shape: tuple[int, ...], frames: int, std: torch.Tensor, rho: torch.Tensor,
              generator: torch.Generator | None) -> torch.Tensor:
    """Stationary AR(1) noise ``(*shape, frames, I)`` (:func:`ar1_filter`), scaled by
    ``std_i``, so its variance is ``std_i²`` and its mean squared step ``2 std_i² (1 - ρ_i)``
    at every frame. White noise drawn in float32 from ``generator`` (on its device; as the
    online stream draws it, and ~5x faster than PyTorch's float64 draws on a CPU), filtered in
    float64 (float32 result on ``std``'s device)."""
    nodes = std.shape[0]
    w = torch.randn((*shape, nodes, frames), generator=generator,
                    device=rng_device(generator)).cpu().double().numpy()
    out = ar1_filter(w, rho.detach().double().cpu().numpy())
    noise = torch.from_numpy(out).to(device=std.device, dtype=torch.float32)
    return (noise * std[:, None].float()).transpose(-1, -2)


def stratified_components(pi: torch.Tensor, k: int, generator: torch.Generator | None
                          ) -> torch.Tensor:
    """The mixture component of each of ``k`` reactions per clip: ``pi (N, W, Q)``, the
    mixture weights of the W windows of N clips -> ``(N, k)`` indices.

    A reaction keeps one component for its whole clip (the training assigns a listener to one
    component over a chunk of windows, so a component follows one kind of reaction through
    time). The components are drawn stratified from the clip's mean weights: reaction ``j``
    draws ``u_j`` uniform on ``[j/k, (j+1)/k)`` and takes the component whose cumulative weight
    interval holds it, so the k reactions spread over the mixture in proportion to it.
    """
    N, W, Q = pi.shape
    u = (torch.arange(k, dtype=torch.float64)[None] + torch.rand(
        (N, k), generator=generator, dtype=torch.float64, device=rng_device(generator)).cpu()) / k
    cdf = pi.detach().double().cpu().mean(dim=1).cumsum(-1)  # (N, Q)
    q = (cdf[:, None, :] <= u[:, :, None]).sum(-1).clamp_(max=Q - 1)  # (N, k)
    return q.to(pi.device)


def _regnn_motor(cfg: ModelConfig) -> InvertibleStack:
    return REGNNMotor(cfg.window, cfg.edge_channels, cfg.motor_layers, cfg.motor_key_dim,
                      cfg.top_k, NUM_ATTRIBUTES, cfg.lipschitz, norm=cfg.motor_norm)


def _iresnet_motor(cfg: ModelConfig) -> InvertibleStack:
    """i-ResNet blocks with about as many weights as one REGNN layer of the same config
    (Table II's "i-ResNet" ablation, :mod:`regnn.models.iresnet`)."""
    regnn_layer = 2 * cfg.window * cfg.motor_key_dim + cfg.edge_channels
    return IResNetMotor(NUM_ATTRIBUTES, cfg.motor_layers, matching_hidden(regnn_layer),
                        cfg.lipschitz)


#: ``model.motor`` -> the motor processor (an invertible stack, Eqs. 5-6)
MOTORS: dict[str, Callable[[ModelConfig], InvertibleStack]] = {
    "regnn": _regnn_motor, "iresnet": _iresnet_motor,
}


def build_motor(cfg: ModelConfig) -> InvertibleStack:
    """The motor named by ``cfg.motor`` (:data:`MOTORS`)."""
    try:
        return MOTORS[cfg.motor](cfg)
    except KeyError:
        raise ConfigError(f"unknown model.motor {cfg.motor!r}; available: "
                          f"{', '.join(sorted(MOTORS))}") from None


class REGNN(nn.Module):
    """Perceptual (Eq. 3) + cognitive with MEFL (Eq. 4) + REGNN motor (Eqs. 5-6, 10-15)."""

    #: momentum of the running residual statistics behind the "residual" noise
    RESIDUAL_MOMENTUM = 0.05

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.perceptual = PerceptualProcessor(
            cfg.face_dim, cfg.audio_dim, cfg.width, cfg.heads, cfg.cross_layers, cfg.self_layers,
            cfg.ffn_mult, cfg.dropout, cfg.use_face, cfg.use_audio, cfg.audio_encoder,
            causal=cfg.causal,
        )
        self.cognitive = CognitiveProcessor(
            cfg.width, NUM_ATTRIBUTES, cfg.window, cfg.edge_channels, cfg.edge_key_dim, cfg.top_k,
            modes=cfg.modes,
        )
        # Residual path: with the 25 attributes as face input, the heads predict Ẑp as a
        # correction of the speaker's own attribute series (a mirroring prior).
        self.face_skip = cfg.face_skip and cfg.use_face and cfg.face_dim == NUM_ATTRIBUTES
        self.motor = build_motor(cfg)
        # running E[r²] and E[(r_t - r_{t-1})²] per node of the real latents' deviations from
        # their component's mean (component_spread): the "residual" noise (in checkpoints)
        self.register_buffer("resid_sq", torch.zeros(NUM_ATTRIBUTES))
        self.register_buffer("resid_step_sq", torch.zeros(NUM_ATTRIBUTES))
        self.register_buffer("resid_updates", torch.zeros((), dtype=torch.long))

    # -- the three processors ------------------------------------------------------------
    def _fused(self, face: torch.Tensor | None, audio: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        mask = None
        if self.cfg.causal:
            ref = face if face is not None else audio
            mask = causal_mask(ref.shape[1], ref.device)
        fused = self.perceptual(face if self.cfg.use_face else None,
                                audio if self.cfg.use_audio else None, attn_mask=mask)
        prior = face.transpose(1, 2) if self.face_skip else None  # (B, I, D)
        return fused, prior

    def distribution(self, face: torch.Tensor | None, audio: torch.Tensor | None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Speaker windows ``(B, D, F)`` -> ``Ẑp (B, I, D)`` (with several modes: their
        weighted mean), edges ``(B, P, I, I)``, adjacency."""
        return self.cognitive(*self._fused(face, audio))

    def mixture(self, face: torch.Tensor | None, audio: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Speaker windows -> ``(modes (B, Q, I, D), logits (B, Q), edges, adjacency)``."""
        return self.cognitive.mixture(*self._fused(face, audio))

    def encode(self, reactions: torch.Tensor, edges: torch.Tensor, adjacency: torch.Tensor
               ) -> torch.Tensor:
        """Motor forward (Eq. 6): reaction windows ``(B, M, D, 25)`` -> latents ``(B, M, I, D)``."""
        return self.motor(reactions.transpose(-1, -2), edges, adjacency)

    def decode(self, latents: torch.Tensor, edges: torch.Tensor, adjacency: torch.Tensor
               ) -> tuple[torch.Tensor, InverseInfo]:
        """Motor inverse (Eq. 5): latents ``(B, K, I, D)`` -> reaction windows ``(B, K, D, 25)``."""
        if self.cfg.objective == "mse":  # the ablation decodes with the forward map
            with torch.no_grad():
                return self.motor(latents, edges, adjacency).transpose(-1, -2), InverseInfo()
        x, info = self.motor.inverse(latents, edges, adjacency, tol=self.cfg.inverse_tol,
                                     max_iter=self.cfg.inverse_max_iter,
                                     constants=self.motor.cached_constants())
        return x.transpose(-1, -2), info

    # -- training -------------------------------------------------------------------------
    def losses(self, face: torch.Tensor | None, audio: torch.Tensor | None,
               reactions: torch.Tensor, valid: torch.Tensor,
               groups: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """AFRDL losses for a batch of speaker windows.

        ``reactions (B, M, D, 25)``: appropriate real listener windows, slot 0 being the
        window's own listener; ``valid (B, M)`` bool marks real (not padding) slots;
        ``groups (B,)``, when given, marks the windows of one clip chunk, whose slot ``m``
        holds the same listener in each (:class:`regnn.data.training.AppropriateWindows`):
        the mixture then assigns that listener to one component for the whole chunk.
        """
        modes, logits, edges, adjacency = self.mixture(face, audio)
        if self.cfg.objective == "mse":
            pred = self.motor(modes[:, 0], edges, adjacency).transpose(-1, -2)  # (B, D, 25)
            loss = ((pred - reactions[:, 0]) ** 2).mean()
            self._track_residuals((pred - reactions[:, 0]).detach().transpose(-1, -2)[:, None],
                                  valid[:, :1])
            zero = loss.new_zeros(())
            return {"loss": loss, "distribution": loss, "agreement": zero}
        latents = self.encode(reactions, edges, adjacency)  # (B, M, I, D)
        out: dict[str, torch.Tensor] = {}
        if self.cfg.distribution_loss == "mixture":
            dist, weights, assign = mixture_loss(modes, logits, latents, valid,
                                                 self.cfg.precision_weight, groups)
            out["weights"] = weights
        else:
            zp = modes[:, 0]
            dist = distribution_loss(zp, latents, valid, self.cfg.distribution_loss,
                                     self.cfg.gmm_sigma)
            weights = dist.new_zeros(())
            assign = torch.zeros_like(valid, dtype=torch.long)
        dev, mask = component_spread(latents.detach(), valid, assign, modes.shape[1])
        if not bool(mask.any()):
            # no component holds two real reactions here (e.g. data with one appropriate
            # reaction per speaker): the spread of the reactions around their component
            nearest = modes.detach().gather(1, assign[:, :, None, None].expand_as(latents))
            dev, mask = latents.detach() - nearest, valid
        self._track_residuals(dev, mask)
        groups = assign if self.cfg.agreement == "component" else None
        agree = agreement_loss(latents, valid, groups)
        loss = dist + weights + self.cfg.agreement_weight * agree
        return {"loss": loss, "distribution": dist, "agreement": agree, **out}

    @torch.no_grad()
    def _track_residuals(self, resid: torch.Tensor, valid: torch.Tensor) -> None:
        """Update the running statistics of the "residual" noise from ``resid (B, M, I, D)``
        (slots where ``valid``)."""
        if not self.training or not bool(valid.any()):
            return
        r = resid[valid]  # (n, I, D)
        sq = r.square().mean(dim=(0, 2))
        step = r.diff(dim=-1).square().mean(dim=(0, 2))
        if int(self.resid_updates) == 0:
            self.resid_sq.copy_(sq)
            self.resid_step_sq.copy_(step)
        else:
            self.resid_sq.lerp_(sq, self.RESIDUAL_MOMENTUM)
            self.resid_step_sq.lerp_(step, self.RESIDUAL_MOMENTUM)
        self.resid_updates += 1

    def residual_noise(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(std (I,), rho (I,))`` of the "residual" noise: the running RMS of the
        within-component deviations and the AR(1) coefficient with the same mean squared
        step, ``ρ = 1 - E[Δr²] / (2 E[r²])``."""
        std = self.resid_sq.clamp_min(0).sqrt()
        rho = 1.0 - self.resid_step_sq / (2.0 * self.resid_sq.clamp_min(1e-12))
        return std, rho.clamp(0.0, 0.9999)

    # -- inference ------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, face: torch.Tensor | None, audio: torch.Tensor | None, k: int = 10,
                 sigma: float | None = None, noise: str | None = None,
                 generator: torch.Generator | None = None, noise_scale: float | None = None
                 ) -> tuple[torch.Tensor, InverseInfo]:
        """Whole clips ``(N, T, F)`` -> ``(N, K, T, 25)``: window, pick a component per
        reaction, add ``ε`` (module doc), decode, stitch the windows. Unset sampling settings
        are :class:`regnn.config.GenerateConfig`'s (a run's module passes its own)."""
        ref = face if face is not None else audio
        if ref is None:
            raise ConfigError("generate needs the speaker's face or audio features")
        gcfg = GenerateConfig().resolve(sigma=sigma, noise=noise, noise_scale=noise_scale)
        sigma, noise, noise_scale = gcfg.sigma, gcfg.noise, gcfg.noise_scale
        N, T = ref.shape[:2]
        D, stride = self.cfg.window, self.cfg.stride
        fw = make_windows(face, D, stride) if face is not None else None  # (N, W, D, F)
        aw = make_windows(audio, D, stride) if audio is not None else None
        W = (fw if fw is not None else aw).shape[1]

        def flat(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.reshape(N * W, D, x.shape[-1])

        modes, logits, edges, adjacency = self.mixture(flat(fw), flat(aw))
        Q, I = modes.shape[1], modes.shape[2]
        modes = modes.reshape(N, W, Q, I, D)
        if Q == 1:
            latents = modes.expand(N, W, k, I, D)
        else:
            pick = stratified_components(torch.softmax(logits, -1).reshape(N, W, Q), k,
                                         generator)  # (N, k): one component per reaction
            latents = modes.gather(2, pick[:, None, :, None, None].expand(N, W, k, I, D))
        if noise == "residual":
            std, rho = self.residual_noise()
            eps = ar1_noise((N, k), T, std * noise_scale, rho, generator)  # (N, k, T, I)
            eps = make_windows(eps, D, stride).permute(0, 2, 1, 4, 3)  # (N, W, k, I, D)
        else:
            eps = sample_noise((N, W, k, I, D), sigma, noise, generator, modes.device,
                               reduce_dims=(1, 3, 4))
        latents = (latents + eps.to(latents.dtype)).reshape(N * W, k, I, D)
        win, info = self.decode(latents, edges, adjacency)  # (N*W, k, D, 25)
        win = win.reshape(N, W, k, D, NUM_ATTRIBUTES).transpose(1, 2)  # (N, K, W, D, 25)
        return stitch(win, T, stride), info
