"""Soft group assignment of unlabeled cells from the other modalities' group prototypes."""

from __future__ import annotations

import torch

from .._docs import doc_params
from ._clip import DEFAULT_TEMPERATURE, similarity_matrix

#: Parameter docs shared by the prototype-based label rules.
_DOCS = {
    "z_labels": """z
    Latents per modality.
labels
    Integer labels per modality (negative = unlabeled).""",
    "prototype_options": """temperature, similarity
    As in GroupCLIP.

Returns
-------
New label tensors per modality.""",
}


@doc_params(**_DOCS)
@torch.no_grad()
def pseudo_labels(  # noqa: D417 (z, labels, temperature, similarity from _DOCS)
    z: dict[str, torch.Tensor],
    labels: dict[str, torch.Tensor],
    threshold: float,
    temperature: float | torch.Tensor = DEFAULT_TEMPERATURE,
    similarity: str = "cosine",
) -> dict[str, torch.Tensor]:
    """Give unlabeled cells the group of the nearest prototype of the other modalities.

    For each modality, the prototypes are the mean latents of each group's labeled cells in the
    *other* modalities of the batch. An unlabeled cell (negative label) is assigned group ``g``
    when ``softmax_g(s(z, prototype_g) / temperature)`` is at least ``threshold``; otherwise it
    stays unlabeled. Labeled cells keep their label. No gradient flows through the assignment.

    Parameters
    ----------
    %(z_labels)s
    threshold
        Confidence needed for an assignment, in ``(0, 1]``.
    %(prototype_options)s

    Examples
    --------
    >>> z = {"a": torch.tensor([[1.0, 0.0], [0.0, 1.0]]), "b": torch.tensor([[1.0, 0.1]])}
    >>> lab = {"a": torch.tensor([-1, -1]), "b": torch.tensor([3])}
    >>> pseudo_labels(z, lab, threshold=0.5)["a"].tolist()
    [3, 3]

    """
    out = {}
    for m in z:
        lab = labels[m].reshape(-1)
        missing = lab < 0
        found = _prototype_posterior(z, labels, m, missing, temperature, similarity)
        if found is None:
            out[m] = lab
            continue
        groups, prob = found
        conf, best = prob.max(1)
        new = lab.clone()
        new[missing] = torch.where(conf >= threshold, groups[best], lab[missing])
        out[m] = new
    return out


def _prototype_posterior(
    z: dict[str, torch.Tensor],
    labels: dict[str, torch.Tensor],
    m: str,
    rows: torch.Tensor,
    temperature: float | torch.Tensor,
    similarity: str,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Groups and softmax over the other modalities' group prototypes for ``z[m][rows]``."""
    if not bool(rows.any()):
        return None
    zs = [z[o][labels[o].reshape(-1) >= 0] for o in z if o != m]
    ls = [labels[o].reshape(-1)[labels[o].reshape(-1) >= 0] for o in z if o != m]
    if not zs or sum(len(x) for x in ls) == 0:
        return None
    zo, lo = torch.cat(zs), torch.cat(ls)
    groups, inverse = torch.unique(lo, return_inverse=True)
    proto = torch.zeros(len(groups), zo.shape[1], dtype=zo.dtype, device=zo.device)
    proto.index_add_(0, inverse, zo)
    proto = proto / torch.bincount(inverse, minlength=len(groups)).to(zo.dtype)[:, None]
    prob = torch.softmax(similarity_matrix(z[m][rows], proto, similarity) / temperature, 1)
    return groups, prob


@doc_params(**_DOCS)
@torch.no_grad()
def distrust_labels(  # noqa: D417 (z, labels, temperature, similarity from _DOCS)
    z: dict[str, torch.Tensor],
    labels: dict[str, torch.Tensor],
    threshold: float,
    *,
    temperature: float | torch.Tensor = DEFAULT_TEMPERATURE,
    similarity: str = "cosine",
) -> dict[str, torch.Tensor]:
    """Leave out labeled cells whose latent points to another group of the other modalities.

    For each modality, the prototypes are the mean latents of each group's labeled cells in the
    *other* modalities of the batch (as in :func:`pseudo_labels`). A labeled cell whose softmax
    ``softmax_g(s(z, prototype_g) / temperature)`` gives a group *other than its own* a
    confidence of at least ``threshold`` is marked unlabeled (``-1``) for the batch: a wrong
    guide call then neither pulls the cell to the wrong group nor pulls that group's cells
    towards it. Cells whose own group has no prototype in the batch keep their label. No
    gradient flows through the decision.

    Parameters
    ----------
    %(z_labels)s
    threshold
        Confidence in another group needed to leave a label out, in ``(0, 1]``.
    %(prototype_options)s

    Examples
    --------
    >>> z = {"a": torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
    ...      "b": torch.tensor([[1.0, 0.0], [0.0, 1.0]])}
    >>> lab = {"a": torch.tensor([0, 0]), "b": torch.tensor([0, 1])}
    >>> distrust_labels(z, lab, threshold=0.9)["a"].tolist()  # cell 2 of a looks like group 1
    [0, -1]

    """
    out = {}
    for m in z:
        lab = labels[m].reshape(-1)
        labeled = lab >= 0
        found = _prototype_posterior(z, labels, m, labeled, temperature, similarity)
        if found is None:
            out[m] = lab
            continue
        groups, prob = found
        conf, best = prob.max(1)
        own = lab[labeled]
        has_own = (groups[None, :] == own[:, None]).any(1)
        wrong = (groups[best] != own) & (conf >= threshold) & has_own
        new = lab.clone()
        new[torch.nonzero(labeled).reshape(-1)[wrong]] = -1
        out[m] = new
    return out
