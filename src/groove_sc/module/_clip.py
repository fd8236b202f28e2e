"""GroupCLIP: a contrastive loss for cells that share only a group (perturbation) label."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

Positives = Literal["sum_in_log", "mean_log"]
Similarity = Literal["cosine", "neg_sqeuclidean"]

_POSITIVES = ("sum_in_log", "mean_log")
#: GroupCLIP's default softmax temperature (the paper's value).
DEFAULT_TEMPERATURE = 0.1
#: Default weight of the contrastive term in GROOVE's loss (the paper's value; see the
#: "Real co-assayed data" page, beta and tau, for the held-out-group comparison with 3 and 30).
DEFAULT_BETA = 10.0


@dataclass(frozen=True)
class SimilarityKind:
    """A similarity of GroupCLIP, its prototype softmax and the within-group ``"ot_clip"`` term.

    Attributes
    ----------
    matrix
        ``matrix(z_a, z_b)``: similarities between the rows of ``z_a`` ``(..., n, d)`` and
        ``z_b`` ``(..., m, d)``, shape ``(..., n, m)`` (leading dimensions are a batch).
    directions
        ``directions(prototypes)``: the ``(groups, d)`` matrix ``W`` with
        ``matrix(z, prototypes) = f(z) @ W.T + c(z)`` (see :func:`prototype_directions`).

    """

    matrix: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    directions: Callable[[torch.Tensor], torch.Tensor]


def _cosine(z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
    return F.normalize(z_a, dim=-1) @ F.normalize(z_b, dim=-1).transpose(-1, -2)


def _neg_sqeuclidean(z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
    return -torch.cdist(z_a, z_b).pow(2)


#: The similarities, by name; adding one means adding an entry.
SIMILARITIES: dict[str, SimilarityKind] = {
    "cosine": SimilarityKind(_cosine, lambda p: F.normalize(p, dim=-1)),
    "neg_sqeuclidean": SimilarityKind(_neg_sqeuclidean, lambda p: p),
}


def similarity_kind(similarity: str) -> SimilarityKind:
    """The registered similarity ``similarity``; a ``ValueError`` naming the valid ones else.

    Examples
    --------
    >>> similarity_kind("cosine").matrix(torch.ones(1, 2), torch.ones(3, 2)).shape
    torch.Size([1, 3])

    """
    try:
        return SIMILARITIES[similarity]
    except (KeyError, TypeError):
        raise ValueError(
            f"similarity must be one of {tuple(SIMILARITIES)}, got {similarity!r}."
        ) from None


def similarity_matrix(z_a: torch.Tensor, z_b: torch.Tensor, similarity: Similarity) -> torch.Tensor:
    """Pairwise similarities between the rows of ``z_a`` and ``z_b`` (a batch-sized matrix).

    Examples
    --------
    >>> s = similarity_matrix(torch.randn(4, 3), torch.randn(5, 3), "cosine")
    >>> s.shape
    torch.Size([4, 5])

    """
    return similarity_kind(similarity).matrix(z_a, z_b)


def prototype_directions(prototypes: torch.Tensor, similarity: Similarity) -> torch.Tensor:
    """``(groups, d)`` matrix ``W`` with ``similarity_matrix(z, prototypes) = f(z) @ W.T + c(z)``.

    ``f`` is a feature map of ``z`` and ``c(z)`` is the same for every prototype, so the
    similarities of any two cells differ by a vector in the span of ``W``'s columns and the
    all-ones vector (used by :func:`groove_sc.tl.group_posterior`): the normalised prototypes
    for ``"cosine"`` (``f`` normalises ``z``), the prototypes for ``"neg_sqeuclidean"``
    (``-|z - mu|^2 = 2 z.mu - |mu|^2 - |z|^2``).

    Examples
    --------
    >>> prototype_directions(torch.tensor([[3.0, 4.0]]), "cosine")
    tensor([[0.6000, 0.8000]])

    """
    return similarity_kind(similarity).directions(prototypes)


def _directional(
    logits: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor, positives: Positives
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-anchor losses of one direction, rows = anchors; returns (sum of losses, n anchors)."""
    neg_inf = torch.finfo(logits.dtype).min
    masked = logits.masked_fill(~valid, neg_inf)
    log_denom = torch.logsumexp(masked, dim=1)
    n_pos = pos.sum(dim=1)
    anchors = n_pos > 0
    if positives == "sum_in_log":
        log_num = torch.logsumexp(logits.masked_fill(~pos, neg_inf), dim=1)
    else:  # mean_log: SupCon's L_out, mean over positives of the log-probability
        log_num = (logits * pos).sum(dim=1) / n_pos.clamp(min=1)
    per_anchor = (log_denom - log_num)[anchors]
    return per_anchor.sum(), anchors.sum()


def group_clip_loss(
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    labels_a: torch.Tensor,
    labels_b: torch.Tensor,
    temperature: float | torch.Tensor = DEFAULT_TEMPERATURE,
    positives: Positives = "sum_in_log",
    similarity: Similarity = "cosine",
    exclude_self: bool | None = None,
) -> torch.Tensor:
    r"""Symmetric group contrastive (GroupCLIP) loss between two sets of embeddings.

    For an anchor :math:`i` of ``z_a`` with group :math:`g_i`,

    .. math::

        \ell_i = -\log \frac{\sum_{j: g_j = g_i} \exp(s_{ij}/\tau)}{\sum_j \exp(s_{ij}/\tau)}

    (``positives="sum_in_log"``), or SupCon's :math:`L_{out}` form
    :math:`\ell_i = -\frac{1}{|P(i)|}\sum_{p \in P(i)} \log \frac{\exp(s_{ip}/\tau)}
    {\sum_j \exp(s_{ij}/\tau)}` (``positives="mean_log"``). Losses are averaged over anchors whose
    group occurs in the other set, computed in both directions (a -> b, b -> a), and the two
    directional means are averaged. Cells with a negative label are unlabeled and take no part
    (neither anchors nor negatives). With one cell per group and modality it is CLIP's symmetric
    InfoNCE; with ``z_a is z_b`` (self-pairs excluded) and ``"mean_log"`` it is SupCon.

    Parameters
    ----------
    z_a, z_b
        Embeddings, shape ``(n_a, d)`` and ``(n_b, d)``.
    labels_a, labels_b
        Integer group labels, shape ``(n_a,)`` and ``(n_b,)``; negative = unlabeled.
    temperature
        :math:`\tau > 0`, a float or a (learnable) scalar tensor.
    positives
        ``"sum_in_log"`` (default) or ``"mean_log"``.
    similarity
        ``"cosine"`` (default) or ``"neg_sqeuclidean"``.
    exclude_self
        Drop the pairs ``(i, i)`` from numerator and denominator. ``None``: only when ``z_a`` and
        ``z_b`` are the same tensor object.

    Returns
    -------
    Scalar tensor. Zero (still attached to the graph) when no anchor has a positive.

    Examples
    --------
    >>> import torch
    >>> from groove_sc.module import group_clip_loss
    >>> z_a, z_b = torch.randn(6, 8), torch.randn(5, 8)
    >>> la, lb = torch.tensor([0, 0, 1, 1, 2, -1]), torch.tensor([0, 1, 1, 2, 3])
    >>> loss = group_clip_loss(z_a, z_b, la, lb, temperature=0.1)
    >>> loss.ndim
    0

    """
    if positives not in _POSITIVES:
        raise ValueError(f"positives must be one of {_POSITIVES}, got {positives!r}.")
    if z_a.ndim != 2 or z_b.ndim != 2 or z_a.shape[1] != z_b.shape[1]:
        raise ValueError(
            f"z_a and z_b must be 2-d with the same width, got {tuple(z_a.shape)} and "
            f"{tuple(z_b.shape)}."
        )
    labels_a = labels_a.reshape(-1).to(z_a.device)
    labels_b = labels_b.reshape(-1).to(z_b.device)
    if labels_a.shape[0] != z_a.shape[0] or labels_b.shape[0] != z_b.shape[0]:
        raise ValueError(
            f"labels must have one entry per embedding row: got {labels_a.shape[0]} labels for "
            f"{z_a.shape[0]} rows of z_a and {labels_b.shape[0]} for {z_b.shape[0]} rows of z_b."
        )
    if not torch.is_tensor(temperature) and temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    if exclude_self is None:
        exclude_self = z_a is z_b
    if exclude_self and z_a.shape[0] != z_b.shape[0]:
        raise ValueError("exclude_self needs z_a and z_b of the same length.")

    logits = similarity_matrix(z_a, z_b, similarity) / temperature
    lab_a, lab_b = labels_a >= 0, labels_b >= 0
    valid = lab_a[:, None] & lab_b[None, :]
    if exclude_self:
        valid = valid & ~torch.eye(len(labels_a), dtype=torch.bool, device=logits.device)
    pos = valid & (labels_a[:, None] == labels_b[None, :])

    total = logits.new_zeros(())
    n_dirs = 0
    for lg, ps, vd in ((logits, pos, valid), (logits.T, pos.T, valid.T)):
        s, n = _directional(lg, ps, vd, positives)
        if n > 0:
            total = total + s / n
            n_dirs += 1
    if n_dirs == 0:
        return logits.sum() * 0.0
    return total / 2.0


def pseudo_pair_indices(
    labels_a: torch.Tensor, labels_b: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pair each labeled cell of ``a`` with one random same-group cell of ``b`` (vectorised).

    Used by the CLIP-with-pseudo-pairs baseline. Returns ``(idx_a, idx_b)``; anchors whose group
    has no cell in ``b`` are left out.

    Examples
    --------
    >>> ia, ib = pseudo_pair_indices(torch.tensor([0, 1, 1]), torch.tensor([1, 0, 0]))
    >>> ia.tolist()
    [0, 1, 2]

    """
    order = torch.argsort(labels_b, stable=True)
    sorted_b = labels_b[order]
    start = torch.searchsorted(sorted_b, labels_a, right=False)
    stop = torch.searchsorted(sorted_b, labels_a, right=True)
    count = stop - start
    ok = (labels_a >= 0) & (count > 0)
    idx_a = torch.nonzero(ok).reshape(-1)
    u = torch.rand(len(idx_a), generator=generator, device=labels_a.device)
    pick = start[idx_a] + (u * count[idx_a]).long().clamp(max=count[idx_a] - 1)
    return idx_a, order[pick]
