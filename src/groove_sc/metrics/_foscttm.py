"""FOSCTTM: fraction of samples closer than the true match, exact and memory-bounded."""

from __future__ import annotations

from typing import Literal

import numpy as np

Ties = Literal["half", "strict"]

#: Relative tolerance under which two squared distances count as equal (a tie). Rounding of the
#: squared-distance expansion in float64 is orders of magnitude smaller, so coincident points tie
#: reliably, while genuinely different distances are never merged in practice.
TIE_RTOL = 1e-9

#: The distance matrix is computed in tiles of ROWS_PER_TILE x COLS_PER_TILE (float64: 8 MiB).
ROWS_PER_TILE = 512
COLS_PER_TILE = 2048


def _as_float_matrix(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(
            f"'{name}' must be a 2-d array (cells x dimensions), got shape {a.shape}; "
            "reshape a 1-d array with a[:, None]."
        )
    if not np.isfinite(a).all():
        bad = int((~np.isfinite(a)).any(axis=1).sum())
        raise ValueError(
            f"'{name}' contains NaN or infinite values in {bad} rows; remove or impute those "
            "cells before computing FOSCTTM."
        )
    return a


def closer_fraction(
    queries: np.ndarray,
    targets: np.ndarray,
    partner: np.ndarray,
    *,
    ties: Ties = "half",
    chunk_size: int | None = None,
) -> np.ndarray:
    """For each query, the fraction of non-partner targets closer to it than its partner.

    Squared Euclidean distances are computed tile by tile (``chunk_size`` query rows times
    2048 targets at a time), so memory stays bounded whatever the number of cells.

    Parameters
    ----------
    queries
        ``(n_queries, d)`` array.
    targets
        ``(n_targets, d)`` array, ``n_targets >= 2``.
    partner
        ``(n_queries,)`` integer index into ``targets`` of each query's true partner.
    ties
        ``"half"`` counts a target at exactly the partner's distance as half closer (a collapsed
        embedding then scores 0.5, like chance); ``"strict"`` counts only strictly closer
        targets (the convention of SCOT and Pamona; a collapsed embedding then scores 0).
    chunk_size
        Query rows per tile (default 512).

    Returns
    -------
    ``(n_queries,)`` array of fractions in ``[0, 1]``: count divided by ``n_targets - 1``.

    Examples
    --------
    >>> import numpy as np
    >>> closer_fraction(np.zeros((1, 1)), np.array([[0.0], [2.0], [-0.5]]), np.array([2]))
    array([0.5])

    """
    if ties not in ("half", "strict"):
        raise ValueError(f"ties must be 'half' or 'strict', got {ties!r}.")
    q = _as_float_matrix(queries, "queries")
    t = _as_float_matrix(targets, "targets")
    partner = np.asarray(partner, dtype=np.int64)
    if q.shape[1] != t.shape[1]:
        raise ValueError(
            f"Queries have {q.shape[1]} dimensions but targets have {t.shape[1]}; both must live "
            "in the same space."
        )
    n_t = t.shape[0]
    if n_t < 2:
        raise ValueError(f"FOSCTTM needs at least 2 target cells, got {n_t}.")
    bad_partner = partner.shape != (q.shape[0],)
    if not bad_partner and q.shape[0] > 0:
        bad_partner = bool(partner.min() < 0 or partner.max() >= n_t)
    if bad_partner:
        raise ValueError("partner must hold one valid target index per query.")
    if q.shape[0] == 0:
        return np.zeros(0)
    # translation invariance: centring shrinks the norms and hence the rounding error
    centre = t.mean(axis=0)
    q = q - centre
    t = t - centre
    nq = np.einsum("ij,ij->i", q, q)
    nt = np.einsum("ij,ij->i", t, t)
    diff = q - t[partner]
    # key_ij = |t_j|^2 - 2 q_i.t_j = d2_ij - |q_i|^2, compared within a row; one matmul of the
    # augmented matrices [-2 q, 1] and [t, |t|^2] gives it directly
    key_true = np.einsum("ij,ij->i", diff, diff) - nq
    tol = TIE_RTOL * (nq + nt.max())
    q_aug = np.hstack([-2.0 * q, np.ones((q.shape[0], 1))])
    t_aug = np.hstack([t, nt[:, None]])
    rows = max(1, int(chunk_size)) if chunk_size is not None else ROWS_PER_TILE
    less = np.zeros(q.shape[0])
    not_more = np.zeros(q.shape[0])
    for r0 in range(0, q.shape[0], rows):
        r1 = min(r0 + rows, q.shape[0])
        lo = (key_true[r0:r1] - tol[r0:r1])[:, None]
        hi = (key_true[r0:r1] + tol[r0:r1])[:, None]
        part = partner[r0:r1]
        for c0 in range(0, n_t, COLS_PER_TILE):
            c1 = min(c0 + COLS_PER_TILE, n_t)
            key = q_aug[r0:r1] @ t_aug[c0:c1].T
            inside = np.flatnonzero((part >= c0) & (part < c1))
            key[inside, part[inside] - c0] = np.inf  # the partner is not a competitor
            less[r0:r1] += np.count_nonzero(key < lo, axis=1)
            if ties == "half":
                not_more[r0:r1] += np.count_nonzero(key <= hi, axis=1)
    counts = less + 0.5 * (not_more - less) if ties == "half" else less
    return counts / (n_t - 1)


def foscttm_per_cell(
    x: np.ndarray,
    y: np.ndarray,
    *,
    ties: Ties = "half",
    chunk_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell FOSCTTM in both directions for true partners ``x[i]`` and ``y[i]``.

    Parameters
    ----------
    x, y
        ``(n, d)`` arrays in a shared space; row ``i`` of each is the same cell.
    ties, chunk_size
        As in :func:`foscttm`.

    Returns
    -------
    ``(f_xy, f_yx)``: for each ``x[i]`` the fraction of ``y[j], j != i`` closer to it than
    ``y[i]``, and the same from ``y`` to ``x``; denominators ``n - 1``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.0], [1.0], [2.0]])
    >>> f_xy, f_yx = foscttm_per_cell(x, x + 0.6)
    >>> f_xy, f_yx
    (array([0. , 0.5, 0.5]), array([0.5, 0.5, 0. ]))

    """
    x = _as_float_matrix(x, "x")
    y = _as_float_matrix(y, "y")
    if x.shape != y.shape:
        raise ValueError(
            f"x and y must have the same shape (row i of each is one cell's pair), got "
            f"{x.shape} and {y.shape}."
        )
    idx = np.arange(x.shape[0])
    f_xy = closer_fraction(x, y, idx, ties=ties, chunk_size=chunk_size)
    f_yx = closer_fraction(y, x, idx, ties=ties, chunk_size=chunk_size)
    return f_xy, f_yx


def foscttm(
    x: np.ndarray,
    y: np.ndarray,
    *,
    ties: Ties = "half",
    chunk_size: int | None = None,
) -> float:
    """Fraction Of Samples Closer Than the True Match, averaged over both directions.

    For each cell ``i`` the fraction of the ``n - 1`` other cells of the other modality that are
    closer (Euclidean distance) to ``x[i]`` than its true partner ``y[i]``, and likewise from
    ``y[i]``; the result is the mean of these ``2n`` fractions. 0 is a perfect alignment, about
    0.5 is chance.

    Exact but memory-bounded: distances are computed in tiles of at most 512 x 2048 (never an
    ``n x n`` matrix), in float64 after centring.

    Parameters
    ----------
    x, y
        ``(n, d)`` arrays in a shared space (e.g. a shared latent); ``x[i]`` and ``y[i]`` are
        true partners. ``n >= 2``; no NaN.
    ties
        ``"half"`` (default): a cell at exactly the partner's distance (relative tolerance
        ``1e-9``) counts one half, so a collapsed embedding scores 0.5 (chance), not 0.
        ``"strict"``: only strictly closer cells count (the SCOT / Pamona convention; identical
        to ``"half"`` whenever there are no ties).
    chunk_size
        Rows per tile (default 512; each tile holds at most ``chunk_size x 2048`` distances).

    Returns
    -------
    The mean FOSCTTM, a float in ``[0, 1]``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(100, 5))
    >>> foscttm(x, x + 0.01 * rng.normal(size=x.shape)) < 0.01
    True

    """
    f_xy, f_yx = foscttm_per_cell(x, y, ties=ties, chunk_size=chunk_size)
    return float((f_xy.sum() + f_yx.sum()) / (2 * len(f_xy)))
