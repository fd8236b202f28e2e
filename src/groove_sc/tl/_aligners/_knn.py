"""``knn``: k-nearest-neighbour coupling in a shared representation (non-OT baseline)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.neighbors import NearestNeighbors

from ._problem import AlignProblem
from ._registry import AlignResult, register_aligner
from ._sparsify import CouplingBuilder


@register_aligner(
    "knn",
    labels="optional",
    shared_rep=True,
    description="k nearest target cells of each source cell (within its group if groupby)",
)
def knn(
    problem: AlignProblem,
    k: int = 10,
    weights: Literal["uniform", "distance"] = "uniform",
) -> AlignResult:
    """Couple each source cell to its ``k`` nearest target cells in the shared representation.

    With ``groupby`` the neighbours are searched within the cell's group (cells left out as for
    the other label-constrained methods); with ``groupby=None`` among all target cells. Every
    kept source cell has mass ``1 / n_source_kept`` spread over its neighbours, so rows sum to
    the (uniform) source marginal; the target marginal is not constrained. Groups with fewer
    than ``k`` target cells use all of them.

    Parameters
    ----------
    problem
        Prepared by :func:`groove_sc.tl.align`.
    k
        Number of neighbours.
    weights
        ``"uniform"`` (each neighbour ``1 / k`` of the row) or ``"distance"`` (proportional to
        the inverse distance; exact matches share the row).

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", use_rep="X_true_shared", method="knn", k=10)
    >>> rows = mdata.obsp["groove_coupling"][:67].tocsr()
    >>> int(np.diff(rows.indptr).max()), round(float(rows.sum()), 6)
    (10, 1.0)

    """
    if not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    if weights not in ("uniform", "distance"):
        raise ValueError(f"weights must be 'uniform' or 'distance', got {weights!r}.")
    xs, xt = problem.rep(shared=True)
    layout = problem.layout()
    n_kept = int(layout.source_sizes.sum())
    builder = CouplingBuilder(layout.n_source, layout.n_target, prune=0.0)
    for si, ti in zip(layout.source_index, layout.target_index):
        kk = min(int(k), len(ti))
        nn = NearestNeighbors(n_neighbors=kk).fit(xt[ti])
        dist, idx = nn.kneighbors(xs[si])
        if weights == "uniform":
            w = np.full(dist.shape, 1.0 / kk)
        else:
            exact = dist <= 1e-12 * max(float(dist.max()), 1.0)
            inv = np.where(exact.any(axis=1, keepdims=True), exact, 1.0 / np.maximum(dist, 1e-300))
            w = inv / inv.sum(axis=1, keepdims=True)
        rows = np.repeat(si, kk)
        builder.add_sparse(rows, ti[idx.ravel()], (w / n_kept).ravel())
    coupling = builder.to_csr()
    return AlignResult(
        coupling=coupling,
        parameters={"k": int(k), "weights": weights, "metric": "euclidean"},
        convergence={"converged": True, "iterative": False},
    )
