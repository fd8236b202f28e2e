"""Within-group cross-modal terms: align the cells *inside* a group across modalities.

GroupCLIP pulls the cells of one group in modality a towards the cells of the same group in
modality b, but says nothing about *which* cells inside the group correspond. The terms here act
on the same-group blocks of a minibatch (one block per group present in both modalities),
padded into ``(groups, cells, cells)`` tensors, so every group of the batch is handled by one
vectorised program:

- ``"sinkhorn"``: a debiased Sinkhorn divergence per group on squared Euclidean latent
  distances, ``S = <P_ab, C_ab> - (<P_aa, C_aa> + <P_bb, C_bb>) / 2`` with each ``P`` the
  entropic OT plan of its block (uniform masses within each group; plans held fixed in the
  gradient, the envelope-theorem gradient of entropic OT). It matches the two modalities'
  within-group distributions.
- ``"mmd"``: the squared maximum mean discrepancy per group with a Gaussian kernel
  ``exp(-d^2 / h)`` (``h``: the lower median of the same-group squared distances between the
  modalities in the batch, held fixed), also a distribution match.
- ``"ot_clip"``: OT-guided soft positives. Per group, the entropic OT plan between the two
  modalities' latents (no gradient) gives soft targets ``Q`` (row-normalised) for a CLIP-style
  cross-entropy over the same-group similarities: ``-sum_j Q_ij log softmax_j(s_ij / tau)``,
  symmetrised. It sharpens the current within-group correspondence.

Each term is averaged over the groups present in both modalities of the batch (0 when none).
Unlabeled cells (negative labels) take no part.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations
from typing import Literal

import torch

from ._clip import DEFAULT_TEMPERATURE, similarity_kind, similarity_matrix

WithinGroup = Literal["sinkhorn", "mmd", "ot_clip"]

#: The within-group term GROOVE adds by default and its weight (chosen without the truth, by
#: held-out merged groups; see the "Real co-assayed data" page).
DEFAULT_WITHIN_GROUP: WithinGroup = "ot_clip"
DEFAULT_GAMMA = 3.0
#: Default entropic regularisation, relative to the mean same-group squared distance.
DEFAULT_WITHIN_EPSILON = 0.05
#: Sinkhorn iterations per step (batch-sized blocks converge well within this).
DEFAULT_WITHIN_ITER = 50


def _shared_groups(labels_a: torch.Tensor, labels_b: torch.Tensor):
    """Masks of the cells whose (non-negative) group occurs in the other set."""
    keep_a = (labels_a >= 0) & torch.isin(labels_a, labels_b[labels_b >= 0])
    keep_b = (labels_b >= 0) & torch.isin(labels_b, labels_a[labels_a >= 0])
    return keep_a, keep_b


def _pad_by_group(z: torch.Tensor, codes: torch.Tensor, n_groups: int):
    """``(G, k_max, d)`` latents of each group (zero padding) and the ``(G, k_max)`` mask."""
    order = torch.argsort(codes, stable=True)
    counts = torch.bincount(codes, minlength=n_groups)
    starts = torch.cumsum(counts, 0) - counts
    sorted_codes = codes[order]
    slot = torch.arange(len(codes), device=z.device) - starts[sorted_codes]
    k_max = int(counts.max())
    out = z.new_zeros(n_groups, k_max, z.shape[1])
    out[sorted_codes, slot] = z[order]
    mask = torch.zeros(n_groups, k_max, dtype=torch.bool, device=z.device)
    mask[sorted_codes, slot] = True
    return out, mask


def sqdist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between the rows of ``x`` and ``y`` (batched over leading dims).

    Examples
    --------
    >>> sqdist(torch.zeros(2, 3), torch.ones(4, 3)).shape
    torch.Size([2, 4])

    """
    sq = (x * x).sum(-1)[..., :, None] + (y * y).sum(-1)[..., None, :]
    return (sq - 2.0 * x @ y.transpose(-1, -2)).clamp_min(0.0)


@torch.no_grad()
def batched_sinkhorn_plan(
    cost: torch.Tensor,
    mask_a: torch.Tensor,
    mask_b: torch.Tensor,
    epsilon: float,
    n_iter: int = DEFAULT_WITHIN_ITER,
) -> torch.Tensor:
    """Entropic OT plans of independent padded blocks, uniform masses (log-domain, no gradient).

    Parameters
    ----------
    cost
        ``(G, n, m)`` costs; padded rows/columns are ignored.
    mask_a, mask_b
        ``(G, n)`` and ``(G, m)`` real cells of each block (each block has at least one of each).
    epsilon
        Absolute entropic regularisation.
    n_iter
        Sinkhorn iterations.

    Returns
    -------
    ``(G, n, m)`` plans, each of total mass 1, zero on padding.

    Examples
    --------
    >>> P = batched_sinkhorn_plan(torch.rand(2, 3, 4), torch.ones(2, 3, dtype=torch.bool),
    ...                           torch.ones(2, 4, dtype=torch.bool), 0.1)
    >>> [round(float(v), 3) for v in P.sum((1, 2))]
    [1.0, 1.0]

    """
    neg_inf = torch.finfo(cost.dtype).min
    pair = mask_a[:, :, None] & mask_b[:, None, :]
    kernel = (-cost / epsilon).masked_fill(~pair, neg_inf)
    log_a = -torch.log(mask_a.sum(1, keepdim=True).to(cost.dtype)).expand_as(mask_a)
    log_b = -torch.log(mask_b.sum(1, keepdim=True).to(cost.dtype)).expand_as(mask_b)
    log_a = log_a.masked_fill(~mask_a, neg_inf)
    log_b = log_b.masked_fill(~mask_b, neg_inf)
    f = torch.zeros_like(log_a)
    g = torch.zeros_like(log_b)
    for _ in range(n_iter):
        f = -torch.logsumexp(kernel + (g + log_b)[:, None, :], dim=2)
        g = -torch.logsumexp(kernel + (f + log_a)[:, :, None], dim=1)
    log_plan = kernel + (f + log_a)[:, :, None] + (g + log_b)[:, None, :]
    return log_plan.exp().masked_fill(~pair, 0.0)


def _scale(cost: torch.Tensor, pair: torch.Tensor) -> float:
    vals = cost.detach()[pair]
    scale = float(vals.mean()) if vals.numel() else 1.0
    return scale if scale > 0 else 1.0


def _pair(ma: torch.Tensor, mb: torch.Tensor) -> torch.Tensor:
    return ma[:, :, None] & mb[:, None, :]


def _sinkhorn_divergence(za, zb, ma, mb, *, epsilon: float, n_iter: int, **_) -> torch.Tensor:
    c_ab = sqdist(za, zb)
    eps = epsilon * _scale(c_ab, _pair(ma, mb))

    def transport(c, mx, my):
        plan = batched_sinkhorn_plan(c.detach(), mx, my, eps, n_iter)
        return (plan * c).sum()

    cross = transport(c_ab, ma, mb)
    self_a = transport(sqdist(za, za), ma, ma)
    self_b = transport(sqdist(zb, zb), mb, mb)
    return cross - 0.5 * (self_a + self_b)


def _mmd(za, zb, ma, mb, **_) -> torch.Tensor:
    c_ab, c_aa, c_bb = sqdist(za, zb), sqdist(za, za), sqdist(zb, zb)
    vals = c_ab.detach()[_pair(ma, mb)]
    bandwidth = float(vals.median()) if vals.numel() else 1.0
    bandwidth = bandwidth if bandwidth > 0 else 1.0
    wa = ma / ma.sum(1, keepdim=True)
    wb = mb / mb.sum(1, keepdim=True)

    def mean_kernel(c, wx, wy):
        return (wx[:, :, None] * torch.exp(-c / bandwidth) * wy[:, None, :]).sum()

    return mean_kernel(c_aa, wa, wa) + mean_kernel(c_bb, wb, wb) - 2.0 * mean_kernel(c_ab, wa, wb)


def _ot_clip(
    za, zb, ma, mb, *, epsilon: float, n_iter: int, temperature, similarity, **_
) -> torch.Tensor:
    pair = _pair(ma, mb)
    c_ab = sqdist(za.detach(), zb.detach())
    plan = batched_sinkhorn_plan(c_ab, ma, mb, epsilon * _scale(c_ab, pair), n_iter)
    logits = similarity_matrix(za, zb, similarity) / temperature
    masked = logits.masked_fill(~pair, torch.finfo(logits.dtype).min)
    rows = plan / plan.sum(2, keepdim=True).clamp_min(1e-30)
    cols = plan / plan.sum(1, keepdim=True).clamp_min(1e-30)
    ce_ab = -(rows * torch.log_softmax(masked, dim=2)).masked_fill(~pair, 0.0).sum(2)[ma]
    ce_ba = -(cols * torch.log_softmax(masked, dim=1)).masked_fill(~pair, 0.0).sum(1)[mb]
    # a per-cell mean (not per group): returned times the number of groups
    return 0.5 * (ce_ab.mean() + ce_ba.mean()) * za.shape[0]


WITHIN_GROUP_TERMS: dict[str, Callable[..., torch.Tensor]] = {
    "sinkhorn": _sinkhorn_divergence,
    "mmd": _mmd,
    "ot_clip": _ot_clip,
}
"""Registry of the within-group terms (the model's ``within_group=`` option)."""


def within_group_loss(
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    labels_a: torch.Tensor,
    labels_b: torch.Tensor,
    kind: WithinGroup = "sinkhorn",
    epsilon: float = DEFAULT_WITHIN_EPSILON,
    n_iter: int = DEFAULT_WITHIN_ITER,
    temperature: float | torch.Tensor = DEFAULT_TEMPERATURE,
    similarity: str = "cosine",
) -> torch.Tensor:
    """A within-group cross-modal alignment term between two sets of latents.

    See the module documentation for the three forms. Only cells whose group occurs in both
    sets take part.

    Parameters
    ----------
    z_a, z_b
        Latents ``(n_a, d)`` and ``(n_b, d)``.
    labels_a, labels_b
        Integer group labels; negative = unlabeled.
    kind
        ``"sinkhorn"``, ``"mmd"`` or ``"ot_clip"``.
    epsilon
        Entropic regularisation relative to the mean same-group squared distance
        (``"sinkhorn"``, ``"ot_clip"``).
    n_iter
        Sinkhorn iterations.
    temperature, similarity
        Logit scale and similarity of ``"ot_clip"`` (as in GroupCLIP).

    Returns
    -------
    Scalar tensor, averaged over the groups present in both sets; zero (attached to the graph)
    when there is none.

    Examples
    --------
    >>> za, zb = torch.randn(6, 4), torch.randn(6, 4)
    >>> la, lb = torch.tensor([0, 0, 0, 1, 1, -1]), torch.tensor([0, 0, 1, 1, 1, 2])
    >>> float(within_group_loss(za, zb, la, lb, "mmd")) >= 0
    True

    """
    if kind not in WITHIN_GROUP_TERMS:
        raise ValueError(
            f"within_group must be one of {sorted(WITHIN_GROUP_TERMS)} or None, got {kind!r}."
        )
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon!r}.")
    similarity_kind(similarity)
    labels_a = labels_a.reshape(-1).to(z_a.device)
    labels_b = labels_b.reshape(-1).to(z_b.device)
    keep_a, keep_b = _shared_groups(labels_a, labels_b)
    if not bool(keep_a.any()):
        return (z_a.sum() + z_b.sum()) * 0.0
    la, lb = labels_a[keep_a], labels_b[keep_b]
    groups, codes = torch.unique(torch.cat([la, lb]), return_inverse=True)
    za, ma = _pad_by_group(z_a[keep_a], codes[: len(la)], len(groups))
    zb, mb = _pad_by_group(z_b[keep_b], codes[len(la) :], len(groups))
    total = WITHIN_GROUP_TERMS[kind](
        za,
        zb,
        ma,
        mb,
        epsilon=epsilon,
        n_iter=n_iter,
        temperature=temperature,
        similarity=similarity,
    )
    return total / len(groups)


def within_group_objective(
    z: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], **kw
) -> torch.Tensor:
    """:func:`within_group_loss` averaged over all pairs of modalities.

    Examples
    --------
    >>> z = {"a": torch.randn(4, 3), "b": torch.randn(4, 3)}
    >>> lab = {"a": torch.tensor([0, 0, 1, 1]), "b": torch.tensor([0, 1, 1, 0])}
    >>> within_group_objective(z, lab, kind="mmd").ndim
    0

    """
    losses = [
        within_group_loss(z[a], z[b], labels[a], labels[b], **kw)
        for a, b in combinations(list(z), 2)
    ]
    return torch.stack(losses).mean()
