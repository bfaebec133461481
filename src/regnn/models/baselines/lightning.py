"""Lightning wrappers: the comparison systems and the i-ResNet ablation under ``regnn train``.

Each class is a :class:`regnn.models.module.ReactionModule` (same training loop, validation,
checkpoints and ``generate_clips`` entry point as REGNN) and is registered in
:mod:`regnn.models.registry` under the name ``regnn train --model NAME`` takes:

=================  =============================================================
``huang-s``        :class:`HuangModule` (two optimisers, manual optimisation)
``huang-c``        :class:`HuangModule`
``unet``           :class:`UNetModule`
``l2l``            :class:`L2LModule` (VQ-VAE epochs first, then the predictor)
``iresnet-motor``  :class:`~regnn.models.module.REGNNModule` with ``model.motor = "iresnet"``
=================  =============================================================

The comparison systems learn from the one ground-truth reaction of a speaker clip (slot 0 of
the training batch's ``reactions``); they use whole clips when the config's ``model.window``
is the clip length (:mod:`regnn.models.variants` sets it), and any window length otherwise.
Their sizes follow ``model.width`` (see each ``build`` below); other settings are the module
defaults, documented in :mod:`regnn.models.baselines`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from regnn.errors import ConfigError
from regnn.models.baselines.huang import HuangCGAN
from regnn.models.baselines.l2l import LearningToListen
from regnn.models.baselines.unet import UNet1D
from regnn.models.invertible import InverseInfo
from regnn.models.module import ReactionModule, REGNNModule


class BaselineModule(ReactionModule):
    """Common part of the comparison systems: ground-truth target, no motor to invert."""

    model: Any

    def target(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return batch["reactions"][:, 0]

    def generate_clips(self, face: torch.Tensor | None, audio: torch.Tensor | None, k: int,
                       sigma: float | None = None, generator: torch.Generator | None = None,
                       *, noise: str | None = None, noise_scale: float | None = None
                       ) -> tuple[torch.Tensor, InverseInfo]:
        """``(N, K, T, 25)`` reactions; the latent-noise settings do not apply to these
        systems (they sample their own way)."""
        m = self.config.model
        pred = self.model.generate(face if m.use_face else None,
                                   audio if m.use_audio else None, k, generator)
        return pred, InverseInfo()


class UNetModule(BaselineModule):
    """4-level 1-D UNet (:class:`~regnn.models.baselines.unet.UNet1D`), MSE to the ground truth."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        m = self.config.model
        self.model = UNet1D(m.face_dim, m.audio_dim, m.use_face, m.use_audio, levels=4,
                            base=max(8, m.width // 4), max_width=2 * m.width)

    def compute_losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.model.losses(batch.get("face"), batch.get("audio"), self.target(batch))


class L2LModule(BaselineModule):
    """Learning to Listen: the first ``ceil(epochs / 2)`` epochs train the VQ-VAE, the rest
    the code predictor on the frozen VQ-VAE's codes (the original trains them in sequence)."""

    VQ_FRACTION = 0.5

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        m = self.config.model
        self.model = LearningToListen(m.face_dim, m.audio_dim, m.use_face, m.use_audio,
                                      width=m.width, heads=m.heads)
        self.vq_epochs = max(1, math.ceil(self.config.train.epochs * self.VQ_FRACTION))

    def phase(self) -> str:
        return "vq" if self.current_epoch < self.vq_epochs else "prior"

    def compute_losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.model.losses(batch.get("face"), batch.get("audio"), self.target(batch),
                                 phase=self.phase())


class HuangModule(BaselineModule):
    """Huang & Khan's two-stage cGAN; ``huang-s`` conditions on AUs, ``huang-c`` on expressions.

    Adversarial training alternates a generator and a discriminator step on every batch
    (Lightning manual optimisation) on :attr:`FRAMES_PER_CLIP` random frames of each clip;
    both use Adam with ``β1 = 0.5`` (pix2pix) at
    ``train.lr`` and ``train.weight_decay``. The sketch (PCA) is fitted on the training
    listeners when training starts.
    """

    FRAMES_PER_CLIP = 128  # frames drawn per clip and step (a frame-level model)

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.automatic_optimization = False
        m = self.config.model
        variant = {"huang-s": "s", "huang-c": "c"}.get(m.name)
        if variant is None:
            raise ConfigError(f"HuangModule serves huang-s and huang-c, not {m.name!r}")
        if not m.use_face:
            raise ConfigError(f"{m.name} is conditioned on the speaker's facial attributes; "
                              "model.use_face must be true")
        self.model = HuangCGAN(variant, hidden=2 * m.width)
        self.register_buffer("sketch_fitted", torch.zeros((), dtype=torch.bool))

    def on_train_start(self) -> None:  # the train loader exists from this hook on
        ds = getattr(self.trainer.train_dataloader, "dataset", None)
        listeners = getattr(ds, "listeners", None)
        if not bool(self.sketch_fitted) and listeners is not None:
            self.model.fit_sketch(listeners)
            self.sketch_fitted.fill_(True)

    def configure_optimizers(self) -> Any:
        t = self.config.train
        opt_g = torch.optim.Adam(self.model.generator_parameters(), lr=t.lr, betas=(0.5, 0.999),
                                 weight_decay=t.weight_decay)
        opt_d = torch.optim.Adam(self.model.discriminator_parameters(), lr=t.lr,
                                 betas=(0.5, 0.999), weight_decay=t.weight_decay)
        return [opt_g, opt_d]

    def compute_losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        g, d = self.model.gan_losses(batch["face"], self.target(batch),
                                     frames=self.FRAMES_PER_CLIP)
        return {**g, "d_loss": d["loss"]}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        opt_g, opt_d = self.optimizers()
        g, d = self.model.gan_losses(batch["face"], self.target(batch),
                                     frames=self.FRAMES_PER_CLIP)
        opt_g.zero_grad()
        self.manual_backward(g["loss"])
        opt_g.step()
        opt_d.zero_grad()
        self.manual_backward(d["loss"])
        opt_d.step()
        bs = batch["face"].shape[0]
        for name, value in {**g, "d_loss": d["loss"]}.items():
            self.log(f"train/{name}", value.detach(), on_step=False, on_epoch=True,
                     prog_bar=name == "loss", batch_size=bs)
        return g["loss"].detach()


MODULES: dict[str, type[ReactionModule]] = {
    "huang-s": HuangModule,
    "huang-c": HuangModule,
    "unet": UNetModule,
    "l2l": L2LModule,
    # REGNN with model.motor = "iresnet" (models.regnn.MOTORS): the name runs keep
    "iresnet-motor": REGNNModule,
}
