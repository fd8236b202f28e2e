"""Log-stabilised Sinkhorn with the plan restricted to a sparse support (kernel truncation).

The sparse phase of the streamed solver (:mod:`._stream`): the plan
``T_ij = a_i b_j exp((f_i + g_j - C_ij) / eps)`` is only represented on given entries
``(rows, cols)`` (Schmitzer 2019), every other entry counting as infinite cost. Same
parametrisation, stopping rule, epsilon scaling, over-relaxation and absorption as the padded
solver (:mod:`._sinkhorn`), on two sparse matrix-vector products per iteration.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..._docs import doc_params
from ._sinkhorn import ABSORB_AT, GROWTH_LIMIT, STAGE_TOL
from ._sinkhorn_docs import SINKHORN_PARAMS


@doc_params(**SINKHORN_PARAMS)
def sparse_sinkhorn(  # noqa: D417 (parameters from SINKHORN_PARAMS)
    rows: np.ndarray,
    cols: np.ndarray,
    C: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    eps: float,
    *,
    f: np.ndarray | None = None,
    g: np.ndarray | None = None,
    reg_m: float | None = None,
    tol: float = 1e-4,
    max_iter: int = 10_000,
    eps_scaling: int = 0,
    omega: float | str = "auto",
    omega_max: float = 1.95,
    check_every: int = 10,
) -> tuple[np.ndarray, np.ndarray, int, float]:
    """Log-stabilised Sinkhorn with the plan restricted to the entries ``(rows, cols)``.

    Entries outside the support are treated as infinite cost. Every row and column must hold
    at least one entry.

    Parameters
    ----------
    rows, cols, C
        Support entries (sorted by row, no duplicates) and their costs.
    a, b
        Row and column masses (positive); equal totals unless ``reg_m`` is given.
    %(eps)s
    f, g
        Warm-start potentials (default: row minima and column minima of the reduced cost).
    %(reg_m)s
    tol
        Stop when the relative L1 marginal error (balanced) or the largest change of the
        log-scalings (unbalanced) on the support is below ``tol``.
    max_iter
        Iteration cap (warm-up stages included).
    %(eps_scaling)s
    %(omega)s
    %(omega_max)s
    %(check_every)s

    Returns
    -------
    ``(f, g, n_iter, error)``: potentials, iterations (warm-up stages included) and the last
    error on the support.

    Examples
    --------
    >>> rows, cols = np.array([0, 0, 1]), np.array([0, 1, 1])
    >>> a = b = np.array([0.5, 0.5])
    >>> f, g, n_iter, err = sparse_sinkhorn(rows, cols, np.array([0.0, 1.0, 0.0]), a, b, 0.1)
    >>> bool(err < 1e-4)
    True

    """
    if len(rows) > 1 and np.any(np.diff(rows) < 0):
        raise ValueError("sparse_sinkhorn needs the support sorted by row.")
    if reg_m is not None:
        omega, eps_scaling = 1.0, 0
    solve = _SparseSolve(rows, cols, C, a, b, f, g, reg_m=reg_m, eps=eps, check_every=check_every)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        return solve.run(tol, max_iter, eps_scaling, omega, omega_max)


def _unit_kernel_potentials(
    rows: np.ndarray,
    cols: np.ndarray,
    C: np.ndarray,
    shape: tuple[int, int],
    f: np.ndarray | None,
    g: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Starting potentials: kernel entries at most 1, one entry equal to 1 in each row and column.

    From the given potentials, or (``f=None``) the row and column minima of the reduced cost.
    """
    n, m = shape
    if f is None:
        f = np.full(n, np.inf)
        np.minimum.at(f, rows, C)
        g = np.full(m, np.inf)
        np.minimum.at(g, cols, C - f[rows])
    f, g = f.astype(np.float64).copy(), g.astype(np.float64).copy()
    expo = f[rows] + g[cols] - C
    row_max = np.full(n, -np.inf)
    np.maximum.at(row_max, rows, expo)
    f -= row_max
    expo -= row_max[rows]
    col_max = np.full(m, -np.inf)
    np.maximum.at(col_max, cols, expo)
    g -= col_max
    return f, g


class _SparseSolve:
    """State of one :func:`sparse_sinkhorn` call: potentials, scalings and the sparse kernel."""

    def __init__(
        self,
        rows: np.ndarray,
        cols: np.ndarray,
        C: np.ndarray,
        a: np.ndarray,
        b: np.ndarray,
        f: np.ndarray | None,
        g: np.ndarray | None,
        *,
        reg_m: float | None,
        eps: float,
        check_every: int,
    ) -> None:
        self.rows, self.cols, self.C, self.a, self.b = rows, cols, C, a, b
        self.shape = n, m = len(a), len(b)
        self.eps, self.check_every = eps, check_every
        self.balanced = reg_m is None
        self.fi = 1.0 if self.balanced else reg_m / (reg_m + eps)
        self.f, self.g = _unit_kernel_potentials(rows, cols, C, self.shape, f, g)
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
        self.mass = float(a.sum())
        self.lu, self.lv = np.zeros(n), np.zeros(m)

    def rebuild(self, eps_s: float) -> None:
        """The kernel ``exp((f + g - C) / eps_s)`` on the support, and its transpose."""
        data = np.exp((self.f[self.rows] + self.g[self.cols] - self.C) / eps_s)
        self.K = sp.csr_matrix((data, self.cols, self.indptr), shape=self.shape)
        self.KT = self.K.T.tocsr()

    def absorb(self, eps_s: float) -> None:
        """Fold the scalings into the potentials."""
        self.f, self.g = self.f + eps_s * self.lu, self.g + eps_s * self.lv
        self.lu, self.lv = np.zeros(self.shape[0]), np.zeros(self.shape[1])

    def iterate(self, om: float, eps_s: float) -> tuple[float, float]:
        """``check_every`` iterations; the error of the last one and the largest log-scaling."""
        fi, keep = self.fi, 1.0 - om
        cu = 0.0 if self.balanced else (fi - 1.0) * self.f / eps_s
        cv = 0.0 if self.balanced else (fi - 1.0) * self.g / eps_s
        a, b, lu, lv = self.a, self.b, self.lu, self.lv
        for it in range(self.check_every):
            last = it == self.check_every - 1
            S = self.K @ (np.exp(lv) * b)
            if last:
                row_err = np.abs(a * np.exp(lu) * S - a).sum()
                lu_old = lu
            lu = keep * lu + om * (cu - fi * np.log(S))
            T = self.KT @ (np.exp(lu) * a)
            if last:
                col_err = np.abs(b * np.exp(lv) * T - b).sum()
                lv_old = lv
            lv = keep * lv + om * (cv - fi * np.log(T))
        self.lu, self.lv = lu, lv
        if self.balanced:
            err = (row_err + col_err) / self.mass
        else:
            err = max(np.abs(lu - lu_old).max(), np.abs(lv - lv_old).max())
        return err, max(np.abs(lu).max(), np.abs(lv).max())

    def run(
        self, tol: float, max_iter: int, eps_scaling: int, omega: float | str, omega_max: float
    ) -> tuple[np.ndarray, np.ndarray, int, float]:
        """Iterate to ``tol`` through the warm-up stages (see :func:`sparse_sinkhorn`)."""
        adaptive = omega == "auto"
        om0 = 1.0 if adaptive else float(omega)
        stage = eps_scaling
        eps_s = self.eps * 2.0**stage
        self.rebuild(eps_s)
        snap = (self.lu, self.lv)
        om, locked, prev = om0, False, np.inf
        total, err = 0, np.inf
        while total < max_iter:
            err, big = self.iterate(om, eps_s)
            total += self.check_every
            if not (np.isfinite(err) and np.isfinite(big)) or (
                om > 1.0 and err > GROWTH_LIMIT * prev
            ):
                if om == 1.0:
                    raise FloatingPointError(
                        "Sinkhorn diverged (non-finite scalings); increase epsilon or use "
                        "dtype='float64'."
                    )
                self.lu, self.lv = snap
                om, locked, prev = 1.0, True, np.inf
                continue
            if err < (max(tol, STAGE_TOL) if stage > 0 else tol):
                self.absorb(eps_s)
                if stage == 0:
                    break
                stage -= 1
                eps_s = self.eps * 2.0**stage
                self.rebuild(eps_s)
                om, prev, snap = om0, np.inf, (self.lu, self.lv)
                continue
            if adaptive and not locked and om == 1.0 and err < 1e-2 and err < prev:
                theta = min(max(err / prev, 0.0), 1.0) ** (1.0 / self.check_every)
                om = min(2.0 / (1.0 + np.sqrt(1.0 - theta)), omega_max)
            prev = err
            snap = (self.lu, self.lv)
            if big > ABSORB_AT:
                self.absorb(eps_s)
                snap = (self.lu, self.lv)
                self.rebuild(eps_s)
        else:
            self.absorb(eps_s)
        return self.f, self.g, total, float(err)
