"""Huang & Khan's two-stage conditional GAN (paper Table I, "Huang et al. (S)" and "(C)").

Huang & Khan (BMVC 2018; ICMI 2018) generate a listener's face frame by frame from the
speaker's recent behaviour with two conditional GANs in sequence:

1. **stage 1** ``G1(c_t, z1) -> h_t``: the condition ``c_t`` is the speaker's behaviour in
   the window ``[t - 9, t]`` (10 frames) -- the 15 AU occurrences for the ``S`` variant, the 8
   expression probabilities for the ``C`` variant -- and ``h_t`` an intermediate "sketch" of
   the listener's face (facial landmarks in the original work);
2. **stage 2** ``G2(h_t, z2) -> y_t``: the sketch conditions the listener's 25 attributes.

Each stage has its own conditional discriminator (``D1(c_t, h_t)``, ``D2(h_t, y_t)``) and is
trained as pix2pix is: non-saturating adversarial loss plus ``l1_weight`` times an L1 loss to
the real target. As in the original, the stages are trained separately (stage 2 on the real
listener's sketch) and chained at inference. Noise ``z`` is drawn per frame, so the K
reactions to one speaker differ.

REACT has no facial landmarks, so the intermediate representation is the listener's
``sketch_dim`` leading principal components of the 25 attributes (fitted on the training
listeners with :meth:`HuangCGAN.fit_sketch`), a linear low-dimensional stand-in for landmark
geometry.

**The first frames** (paper Sec. V-B): a 10-frame window cannot predict the first 9 frames of
a reaction, so the paper's systems output 741 (it says 740) frames. The REACT prediction
contract needs all 750, so the first 9 frames repeat the first predicted frame (frame 9);
:attr:`HuangCGAN.context` says how many frames are so filled (``context - 1``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from regnn.models.baselines.common import to_ranges
from regnn.schema import AU_SLICE, EXPRESSION_SLICE, NUM_ATTRIBUTES

VARIANTS = {"s": AU_SLICE, "c": EXPRESSION_SLICE}


def mlp(dims: list[int], final_activation: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2 or final_activation:
            layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


class HuangCGAN(nn.Module):
    """Two-stage conditional GAN of Huang & Khan, variant ``"s"`` (AUs) or ``"c"`` (expressions).

    Stage 1: ``h_t = G1([c_{t-9..t}, z1])``; stage 2: ``y_t = head(G2([h_t, z2]))`` with the
    range head of :func:`~regnn.models.baselines.common.to_ranges`. Losses: for each stage,
    ``L_G = BCE(D(c, G(c, z)), 1) + λ |G(c, z) - x|_1`` and
    ``L_D = BCE(D(c, x), 1) + BCE(D(c, G(c, z)), 0)``.
    """

    diverse = True

    def __init__(self, variant: str = "s", context: int = 10, noise_dim: int = 8,
                 sketch_dim: int = 10, hidden: int = 128, l1_weight: float = 10.0) -> None:
        super().__init__()
        variant = variant.lower()
        if variant not in VARIANTS:
            raise ValueError(f"unknown Huang variant {variant!r}; expected 's' (AUs) or 'c' "
                             "(expression probabilities)")
        if context < 1:
            raise ValueError(f"context must be >= 1 frame, got {context}")
        self.variant, self.context, self.noise_dim = variant, context, noise_dim
        self.sketch_dim, self.l1_weight = sketch_dim, l1_weight
        cols = VARIANTS[variant]
        self.cond_cols = cols
        cond_dim = context * (cols.stop - cols.start)
        self.g1 = mlp([cond_dim + noise_dim, hidden, hidden, sketch_dim])
        self.d1 = mlp([cond_dim + sketch_dim, hidden, hidden, 1])
        self.g2 = mlp([sketch_dim + noise_dim, hidden, hidden, NUM_ATTRIBUTES])
        self.d2 = mlp([sketch_dim + NUM_ATTRIBUTES, hidden, hidden, 1])
        # the sketch: (y - mean) @ basis, PCA of training listeners (identity-like until fitted)
        self.register_buffer("sketch_mean", torch.full((NUM_ATTRIBUTES,), 0.0))
        basis = torch.zeros(NUM_ATTRIBUTES, sketch_dim)
        basis[: min(sketch_dim, NUM_ATTRIBUTES), : min(sketch_dim, NUM_ATTRIBUTES)] = torch.eye(
            min(sketch_dim, NUM_ATTRIBUTES))
        self.register_buffer("sketch_basis", basis)

    # -- the intermediate representation --------------------------------------------------
    def fit_sketch(self, listeners: np.ndarray | torch.Tensor) -> None:
        """Fit the sketch (PCA, ``sketch_dim`` components) to listener frames ``(..., 25)``."""
        y = torch.as_tensor(np.asarray(listeners, dtype=np.float32)).reshape(-1, NUM_ATTRIBUTES)
        mean = y.mean(0)
        _, _, vh = torch.linalg.svd(y - mean, full_matrices=False)
        basis = vh[: self.sketch_dim].T  # (25, r)
        # fix each component's sign (largest loading positive) so the fit is deterministic
        signs = torch.sign(basis.gather(0, basis.abs().argmax(0, keepdim=True)))
        basis = basis * torch.where(signs == 0, torch.ones_like(signs), signs)
        self.sketch_mean.copy_(mean)
        self.sketch_basis.zero_()
        self.sketch_basis[:, : basis.shape[1]] = basis

    def sketch(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.sketch_mean) @ self.sketch_basis

    # -- conditions -----------------------------------------------------------------------
    def conditions(self, face: torch.Tensor) -> torch.Tensor:
        """Speaker attributes ``(B, T, 25)`` -> windows ``(B, T - context + 1, context * c)``.

        Row ``r`` holds frames ``r .. r + context - 1`` and conditions reaction frame
        ``r + context - 1``.
        """
        if face.shape[1] < self.context:
            raise ValueError(f"clip of {face.shape[1]} frames is shorter than the "
                             f"{self.context}-frame condition window")
        x = face[..., self.cond_cols]  # (B, T, c)
        w = x.unfold(1, self.context, 1)  # (B, T', c, context)
        return w.transpose(-1, -2).reshape(x.shape[0], w.shape[1], -1)

    def _noise(self, shape: tuple[int, ...], like: torch.Tensor,
               generator: torch.Generator | None) -> torch.Tensor:
        return torch.randn(*shape, self.noise_dim, generator=generator, device=like.device,
                           dtype=like.dtype)

    # -- training -------------------------------------------------------------------------
    def gan_losses(self, face: torch.Tensor, listener: torch.Tensor,
                   generator: torch.Generator | None = None, frames: int | None = None
                   ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Generator and discriminator losses of both stages for clips ``(B, T, 25)``.

        Returns ``(g, d)``; ``g["loss"]`` trains ``G1`` and ``G2`` (it also reaches the
        discriminators' gradients: zero them before their step), ``d["loss"]`` trains ``D1``
        and ``D2`` and sees the generators' outputs detached. ``frames``: train on that many
        randomly drawn frames per clip (every frame is an independent sample of this
        frame-level model), which makes a step proportionally cheaper.
        """
        c = self.conditions(face)  # (B, T', Cc)
        y = listener[:, self.context - 1:]  # (B, T', 25)
        if frames is not None and 0 < frames < c.shape[1]:
            c, y = self.sample_frames(c, y, frames, generator)
        h = self.sketch(y)
        z1 = self._noise(c.shape[:2], c, generator)
        z2 = self._noise(c.shape[:2], c, generator)
        h_fake = self.g1(torch.cat([c, z1], -1))
        y_fake = to_ranges(self.g2(torch.cat([h, z2], -1)))  # stage 2 sees the real sketch

        def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
            return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))

        adv1 = bce(self.d1(torch.cat([c, h_fake], -1)), 1.0)
        adv2 = bce(self.d2(torch.cat([h, y_fake], -1)), 1.0)
        l1_1 = (h_fake - h).abs().mean()
        l1_2 = (y_fake - y).abs().mean()
        g = {"loss": adv1 + adv2 + self.l1_weight * (l1_1 + l1_2),
             "adv1": adv1, "adv2": adv2, "l1_stage1": l1_1, "l1_stage2": l1_2}
        d1 = bce(self.d1(torch.cat([c, h], -1)), 1.0) + bce(
            self.d1(torch.cat([c, h_fake.detach()], -1)), 0.0)
        d2 = bce(self.d2(torch.cat([h, y], -1)), 1.0) + bce(
            self.d2(torch.cat([h, y_fake.detach()], -1)), 0.0)
        d = {"loss": d1 + d2, "d_stage1": d1, "d_stage2": d2}
        return g, d

    @staticmethod
    def sample_frames(c: torch.Tensor, y: torch.Tensor, frames: int,
                      generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """The same ``frames`` random rows (with replacement) of conditions ``c (B, T', Cc)``
        and targets ``y (B, T', 25)`` for each clip."""
        idx = torch.randint(0, c.shape[1], (c.shape[0], frames), generator=generator,
                            device=c.device)
        return (c.gather(1, idx[..., None].expand(-1, -1, c.shape[-1])),
                y.gather(1, idx[..., None].expand(-1, -1, y.shape[-1])))

    def generator_parameters(self) -> list[nn.Parameter]:
        return [*self.g1.parameters(), *self.g2.parameters()]

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return [*self.d1.parameters(), *self.d2.parameters()]

    # -- inference ------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, face: torch.Tensor, audio: torch.Tensor | None = None, k: int = 10,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """``(N, T, 25)`` speaker attributes -> ``(N, K, T, 25)`` reactions (audio unused).

        Frames ``0 .. context - 2`` repeat frame ``context - 1`` (see the module doc).
        """
        N = face.shape[0]
        c = self.conditions(face)  # (N, T', Cc)
        c = c[:, None].expand(N, k, *c.shape[1:])  # (N, K, T', Cc)
        z1 = self._noise(c.shape[:3], c, generator)
        z2 = self._noise(c.shape[:3], c, generator)
        h = self.g1(torch.cat([c, z1], -1))
        y = to_ranges(self.g2(torch.cat([h, z2], -1)))  # (N, K, T', 25)
        head = y[:, :, :1].expand(N, k, self.context - 1, NUM_ATTRIBUTES)
        return torch.cat([head, y], dim=2)
