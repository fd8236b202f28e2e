"""Within-group cross-modal terms: align the cells *inside* a group across modalities.

GroupCLIP pulls the cells of one group in modality a towards the cells of the same group in
modality b, but says nothing about *which* cells inside the group correspond. The terms here act
on the same-group blocks of a minibatch (one block per group present in both modalities) and
are computed on one masked batch-sized matrix, so every group of the batch is handled by one
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

from ._clip import similarity_matrix

WithinGroup = Literal["sinkhorn", "mmd", "ot_clip"]

#: Default entropic regularisation, relative to the mean same-group squared distance.
DEFAULT_WITHIN_EPSILON = 0.05
#: Sinkhorn iterations per step (batch-sized blocks converge well within this).
DEFAULT_WITHIN_ITER = 50


def _shared_groups(labels_a: torch.Tensor, labels_b: torch.Tensor):
    """Masks of the cells whose (non-negative) group occurs in the other set."""
    keep_a = (labels_a >= 0) & torch.isin(labels_a, labels_b[labels_b >= 0])
    keep_b = (labels_b >= 0) & torch.isin(labels_b, labels_a[labels_a >= 0])
    return keep_a, keep_b


def _log_group_mass(labels: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Log mass of each cell: ``1 / size of its group`` (every group carries mass 1)."""
    _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    return -torch.log(counts[inverse].to(dtype))


def sqdist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between the rows of ``x`` and ``y``.

    Examples
    --------
    >>> sqdist(torch.zeros(2, 3), torch.ones(4, 3)).shape
    torch.Size([2, 4])

    """
    return (x[:, None, :] - y[None, :, :]).pow(2).sum(-1)


@torch.no_grad()
def masked_sinkhorn_plan(
    cost: torch.Tensor,
    mask: torch.Tensor,
    log_a: torch.Tensor,
    log_b: torch.Tensor,
    epsilon: float,
    n_iter: int = DEFAULT_WITHIN_ITER,
) -> torch.Tensor:
    """Entropic OT plan restricted to ``mask`` (log-domain Sinkhorn, no gradient).

    Masked-out pairs get zero mass, so a block-diagonal mask solves the blocks independently.
    Every row and column needs at least one allowed pair, and the masses of the rows and
    columns of each connected block must be equal.

    Parameters
    ----------
    cost
        ``(n, m)`` cost matrix.
    mask
        ``(n, m)`` allowed pairs.
    log_a, log_b
        Log masses of rows and columns.
    epsilon
        Absolute entropic regularisation.
    n_iter
        Sinkhorn iterations.

    Examples
    --------
    >>> C = torch.rand(3, 3)
    >>> P = masked_sinkhorn_plan(C, torch.ones(3, 3, dtype=torch.bool),
    ...                          torch.full((3,), -1.0986), torch.full((3,), -1.0986), 0.1)
    >>> round(float(P.sum()), 3)
    1.0

    """
    neg_inf = torch.finfo(cost.dtype).min
    kernel = (-cost / epsilon).masked_fill(~mask, neg_inf)
    f = torch.zeros_like(log_a)
    g = torch.zeros_like(log_b)
    for _ in range(n_iter):
        f = -torch.logsumexp(kernel + (g + log_b)[None, :], dim=1)
        g = -torch.logsumexp(kernel + (f + log_a)[:, None], dim=0)
    log_plan = kernel + (f + log_a)[:, None] + (g + log_b)[None, :]
    return log_plan.exp().masked_fill(~mask, 0.0)


def _scale(cost: torch.Tensor, mask: torch.Tensor) -> float:
    vals = cost.detach()[mask]
    scale = float(vals.mean()) if vals.numel() else 1.0
    return scale if scale > 0 else 1.0


def _sinkhorn_divergence(
    z_a, z_b, la, lb, *, epsilon: float, n_iter: int, **_
) -> tuple[torch.Tensor, int]:
    log_a, log_b = _log_group_mass(la, z_a.dtype), _log_group_mass(lb, z_b.dtype)
    same_ab = la[:, None] == lb[None, :]
    c_ab = sqdist(z_a, z_b)
    eps = epsilon * _scale(c_ab, same_ab)

    def transport(c, mask, lx, ly):
        plan = masked_sinkhorn_plan(c.detach(), mask, lx, ly, eps, n_iter)
        return (plan * c).sum()

    cross = transport(c_ab, same_ab, log_a, log_b)
    self_a = transport(sqdist(z_a, z_a), la[:, None] == la[None, :], log_a, log_a)
    self_b = transport(sqdist(z_b, z_b), lb[:, None] == lb[None, :], log_b, log_b)
    return cross - 0.5 * (self_a + self_b), int(torch.unique(la).numel())


def _mmd(z_a, z_b, la, lb, **_) -> tuple[torch.Tensor, int]:
    same_ab = la[:, None] == lb[None, :]
    same_aa = la[:, None] == la[None, :]
    same_bb = lb[:, None] == lb[None, :]
    c_ab, c_aa, c_bb = sqdist(z_a, z_b), sqdist(z_a, z_a), sqdist(z_b, z_b)
    vals = c_ab.detach()[same_ab]
    bandwidth = float(vals.median()) if vals.numel() else 1.0
    bandwidth = bandwidth if bandwidth > 0 else 1.0
    wa, wb = _log_group_mass(la, z_a.dtype).exp(), _log_group_mass(lb, z_b.dtype).exp()

    def mean_kernel(c, mask, wx, wy):
        k = torch.exp(-c / bandwidth) * mask
        return (wx[:, None] * k * wy[None, :]).sum()

    total = (
        mean_kernel(c_aa, same_aa, wa, wa)
        + mean_kernel(c_bb, same_bb, wb, wb)
        - 2.0 * mean_kernel(c_ab, same_ab, wa, wb)
    )
    return total, int(torch.unique(la).numel())


def _ot_clip(
    z_a, z_b, la, lb, *, epsilon: float, n_iter: int, temperature, similarity, **_
) -> tuple[torch.Tensor, int]:
    log_a, log_b = _log_group_mass(la, z_a.dtype), _log_group_mass(lb, z_b.dtype)
    same = la[:, None] == lb[None, :]
    c_ab = sqdist(z_a.detach(), z_b.detach())
    plan = masked_sinkhorn_plan(c_ab, same, log_a, log_b, epsilon * _scale(c_ab, same), n_iter)
    logits = similarity_matrix(z_a, z_b, similarity) / temperature
    neg_inf = torch.finfo(logits.dtype).min
    masked = logits.masked_fill(~same, neg_inf)
    rows = plan / plan.sum(1, keepdim=True).clamp_min(1e-30)
    cols = plan / plan.sum(0, keepdim=True).clamp_min(1e-30)
    ce_ab = -(rows * torch.log_softmax(masked, dim=1)).masked_fill(~same, 0.0).sum(1).mean()
    ce_ba = -(cols * torch.log_softmax(masked, dim=0)).masked_fill(~same, 0.0).sum(0).mean()
    # per-cell means of per-group terms; the group count is the number of blocks
    return 0.5 * (ce_ab + ce_ba), 1


WITHIN_GROUP_TERMS: dict[str, Callable[..., tuple[torch.Tensor, int]]] = {
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
    temperature: float | torch.Tensor = 0.1,
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
    labels_a = labels_a.reshape(-1).to(z_a.device)
    labels_b = labels_b.reshape(-1).to(z_b.device)
    keep_a, keep_b = _shared_groups(labels_a, labels_b)
    if not bool(keep_a.any()):
        return (z_a.sum() + z_b.sum()) * 0.0
    total, n_groups = WITHIN_GROUP_TERMS[kind](
        z_a[keep_a],
        z_b[keep_b],
        labels_a[keep_a],
        labels_b[keep_b],
        epsilon=epsilon,
        n_iter=n_iter,
        temperature=temperature,
        similarity=similarity,
    )
    return total / max(n_groups, 1)


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
