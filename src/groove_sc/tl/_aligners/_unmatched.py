"""Coupling the cells a label-constrained aligner leaves out (``unmatched="couple"``).

Unlabeled source cells, and source cells whose group has no cell in the target modality, are
outside every same-group block. With ``unmatched="couple"`` (the default of
:func:`groove_sc.tl.align`) each of them is coupled with its ``k`` nearest target cells (any
cell, labeled or not) in the shared representation, with weights
``exp(-(d_j - d_min) / h)``, ``d`` the squared distances and ``h`` their mean excess over the
nearest one (an adaptive bandwidth, so the weights do not depend on the scale of the space).
Every source cell then carries the same mass ``1 / n_source``: the aligner's coupling of the
kept cells is scaled to ``n_kept / n_source`` of the total. The distances are computed in row
chunks against the target cells, so nothing ``n_left x n_target`` is held at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from ._problem import AlignProblem

#: Target neighbours of each left-out source cell.
DEFAULT_UNMATCHED_K = 30
#: Distance-matrix entries computed at once (rows x target cells).
_CHUNK_ENTRIES = 1 << 24


def knn_rows(
    xs: np.ndarray, xt: np.ndarray, k: int, chunk_entries: int = _CHUNK_ENTRIES
) -> sp.csr_matrix:
    """Rows of unit mass over the ``k`` nearest rows of ``xt`` for each row of ``xs``.

    Parameters
    ----------
    xs, xt
        ``(n, d)`` and ``(m, d)`` points in one space.
    k
        Neighbours per row (at most ``m``).
    chunk_entries
        Distance entries computed at once.

    Examples
    --------
    >>> W = knn_rows(np.array([[0.0], [5.0]]), np.array([[0.0], [1.0], [5.0]]), k=1)
    >>> W.toarray()
    array([[1., 0., 0.],
           [0., 0., 1.]])

    """
    n, m = len(xs), len(xt)
    k = int(min(k, m))
    xt32 = np.asarray(xt, dtype=np.float32)
    t_sq = (xt32.astype(np.float64) ** 2).sum(1)
    step = max(1, chunk_entries // max(m, 1))
    cols = np.empty((n, k), dtype=np.int64)
    vals = np.empty((n, k))
    for start in range(0, n, step):
        xb = np.asarray(xs[start : start + step], dtype=np.float32)
        d = (xb.astype(np.float64) ** 2).sum(1)[:, None] + t_sq[None, :] - 2.0 * (xb @ xt32.T)
        if k < m:
            idx = np.argpartition(d, k - 1, axis=1)[:, :k]
        else:
            idx = np.tile(np.arange(m), (len(xb), 1))
        dk = np.maximum(np.take_along_axis(d, idx, axis=1), 0.0)
        excess = dk - dk.min(1, keepdims=True)
        h = excess.mean(1, keepdims=True)
        w = np.exp(-excess / np.where(h > 0, h, 1.0))
        cols[start : start + len(xb)] = idx
        vals[start : start + len(xb)] = w / w.sum(1, keepdims=True)
    rows = np.repeat(np.arange(n), k)
    return sp.csr_matrix((vals.ravel(), (rows, cols.ravel())), shape=(n, m))


def couple_unmatched(
    problem: AlignProblem, coupling: sp.csr_matrix, k: int = DEFAULT_UNMATCHED_K
) -> tuple[sp.csr_matrix, dict[str, Any]]:
    """Add rows for the source cells the aligner left out (see the module documentation).

    Parameters
    ----------
    problem
        The labeled problem (left-out source cells have code ``-1``).
    coupling
        The aligner's ``(n_source, n_target)`` coupling of the kept cells, total mass 1.
    k
        Target neighbours per left-out source cell.

    Returns
    -------
    ``(coupling, info)``: the completed coupling (total mass 1) and what was done.

    """
    left = np.flatnonzero(problem.source_codes < 0)
    info: dict[str, Any] = {"mode": "couple", "k": int(k), "n_source_coupled": 0}
    if not len(left):
        return coupling, info
    if not k >= 1:
        raise ValueError(f"unmatched_k must be a positive integer, got {k!r}.")
    keys = {problem.use_rep} if isinstance(problem.use_rep, str) else set(problem.use_rep.values())
    if len(keys) != 1:
        info.update(mode="drop", reason="no shared representation (use_rep differs per modality)")
        return coupling, info
    key = keys.pop()
    try:
        xs, xt = problem.rep(key, shared=True)
    except ValueError as err:
        info.update(mode="drop", reason=f"no shared representation: {err}")
        return coupling, info
    n_source = problem.n_source
    rows = knn_rows(xs[left], xt, k)
    extra = sp.csr_matrix(
        (rows.data / n_source, rows.indices, rows.indptr), shape=(len(left), problem.n_target)
    )
    place = sp.csr_matrix(
        (np.ones(len(left)), (left, np.arange(len(left)))), shape=(n_source, len(left))
    )
    kept_share = (n_source - len(left)) / n_source
    out = (coupling * kept_share + place @ extra).tocsr()
    info["n_source_coupled"] = len(left)
    return out, info
