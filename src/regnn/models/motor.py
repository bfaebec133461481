r"""Motor processor: the Reversible Multi-dimensional Edge Graph Neural Network (REGNN).

Paper Sec. IV-C, Eqs. (10)-(15). A graph has ``I`` nodes (facial attributes) with ``D``-dim
features (a window of ``D`` frames), and conditioning edges ``e^0`` (``P`` channels, from the
MEFL block of :mod:`regnn.models.cognitive`; layout ``e0[..., p, i, j]`` = edge ``j -> i``).
A layer maps ``v -> v + φ(v)`` (Eq. 12) with

.. math::

    s = \mathrm{Sig}(v), \qquad
    l_{ij} = \frac{(s_i W_q)(s_j W_m)^\top}{\sqrt{d_k}}, \qquad
    a_{ji} = \operatorname{softmax}_{j \in \mathcal N_i} l_{ij}                     \quad (11)

    e_{ji,p} = \frac{a_{ji}\, e^0_{ji,p}}{\sum_{k \in \mathcal N_i} a_{ki}\, e^0_{ki,p}}
             = \operatorname{softmax}_{j \in \mathcal N_i}(l_{ij} + \log e^0_{ji,p}) \quad (10)

    φ(v)_i = γ \sum_p w_{e,p} \sum_{j \in \mathcal N_i} e_{ji,p}\, s_j                 \quad (13)

(the softmax normaliser of Eq. 11 cancels in Eq. 10, so each channel is an attention with a
fixed log-bias; ``Σ_p w_p e_{·,p}`` is applied as one ``I x I`` matrix).

**The normalisation before the sigmoid** (Sec. IV-C: the node features are "pre-processed by a
normalization layer and a Sigmoid activation"), ``model.motor_norm``: ``s_i = Sig(a_i v_i +
b_i)`` with a learned scale ``a_i > 0`` and shift ``b_i`` per node, i.e. a normalisation with
frozen statistics. A data-dependent normalisation (LayerNorm, batch statistics) has no global
Lipschitz bound, and the guarantee below needs one; this one multiplies the sigmoid's bound
by ``max_i a_i``. Without it (``motor_norm: false``) a ``[0, 1]`` attribute only reaches the
sigmoid's range ``[0.5, 0.73]``; the default ``a = 4, b = -2`` maps ``[0, 1]`` onto
``[0.12, 0.88]``.

**Lipschitz bound (proved here; replaces the heuristic Eq. 15).** Norm: Frobenius over the
``I x D`` graph. Let ``δ`` bound the out-degree of every node including its self loop
(``δ = min(I, top_k + 1)``). For one channel ``p`` let ``Π`` be the row-stochastic matrix of
Eq. (10) and ``m(s) = Π(s) s``. Then ``dm = Π ds + C``, ``C_i = Σ_j π_ij (s_j - s̄_i) dl_ij``.

1. ``Π`` has rows summing to 1 and, as a node has at most ``δ`` outgoing edges and
   ``π_ij <= 1``, columns summing to at most ``δ``; so ``‖Π‖_2 <= sqrt(‖Π‖_1 ‖Π‖_∞) <= sqrt(δ)``.
2. By Cauchy-Schwarz under ``π_i·``: ``‖C_i‖ <= sqrt(Var_π(s)) · sqrt(E_π[dl_ij²])``.
   As ``s ∈ (0,1)^D`` every coordinate has variance ``<= 1/4``: ``sqrt(Var) <= sqrt(D)/2``.
   ``dl_ij = (ds_i W_q)·k_j/√d_k + q_i·(ds_j W_m)/√d_k`` with ``‖k_j‖ <= ‖W_m‖_2 sqrt(D)``,
   ``‖q_i‖ <= ‖W_q‖_2 sqrt(D)``, so
   ``sqrt(E_π dl²) <= (sqrt(D) ‖W_q‖_2 ‖W_m‖_2 / √d_k)(‖ds_i‖ + sqrt(Σ_j π_ij ‖ds_j‖²))``.
   Summing squares over ``i`` (columns of ``Π`` sum to ``<= δ`` again):
   ``‖C‖ <= (D / (2√d_k)) ‖W_q‖_2 ‖W_m‖_2 (1 + sqrt(δ)) ‖ds‖``.
3. The sigmoid is 1/4-Lipschitz (``max_i a_i / 4`` after the normalisation) and the
   channels are combined by ``w_e``; hence

.. math::

    \mathrm{Lip}(φ/γ) \le B = \tfrac{\max_i a_i}{4} \|w_e\|_1 \Big(\sqrt δ
        + \tfrac{D}{2\sqrt{d_k}} \|W_q\|_2 \|W_m\|_2 (1+\sqrt δ)\Big)

   (``max_i a_i = 1`` without the normalisation).

The layer uses ``γ = c / max(B, c)`` with the exact spectral norms (``torch.linalg.matrix_norm``
with ``ord=2``, not a power-iteration estimate), so ``Lip(φ) <= c < 1`` for *any* weights,
trained or not. Consequences (Banach fixed point): the inverse ``x = y - φ(x)`` (Eq. 14) has a
unique solution reached by iteration with error ``<= c^k/(1-c) ‖x_1 - x_0‖``; after stopping,
``‖x - x*‖ <= ‖x + φ(x) - y‖ / (1 - c)`` certifies the result; and the layer is bi-Lipschitz,
``(1-c)‖a-b‖ <= ‖f(a)-f(b)‖ <= (1+c)‖a-b‖``, which stops training from collapsing latents.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from regnn.errors import ConfigError
from regnn.models.invertible import ContractiveResidual, InverseInfo, InvertibleStack

__all__ = ["EDGE_FLOOR", "EXP_FLOOR", "InverseInfo", "REGNNLayer", "REGNNMotor", "prepare_edges"]

EDGE_FLOOR = 1e-6  # keeps Eq. (10)'s denominator positive for edges with ~0 MEFL weight
#: floor of the row-shifted logits before ``exp`` (guarded softmax): ``exp(-80) ≈ 1.8e-35`` is
#: still a normal float32, so ``exp`` stays on its fast vector path. PyTorch's CPU ``exp`` runs
#: 20-60x slower on inputs whose result underflows (``-inf`` from the mask, or below about
#: ``-87``), which made the masked softmax the costliest step of the motor inverse. Off the
#: adjacency ``e0 = 0`` zeroes the floored entries exactly; on it a term below ``e^-80`` times the
#: row's largest is raised to ``e^-80`` times it, a relative change under ``2e-35``.
EXP_FLOOR = -80.0


def prepare_edges(edges: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
    """Initial edge features ``e^0`` for the motor: floored on existing edges, 0 elsewhere."""
    return torch.where(adjacency[:, None], edges.clamp_min(EDGE_FLOOR), edges.new_zeros(()))


class REGNNLayer(ContractiveResidual):
    """One reversible REGNN layer, ``v -> v + φ(v)`` (Eqs. 10-13), ``Lip(φ) <= c`` (module doc);
    ``γ``, the forward map's contract and the fixed-point inverse (Eq. 14) come from
    :class:`~regnn.models.invertible.ContractiveResidual`.

    Shapes: ``x (B, M, I, D)`` (``M`` graphs share one speaker's edges), ``e0 (B, P, I, I)``,
    ``adjacency (B, I, I)``.
    """

    def __init__(self, node_dim: int, edge_channels: int, key_dim: int = 16,
                 max_out_degree: int = 7, lipschitz: float = 0.9, nodes: int = 25,
                 norm: bool = False) -> None:
        super().__init__()
        self.set_lipschitz(lipschitz)
        self.node_dim, self.key_dim, self.nodes = node_dim, key_dim, nodes
        self.max_out_degree = max_out_degree
        std = 0.1 / math.sqrt(node_dim)
        self.w_q = nn.Parameter(torch.randn(node_dim, key_dim) * std)
        self.w_m = nn.Parameter(torch.randn(node_dim, key_dim) * std)
        self.w_e = nn.Parameter(torch.full((edge_channels,), 1.0 / edge_channels))
        # the normalisation before the sigmoid: s = Sig(a v + b) per node, a = exp(log_a) > 0
        self.norm = norm
        if norm:
            self.log_a = nn.Parameter(torch.full((nodes, 1), math.log(4.0)))
            self.b = nn.Parameter(torch.full((nodes, 1), -2.0))

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        """``Sig(a ⊙ x + b)`` (with the normalisation) or ``Sig(x)``, ``x (..., I, D)``."""
        if self.norm:
            return torch.sigmoid(torch.addcmul(self.b, x, self.log_a.exp()))
        return torch.sigmoid(x)

    def lipschitz_bound(self) -> torch.Tensor:
        """``B`` of the module docstring: a Lipschitz bound of ``φ`` before scaling by ``γ``."""
        sq = math.sqrt(self.max_out_degree)
        nq = torch.linalg.matrix_norm(self.w_q, ord=2)
        nm = torch.linalg.matrix_norm(self.w_m, ord=2)
        attn = self.node_dim / (2.0 * math.sqrt(self.key_dim)) * nq * nm * (1.0 + sq)
        bound = 0.25 * self.w_e.abs().sum() * (sq + attn)
        return bound * self.log_a.max().exp() if self.norm else bound

    @torch.no_grad()
    def first_step_bound(self, gamma: torch.Tensor | float | None = None) -> float:
        r"""A bound of the fixed-point iteration's first step ``‖x_1 - x_0‖ = ‖φ(y)‖`` (Frobenius
        over the ``I x D`` graph) that holds for *every* input ``y`` and every edge set:
        ``‖φ(y)‖ <= γ ‖w_e‖_1 sqrt(I D)``.

        Derivation. ``φ(y) = γ Σ_p w_p Π_p s`` (Eq. 13 with the channels of Eq. 10 kept apart)
        with ``s = Sig(·) ∈ (0, 1)^{I x D}`` (with or without the normalisation: a sigmoid's
        range) and ``Π_p`` the attention of channel ``p``: its entries are ``>= 0`` (``exp`` of
        the logits times the non-negative ``e^0``, divided by their positive row sum) and each
        row sums to 1 (Eq. 10 normalises over the neighbours, and ``e^0 >= EDGE_FLOOR`` on the
        adjacency, which holds the self loop). So row ``i`` of ``Π_p s`` is a convex combination
        of rows of ``s``, a point of ``(0, 1)^D``, of norm ``< sqrt(D)``; hence ``‖Π_p s‖ <
        sqrt(I D)`` and, by the triangle inequality over the channels, ``‖φ(y)‖ <= γ Σ_p |w_p|
        sqrt(I D)``. Nothing here depends on ``y``, the weights ``W_q, W_m`` or the edges,
        which is what lets :func:`~regnn.models.invertible.iterations_for` fix the number of
        iterations of the inverse in advance (the exported inverse). The bound is returned
        ``1e-5`` larger (relative): ``φ`` computed in float32 may round above the exact value
        when every ``s`` is 1 to float precision.
        """
        g = self.gamma() if gamma is None else gamma
        return float(torch.as_tensor(g) * self.w_e.detach().abs().sum()) * math.sqrt(
            self.nodes * self.node_dim) * (1.0 + 1e-5)

    def logit_bound(self) -> float:
        """``max |l_ij|`` over ``s ∈ (0,1)^D``: ``D ‖W_q‖_2 ‖W_m‖_2 / √d_k``."""
        with torch.no_grad():
            nq = torch.linalg.matrix_norm(self.w_q, ord=2)
            nm = torch.linalg.matrix_norm(self.w_m, ord=2)
            return float(self.node_dim * nq * nm / math.sqrt(self.key_dim))

    @staticmethod
    def edge_operands(e0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``e0`` laid out for Eq. (10)'s batched products: ``(B, I, J, P)`` and
        ``(B, I, P, J)``. They hold no layer parameter (``w_e`` is applied to the smaller
        ``(B, I, M, P)`` reciprocals), so one pair serves every layer and every iteration."""
        # contiguous once here, so that the batched products do not copy them
        return e0.permute(0, 2, 3, 1).contiguous(), e0.permute(0, 2, 1, 3).contiguous()

    def qk_weight(self) -> torch.Tensor:
        """``[W_q / √d_k | W_m]`` ``(D, 2 d_k)``: query and key of Eq. (11) in one product, the
        logit scale folded into the small weight instead of the ``I x I`` logits (exact for
        ``d_k = 16``, a power of 4)."""
        return torch.cat([self.w_q * (1.0 / math.sqrt(self.key_dim)), self.w_m], dim=1)

    def propagation(self, x: torch.Tensor, e0: torch.Tensor, adjacency: torch.Tensor,
                    gamma: torch.Tensor | float | None = None, safe_exp: bool | None = None,
                    operands: tuple[torch.Tensor, torch.Tensor] | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Π, s)`` with ``φ(x) = Π s`` (Eqs. 10-13 scaled by ``γ``): ``Π (B, M, I, J)``
        combines the channels by ``w_e`` and includes ``γ``; ``s = Sig(x) (B, M, I, D)``.

        ``e0`` is zero off the adjacency (:func:`prepare_edges`), which masks Eqs. (10)-(11) by
        itself. The logits are bounded (``s`` is a sigmoid), so the row-max shift of the
        softmax is only needed when that bound could overflow ``exp`` (``safe_exp=None``
        decides from :meth:`logit_bound`).
        """
        gamma = self.gamma() if gamma is None else gamma
        if safe_exp is None:
            safe_exp = self.logit_bound() > 60.0
        e_r, e_p = self.edge_operands(e0) if operands is None else operands
        dk = self.key_dim
        s = self.activation(x)  # (B, M, I, D)
        # q and k as unbind views of one product: backward stacks their gradients into one
        # buffer (slicing made it zero-fill and copy a buffer per slice)
        q, k = (s @ self.qk_weight()).unflatten(-1, (2, dk)).unbind(-2)  # (B, M, I, d_k)
        logits = q @ k.transpose(-1, -2)  # (B, M, I, J)
        if safe_exp:
            logits = logits.masked_fill(~adjacency[:, None], float("-inf"))
            # the row shift cancels in Eq. 10, so it needs no gradient (saves amax's backward)
            shift = logits.detach().amax(dim=-1, keepdim=True)
            logits = (logits - shift).clamp_min(EXP_FLOOR)
        # Eq. 11 up to its normaliser, which cancels in Eq. 10; laid out (B, I, M, J) once so
        # that the two per-node products below are plain batched matmuls without copies
        a = torch.exp(logits).transpose(1, 2).contiguous()
        r = a @ e_r  # (B, I, M, P): Eq. 10 denominators, per channel
        # Σ_p γ w_p e0_p / r_p: γ w_e applied to the (B, I, M, P) reciprocals, the smallest
        # operand
        coef = (r.reciprocal() * (gamma * self.w_e)) @ e_p  # (B, I, M, J)
        # channels combined by w_e, back to (B, M, I, J) contiguous (a transposed operand
        # sends the batched product down a ~6x slower path)
        return (a * coef).transpose(1, 2).contiguous(), s

    def phi(self, x: torch.Tensor, e0: torch.Tensor, adjacency: torch.Tensor,  # type: ignore[override]
            gamma: torch.Tensor | float | None = None, safe_exp: bool | None = None,
            operands: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``φ(x)`` of Eqs. (10)-(13), scaled by ``γ`` (see :meth:`propagation`)."""
        pi, s = self.propagation(x, e0, adjacency, gamma, safe_exp, operands)
        return pi @ s  # Eq. 13

    def forward(self, x: torch.Tensor, e0: torch.Tensor,  # type: ignore[override]
                adjacency: torch.Tensor,
                operands: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``x + φ(x)`` (Eq. 12), the sum fused into the product of Eq. 13."""
        pi, s = self.propagation(x, e0, adjacency, operands=operands)
        I, D = x.shape[-2:]
        out = torch.baddbmm(x.reshape(-1, I, D), pi.reshape(-1, I, I), s.reshape(-1, I, D))
        return out.view(x.shape)

    @torch.no_grad()
    def inverse_constants(self) -> dict[str, Any]:
        """``γ`` and whether the softmax needs its overflow guard (both from spectral norms)."""
        return {"gamma": self.gamma(), "safe_exp": self.logit_bound() > 60.0}

    def inverse_phi(self, e0: torch.Tensor, adjacency: torch.Tensor, *,  # type: ignore[override]
                    gamma: torch.Tensor | float, safe_exp: bool | None = None,
                    operands: tuple[torch.Tensor, torch.Tensor] | None = None
                    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """:meth:`phi` for the no-grad inverse: the same operations with fewer temporaries
        (the query/key weight and ``γ w_e`` computed once, elementwise steps in place)."""
        safe = self.logit_bound() > 60.0 if safe_exp is None else safe_exp
        e_r, e_p = self.edge_operands(e0) if operands is None else operands
        w_qm = self.qk_weight()
        w = self.w_e.detach() * gamma
        dk = self.key_dim

        def phi(x: torch.Tensor) -> torch.Tensor:
            s = self.activation(x)
            qk = s @ w_qm
            logits = qk[..., :dk] @ qk[..., dk:].transpose(-1, -2)
            if safe:
                logits.masked_fill_(~adjacency[:, None], float("-inf"))
                logits.sub_(logits.amax(dim=-1, keepdim=True)).clamp_min_(EXP_FLOOR)
            a = logits.exp_().transpose(1, 2).contiguous()
            coef = (a @ e_r).reciprocal_().mul_(w) @ e_p
            return coef.mul_(a).transpose(1, 2).contiguous() @ s

        return phi


class REGNNMotor(InvertibleStack):
    """``N`` stacked REGNN layers (paper Fig. 4): ``forward`` reaction graph -> latent (Eq. 6),
    ``inverse`` latent -> reaction graph (Eq. 5, each layer by Eq. 14)."""

    def __init__(self, node_dim: int = 50, edge_channels: int = 8, layers: int = 2,
                 key_dim: int = 16, top_k: int = 6, nodes: int = 25,
                 lipschitz: float = 0.9, norm: bool = False) -> None:
        super().__init__()
        if layers < 1:
            raise ConfigError(f"the motor needs at least one layer, got {layers}")
        degree = min(nodes, top_k + 1)
        self.layers = nn.ModuleList(
            REGNNLayer(node_dim, edge_channels, key_dim, degree, lipschitz, nodes, norm)
            for _ in range(layers)
        )
        self.lipschitz = lipschitz

    @staticmethod
    def _graphs(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        return (x[:, None], True) if x.dim() == 3 else (x, False)

    def conditions(self, edges: torch.Tensor, adjacency: torch.Tensor  # type: ignore[override]
                   ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``e0`` (:func:`prepare_edges`) and its matmul layouts, shared by every layer."""
        e0 = prepare_edges(edges, adjacency)
        ops = REGNNLayer.edge_operands(e0)
        return (e0, adjacency), {"operands": ops}

    def forward(self, x: torch.Tensor, edges: torch.Tensor,  # type: ignore[override]
                adjacency: torch.Tensor) -> torch.Tensor:
        """``x (B, I, D)`` or ``(B, M, I, D)``; edges ``(B, P, I, I)``; adjacency ``(B, I, I)``."""
        x, squeeze = self._graphs(x)
        x = x.contiguous()  # reaction windows arrive as (D, I) transposed views; copy once
        (e0, adj), options = self.conditions(edges, adjacency)
        for layer in self.layers:
            x = layer(x, e0, adj, options["operands"])
        return x[:, 0] if squeeze else x

    @torch.no_grad()
    def inverse(self, z: torch.Tensor, edges: torch.Tensor,  # type: ignore[override]
                adjacency: torch.Tensor, tol: float = 1e-6, max_iter: int = 200,
                constants: list[dict[str, Any]] | None = None, certify: bool = True,
                iterations: int | None = None, measure: bool = False
                ) -> tuple[torch.Tensor, InverseInfo]:
        """Invert :meth:`forward`; the :class:`InverseInfo` says what was actually reached."""
        x, squeeze = self._graphs(z)
        x = x.contiguous()  # latents built from Ẑp's transposed view; copy once, not per step
        x, info = super().inverse(x, edges, adjacency, tol=tol, max_iter=max_iter,
                                  constants=constants, certify=certify,
                                  iterations=iterations, measure=measure)
        return (x[:, 0] if squeeze else x), info
