"""Contrastive objectives on the latent means; one registry, the model's ``contrastive=`` option."""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations

import torch

from ._clip import group_clip_loss, pseudo_pair_indices

ContrastiveFn = Callable[..., torch.Tensor]


def _pairs(z: dict[str, torch.Tensor]) -> list[tuple[str, str]]:
    return list(combinations(list(z), 2))


def groupclip_objective(
    z: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], **kw
) -> torch.Tensor:
    """GroupCLIP averaged over all pairs of modalities."""
    losses = [group_clip_loss(z[a], z[b], labels[a], labels[b], **kw) for a, b in _pairs(z)]
    return torch.stack(losses).mean()


def clip_objective(
    z: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], **kw
) -> torch.Tensor:
    """CLIP with pseudo-pairs (the baseline GroupCLIP replaces).

    Each labeled cell is paired with one random same-group cell of the other modality, then the
    symmetric InfoNCE is taken over those pairs (singleton groups).
    """
    losses = []
    for a, b in _pairs(z):
        ia, ib = pseudo_pair_indices(labels[a], labels[b])
        pair_id = torch.arange(len(ia), device=z[a].device)
        losses.append(group_clip_loss(z[a][ia], z[b][ib], pair_id, pair_id, **kw))
    return torch.stack(losses).mean()


def supcon_objective(
    z: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], **kw
) -> torch.Tensor:
    """SupCon over the pooled cells of all modalities (same-modality positives count too)."""
    zz = torch.cat(list(z.values()))
    ll = torch.cat([labels[m].reshape(-1) for m in z])
    return group_clip_loss(zz, zz, ll, ll, exclude_self=True, **kw)


#: SupCon's own form of the positives (with pooled modalities, "sum_in_log" is satisfied by
#: modality-specific clusters and does not align the modalities); an objective without this
#: attribute uses GroupCLIP's "sum_in_log".
supcon_objective.default_positives = "mean_log"  # type: ignore[attr-defined]

CONTRASTIVE: dict[str, ContrastiveFn] = {
    "groupclip": groupclip_objective,
    "clip": clip_objective,
    "supcon": supcon_objective,
}
"""Registry of contrastive objectives (``contrastive=None`` switches the term off)."""


def default_positives(contrastive: str | None) -> str:
    """The ``positives`` form an objective uses when the user gives none.

    Examples
    --------
    >>> default_positives("groupclip"), default_positives("supcon")
    ('sum_in_log', 'mean_log')

    """
    return getattr(CONTRASTIVE.get(contrastive or ""), "default_positives", "sum_in_log")
