r"""The i-ResNet motor of the ``iresnet-motor`` ablation (paper Table II, "i-ResNet [46]").

Behrmann et al., "Invertible Residual Networks" (ICML 2019): a residual block
``y = x + g(x)`` is invertible when ``Lip(g) < 1``, and its inverse is the fixed point of
``x = y - g(x)``, reached by iteration from ``x_0 = y`` with error shrinking like ``c^k``.

Here the block is a *reversible CNN* on a reaction graph's node features: the ``I`` facial
attributes are the channels and the ``D`` frames of a window the 1-D spatial axis,

.. math::

    g(x) = γ\, W_3 * \mathrm{ELU}(W_2 * \mathrm{ELU}(W_1 * x)),

with ``W_1`` (kernel 3, ``I -> h``), ``W_2`` (kernel 1, ``h -> h``), ``W_3`` (kernel 3,
``h -> I``), the 3-1-3 kernel pattern of the i-ResNet paper. It ignores the MEFL edges: this
is the model without graph message passing, the point of the ablation.

**Lipschitz guarantee.** A zero-padded, stride-1 convolution with taps ``W[:, :, k]`` has
operator norm ``<= Σ_k ‖W[:, :, k]‖_2`` (triangle inequality over the shifted copies, each
shift having norm <= 1); ELU is 1-Lipschitz. So ``Lip(g / γ) <= B = Π_l Σ_k ‖W_l[:, :, k]‖_2``
with exact spectral norms (``torch.linalg.matrix_norm(ord=2)``), and the block uses
``γ = c / max(B, c)``, hence ``Lip(g) <= c < 1`` for any weights (Behrmann et al. normalise
with a power-iteration *estimate* instead, which is not a guarantee). The inverse reports its
iterations, residual and the certified error ``‖x + g(x) - y‖ / (1 - c)``.

The default hidden width ``h = 10`` gives ``3·25·10 + 10·10 + 3·10·25 = 1600`` weights per
block, matching a REGNN motor layer of the default configuration (``2·50·16 + 8 = 1608``),
so the ablation compares motors of equal size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from regnn.models.invertible import ContractiveResidual, InvertibleStack


def conv_norm_bound(weight: torch.Tensor) -> torch.Tensor:
    """``Σ_k ‖W[:, :, k]‖_2``: an upper bound of a stride-1 zero-padded conv's operator norm."""
    return torch.linalg.matrix_norm(weight.permute(2, 0, 1), ord=2).sum()


class IResNetBlock(ContractiveResidual):
    """One invertible residual block ``y = x + g(x)``, ``Lip(g) <= c`` (module doc); ``g`` is
    the core's ``φ``, and ``γ`` and the fixed-point inverse come from
    :class:`~regnn.models.invertible.ContractiveResidual`.

    ``forward(x, rev=False)`` maps ``x (B, I, D) -> y``; ``forward(y, rev=True)`` inverts by
    fixed-point iteration (FrEIA's convention). :meth:`inverse` also returns what the iteration
    reached.
    """

    def __init__(self, channels: int = 25, hidden: int = 10, lipschitz: float = 0.9,
                 kernels: tuple[int, int, int] = (3, 1, 3)) -> None:
        super().__init__()
        self.set_lipschitz(lipschitz)
        if any(k % 2 == 0 for k in kernels):
            raise ValueError(f"kernel sizes must be odd (same-length output), got {kernels}")
        dims = [channels, hidden, hidden, channels]
        self.convs = nn.ModuleList(
            nn.Conv1d(a, b, k, padding=k // 2) for a, b, k in zip(dims[:-1], dims[1:], kernels)
        )

    def lipschitz_bound(self) -> torch.Tensor:
        """``B``: a Lipschitz bound of ``g`` before the scale ``γ``."""
        bound = torch.ones((), device=self.convs[0].weight.device)
        for conv in self.convs:
            bound = bound * conv_norm_bound(conv.weight)
        return bound

    def phi(self, x: torch.Tensor, *cond: object,
            gamma: torch.Tensor | float | None = None) -> torch.Tensor:
        """``g(x) = γ W_3 * ELU(W_2 * ELU(W_1 * x))`` on ``x (..., I, D)`` (conditioning
        ignored: no graph)."""
        gamma = self.gamma() if gamma is None else gamma
        lead = x.shape[:-2]
        h = x.reshape(-1, *x.shape[-2:])
        for i, conv in enumerate(self.convs):
            h = conv(h)
            if i < len(self.convs) - 1:
                h = F.elu(h)
        return gamma * h.reshape(*lead, *h.shape[-2:])

    def forward(self, x: torch.Tensor, *cond: object, rev: bool = False) -> torch.Tensor:
        return self.inverse(x)[0] if rev else x + self.phi(x)


class IResNetMotor(InvertibleStack):
    """``layers`` stacked :class:`IResNetBlock` s with the REGNN motor's interface.

    ``forward(x (B, I, D) | (B, M, I, D), edges=None, adjacency=None)`` -> latents of the same
    shape; ``inverse(z, edges=None, adjacency=None, tol, max_iter) -> (x, InverseInfo)``, the
    :class:`~regnn.models.invertible.InverseInfo` listing per layer (in inversion order) what
    the fixed-point iteration reached. The edges are accepted and ignored.
    """

    def __init__(self, nodes: int = 25, layers: int = 2, hidden: int = 10,
                 lipschitz: float = 0.9) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"the motor needs at least one layer, got {layers}")
        self.layers = nn.ModuleList(IResNetBlock(nodes, hidden, lipschitz) for _ in range(layers))
        self.lipschitz = lipschitz

    def conditions(self, *cond: object) -> tuple[tuple[object, ...], dict[str, object]]:
        return (), {}  # the edges are not used: the ablation has no graph


def matching_hidden(weights: int, channels: int = 25, kernels: tuple[int, int, int] = (3, 1, 3)
                    ) -> int:
    """Hidden width ``h`` whose block has about ``weights`` weights:
    ``k1·I·h + k2·h² + k3·h·I ≈ weights`` (at least 1)."""
    a, b = kernels[1], (kernels[0] + kernels[2]) * channels
    return max(1, round((-b + math.sqrt(b * b + 4 * a * weights)) / (2 * a)))
