"""The comparison systems of the paper's Table I, as plain ``torch.nn.Module`` s.

Every system maps whole speaker clips to reactions with one interface:

* ``generate(face (N, T, 25), audio (N, T, A) | None, k, generator=None) -> (N, K, T, 25)``,
  values inside the REACT ranges (AUs and expressions in [0, 1], expressions summing to 1,
  affect in [-1, 1]);
* ``losses(face, audio, listener, ...) -> dict`` (``"loss"`` is what the optimiser minimises;
  the GAN exposes ``gan_losses`` with one entry per player instead);
* ``diverse``: whether the K reactions to one speaker differ (``False`` for the UNet, which is
  deterministic, so its K reactions are identical and its FRDiv is 0, as in the paper).

=============  =======================================================  ==================
module         system                                                   speaker input
=============  =======================================================  ==================
``huang``      Huang & Khan two-stage conditional GAN, ``S`` / ``C``    10-frame AU (S) or
                                                                        expression (C) window
``unet``       4-level 1-D UNet, MSE to the ground-truth reaction       face (+ audio opt.)
``l2l``        Ng et al. "Learning to Listen": VQ-VAE + transformer     face + audio
=============  =======================================================  ==================
"""

from regnn.models.baselines.huang import HuangCGAN
from regnn.models.baselines.l2l import LearningToListen
from regnn.models.baselines.unet import UNet1D

__all__ = ["HuangCGAN", "LearningToListen", "UNet1D"]
