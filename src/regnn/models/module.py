"""Lightning modules: the training loop, validation and optimiser of a reaction generator.

:class:`ReactionModule` is the base every registered model uses (see
:mod:`regnn.models.registry`): it owns the run config, the Adam + step-decay optimiser of the
paper, the per-epoch validation (generate for a subset of validation speakers and score
FRCorr / FRDist), and the inference entry point ``generate_clips``. A model only provides
``compute_losses(batch) -> dict`` and ``generate_clips(face, audio, k, sigma, generator)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import lightning as L
import numpy as np
import torch

from regnn.config import GenerateConfig, RunConfig, config_from_dict
from regnn.metrics.subset import subset_scores
from regnn.models.invertible import InverseInfo
from regnn.models.regnn import REGNN
from regnn.schema import clip_to_ranges

FUSED_ADAM_DEVICES = ("cpu", "cuda")


def make_adam(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float = 0.0,
              **kwargs: Any) -> torch.optim.Adam:
    """The paper's Adam; its fused kernel where the parameters' device has one.

    The fused step is the same update up to float rounding (one kernel per parameter instead
    of ~10 elementwise ops: 3.7 -> 1.0 ms per step for REGNN at the authors' size on one CPU
    thread). ``kwargs`` go to :class:`torch.optim.Adam`.
    """
    params = list(params)
    if "fused" not in kwargs and "foreach" not in kwargs:
        kwargs["fused"] = all(p.device.type in FUSED_ADAM_DEVICES and p.is_floating_point()
                              for p in params) or None
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, **kwargs)


class ReactionModule(L.LightningModule):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.config: RunConfig = config_from_dict(config)
        self.val_listeners: np.ndarray | None = None
        self.val_neighbours: np.ndarray | None = None
        self._val_preds: dict[int, np.ndarray] = {}
        self.inverse_info = InverseInfo()

    # -- to be provided by a model ---------------------------------------------------------
    def compute_losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def generate_clips(self, face: torch.Tensor | None, audio: torch.Tensor | None, k: int,
                       sigma: float | None = None, generator: torch.Generator | None = None,
                       *, noise: str | None = None, noise_scale: float | None = None
                       ) -> tuple[torch.Tensor, InverseInfo]:
        """``(N, K, T, 25)`` reactions to whole clips; unset sampling settings are the run's
        (:meth:`sampling`)."""
        raise NotImplementedError

    def sampling(self, **overrides: Any) -> GenerateConfig:
        """The run's ``generate`` settings with the non-None ``overrides`` in place."""
        return self.config.generate.resolve(**overrides)

    # -- training ---------------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self.compute_losses(batch)
        bs = batch["face"].shape[0]
        for name, value in out.items():
            self.log(f"train/{name}", value.detach(), on_step=False, on_epoch=True,
                     prog_bar=name == "loss", batch_size=bs, sync_dist=True)
        return out["loss"]

    def on_train_epoch_start(self) -> None:
        loader = self.trainer.train_dataloader
        ds = getattr(loader, "dataset", None)
        if hasattr(ds, "set_epoch"):
            ds.set_epoch(self.current_epoch)

    def configure_optimizers(self) -> Any:
        t = self.config.train
        opt = make_adam(self.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=t.milestones, gamma=t.lr_gamma)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    # -- validation ------------------------------------------------------------------------
    def set_validation_targets(self, listeners: np.ndarray, neighbours: np.ndarray) -> None:
        self.val_listeners = np.asarray(listeners, dtype=np.float32)
        self.val_neighbours = np.asarray(neighbours, dtype=bool)

    def on_validation_epoch_start(self) -> None:
        self._val_preds = {}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        g = torch.Generator(device="cpu").manual_seed(1000 + batch_idx)
        pred, _ = self.generate_clips(batch.get("face"), batch.get("audio"),
                                      self.config.train.val_samples, generator=g)
        pred = clip_to_ranges(pred.float().cpu().numpy())
        for i, idx in enumerate(batch["index"].tolist()):
            self._val_preds[idx] = pred[i]

    def on_validation_epoch_end(self) -> None:
        if self.val_listeners is None:
            return
        if self.trainer.world_size > 1:  # DDP: every process scores every item, identically
            self._val_preds = self._gather_val_preds()
        if not self._val_preds:
            return
        idx = sorted(self._val_preds)
        pred = np.stack([self._val_preds[i] for i in idx])
        scores = subset_scores(pred, self.val_listeners, self.val_neighbours[idx])
        for name, value in scores.items():
            self.log(f"val/{name}", value, prog_bar=True, sync_dist=True)

    def _gather_val_preds(self) -> dict[int, np.ndarray]:
        """The validation predictions of all DDP processes (the distributed sampler gives each
        an equal share, padded by repeats, so the shapes agree across processes)."""
        idx = sorted(self._val_preds)
        local = torch.from_numpy(np.stack([self._val_preds[i] for i in idx]))
        preds = self.all_gather(local.to(self.device)).reshape(-1, *local.shape[1:])
        items = self.all_gather(torch.tensor(idx, device=self.device)).reshape(-1)
        return {int(i): p for i, p in zip(items.tolist(), preds.cpu().numpy())}


class REGNNModule(ReactionModule):
    """The REGNN model of the paper (:class:`regnn.models.regnn.REGNN`) under Lightning."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.model = REGNN(self.config.model)

    def compute_losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.model.losses(batch.get("face"), batch.get("audio"), batch["reactions"],
                                 batch["valid"], batch.get("group"))

    def generate_clips(self, face: torch.Tensor | None, audio: torch.Tensor | None, k: int,
                       sigma: float | None = None, generator: torch.Generator | None = None,
                       *, noise: str | None = None, noise_scale: float | None = None
                       ) -> tuple[torch.Tensor, InverseInfo]:
        g = self.sampling(sigma=sigma, noise=noise, noise_scale=noise_scale)
        pred, info = self.model.generate(face, audio, k, g.sigma, g.noise, generator,
                                         g.noise_scale)
        self.inverse_info = self.inverse_info.merge(info)
        return pred, info
