"""Squared-Euclidean costs: batched blocks, exact means and the rank-(d+2) factorisation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._backend import ArrayOps


def mean_sqdist(x: np.ndarray, y: np.ndarray | None = None) -> float:
    """Mean of ``|x_i - y_j|^2`` over all pairs (``y = x`` if omitted), in ``O((n + m) d)``.

    Examples
    --------
    >>> mean_sqdist(np.array([[0.0], [2.0]]))
    2.0

    """
    y = x if y is None else y
    (mx, sx), (my, sy) = _moments(x), _moments(y)
    return float(sx + sy - 2.0 * mx @ my)


def _moments(x: np.ndarray, w: np.ndarray | None = None) -> tuple[np.ndarray, Any]:
    """Mean point and mean squared norm of the rows of ``x`` (weights ``w``, any positive sum).

    In ``x``'s dtype without weights (as numpy scalars), so that callers keep its precision.
    """
    if w is None:
        return x.mean(axis=0), (x**2).sum(1).mean()
    return w @ x / w.sum(), w @ (x**2).sum(1) / w.sum()


def sqeuclidean_factors(x: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Factors ``U, V`` of rank ``d + 2`` with ``U @ V.T == |x_i - x_k|^2 / scale``.

    ``U = [|x|^2, 1, x]`` and ``V = [1, |x|^2, -2 x] / scale`` (``x`` should be centred to limit
    cancellation). No ``n x n`` matrix is formed.

    Examples
    --------
    >>> U, V = sqeuclidean_factors(np.array([[0.0], [2.0]]), 1.0)
    >>> U @ V.T
    array([[0., 4.],
           [4., 0.]])

    """
    sq = (x**2).sum(axis=1, keepdims=True)
    ones = np.ones_like(sq)
    U = np.hstack([sq, ones, x])
    V = np.hstack([ones, sq, -2.0 * x]) / scale
    return U, V


def weighted_square_rowsums(U: np.ndarray, V: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``sum_k w_k (U V^T)_ik^2`` for every ``i`` without forming ``U V^T``.

    Examples
    --------
    >>> U, V = sqeuclidean_factors(np.array([[0.0], [2.0]]), 1.0)
    >>> weighted_square_rowsums(U, V, np.array([0.5, 0.5]))
    array([8., 8.])

    """
    W = (V * w[:, None]).T @ V
    return ((U @ W) * U).sum(axis=1)


def batched_sqdist(X: Any, Y: Any, ops: ArrayOps) -> Any:
    """Squared distances ``(G, N, M)`` between padded point sets ``(G, N, d)`` and ``(G, M, d)``.

    Examples
    --------
    >>> from groove_sc.tl._aligners._backend import resolve_backend
    >>> batched_sqdist(np.zeros((1, 1, 2)), np.ones((1, 2, 2)), resolve_backend("cpu"))
    array([[[2., 2.]]])

    """
    nx = ops.nx
    sx = nx.sum(X**2, axis=2)
    sy = nx.sum(Y**2, axis=2)
    D = X @ ops.transpose(Y)
    if ops.name == "numpy":  # in place: no extra (G, N, M) temporaries
        D *= -2.0
        D += sx[:, :, None]
        D += sy[:, None, :]
        return np.maximum(D, 0.0, out=D)
    return nx.maximum(sx[:, :, None] + sy[:, None, :] - 2.0 * D, 0.0)


def mask_padding(C: Any, a: Any, b: Any, ops: ArrayOps) -> Any:
    """Set ``C = inf`` on padded rows (``a == 0``) and columns (``b == 0``) (in place on numpy).

    Examples
    --------
    >>> from groove_sc.tl._aligners._backend import resolve_backend
    >>> C, a, b = np.ones((1, 2, 2)), np.array([[1.0, 0.0]]), np.array([[1.0, 1.0]])
    >>> mask_padding(C, a, b, resolve_backend("cpu"))
    array([[[ 1.,  1.],
            [inf, inf]]])

    """
    if ops.name == "numpy":
        C[~(a > 0)] = np.inf
        np.moveaxis(C, 2, 1)[~(b > 0)] = np.inf
        return C
    valid = (a > 0)[:, :, None] & (b > 0)[:, None, :]
    return ops.nx.where(valid, C, float("inf"))


def support_max(C: Any, a: Any, b: Any, ops: ArrayOps) -> float:
    """Largest cost on the support (padding, masked with ``inf``, excluded).

    Examples
    --------
    >>> from groove_sc.tl._aligners._backend import resolve_backend
    >>> support_max(np.array([[[1.0, np.inf]]]), None, None, resolve_backend("cpu"))
    1.0

    """
    if ops.name == "numpy":
        return float(np.max(C, where=np.isfinite(C), initial=-np.inf))
    nx = ops.nx
    return float(nx.max(nx.where(nx.isinf(C), -float("inf"), C)))


def blockwise_mean_sqeuclidean(
    xs: np.ndarray,
    xt: np.ndarray,
    source_index: Sequence[np.ndarray],
    target_index: Sequence[np.ndarray],
    source_mass: Sequence[np.ndarray],
    target_mass: Sequence[np.ndarray],
) -> float:
    """Mean squared-Euclidean cost of the independent coupling, pooled over blocks.

    Per block, ``sum_ij a_i b_j |x_i - y_j|^2 / (sum a sum b)``, computed from the masses'
    first and second moments (nothing source x target is formed); blocks are weighted by
    their source mass. This is the typical cost a cell pays within its group, the scale of
    ``leot``'s epsilon: unlike the largest cost, one outlying cell does not move it.

    Parameters
    ----------
    xs, xt
        ``(n, d)``, ``(m, d)`` representations (best centred by one common shift).
    source_index, target_index
        Per block, the positions of its cells.
    source_mass, target_mass
        Per block, the masses of those cells.

    Returns
    -------
    The pooled mean cost (0 when no block has mass or every block's cells coincide).

    Examples
    --------
    >>> xs, xt = np.array([[0.0], [2.0]]), np.array([[1.0], [5.0]])
    >>> blockwise_mean_sqeuclidean(xs, xt, [np.array([0]), np.array([1])],
    ...     [np.array([0]), np.array([1])], [np.ones(1), np.ones(1)], [np.ones(1), np.ones(1)])
    5.0

    """
    total, weight = 0.0, 0.0
    for si, ti, a, b in zip(source_index, target_index, source_mass, target_mass):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        wa, wb = a.sum(), b.sum()
        if wa <= 0 or wb <= 0:
            continue
        (mx, sx), (my, sy) = (
            _moments(np.asarray(xs[si], np.float64), a),
            _moments(np.asarray(xt[ti], np.float64), b),
        )
        second = float(sx + sy)
        mean = second - 2.0 * float(mx @ my)
        # below the rounding error of the expansion the block's cells coincide: cost 0
        total += float(wa) * (mean if mean > 1e-10 * second else 0.0)
        weight += float(wa)
    return float(total / weight) if weight > 0 else 0.0
