"""Cognitive processor: the predicted reaction-distribution graph and its MEFL edges.

Paper Sec. IV-A, Eq. (4): ``Ẑp = COG(B̄)``. ``I`` projection heads (one per facial attribute)
read the fused speaker sequence frame by frame, so node ``i`` of ``Ẑp`` is a ``D``-frame
series aligned in time with the speaker window (the heads are implemented as one batched
two-layer MLP whose ``I`` outputs are the heads).

The MEFL block (multi-dimensional edge feature learning, Luo et al. [36], Sec. IV-A) runs
``P`` attention operations over the ``I`` nodes of ``Ẑp``; attention map ``p`` gives channel
``p`` of every directed edge, so edge ``j -> i`` carries a ``P``-dimensional feature. For
each node only the ``top_k`` outgoing edges with the largest feature norm are kept (a
vectorised ``torch.topk``; no Python loop), and every node keeps a self loop. ``P = 1`` is
the single-value-edge ablation.

**Several modes** (``model.modes = Q > 1``, this project's extension; ``Q = 1`` is the paper):
the heads predict ``Q`` candidate graphs ``Ẑp^1..Ẑp^Q`` and a small head the mixture weights
``π`` of the window, i.e. the cognitive processor predicts the *Gaussian mixture graph
distribution* of Sec. IV-B itself (its component means and weights) instead of one graph. A
speaker behaviour with several appropriate reaction styles then gets one component per style
rather than their blend (see :func:`regnn.models.afrdl.mixture_loss`). The MEFL edges are
computed from the mean of the components, so all components (and the latents they are compared
with) share one graph structure.

Layout convention shared with :mod:`regnn.models.motor`: ``edges[..., p, i, j]`` is channel
``p`` of the edge ``j -> i`` (row = receiving node), ``adjacency[..., i, j]`` says whether that
edge exists. Every node therefore has at most ``top_k + 1`` outgoing edges, which is what the
motor's Lipschitz bound uses.
"""

from __future__ import annotations

import torch
from torch import nn

from regnn.errors import ConfigError


class MEFL(nn.Module):
    """Multi-dimensional edge features with top-K neighbours (paper Sec. IV-A, after Eq. 4).

    ``forward(z (B, I, D)) -> (edges (B, P, I, I), adjacency (B, I, I) bool)``, where
    ``A_p = softmax_row((z W_q^p)(z W_k^p)^T / sqrt(d_k))`` and ``e_{j->i, p} = A_p[j, i]``.
    """

    def __init__(self, node_dim: int, channels: int = 8, key_dim: int = 16,
                 top_k: int = 6) -> None:
        super().__init__()
        if channels < 1:
            raise ConfigError(f"edge channels P must be >= 1, got {channels}")
        if top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {top_k}")
        self.channels, self.key_dim, self.top_k = channels, key_dim, top_k
        self.qk = nn.Sequential(
            nn.Linear(node_dim, node_dim), nn.GELU(),
            nn.Linear(node_dim, 2 * channels * key_dim, bias=False),
        )

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, I, _ = z.shape
        qk = self.qk(z).view(B, I, 2, self.channels, self.key_dim).permute(2, 0, 3, 1, 4)
        q, k = qk.unbind(0)  # (B, P, I, dk); backward stacks, no zero-filled buffer per index
        attn = torch.softmax(q @ k.transpose(-1, -2) / self.key_dim**0.5, dim=-1)  # [b,p,src,dst]
        # the channel norm as sqrt(Σ_p a_p²): a strided reduction over dim 1 in one pass
        # (linalg's norm over a middle dimension was ~10x slower)
        a = attn.detach()
        keep = top_k_mask((a * a).sum(dim=1).sqrt(), self.top_k)  # (B, src, dst)
        # the self loops as a float eye compared, not a bool eye: onnxruntime has no bool
        # EyeLike (ONNX export)
        adjacency = keep.transpose(-1, -2) | (torch.eye(I, dtype=z.dtype, device=z.device) > 0)
        edges = attn.transpose(-1, -2) * adjacency[:, None]
        return edges, adjacency


def top_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the ``k`` largest entries of each row of ``scores (..., n, n)``."""
    n = scores.shape[-1]
    if k >= n:
        return torch.ones_like(scores, dtype=torch.bool)
    idx = scores.topk(k, dim=-1).indices
    # scattered from a tensor, not the scalar True: the TorchScript tracer (ONNX export) has
    # no schema for a bool scalar scatter
    return torch.zeros_like(scores, dtype=torch.bool).scatter_(
        -1, idx, torch.ones_like(idx, dtype=torch.bool))


class CognitiveProcessor(nn.Module):
    """Predicts ``Ẑp`` (paper Eq. 4) and its MEFL edges from the fused speaker sequence.

    ``forward(fused (B, D, width)) -> (zp (B, I, D), edges (B, P, I, I), adjacency (B, I, I))``
    with one mode; :meth:`mixture` gives all ``Q`` modes and their weights.
    """

    def __init__(self, width: int = 128, nodes: int = 25, window: int = 50,
                 edge_channels: int = 8, edge_key_dim: int = 16, top_k: int = 6,
                 hidden: int | None = None, modes: int = 1) -> None:
        super().__init__()
        if modes < 1:
            raise ConfigError(f"model.modes must be >= 1, got {modes}")
        hidden = hidden or width
        self.nodes, self.window, self.modes = nodes, window, modes
        self.heads = nn.Sequential(nn.Linear(width, hidden), nn.GELU(),
                                   nn.Linear(hidden, modes * nodes))
        # mixture weights of the window from its pooled (detached) speaker representation
        self.weights = nn.Linear(width, modes) if modes > 1 else None
        self.mefl = MEFL(window, edge_channels, edge_key_dim, top_k)

    def mixture(self, fused: torch.Tensor, prior: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(modes (B, Q, I, D), logits (B, Q), edges (B, P, I, I), adjacency (B, I, I))``.

        ``prior (B, I, D)``, when given, is added to every mode (a residual path). The logits'
        head reads the fused sequence detached: its cross-entropy trains only itself.
        """
        if fused.shape[1] != self.window:
            raise ConfigError(f"the cognitive processor was built for {self.window}-frame windows, "
                              f"got {fused.shape[1]} frames")
        B, D = fused.shape[:2]
        zp = self.heads(fused).view(B, D, self.modes, self.nodes).permute(0, 2, 3, 1)
        if prior is not None:
            zp = zp + prior[:, None]
        if self.weights is None:
            logits = zp.new_zeros(B, 1)
        else:
            logits = self.weights(fused.detach().mean(dim=1))
        edges, adjacency = self.mefl(zp[:, 0] if self.modes == 1 else zp.mean(dim=1))
        return zp, logits, edges, adjacency

    def forward(self, fused: torch.Tensor, prior: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One graph per window: the only mode, or the mixture's weighted mean."""
        zp, logits, edges, adjacency = self.mixture(fused, prior)
        if self.modes == 1:
            return zp[:, 0], edges, adjacency
        pi = torch.softmax(logits, dim=1)
        return (pi[:, :, None, None] * zp).sum(dim=1), edges, adjacency
