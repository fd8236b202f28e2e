"""Soft group assignment of unlabeled cells from the other modalities' group prototypes."""

from __future__ import annotations

import torch

from ._clip import similarity_matrix


@torch.no_grad()
def pseudo_labels(
    z: dict[str, torch.Tensor],
    labels: dict[str, torch.Tensor],
    threshold: float,
    temperature: float | torch.Tensor = 0.1,
    similarity: str = "cosine",
) -> dict[str, torch.Tensor]:
    """Give unlabeled cells the group of the nearest prototype of the other modalities.

    For each modality, the prototypes are the mean latents of each group's labeled cells in the
    *other* modalities of the batch. An unlabeled cell (negative label) is assigned group ``g``
    when ``softmax_g(s(z, prototype_g) / temperature)`` is at least ``threshold``; otherwise it
    stays unlabeled. Labeled cells keep their label. No gradient flows through the assignment.

    Parameters
    ----------
    z
        Latents per modality.
    labels
        Integer labels per modality (negative = unlabeled).
    threshold
        Confidence needed for an assignment, in ``(0, 1]``.
    temperature, similarity
        As in GroupCLIP.

    Returns
    -------
    New label tensors per modality.

    Examples
    --------
    >>> z = {"a": torch.tensor([[1.0, 0.0], [0.0, 1.0]]), "b": torch.tensor([[1.0, 0.1]])}
    >>> lab = {"a": torch.tensor([-1, -1]), "b": torch.tensor([3])}
    >>> pseudo_labels(z, lab, threshold=0.5)["a"].tolist()
    [3, 3]

    """
    out = {}
    for m, zm in z.items():
        lab = labels[m].reshape(-1)
        missing = lab < 0
        if not bool(missing.any()):
            out[m] = lab
            continue
        zs = [z[o][labels[o].reshape(-1) >= 0] for o in z if o != m]
        ls = [labels[o].reshape(-1)[labels[o].reshape(-1) >= 0] for o in z if o != m]
        if not zs or sum(len(x) for x in ls) == 0:
            out[m] = lab
            continue
        zo, lo = torch.cat(zs), torch.cat(ls)
        groups, inverse = torch.unique(lo, return_inverse=True)
        proto = torch.zeros(len(groups), zo.shape[1], dtype=zo.dtype, device=zo.device)
        proto.index_add_(0, inverse, zo)
        proto = proto / torch.bincount(inverse, minlength=len(groups)).to(zo.dtype)[:, None]
        prob = torch.softmax(similarity_matrix(zm[missing], proto, similarity) / temperature, 1)
        conf, best = prob.max(1)
        new = lab.clone()
        new[missing] = torch.where(conf >= threshold, groups[best], lab[missing])
        out[m] = new
    return out
