"""The whole REGNN model: perceptual -> cognitive -> motor, its losses, sampling and generation.

Paper Sec. IV. Training (AFRDL, Sec. IV-B): for a speaker window the cognitive processor
predicts ``Ẑp`` (Eq. 4) and MEFL edges; the ``M`` appropriate real listener windows go through
the motor forward (Eq. 6) *conditioned on those edges*, giving latents ``ḡ_1..ḡ_M``, and

* the distribution term (Eq. 9) compares ``Ẑp`` with the GMM whose component means are the
  latents (Eq. 8). ``distribution_loss`` picks its form:

  - ``"min"`` (default, as the authors' code): ``min_m MSE(Ẑp, ḡ_m)``. With several distinct
    appropriate reaction styles the GMM is multi-modal; matching its mean would decode to a
    blend that resembles none of them, while the nearest component is a real mode, and the
    REACT appropriateness metrics also score a prediction against its *closest* appropriate
    reaction;
  - ``"mean"``: ``MSE(Ẑp, mean_m ḡ_m)`` (the GMM's first moment);
  - ``"nll"``: the GMM negative log-likelihood with isotropic ``gmm_sigma`` per entry,
    scaled by ``2σ²`` and normalised per entry: ``-2σ² log mean_m exp(-MSE_m / 2σ²)``, a
    soft minimum that tends to ``"min"`` as ``σ -> 0`` and to the mean MSE as ``σ -> ∞``;

* the agreement term (Eq. 7) is the mean over pairs ``m1 < m2`` of the mean absolute
  difference ``|ḡ_m1 - ḡ_m2|`` (the paper's sum, normalised so that its weight does not
  depend on ``M``, ``I`` or ``D``). It is zero when all latents coincide. The motor is
  bi-Lipschitz (see :mod:`regnn.models.motor`), so this term cannot collapse latents to a point.

Inference (Eq. 5): sample ``Ẑp + ε`` K times and decode each with the motor inverse; the
fusion and the edges are computed once per window and shared by the K samples.

Design addition (``model.face_skip``, default on): when the face input is the 25 attributes,
``Ẑp = heads(B̄) + F_S^T``, i.e. the projection heads predict a correction of the speaker's
own attribute series. Listeners often mirror speakers, so this starts training from the
"Mime" reference instead of from zero; the heads still carry all the modelling.

``objective="mse"`` is the paper's "without graph" ablation: the motor is used forward as a
decoder of ``Ẑp`` and trained with a plain MSE to the one ground-truth reaction (slot 0).
"""

from __future__ import annotations

import torch
from torch import nn

from regnn.config import ModelConfig
from regnn.data.windows import make_windows, stitch
from regnn.errors import ConfigError
from regnn.models.cognitive import CognitiveProcessor
from regnn.models.motor import InverseInfo, REGNNMotor
from regnn.models.perceptual import PerceptualProcessor, causal_mask
from regnn.schema import NUM_ATTRIBUTES


def sample_noise(shape: tuple[int, ...], sigma: float, mode: str,
                 generator: torch.Generator | None, device: torch.device,
                 reduce_dims: tuple[int, ...]) -> torch.Tensor:
    """``ε`` for sampling from ``Ẑp``.

    ``"gaussian"``: i.i.d. ``N(0, σ²)``. ``"scaled"`` (the authors' published code): standard
    normal noise rescaled, when needed, so that its largest magnitude over ``reduce_dims``
    (one sampled reaction: all its windows, nodes and frames) is at most ``sqrt(σ)``.
    """
    eps = torch.randn(shape, generator=generator, device=device)
    if mode == "gaussian":
        return eps * sigma
    if mode == "scaled":
        limit = sigma**0.5
        peak = eps.abs().amax(dim=reduce_dims, keepdim=True)
        return eps * torch.clamp(limit / peak, max=1.0)
    raise ConfigError(f"unknown noise mode {mode!r}; expected 'scaled' or 'gaussian'")


class REGNN(nn.Module):
    """Perceptual (Eq. 3) + cognitive with MEFL (Eq. 4) + REGNN motor (Eqs. 5-6, 10-15)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.motor != "regnn":
            raise ConfigError(f"motor {cfg.motor!r} is not available; this model implements "
                              "'regnn' (other motors register their own model)")
        self.cfg = cfg
        self.perceptual = PerceptualProcessor(
            cfg.face_dim, cfg.audio_dim, cfg.width, cfg.heads, cfg.cross_layers, cfg.self_layers,
            cfg.ffn_mult, cfg.dropout, cfg.use_face, cfg.use_audio,
        )
        self.cognitive = CognitiveProcessor(
            cfg.width, NUM_ATTRIBUTES, cfg.window, cfg.edge_channels, cfg.edge_key_dim, cfg.top_k,
        )
        # Residual path: with the 25 attributes as face input, the heads predict Ẑp as a
        # correction of the speaker's own attribute series (a mirroring prior).
        self.face_skip = cfg.face_skip and cfg.use_face and cfg.face_dim == NUM_ATTRIBUTES
        self.motor = REGNNMotor(
            cfg.window, cfg.edge_channels, cfg.motor_layers, cfg.motor_key_dim, cfg.top_k,
            NUM_ATTRIBUTES, cfg.lipschitz,
        )

    # -- the three processors ------------------------------------------------------------
    def distribution(self, face: torch.Tensor | None, audio: torch.Tensor | None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Speaker windows ``(B, D, F)`` -> ``Ẑp (B, I, D)``, edges ``(B, P, I, I)``, adjacency."""
        mask = None
        if self.cfg.causal:
            ref = face if face is not None else audio
            mask = causal_mask(ref.shape[1], ref.device)
        fused = self.perceptual(face if self.cfg.use_face else None,
                                audio if self.cfg.use_audio else None, attn_mask=mask)
        prior = None
        if self.face_skip:
            prior = face.transpose(1, 2)  # the speaker's own attribute series, (B, I, D)
        return self.cognitive(fused, prior)

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
               reactions: torch.Tensor, valid: torch.Tensor) -> dict[str, torch.Tensor]:
        """AFRDL losses for a batch of speaker windows.

        ``reactions (B, M, D, 25)``: appropriate real listener windows, slot 0 being the
        window's own listener; ``valid (B, M)`` bool marks real (not padding) slots.
        """
        zp, edges, adjacency = self.distribution(face, audio)
        if self.cfg.objective == "mse":
            pred = self.motor(zp, edges, adjacency).transpose(-1, -2)  # (B, D, 25)
            loss = ((pred - reactions[:, 0]) ** 2).mean()
            zero = loss.new_zeros(())
            return {"loss": loss, "distribution": loss, "agreement": zero}
        latents = self.encode(reactions, edges, adjacency)  # (B, M, I, D)
        dist = distribution_loss(zp, latents, valid, self.cfg.distribution_loss,
                                 self.cfg.gmm_sigma)
        agree = agreement_loss(latents, valid)
        loss = dist + self.cfg.agreement_weight * agree
        return {"loss": loss, "distribution": dist, "agreement": agree}

    # -- inference ------------------------------------------------------------------------
    @torch.no_grad()
    def sample_windows(self, face: torch.Tensor | None, audio: torch.Tensor | None, k: int,
                       sigma: float, noise: str = "scaled",
                       generator: torch.Generator | None = None, group: int = 1
                       ) -> tuple[torch.Tensor, InverseInfo]:
        """K reactions per speaker window: ``(B, D, F)`` -> ``(B, K, D, 25)``.

        ``group`` consecutive windows form one clip for the ``"scaled"`` noise bound.
        """
        zp, edges, adjacency = self.distribution(face, audio)
        B, I, D = zp.shape
        shape = (B // group, group, k, I, D)
        eps = sample_noise(shape, sigma, noise, generator, zp.device, reduce_dims=(1, 3, 4))
        latents = zp[:, None] + eps.reshape(B, k, I, D)
        return self.decode(latents, edges, adjacency)

    @torch.no_grad()
    def generate(self, face: torch.Tensor | None, audio: torch.Tensor | None, k: int = 10,
                 sigma: float = 0.6, noise: str = "scaled",
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, InverseInfo]:
        """Whole clips ``(N, T, F)`` -> ``(N, K, T, 25)``: window, sample, decode, stitch."""
        ref = face if face is not None else audio
        if ref is None:
            raise ConfigError("generate needs the speaker's face or audio features")
        N, T = ref.shape[:2]
        D, stride = self.cfg.window, self.cfg.stride
        fw = make_windows(face, D, stride) if face is not None else None  # (N, W, D, F)
        aw = make_windows(audio, D, stride) if audio is not None else None
        W = (fw if fw is not None else aw).shape[1]

        def flat(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.reshape(N * W, D, x.shape[-1])

        win, info = self.sample_windows(flat(fw), flat(aw), k, sigma, noise, generator, group=W)
        win = win.reshape(N, W, k, D, NUM_ATTRIBUTES).transpose(1, 2)  # (N, K, W, D, 25)
        return stitch(win, T, stride), info


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


def agreement_loss(latents: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Eq. (7), normalised: mean over valid pairs ``m1 < m2`` of ``mean |ḡ_m1 - ḡ_m2|``.

    On CPU (float32/float64) the pair sums and their gradient come from one numba pass
    (:mod:`regnn.models._agreement_kernel`); elsewhere from ``torch.cdist``. The two give the
    same value and gradient up to float rounding (``sign(0) = 0`` in both).
    """
    B, M = valid.shape
    if M < 2:
        return latents.new_zeros(())
    flat = latents.reshape(B, M, -1)
    if flat.device.type == "cpu" and flat.dtype in (torch.float32, torch.float64):
        pair_count = valid.sum(1)
        n = (pair_count * (pair_count - 1)).sum() // 2
        if n == 0:
            return latents.new_zeros(())
        return _pairwise_l1(flat, valid) / (n * flat.shape[-1])
    return _agreement_loss_cdist(flat, valid)


@torch.compiler.disable  # a numba call: torch.compile leaves it to eager (a graph break)
def _pairwise_l1(flat: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return _PairwiseL1.apply(flat, valid)


def _agreement_loss_cdist(flat: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """:func:`agreement_loss` by ``torch.cdist`` (any device); ``flat (B, M, L)``."""
    M = valid.shape[1]
    dist = torch.cdist(flat, flat, p=1) / flat.shape[-1]  # (B, M, M)
    pair = valid[:, :, None] & valid[:, None, :]
    pair = pair & torch.ones(M, M, dtype=torch.bool, device=valid.device).triu(1)
    n = pair.sum()
    if n == 0:
        return flat.new_zeros(())
    return (dist * pair).sum() / n


class _PairwiseL1(torch.autograd.Function):
    """``Σ_b Σ_{valid m1<m2} ‖x[b,m1] - x[b,m2]‖_1`` for CPU ``x (B, M, L)``, numba kernel."""

    @staticmethod
    def forward(ctx, flat: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        from regnn.models._agreement_kernel import pairwise_l1

        x = flat.detach().contiguous().numpy()
        sums, signs = pairwise_l1(x, valid.detach().cpu().numpy())
        ctx.save_for_backward(torch.from_numpy(signs))
        return torch.tensor(float(sums.sum()), dtype=flat.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (signs,) = ctx.saved_tensors
        return signs * grad, None
