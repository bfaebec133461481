"""AFRDL, the appropriate facial reaction distribution learning of paper Sec. IV-B: the
distribution term (Eqs. 8-9, with this project's mixture form), the agreement term (Eq. 7) and
the within-component spread behind the "residual" sampling noise.

Latents ``(B, M, I, D)`` are the motor-forward images (Eq. 6) of the ``M`` appropriate real
reactions of a speaker window, ``valid (B, M)`` marks the real ones. The forms and their
reasons are documented in :mod:`regnn.models.regnn`, the model that uses them.
"""

from __future__ import annotations

import torch

from regnn.errors import ConfigError


@torch.no_grad()
def component_spread(latents: torch.Tensor, valid: torch.Tensor, assign: torch.Tensor,
                     components: int) -> tuple[torch.Tensor, torch.Tensor]:
    """How the real latents of one mixture component differ from each other: for every valid
    latent whose component holds at least two latents of its window, its deviation from their
    mean, scaled by ``sqrt(n / (n - 1))`` (unbiased). Returns ``(deviations (B, M, I, D),
    mask (B, M))``. These are what the "residual" noise imitates: the spread of the
    appropriate reactions within a mode, not the model's own error."""
    member = torch.nn.functional.one_hot(assign, components).to(latents.dtype)
    member = member * valid[..., None].to(latents.dtype)  # (B, M, Q)
    count = member.sum(1)  # (B, Q)
    mean = torch.einsum("bmq,bmid->bqid", member, latents) / count.clamp_min(1)[..., None, None]
    n = count.gather(1, assign)  # (B, M)
    own = mean.gather(1, assign[:, :, None, None].expand_as(latents))
    scale = (n / (n - 1).clamp_min(1)).sqrt()[..., None, None]
    return (latents - own) * scale, valid & (n >= 2)


def mixture_loss(modes: torch.Tensor, logits: torch.Tensor, latents: torch.Tensor,
                 valid: torch.Tensor, precision_weight: float = 0.1,
                 groups: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. (9) for a predicted mixture: ``modes (B, Q, I, D)`` and ``logits (B, Q)`` against
    the real GMM of ``latents (B, M, I, D)`` (``valid (B, M)``).

    Each appropriate latent ``m`` is assigned to the component nearest to it (MSE), decided
    over all windows of its group (``groups (B,)``: the windows of one clip chunk, whose slot
    ``m`` holds one listener; ``None``: every window alone), so a component follows one
    listener's reaction through the chunk. Returns ``(distribution, weights, assign)``:

    * ``distribution`` = the MSE of each valid latent to its component, averaged per window
      and then over windows (coverage: every appropriate reaction has a component) +
      ``precision_weight`` x mean over components of the MSE to their nearest valid latent,
      decided per group likewise (precision: no component off the data);
    * ``weights`` = cross-entropy between the softmax of ``logits`` and the share of the
      group's valid latents assigned to each component (the mixture weights, Eq. 8's GMM);
    * ``assign (B, M)``: the component of each latent.

    With ``Q = 1`` the coverage term is the mean MSE to the latents (their mean minimises it).
    """
    B, Q = modes.shape[:2]
    a, b = modes.flatten(2), latents.flatten(2)  # (B, Q, L), (B, M, L)
    # |a - b|² = |a|² + |b|² - 2 a·b: one batched product, no (B, Q, M, L) temporary
    d2 = (a.square().sum(-1)[:, :, None] + b.square().sum(-1)[:, None, :]
          - 2.0 * (a @ b.transpose(1, 2))).clamp_min(0.0) / a.shape[-1]  # (B, Q, M)
    validf = valid.to(d2.dtype)
    if groups is None:
        gid, n_groups = torch.arange(B, device=d2.device), B
    else:
        gid = torch.unique(groups, return_inverse=True)[1]
        n_groups = int(gid.max()) + 1
    with torch.no_grad():
        total = d2.new_zeros(n_groups, Q, d2.shape[2]).index_add_(
            0, gid, d2.detach() * validf[:, None])  # (G, Q, M) summed over the group
        gvalid = d2.new_zeros(n_groups, d2.shape[2]).index_add_(0, gid, validf) > 0
        assign_g = total.argmin(dim=1)  # (G, M)
        # each component's nearest valid latent over the group
        near_g = total.masked_fill(~gvalid[:, None], float("inf")).argmin(dim=2)  # (G, Q)
    assign = assign_g[gid]  # (B, M)
    cover = d2.gather(1, assign[:, None]).squeeze(1)  # (B, M)
    # per window the mean over its valid latents, then the mean over windows (DDP-exact)
    coverage = ((cover * validf).sum(1) / validf.sum(1).clamp_min(1.0)).mean()
    precision = d2.gather(2, near_g[gid][:, :, None]).squeeze(2).mean()  # (B, Q) -> mean
    if Q == 1:
        weights = coverage.new_zeros(())
    else:
        share = torch.nn.functional.one_hot(assign_g, Q).to(d2.dtype) * gvalid[..., None]
        share = share.sum(1) / gvalid.sum(1, keepdim=True).clamp_min(1)  # (G, Q)
        weights = -(share[gid] * torch.log_softmax(logits, dim=-1)).sum(-1).mean()
    return coverage + precision_weight * precision, weights, assign


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


def agreement_loss(latents: torch.Tensor, valid: torch.Tensor,
                   groups: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. (7), normalised: for each window the mean over its valid pairs ``m1 < m2`` of
    ``mean |ḡ_m1 - ḡ_m2|``, averaged over the windows (a window without a pair counts 0).

    With ``groups (B, M)`` only the pairs within one group count (the latents assigned to the
    same mixture component). A mean over windows of per-window terms, so the mean of DDP
    processes' gradients on their shares is the gradient of the whole batch.

    On CPU (float32/float64) the pair sums and their gradient come from one numba pass per
    group (:mod:`regnn.models._agreement_kernel`); elsewhere from ``torch.cdist``. The two give
    the same value and gradient up to float rounding (``sign(0) = 0`` in both).
    """
    B, M = valid.shape
    if M < 2:
        return latents.new_zeros(())
    flat = latents.reshape(B, M, -1)
    if flat.device.type != "cpu" or flat.dtype not in (torch.float32, torch.float64):
        return _agreement_loss_cdist(flat, valid, groups)
    members = ([valid] if groups is None else
               [valid & (groups == g) for g in torch.unique(groups[valid]).tolist()])
    counts = [m.sum(1) for m in members]
    pairs = sum(c * (c - 1) for c in counts) // 2  # (B,) pairs per window
    if int(pairs.sum()) == 0:
        return latents.new_zeros(())
    # weight of window b's pair sums: 1 / (its pairs x L x B)
    npairs = pairs.to(flat.dtype)
    w = torch.where(pairs > 0, 1.0 / (npairs.clamp_min(1) * flat.shape[-1] * B), 0.0)
    total = latents.new_zeros(())
    for member, count in zip(members, counts):
        if int((count * (count - 1)).sum()):
            total = total + _pairwise_l1(flat, member, w)
    return total


@torch.compiler.disable  # a numba call: torch.compile leaves it to eager (a graph break)
def _pairwise_l1(flat: torch.Tensor, valid: torch.Tensor, weight: torch.Tensor
                 ) -> torch.Tensor:
    return _PairwiseL1.apply(flat, valid, weight)


def _agreement_loss_cdist(flat: torch.Tensor, valid: torch.Tensor,
                          groups: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`agreement_loss` by ``torch.cdist`` (any device); ``flat (B, M, L)``."""
    B, M = valid.shape
    dist = torch.cdist(flat, flat, p=1) / flat.shape[-1]  # (B, M, M)
    pair = valid[:, :, None] & valid[:, None, :]
    pair = pair & torch.ones(M, M, dtype=torch.bool, device=valid.device).triu(1)
    if groups is not None:
        pair = pair & (groups[:, :, None] == groups[:, None, :])
    n = pair.sum(dim=(1, 2))  # (B,)
    if int(n.sum()) == 0:
        return flat.new_zeros(())
    per_window = (dist * pair).sum(dim=(1, 2)) / n.clamp_min(1)
    return per_window.sum() / B


class _PairwiseL1(torch.autograd.Function):
    """``Σ_b w_b Σ_{valid m1<m2} ‖x[b,m1] - x[b,m2]‖_1`` for CPU ``x (B, M, L)``, numba kernel."""

    @staticmethod
    def forward(ctx, flat: torch.Tensor, valid: torch.Tensor,  # type: ignore[override]
                weight: torch.Tensor) -> torch.Tensor:
        from regnn.models._agreement_kernel import pairwise_l1

        x = flat.detach().contiguous().numpy()
        sums, signs = pairwise_l1(x, valid.detach().cpu().numpy())
        w = weight.detach().cpu().numpy()
        ctx.save_for_backward(torch.from_numpy(signs) * weight[:, None, None])
        return torch.tensor(float((sums * w).sum()), dtype=flat.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor  # type: ignore[override]
                 ) -> tuple[torch.Tensor, None, None]:
        (signs,) = ctx.saved_tensors
        return signs * grad, None, None
