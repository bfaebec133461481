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
    # max |x + φ(x) - y| after stopping: measured, or (``measured`` False) its bound
    # c max_graph ‖x_k - x_{k-1}‖_F from the last step (:func:`fixed_point`)
    residual: list[float] = field(default_factory=list)
    certified: list[float] = field(default_factory=list)  # a bound of max_graph ‖x - x*‖_F
    converged: bool = True
    measured: bool = True  # every block's residual measured by one more evaluation of φ

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
            self.measured = self.measured and block.get("measured", True)
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
            self.measured and other.measured,
        )

    def as_dict(self) -> dict:
        return {
            "iterations": self.iterations, "max_iterations": self.max_iterations,
            "last_step": self.last_step, "residual": self.residual,
            "max_residual": self.max_residual, "certified_error": self.certified,
            "residual_measured": self.measured, "converged": self.converged,
        }


def check_lipschitz(c: float) -> float:
    if not 0.0 < c < 1.0:
        raise ConfigError(f"the Lipschitz constant c of an invertible block must be in (0, 1), "
                          f"got {c}")
    return c


@torch.no_grad()
def fixed_point(phi: Callable[[torch.Tensor], torch.Tensor], y: torch.Tensor, c: float,
                tol: float = 1e-6, max_iter: int = 200, certify: bool = True,
                iterations: int | None = None, measure: bool = False
                ) -> tuple[torch.Tensor, dict[str, Any]]:
    """Solve ``x + φ(x) = y`` by ``x_{k+1} = y - φ(x_k)`` from ``x_0 = y`` (Eq. 14).

    Stops when ``max |x_k - x_{k-1}| <= tol`` or after ``max_iter`` steps, or runs exactly
    ``iterations`` steps when given. With ``certify`` also returns a certified error of the
    returned ``x_{k+1}`` and its residual ``max |x + φ(x) - y|`` (Frobenius norms over the last
    two axes, the worst graph):

    * by default from the last step alone, at no extra cost (Banach's a-posteriori estimate):
      ``‖x_{k+1} - x*‖ <= c/(1-c) ‖x_{k+1} - x_k‖`` and, as ``x_{k+1} + φ(x_{k+1}) - y =
      φ(x_{k+1}) - φ(x_k)``, the residual is at most ``c ‖x_{k+1} - x_k‖`` (reported as
      ``residual`` with ``measured: False``);
    * with ``measure``, by one more evaluation of ``φ``: the measured residual ``r`` and
      ``‖r‖ / (1 - c)`` (``measured: True``).

    Either way the returned ``x`` is the same. ``phi`` must return a new tensor of ``y``'s
    shape on every call: the iteration writes ``y - φ(x)`` into it and reuses the previous
    iterate's buffer for the step (no allocation per step beyond φ's own).
    """
    x, step, it = y, float("inf"), 0
    last = None  # x_k - x_{k+1} of the final step
    limit = max_iter if iterations is None else iterations
    for it in range(1, limit + 1):  # noqa: B007 - `it` is reported
        x_new = phi(x)
        x_new = torch.sub(y, x_new, out=x_new)  # y - φ(x) in φ's fresh buffer
        if iterations is None or it == limit:
            # x_k is not needed after this step (unless it is y): its buffer takes the step
            last = x.sub(x_new) if x is y else x.sub_(x_new)
            if x.numel():
                lo, hi = torch.aminmax(last)  # max |step| without an |.| temporary
                step = max(-lo.item(), hi.item())
            else:
                step = 0.0
        x = x_new
        if iterations is None and step <= tol:
            break
    info: dict[str, Any] = {"iterations": it, "last_step": step,
                            "converged": step <= tol or iterations is not None}
    if certify:
        if not x.numel():
            info.update(residual=0.0, certified=0.0, measured=measure)
        elif measure or last is None:
            res = phi(x).add_(x).sub_(y)
            info["residual"] = res.abs().max().item()
            info["certified"] = res.flatten(-2).norm(dim=-1).max().item() / (1.0 - c)
            info["measured"] = True
        else:
            d = last.flatten(-2).norm(dim=-1).max().item()
            info.update(residual=c * d, certified=c * d / (1.0 - c), measured=False)
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
                iterations: int | None = None, measure: bool = False, **options: Any
                ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Invert :meth:`forward` by :func:`fixed_point` (``gamma``: a cached :meth:`gamma`)."""
        g = self.gamma() if gamma is None else gamma
        return fixed_point(self.inverse_phi(*cond, gamma=g, **options), y, self.c, tol,
                           max_iter, certify, iterations, measure)


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
                iterations: int | None = None, measure: bool = False
                ) -> tuple[torch.Tensor, InverseInfo]:
        """Invert :meth:`forward`; the :class:`InverseInfo` says what was actually reached.
        ``constants`` (:meth:`inverse_constants`, in layer order) reuses cached values;
        ``measure``: residuals measured, not bounded (:func:`fixed_point`)."""
        args, options = self.conditions(*cond)
        info = InverseInfo()
        x = z
        for i in reversed(range(len(self.layers))):
            cached = {} if constants is None else constants[i]
            x, block = self.layers[i].inverse(
                x, *args, tol=tol, max_iter=max_iter, certify=certify, iterations=iterations,
                measure=measure, **options, **cached)
            info.add(block)
        return x, info

    def inverse_constants(self) -> list[dict[str, Any]]:
        """Each block's :meth:`ContractiveResidual.inverse_constants`, in layer order."""
        return [layer.inverse_constants() for layer in self.layers]

    @torch.no_grad()
    def cached_constants(self) -> list[dict[str, Any]]:
        """:meth:`inverse_constants`, cached while the weights stay unchanged.

        ``γ`` needs spectral norms (SVDs) of each block's weights; recomputed on every inverse
        they cost a few percent of a whole clip's generation and a large share of one small
        streaming window. The cache is keyed by each parameter's version counter (bumped by
        an optimiser step or ``load_state_dict``) and storage (``.to(device)``), so it never
        serves stale constants."""
        key = tuple((p._version, p.data_ptr(), p.device) for p in self.parameters())
        if getattr(self, "_constants_key", None) != key:
            self._constants = self.inverse_constants()
            self._constants_key = key
        return self._constants

    def lipschitz_bounds(self) -> list[float]:
        """The certified Lipschitz constant of each block's ``φ`` (``<= c`` by construction)."""
        return [layer.certified_lipschitz() for layer in self.layers]
