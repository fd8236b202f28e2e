"""A cost kept as factors, ``C_ij = alpha_i + beta_j - P_i . Q_j``, computed by row chunks.

The streamed solver (:mod:`._stream`) never forms the ``n x m`` block of such a cost: it asks
for row chunks, for the entries at given pairs, or for one matrix product's worth of logits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Entries of one streamed row chunk of the cost (16 MB in float32).
STREAM_CHUNK_ENTRIES = 2**22


@dataclass
class FactoredCost:
    """A cost ``C_ij = alpha_i + beta_j - P_i . Q_j``, computed by row chunks.

    Attributes
    ----------
    alpha, beta
        Row and column terms ``(n,)``, ``(m,)``.
    P, Q
        Factors ``(n, r)``, ``(m, r)``.
    nonneg
        Clip the cost at 0 (squared distances, whose expansion can round below 0).
    dtype
        Floating dtype of the chunks (``"float32"`` or ``"float64"``).

    Examples
    --------
    >>> x, y = np.array([[0.0], [1.0]]), np.array([[2.0]])
    >>> FactoredCost.sqeuclidean(x, y).rows(0, 2)
    array([[4.],
           [1.]], dtype=float32)

    """

    alpha: np.ndarray
    beta: np.ndarray
    P: np.ndarray
    Q: np.ndarray
    nonneg: bool = False
    dtype: str = "float32"
    _QT: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        dt = np.dtype(self.dtype)
        self.alpha = np.ascontiguousarray(self.alpha, dtype=dt)
        self.beta = np.ascontiguousarray(self.beta, dtype=dt)
        self.P = np.ascontiguousarray(self.P, dtype=dt)
        self._QT = np.ascontiguousarray(-np.asarray(self.Q, dtype=dt).T)
        self.Q = np.asarray(self.Q, dtype=dt)

    @classmethod
    def sqeuclidean(cls, x: np.ndarray, y: np.ndarray, dtype: str = "float32") -> FactoredCost:
        """``|x_i - y_j|^2`` (rank ``d``; centre ``x`` and ``y`` by one shift first).

        Examples
        --------
        >>> FactoredCost.sqeuclidean(np.zeros((3, 2)), np.ones((4, 2))).shape
        (3, 4)

        """
        return cls((x**2).sum(1), (y**2).sum(1), 2.0 * x, y, nonneg=True, dtype=dtype)

    @property
    def shape(self) -> tuple[int, int]:
        """``(n, m)``.

        Examples
        --------
        >>> cost = FactoredCost.sqeuclidean(np.c_[[0.0, 1.0]], np.c_[[2.0, 0.0, 1.0]])
        >>> cost.shape
        (2, 3)

        """
        return len(self.alpha), len(self.beta)

    def chunk_rows(self) -> int:
        """Rows per streamed chunk.

        Examples
        --------
        >>> cost = FactoredCost.sqeuclidean(np.c_[[0.0, 1.0]], np.c_[[2.0, 0.0, 1.0]])
        >>> cost.chunk_rows() == STREAM_CHUNK_ENTRIES // 3
        True

        """
        return max(1, STREAM_CHUNK_ENTRIES // max(self.shape[1], 1))

    def rows(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Dense rows ``start:stop`` of the cost (written into ``out`` when given).

        Examples
        --------
        >>> cost = FactoredCost.sqeuclidean(np.c_[[0.0, 1.0]], np.c_[[2.0, 0.0, 1.0]])
        >>> cost.rows(0, 1)
        array([[4., 0., 1.]], dtype=float32)

        """
        C = np.matmul(self.P[start:stop], self._QT, out=out)
        C += self.alpha[start:stop, None]
        C += self.beta[None, :]
        if self.nonneg:
            np.maximum(C, 0.0, out=C)
        return C

    def logit_factors(
        self, eps: float, col_term: np.ndarray, row_shift: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Factors ``A, B^T`` with ``(A @ B^T)_ij = col_term_j - C_ij / eps - row_shift_i``.

        One matrix product then gives a chunk of Sinkhorn logits, with no further pass over the
        chunk (the clip of ``nonneg`` costs at 0 is not applied: it only removes rounding).

        Examples
        --------
        >>> cost = FactoredCost.sqeuclidean(np.c_[[0.0, 1.0]], np.c_[[2.0, 0.0, 1.0]])
        >>> A, BT = cost.logit_factors(1.0, np.zeros(3))
        >>> A @ BT
        array([[-4.,  0., -1.],
               [-1., -1.,  0.]], dtype=float32)

        """
        dt = np.dtype(self.dtype)
        n, m = self.shape
        shift = np.zeros(n) if row_shift is None else row_shift
        A = np.empty((n, self.P.shape[1] + 2), dtype=dt)
        A[:, :-2] = self.P / dt.type(eps)
        A[:, -2] = -(self.alpha.astype(np.float64) / eps + shift)
        A[:, -1] = 1.0
        BT = np.empty((self.P.shape[1] + 2, m), dtype=dt)
        BT[:-2] = -self._QT
        BT[-2] = 1.0
        BT[-1] = np.asarray(col_term, dtype=np.float64) - self.beta.astype(np.float64) / eps
        return A, BT

    def pairs(self, r: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Cost at the pairs ``(r[k], c[k])`` (float64).

        Examples
        --------
        >>> cost = FactoredCost.sqeuclidean(np.c_[[0.0, 1.0]], np.c_[[2.0, 0.0, 1.0]])
        >>> cost.pairs(np.array([0, 1]), np.array([0, 2]))
        array([4., 0.])

        """
        out = np.empty(len(r), dtype=np.float64)
        step = max(1, STREAM_CHUNK_ENTRIES // max(self.P.shape[1], 1))
        for s in range(0, len(r), step):
            rr, cc = r[s : s + step], c[s : s + step]
            v = self.alpha[rr] + self.beta[cc] + np.einsum("ij,ji->i", self.P[rr], self._QT[:, cc])
            out[s : s + step] = np.maximum(v, 0.0) if self.nonneg else v
        return out

    def transpose(self) -> FactoredCost:
        """The cost ``C^T`` (columns become rows).

        Examples
        --------
        >>> cost = FactoredCost.sqeuclidean(np.c_[[0.0, 1.0]], np.c_[[2.0, 0.0, 1.0]])
        >>> cost.transpose().shape
        (3, 2)

        """
        return FactoredCost(
            self.beta, self.alpha, -self._QT.T, self.P, nonneg=self.nonneg, dtype=self.dtype
        )

    def max_and_nearest(self, k: int) -> tuple[float, np.ndarray]:
        """Largest entry and, per row, the columns of its ``k`` smallest entries (streamed).

        Examples
        --------
        >>> cost = FactoredCost.sqeuclidean(np.c_[[0.0, 1.0]], np.c_[[2.0, 0.0, 1.0]])
        >>> cost.max_and_nearest(1)
        (4.0, array([[1],
               [2]]))

        """
        n, m = self.shape
        k = min(k, m)
        step, cmax = self.chunk_rows(), 0.0
        nearest = np.empty((n, k), dtype=np.int64)
        for s in range(0, n, step):
            C = self.rows(s, s + step)
            cmax = max(cmax, float(C.max()))
            nearest[s : s + step] = (
                np.argpartition(C, k - 1, axis=1)[:, :k] if k < m else np.arange(m)
            )
        return cmax, nearest

    def max(self) -> float:
        """Largest entry, streamed.

        Examples
        --------
        >>> cost = FactoredCost.sqeuclidean(np.c_[[0.0, 1.0]], np.c_[[2.0, 0.0, 1.0]])
        >>> cost.max()
        4.0

        """
        n, step = self.shape[0], self.chunk_rows()
        return max((float(self.rows(s, s + step).max()) for s in range(0, n, step)), default=0.0)
