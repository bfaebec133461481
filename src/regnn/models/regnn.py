"""The whole REGNN model: perceptual -> cognitive -> motor, its losses, sampling and generation.

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
from regnn.models.cognitive import CognitiveProcessor
from regnn.models.invertible import InverseInfo, InvertibleStack
from regnn.models.iresnet import IResNetMotor, matching_hidden
from regnn.models.motor import REGNNMotor
from regnn.models.perceptual import PerceptualProcessor, causal_mask
from regnn.schema import NUM_ATTRIBUTES


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
    eps = torch.randn(shape, generator=generator, device=device)
    if mode == "gaussian":
        return eps * sigma
    limit = sigma**0.5
    peak = eps.abs().amax(dim=reduce_dims, keepdim=True)
    return eps * torch.clamp(limit / peak, max=1.0)


def ar1_filter(w: np.ndarray, rho: np.ndarray, prev: np.ndarray | None = None) -> np.ndarray:
    """``y_t = ρ_i y_{t-1} + sqrt(1 - ρ_i²) w_t`` along the last axis of ``w (..., I, T)``
    (float64), node ``i`` on the second-last: from ``y_0 = w_0`` (the stationary start) or,
    continuing a stream, from the previous value ``prev (..., I)``."""
    out = np.empty_like(w)
    for i, r in enumerate(np.asarray(rho, dtype=np.float64)):
        c = float(np.sqrt(max(1.0 - r * r, 0.0)))
        zi = (1.0 - c) * w[..., i, :1] if prev is None else r * prev[..., i:i + 1]
        out[..., i, :], _ = lfilter([c], [1.0, -r], w[..., i, :], axis=-1, zi=zi)
    return out


def ar1_noise(shape: tuple[int, ...], frames: int, std: torch.Tensor, rho: torch.Tensor,
              generator: torch.Generator | None) -> torch.Tensor:
    """Stationary AR(1) noise ``(*shape, frames, I)`` (:func:`ar1_filter`), scaled by
    ``std_i``, so its variance is ``std_i²`` and its mean squared step ``2 std_i² (1 - ρ_i)``
    at every frame. White noise drawn from ``generator`` (on the CPU), filtered in float64
    (float32 result on ``std``'s device)."""
    nodes = std.shape[0]
    w = torch.randn((*shape, nodes, frames), generator=generator, dtype=torch.float64).numpy()
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
        (N, k), generator=generator, dtype=torch.float64)) / k
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
            cfg.ffn_mult, cfg.dropout, cfg.use_face, cfg.use_audio,
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
                                     max_iter=self.cfg.inverse_max_iter)
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


@torch.no_grad()
def component_spread(latents: torch.Tensor, valid: torch.Tensor, assign: torch.Tensor,
                     components: int) -> tuple[torch.Tensor, torch.Tensor]:
    """How the real latents of one mixture component differ from each other: for every valid
    latent whose component holds at least two latents of its window, its deviation from their
    mean, scaled by ``sqrt(n / (n - 1))`` (unbiased). Returns ``(deviations (B, M, I, D),
    mask (B, M))``. These are what the "residual" noise imitates: the spread of the
    appropriate reactions within a mode, not the model's own error."""
    member = torch.nn.functional.one_hot(assign, components).to(latents.dtype)
    member = member * valid[..., None].to(latents.dtype)  # (B, M, Q)
    count = member.sum(1)  # (B, Q)
    mean = torch.einsum("bmq,bmid->bqid", member, latents) / count.clamp_min(1)[..., None, None]
    n = count.gather(1, assign)  # (B, M)
    own = mean.gather(1, assign[:, :, None, None].expand_as(latents))
    scale = (n / (n - 1).clamp_min(1)).sqrt()[..., None, None]
    return (latents - own) * scale, valid & (n >= 2)


def mixture_loss(modes: torch.Tensor, logits: torch.Tensor, latents: torch.Tensor,
                 valid: torch.Tensor, precision_weight: float = 0.1,
                 groups: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. (9) for a predicted mixture: ``modes (B, Q, I, D)`` and ``logits (B, Q)`` against
    the real GMM of ``latents (B, M, I, D)`` (``valid (B, M)``).

    Each appropriate latent ``m`` is assigned to the component nearest to it (MSE), decided
    over all windows of its group (``groups (B,)``: the windows of one clip chunk, whose slot
    ``m`` holds one listener; ``None``: every window alone), so a component follows one
    listener's reaction through the chunk. Returns ``(distribution, weights, assign)``:

    * ``distribution`` = the MSE of each valid latent to its component, averaged per window
      and then over windows (coverage: every appropriate reaction has a component) +
      ``precision_weight`` x mean over components of the MSE to their nearest valid latent,
      decided per group likewise (precision: no component off the data);
    * ``weights`` = cross-entropy between the softmax of ``logits`` and the share of the
      group's valid latents assigned to each component (the mixture weights, Eq. 8's GMM);
    * ``assign (B, M)``: the component of each latent.

    With ``Q = 1`` the coverage term is the mean MSE to the latents (their mean minimises it).
    """
    B, Q = modes.shape[:2]
    a, b = modes.flatten(2), latents.flatten(2)  # (B, Q, L), (B, M, L)
    # |a - b|² = |a|² + |b|² - 2 a·b: one batched product, no (B, Q, M, L) temporary
    d2 = (a.square().sum(-1)[:, :, None] + b.square().sum(-1)[:, None, :]
          - 2.0 * (a @ b.transpose(1, 2))).clamp_min(0.0) / a.shape[-1]  # (B, Q, M)
    validf = valid.to(d2.dtype)
    if groups is None:
        gid, n_groups = torch.arange(B, device=d2.device), B
    else:
        gid = torch.unique(groups, return_inverse=True)[1]
        n_groups = int(gid.max()) + 1
    with torch.no_grad():
        total = d2.new_zeros(n_groups, Q, d2.shape[2]).index_add_(
            0, gid, d2.detach() * validf[:, None])  # (G, Q, M) summed over the group
        gvalid = d2.new_zeros(n_groups, d2.shape[2]).index_add_(0, gid, validf) > 0
        assign_g = total.argmin(dim=1)  # (G, M)
        # each component's nearest valid latent over the group
        near_g = total.masked_fill(~gvalid[:, None], float("inf")).argmin(dim=2)  # (G, Q)
    assign = assign_g[gid]  # (B, M)
    cover = d2.gather(1, assign[:, None]).squeeze(1)  # (B, M)
    # per window the mean over its valid latents, then the mean over windows (DDP-exact)
    coverage = ((cover * validf).sum(1) / validf.sum(1).clamp_min(1.0)).mean()
    precision = d2.gather(2, near_g[gid][:, :, None]).squeeze(2).mean()  # (B, Q) -> mean
    if Q == 1:
        weights = coverage.new_zeros(())
    else:
        share = torch.nn.functional.one_hot(assign_g, Q).to(d2.dtype) * gvalid[..., None]
        share = share.sum(1) / gvalid.sum(1, keepdim=True).clamp_min(1)  # (G, Q)
        weights = -(share[gid] * torch.log_softmax(logits, dim=-1)).sum(-1).mean()
    return coverage + precision_weight * precision, weights, assign


def distribution_loss(zp: torch.Tensor, latents: torch.Tensor, valid: torch.Tensor,
                      form: str = "min", sigma: float = 0.6) -> torch.Tensor:
    """Eq. (9) between ``Ẑp (B, I, D)`` and the GMM of ``latents (B, M, I, D)`` (see module doc)."""
    validf = valid.to(latents.dtype)
    if form == "mean":
        mean = (latents * validf[..., None, None]).sum(1) / validf.sum(1)[:, None, None]
        return ((zp - mean) ** 2).mean()
    if form == "min" and bool(valid.any(dim=1).all()):
        # The minimum's gradient reaches only the nearest latent, so pick it without autograd
        # and differentiate the (B, I, D) term alone instead of all M: the same value and
        # gradient (bit for bit when the minimum is unique; on an exact tie amin would share
        # the gradient between the tied latents, this gives it to the first).
        with torch.no_grad():
            d2 = (zp.detach()[:, None] - latents.detach()).square_().mean(dim=(-1, -2))
            best = d2.masked_fill_(~valid, float("inf")).argmin(dim=1)
        nearest = latents[torch.arange(latents.shape[0], device=latents.device), best]
        return ((zp - nearest) ** 2).mean(dim=(-1, -2)).mean()
    mse = ((zp[:, None] - latents) ** 2).mean(dim=(-1, -2))  # (B, M)
    if form == "min":  # a row without any valid latent: inf, as before
        return mse.masked_fill(~valid, float("inf")).amin(dim=1).mean()
    if form == "nll":
        t = 2.0 * sigma**2
        logits = (-mse / t).masked_fill(~valid, float("-inf"))
        lse = torch.logsumexp(logits, dim=1) - torch.log(validf.sum(1))
        return (-t * lse).mean()
    raise ConfigError(f"unknown distribution_loss {form!r}; expected min, mean or nll")


def agreement_loss(latents: torch.Tensor, valid: torch.Tensor,
                   groups: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. (7), normalised: for each window the mean over its valid pairs ``m1 < m2`` of
    ``mean |ḡ_m1 - ḡ_m2|``, averaged over the windows (a window without a pair counts 0).

    With ``groups (B, M)`` only the pairs within one group count (the latents assigned to the
    same mixture component). A mean over windows of per-window terms, so the mean of DDP
    processes' gradients on their shares is the gradient of the whole batch.

    On CPU (float32/float64) the pair sums and their gradient come from one numba pass per
    group (:mod:`regnn.models._agreement_kernel`); elsewhere from ``torch.cdist``. The two give
    the same value and gradient up to float rounding (``sign(0) = 0`` in both).
    """
    B, M = valid.shape
    if M < 2:
        return latents.new_zeros(())
    flat = latents.reshape(B, M, -1)
    if flat.device.type != "cpu" or flat.dtype not in (torch.float32, torch.float64):
        return _agreement_loss_cdist(flat, valid, groups)
    members = ([valid] if groups is None else
               [valid & (groups == g) for g in torch.unique(groups[valid]).tolist()])
    counts = [m.sum(1) for m in members]
    pairs = sum(c * (c - 1) for c in counts) // 2  # (B,) pairs per window
    if int(pairs.sum()) == 0:
        return latents.new_zeros(())
    # weight of window b's pair sums: 1 / (its pairs x L x B)
    npairs = pairs.to(flat.dtype)
    w = torch.where(pairs > 0, 1.0 / (npairs.clamp_min(1) * flat.shape[-1] * B), 0.0)
    total = latents.new_zeros(())
    for member, count in zip(members, counts):
        if int((count * (count - 1)).sum()):
            total = total + _pairwise_l1(flat, member, w)
    return total


@torch.compiler.disable  # a numba call: torch.compile leaves it to eager (a graph break)
def _pairwise_l1(flat: torch.Tensor, valid: torch.Tensor, weight: torch.Tensor
                 ) -> torch.Tensor:
    return _PairwiseL1.apply(flat, valid, weight)


def _agreement_loss_cdist(flat: torch.Tensor, valid: torch.Tensor,
                          groups: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`agreement_loss` by ``torch.cdist`` (any device); ``flat (B, M, L)``."""
    B, M = valid.shape
    dist = torch.cdist(flat, flat, p=1) / flat.shape[-1]  # (B, M, M)
    pair = valid[:, :, None] & valid[:, None, :]
    pair = pair & torch.ones(M, M, dtype=torch.bool, device=valid.device).triu(1)
    if groups is not None:
        pair = pair & (groups[:, :, None] == groups[:, None, :])
    n = pair.sum(dim=(1, 2))  # (B,)
    if int(n.sum()) == 0:
        return flat.new_zeros(())
    per_window = (dist * pair).sum(dim=(1, 2)) / n.clamp_min(1)
    return per_window.sum() / B


class _PairwiseL1(torch.autograd.Function):
    """``Σ_b w_b Σ_{valid m1<m2} ‖x[b,m1] - x[b,m2]‖_1`` for CPU ``x (B, M, L)``, numba kernel."""

    @staticmethod
    def forward(ctx, flat: torch.Tensor, valid: torch.Tensor,  # type: ignore[override]
                weight: torch.Tensor) -> torch.Tensor:
        from regnn.models._agreement_kernel import pairwise_l1

        x = flat.detach().contiguous().numpy()
        sums, signs = pairwise_l1(x, valid.detach().cpu().numpy())
        w = weight.detach().cpu().numpy()
        ctx.save_for_backward(torch.from_numpy(signs) * weight[:, None, None])
        return torch.tensor(float((sums * w).sum()), dtype=flat.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor  # type: ignore[override]
                 ) -> tuple[torch.Tensor, None, None]:
        (signs,) = ctx.saved_tensors
        return signs * grad, None, None
