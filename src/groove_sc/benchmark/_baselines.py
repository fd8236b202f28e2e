"""Baseline learners without training: per-modality PCA and the raw features."""

from __future__ import annotations

from typing import Any

import numpy as np
from mudata import MuData

from ._registry import register_learner
from ._views import dense


@register_learner(
    "pca",
    shared_space=False,
    description="per-modality PCA of .X (no shared space: for Gromov-Wasserstein / COOT)",
)
def pca(  # noqa: D417 (parameters from LEARNER_DOCS)
    mdata: MuData,
    key: str,
    *,
    groupby: str | None,
    seed: int,
    n_comps: int = 20,
    scale: bool = False,
) -> dict[str, Any]:
    """Per-modality PCA of ``.X`` (each modality in its own space).

    Parameters
    ----------
    %(mdata)s
    %(key)s
    groupby
        Unused (PCA sees no labels).
    %(seed)s
    n_comps
        Components, at most ``min(n_cells, n_features) - 1`` per modality.
    scale
        Standardise features (unit variance) before PCA.

    Returns
    -------
    ``{"n_comps": {modality: int}}``.

    Examples
    --------
    >>> pca(mdata, "X_pca", groupby=None, seed=0, n_comps=5)
    {'n_comps': {'rna': 5, 'prot': 5}}
    >>> mdata["prot"].obsm["X_pca"].shape[1]
    5

    """
    from sklearn.decomposition import PCA

    used = {}
    for m, adata in mdata.mod.items():
        x = dense(adata.X)
        x = x - x.mean(axis=0)
        if scale:
            sd = x.std(axis=0)
            x = x / np.where(sd > 0, sd, 1.0)
        k = int(max(1, min(n_comps, min(x.shape) - 1)))
        z = PCA(n_components=k, random_state=seed).fit_transform(x)
        adata.obsm[key] = z.astype(np.float32)
        used[m] = k
    return {"n_comps": used}


@register_learner(
    "raw",
    shared_space=False,
    description="the features themselves (.X, densified): for COOT and Gromov-Wasserstein",
)
def raw(mdata: MuData, key: str, *, groupby: str | None, seed: int) -> dict[str, Any]:  # noqa: D417 (parameters from LEARNER_DOCS)
    """Each modality's ``.X`` as its representation (no learning, no shared space).

    Parameters
    ----------
    %(mdata)s
    %(key)s
    groupby, seed
        Unused.

    Returns
    -------
    An empty dict.

    Examples
    --------
    >>> raw(mdata, "X_raw", groupby=None, seed=0)
    {}
    >>> mdata["prot"].obsm["X_raw"].shape == mdata["prot"].shape
    True

    """
    for adata in mdata.mod.values():
        adata.obsm[key] = dense(adata.X).astype(np.float32)
    return {}


@register_learner(
    "labels",
    shared_space=True,
    description="one-hot perturbation label only (no data): what the labels alone give",
)
def labels(mdata: MuData, key: str, *, groupby: str | None, seed: int) -> dict[str, Any]:  # noqa: D417 (parameters from LEARNER_DOCS)
    """One-hot encoding of ``obs[groupby]``: a shared space that carries the labels only.

    Any aligner on it couples cells of a group uniformly (all costs within a group are equal):
    the reference a learner must beat to show that it resolves cells *within* a group.
    Unlabeled cells get a zero vector.

    Parameters
    ----------
    %(mdata)s
    %(key)s
    %(groupby)s
    seed
        Unused.

    Returns
    -------
    ``{"classes": [...]}``.

    Examples
    --------
    >>> labels(mdata, "X_labels", groupby="perturbation", seed=0)
    {'classes': ['control', 'pert0', 'pert1', 'pert2', 'pert3']}
    >>> float(mdata["rna"].obsm["X_labels"].sum(axis=1).min())
    1.0

    """
    import pandas as pd

    if groupby is None:
        raise ValueError("The labels learner needs labels; pass groupby=<label column>.")
    classes = sorted({str(v) for a in mdata.mod.values() for v in a.obs[groupby].dropna()})
    lookup = pd.Index(classes)
    for adata in mdata.mod.values():
        col = adata.obs[groupby]
        code = np.where(col.notna(), lookup.get_indexer(col.astype(str)), -1)
        onehot = np.zeros((adata.n_obs, len(classes)), dtype=np.float32)
        ok = code >= 0
        onehot[np.flatnonzero(ok), code[ok]] = 1.0
        adata.obsm[key] = onehot
    return {"classes": classes}
