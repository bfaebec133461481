r"""The invertible core: contractive residual blocks and their one fixed-point inverse.

In the style of FrEIA's invertible modules: a block maps ``y = x + φ(x)`` with a *certified*
Lipschitz constant ``Lip(φ) <= c < 1``; a subclass implements only

* :meth:`ContractiveResidual.phi` ``(x, *cond, gamma=...)``: the residual branch scaled by
  ``γ``, and
* :meth:`ContractiveResidual.lipschitz_bound`: a bound ``B`` of ``Lip(φ / γ)``,

and inherits ``γ = c / max(B, c)`` (so ``Lip(φ) <= c`` for any weights), the forward map and
the inverse. The inverse is the Banach fixed-point iteration of the paper's Eq. (14),
``x_{k+1} = y - φ(x_k)`` from ``x_0 = y`` (:func:`fixed_point`); after stopping,
``‖x - x*‖ <= ‖x + φ(x) - y‖ / (1 - c)`` certifies the result. With a known bound on the first
step, the number of iterations that guarantees a tolerance is known in advance
(:func:`iterations_for`): that is what a fixed-iteration (exported) inverse runs.

:class:`InvertibleStack` chains blocks (the paper's motor, Fig. 4): ``forward`` is Eq. (6),
``inverse`` Eq. (5), and :class:`InverseInfo` reports per block what the iteration reached.
Implementations: :class:`regnn.models.motor.REGNNLayer` (Eqs. 10-13) and
:class:`regnn.models.iresnet.IResNetBlock` (the i-ResNet ablation); the online decoder reuses
the same inverse with cached scales.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from regnn.errors import ConfigError


@dataclass
class InverseInfo:
    """What the fixed-point inverse actually reached (per block, in inversion order)."""

    iterations: list[int] = field(default_factory=list)
    last_step: list[float] = field(default_factory=list)  # max |x_k - x_{k-1}|
    residual: list[float] = field(default_factory=list)  # max |x + φ(x) - y| after stopping
    certified: list[float] = field(default_factory=list)  # max_graph ‖x + φ(x) - y‖_F / (1 - c)
    converged: bool = True

    @property
    def max_iterations(self) -> int:
        return max(self.iterations, default=0)

    @property
    def max_residual(self) -> float:
        return max(self.residual, default=0.0)

    def add(self, block: dict[str, Any]) -> None:
        """Append one block's result (:func:`fixed_point`'s dict)."""
        self.iterations.append(block["iterations"])
        self.last_step.append(block["last_step"])
        if "residual" in block:
            self.residual.append(block["residual"])
            self.certified.append(block["certified"])
        self.converged = self.converged and block["converged"]

    def merge(self, other: InverseInfo) -> InverseInfo:
        """Element-wise worst case of two runs with the same number of blocks."""
        if not self.iterations:
            return other
        return InverseInfo(
            [max(a, b) for a, b in zip(self.iterations, other.iterations)],
            [max(a, b) for a, b in zip(self.last_step, other.last_step)],
            [max(a, b) for a, b in zip(self.residual, other.residual)],
            [max(a, b) for a, b in zip(self.certified, other.certified)],
            self.converged and other.converged,
        )

    def as_dict(self) -> dict:
        return {
            "iterations": self.iterations, "max_iterations": self.max_iterations,
            "last_step": self.last_step, "residual": self.residual,
            "max_residual": self.max_residual, "certified_error": self.certified,
            "converged": self.converged,
        }


def check_lipschitz(c: float) -> float:
    if not 0.0 < c < 1.0:
        raise ConfigError(f"the Lipschitz constant c of an invertible block must be in (0, 1), "
                          f"got {c}")
    return c


@torch.no_grad()
def fixed_point(phi: Callable[[torch.Tensor], torch.Tensor], y: torch.Tensor, c: float,
                tol: float = 1e-6, max_iter: int = 200, certify: bool = True,
                iterations: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """Solve ``x + φ(x) = y`` by ``x_{k+1} = y - φ(x_k)`` from ``x_0 = y`` (Eq. 14).

    Stops when ``max |x_k - x_{k-1}| <= tol`` or after ``max_iter`` steps, or runs exactly
    ``iterations`` steps when given. With ``certify`` also returns the residual
    ``max |x + φ(x) - y|`` and the certified error ``‖x + φ(x) - y‖ / (1 - c)`` (Frobenius
    over the last two axes, the worst graph).
    """
    x, step, it = y, float("inf"), 0
    limit = max_iter if iterations is None else iterations
    for it in range(1, limit + 1):  # noqa: B007 - `it` is reported
        x_new = torch.sub(y, phi(x))
        if iterations is None or it == limit:
            step = x.sub(x_new).abs_().max().item() if x.numel() else 0.0
        x = x_new
        if iterations is None and step <= tol:
            break
    info: dict[str, Any] = {"iterations": it, "last_step": step,
                            "converged": step <= tol or iterations is not None}
    if certify:
        res = phi(x).add_(x).sub_(y)
        info["residual"] = res.abs().max().item() if res.numel() else 0.0
        info["certified"] = (res.flatten(-2).norm(dim=-1).max().item() / (1.0 - c)
                             if res.numel() else 0.0)
    return x, info


def iterations_for(tol: float, c: float, first_step: float) -> int:
    """Iterations ``k`` after which the fixed-point error is at most ``tol`` whatever the
    input: ``c^k / (1 - c) · first_step <= tol``, ``first_step`` bounding ``‖x_1 - x_0‖ =
    ‖φ(y)‖`` (Banach's a-priori estimate)."""
    check_lipschitz(c)
    if first_step <= 0.0:
        return 1
    need = math.log(tol * (1.0 - c) / first_step) / math.log(c)
    return max(1, math.ceil(need))


class ContractiveResidual(nn.Module):
    """``y = x + φ(x)`` with ``Lip(φ) <= c`` (module doc). Subclasses set ``self.c`` through
    :meth:`set_lipschitz` and implement :meth:`phi` and :meth:`lipschitz_bound`."""

    c: float

    def set_lipschitz(self, c: float) -> None:
        self.c = check_lipschitz(c)

    def lipschitz_bound(self) -> torch.Tensor:
        """``B``: a Lipschitz bound of ``φ`` before the scale ``γ``."""
        raise NotImplementedError

    def phi(self, x: torch.Tensor, *cond: Any, gamma: torch.Tensor | float | None = None
            ) -> torch.Tensor:
        """The residual branch ``φ(x)``, scaled by ``gamma`` (default :meth:`gamma`)."""
        raise NotImplementedError

    def gamma(self) -> torch.Tensor:
        """The scale ``γ = c / max(B, c)`` that makes ``Lip(φ) <= c``."""
        return self.c / torch.clamp(self.lipschitz_bound(), min=self.c)

    @torch.no_grad()
    def inverse_constants(self) -> dict[str, Any]:
        """What the inverse derives from the weights alone (``γ``: spectral norms), to cache
        while the weights do not change and pass back to :meth:`inverse`."""
        return {"gamma": self.gamma()}

    def certified_lipschitz(self) -> float:
        """``γ B <= c``: the certified Lipschitz constant of ``φ``."""
        return float((self.gamma() * self.lipschitz_bound()).detach())

    def forward(self, x: torch.Tensor, *cond: Any) -> torch.Tensor:
        return x + self.phi(x, *cond)

    def inverse_phi(self, *cond: Any, gamma: torch.Tensor | float, **options: Any
                    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """``x -> φ(x)`` for the no-grad inverse, with what does not depend on ``x``
        precomputed; a subclass may return a faster equivalent."""
        return lambda x: self.phi(x, *cond, gamma=gamma)

    @torch.no_grad()
    def inverse(self, y: torch.Tensor, *cond: Any, tol: float = 1e-6, max_iter: int = 200,
                gamma: torch.Tensor | float | None = None, certify: bool = True,
                iterations: int | None = None, **options: Any
                ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Invert :meth:`forward` by :func:`fixed_point` (``gamma``: a cached :meth:`gamma`)."""
        g = self.gamma() if gamma is None else gamma
        return fixed_point(self.inverse_phi(*cond, gamma=g, **options), y, self.c, tol,
                           max_iter, certify, iterations)


class InvertibleStack(nn.Module):
    """Stacked :class:`ContractiveResidual` blocks: ``forward`` (Eq. 6) and ``inverse``
    (Eq. 5, each block by Eq. 14). Subclasses set ``self.layers`` and may override
    :meth:`conditions` to turn the caller's conditioning into each block's arguments."""

    layers: nn.ModuleList

    def conditions(self, *cond: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The blocks' positional conditioning and the options of their fast inverse."""
        return cond, {}

    def forward(self, x: torch.Tensor, *cond: Any) -> torch.Tensor:
        args, _ = self.conditions(*cond)
        for layer in self.layers:
            x = layer(x, *args)
        return x

    @torch.no_grad()
    def inverse(self, z: torch.Tensor, *cond: Any, tol: float = 1e-6, max_iter: int = 200,
                constants: list[dict[str, Any]] | None = None, certify: bool = True,
                iterations: int | None = None) -> tuple[torch.Tensor, InverseInfo]:
        """Invert :meth:`forward`; the :class:`InverseInfo` says what was actually reached.
        ``constants`` (:meth:`inverse_constants`, in layer order) reuses cached values."""
        args, options = self.conditions(*cond)
        info = InverseInfo()
        x = z
        for i in reversed(range(len(self.layers))):
            cached = {} if constants is None else constants[i]
            x, block = self.layers[i].inverse(
                x, *args, tol=tol, max_iter=max_iter, certify=certify, iterations=iterations,
                **options, **cached)
            info.add(block)
        return x, info

    def inverse_constants(self) -> list[dict[str, Any]]:
        """Each block's :meth:`ContractiveResidual.inverse_constants`, in layer order."""
        return [layer.inverse_constants() for layer in self.layers]

    def lipschitz_bounds(self) -> list[float]:
        """The certified Lipschitz constant of each block's ``φ`` (``<= c`` by construction)."""
        return [layer.certified_lipschitz() for layer in self.layers]
