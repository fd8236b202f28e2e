"""Entropic OT on one large block without a dense block: factorised costs streamed in row chunks.

A group with many cells on both sides (the control group of a screen: 11k x 11k cells at 111k
cells per modality, 20k x 20k at 200k) would need several ``n x m`` matrices in the padded
batched solver (:mod:`._sinkhorn`). Here its cost is kept factorised,

    C_ij = alpha_i + beta_j - P_i . Q_j        (rank r: d for squared Euclidean costs),

and only row chunks of the logits (a few MB) ever exist. The plan
``T_ij = a_i b_j exp((f_i + g_j - C_ij) / eps)`` (POT's ``reg_type="kl"`` convention, as in
:mod:`._sinkhorn`) is found with two kinds of steps:

- **Exact pass** (:func:`_exact_pass`): one Sinkhorn iteration on the full block, streamed over
  row chunks (one matrix product on augmented factors gives a chunk's logits): the row
  potentials ``f`` are updated by a row-wise logsumexp, the column sums of the updated plan are
  accumulated, then ``g`` is updated (both optionally over-relaxed). The pass measures the exact
  L1 marginal error (the stopping rule of the padded solver) and can collect each row's largest
  entries holding all but ``SUPPORT_SLACK * tol`` of its mass (the *support* of a sparse
  phase), the stored rows (:func:`.sparsify_rows`) and, for Gromov-Wasserstein and COOT, the
  statistic ``L^T T R`` their next cost needs.
- **Sparse phase** (:func:`._sparse_sinkhorn.sparse_sinkhorn`): log-stabilised Sinkhorn
  restricted to the support (kernel truncation, Schmitzer 2019), with epsilon scaling and
  adaptive over-relaxation as in the padded solver; two sparse matrix-vector products per
  iteration.

A cold start first solves a random subsample of ``SUBSAMPLE`` rows and columns densely; a
c-transform extends its potentials to every column, and its plan tells how spread out the full
plan is. **Sharp plans** (rows hold their mass in few entries) alternate sparse phases and
exact passes, the support growing by what each exact pass finds, until an exact pass meets
``tol``. **Spread-out plans** (more than ``DIFFUSE_ROWS`` of the rows need over ``SUPPORT_MAX``
entries: the usual case for a control group at the default epsilon) run over-relaxed exact
passes from the subsampled start until one meets ``tol``. Either way the stored rows come from
a final exact pass with exact row marginals, so the result is the dense solver's up to ``tol``;
memory is ``O((n + m)(r + k))`` plus one row chunk.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp

from ..._docs import doc_params
from ._factored_cost import FactoredCost
from ._plan_rows import _PassResult, _PlanRows
from ._sinkhorn import GROWTH_LIMIT
from ._sinkhorn_docs import SINKHORN_PARAMS
from ._sparse_sinkhorn import sparse_sinkhorn

__all__ = ["FactoredCost", "StreamOutput", "solve_stream"]

#: Entries per row of the sparse phase's support: each row's largest entries holding all but
#: ``SUPPORT_SLACK * tol`` of its mass, at most ``SUPPORT_MAX`` (searched among the
#: ``SUPPORT_FIRST`` largest first, :data:`._plan_rows.SUPPORT_FIRST`).
SUPPORT_MAX = 1024
SUPPORT_SLACK = 0.25
#: On a cold start every column also contributes its ``SUPPORT_COLUMN`` cheapest rows.
SUPPORT_COLUMN = 16
#: Share of rows whose ``SUPPORT_MAX`` largest entries miss the support mass above which the
#: plan counts as spread out: the block is then solved by exact passes, not sparse rounds.
DIFFUSE_ROWS = 0.01
#: Rows and columns of the subsampled problem that warm-starts a spread-out block.
SUBSAMPLE = 2048
#: Largest number of exact passes of one solve.
MAX_PASSES = 500
#: Cap of the over-relaxation of exact passes.
OMEGA_MAX_PASS = 1.8
#: Exact passes are over-relaxed once their error is below this (and decreasing).
OMEGA_FROM = 1e-2
#: Largest number of (exact pass + sparse phase) rounds of one solve.
MAX_ROUNDS = 8

_R = TypeVar("_R")


@dataclass
class StreamOutput:
    """Result of :func:`solve_stream` on one block.

    Attributes
    ----------
    rows, cols, vals
        The stored entries (block positions), rows rescaled to their mass.
    dropped
        Mass moved from dropped to kept entries.
    f, g
        Potentials after the last exact pass (for warm starts).
    n_iter
        Sparse-phase iterations plus exact passes.
    n_passes
        Exact passes over the block.
    error
        Relative L1 marginal error measured by the last exact pass (balanced), or the largest
        change of the potentials over ``eps`` (unbalanced).
    converged
        ``error < tol``.
    stat
        ``L^T T R`` when statistic factors were given.
    support_size
        Entries of the last sparse phase's support.
    column_nearest
        The columns' cheapest rows used in the first support (pass them to a warm-started
        solve of a nearby cost).

    """

    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    dropped: float
    f: np.ndarray
    g: np.ndarray
    n_iter: int
    n_passes: int
    error: float
    converged: bool
    stat: np.ndarray | None = None
    support_size: int = 0
    column_nearest: np.ndarray | None = None


def _chunk_exp(
    A: np.ndarray, BT: np.ndarray, s: int, e: int, out: np.ndarray, shift: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stabilised exponentials of the logits of rows ``s:e``, their log-shifts and row sums.

    The shift is the row's log-sum from the input potentials (``shift``) or, cold, the row
    maximum; rows where the given shift was off by too much for the dtype are redone with
    their maximum.
    """
    L = np.matmul(A[s:e], BT, out=out[: e - s])
    if shift is None:
        base = L.max(axis=1).astype(np.float64)
        L -= base.astype(L.dtype)[:, None]
    else:
        base = shift[s:e]
    # below this the exponentials would be subnormal: slow on CPUs, and negligible
    np.maximum(L, L.dtype.type(np.log(np.finfo(L.dtype).tiny)), out=L)
    with np.errstate(over="ignore"):
        np.exp(L, out=L)
    rs = L.sum(axis=1).astype(np.float64)
    bad = ~np.isfinite(rs) | (rs <= 0)
    if bad.any():
        rows = np.flatnonzero(bad)
        Lb = A[s + rows] @ BT
        mxb = Lb.max(axis=1)
        np.exp(Lb - mxb[:, None], out=Lb)
        L[rows] = Lb
        base = base.copy()  # Lb carried the shift: add it back
        base[rows] = mxb if shift is None else mxb + shift[s + rows]
        rs[rows] = Lb.sum(axis=1)
    return L, base, rs


def _exact_pass(
    cost: FactoredCost,
    a: np.ndarray,
    b: np.ndarray,
    f: np.ndarray,
    g: np.ndarray,
    eps: float,
    fi: float,
    *,
    omega: float = 1.0,
    shifted: bool = False,
    **keep: Any,
) -> _PassResult:
    """One exact Sinkhorn iteration over the block, streamed by row chunks (see module doc).

    ``omega`` over-relaxes both updates (``1`` for the stored pass, whose rows are exact).
    ``shifted``: the input ``f`` is a Sinkhorn potential, so ``-f / eps`` stabilises the
    exponentials without a row maximum. ``keep``: what to keep of the plan (the options of
    :class:`_PlanRows`).
    """
    n, m = cost.shape
    step = cost.chunk_rows()
    buf = np.empty((min(step, n), m), dtype=np.dtype(cost.dtype))
    plan = _PlanRows(cost.shape, cost.dtype, len(buf), **keep)
    f_new, colsum, row_err = np.empty(n), np.zeros(m), 0.0
    # logits L_ij = (g_j - C_ij) / eps + log b_j - shift_i from one matrix product per chunk
    shift = None if not shifted else -f / (fi * eps)
    A, BT = cost.logit_factors(eps, g / eps + np.log(b), shift)
    for s in range(0, n, step):
        e = min(n, s + step)
        L, base, rs = _chunk_exp(A, BT, s, e, buf, shift)
        lse = base + np.log(rs)
        a_c, f_c = a[s:e], f[s:e]
        with np.errstate(over="ignore"):
            row_err += float(np.abs(a_c * np.exp(f_c / eps + lse) - a_c).sum())
        f_sk = -fi * eps * lse
        f_new[s:e] = f_sk if omega == 1.0 else f_c + omega * (f_sk - f_c)
        w = (a_c * np.exp(base + f_new[s:e] / eps)).astype(buf.dtype)
        if not plan.keeps:
            colsum += (w @ L).astype(np.float64)
            continue
        total = w * rs
        L *= w[:, None]  # the plan's rows
        colsum += L.sum(axis=0).astype(np.float64)
        plan.add(L, total, s)
    safe = np.maximum(colsum, np.finfo(np.float64).tiny)
    g_sk = fi * g - fi * eps * np.log(safe / b)
    g_new = g_sk if omega == 1.0 else g + omega * (g_sk - g)
    if fi == 1.0:
        error = (row_err + float(np.abs(colsum - b).sum())) / float(a.sum())
    else:
        error = float(max(np.abs(f_new - f).max(), np.abs(g_new - g).max()) / eps)
    return plan.result(f_new, g_new, error)


def _subsample_potentials(
    cost: FactoredCost,
    a: np.ndarray,
    b: np.ndarray,
    eps: float,
    tol: float,
    max_iter: int,
    support_mass: float,
    support_max: int,
) -> tuple[np.ndarray, float]:
    """Column potentials from a subsampled problem, extended to every column by a c-transform.

    A random subset of ``SUBSAMPLE`` rows and columns (uniform masses, same total) is solved
    dense; ``g_j = -eps log sum_{i in S} a'_i exp((f'_i - C_ij) / eps)`` then gives every
    column's potential. When plans spread over many cells the potentials are smooth, and this
    start leaves few exact passes to the full problem. Also returns the share of rows whose
    support (entries holding ``support_mass`` of the row), scaled from the subsample to all
    columns, exceeds ``support_max``: whether the plan is spread out.
    """
    from ._backend import resolve_backend
    from ._sinkhorn import sinkhorn_padded

    n, m = cost.shape
    rng = np.random.default_rng(0)
    si = np.sort(rng.choice(n, size=min(SUBSAMPLE, n), replace=False))
    ti = np.sort(rng.choice(m, size=min(SUBSAMPLE, m), replace=False))
    sub = FactoredCost(
        cost.alpha[si], cost.beta[ti], cost.P[si], -cost._QT[:, ti].T, cost.nonneg, cost.dtype
    )
    ops = resolve_backend("cpu", "numpy", cost.dtype)
    mass = float(a.sum())
    C = sub.rows(0, len(si))[None]
    a_sub = np.full((1, len(si)), mass / len(si))
    b_sub = np.full((1, len(ti)), mass / len(ti))
    a_dev, b_dev = ops.asarray(a_sub), ops.asarray(b_sub)
    out = sinkhorn_padded(C, a_dev, b_dev, eps, ops=ops, tol=tol, max_iter=max_iter, eps_scaling=3)
    f_sub = ops.to_numpy(out.f[0]).astype(np.float64)
    plan = -np.sort(-ops.to_numpy(out.plan[0]).astype(np.float64), axis=1)
    del C, out
    need = support_mass * plan.sum(axis=1, keepdims=True)
    counts = ((np.cumsum(plan, axis=1) - plan) < need).sum(axis=1) * (m / len(ti))
    spread = float((counts > support_max).mean())
    del plan
    # c-transform over the subsampled rows: one streamed pass over m x |S|
    back = FactoredCost(cost.beta, cost.alpha[si], -cost._QT.T, cost.P[si], cost.nonneg, cost.dtype)
    fl = (f_sub / eps + np.log(a_sub[0])).astype(np.dtype(cost.dtype))
    g = np.empty(m)
    step = back.chunk_rows()
    for s in range(0, m, step):
        L = back.rows(s, s + step)
        L *= np.dtype(cost.dtype).type(-1.0 / eps)
        L += fl[None, :]
        mx = L.max(axis=1).astype(np.float64)
        L -= mx.astype(L.dtype)[:, None]
        np.exp(L, out=L)
        g[s : s + step] = -eps * (mx + np.log(L.sum(axis=1).astype(np.float64)))
    return g, spread


def _support(
    cost: FactoredCost, sup_r: np.ndarray, sup_c: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deduplicated support entries, sorted by row then column, and their costs."""
    pattern = sp.csr_matrix((np.ones(len(sup_r), dtype=np.int8), (sup_r, sup_c)), shape=cost.shape)
    pattern.sum_duplicates()  # also sorts the columns of every row
    r = np.repeat(np.arange(cost.shape[0]), np.diff(pattern.indptr))
    c = pattern.indices.astype(np.int64)
    return r, c, cost.pairs(r, c)


def _with_one_blas_thread(func: Callable[..., _R]) -> Callable[..., _R]:
    """Run ``func`` with one BLAS thread.

    The chunk products of the streamed solver are small: one thread avoids synchronisation,
    which costs several times the work when other processes share the cores.
    """

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> _R:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            return func(*args, **kwargs)
        with threadpool_limits(limits=1, user_api="blas"):
            return func(*args, **kwargs)

    return run


@_with_one_blas_thread
@doc_params(**SINKHORN_PARAMS)
def solve_stream(  # noqa: D417 (parameters from SINKHORN_PARAMS)
    cost: FactoredCost,
    a: np.ndarray,
    b: np.ndarray,
    eps: float,
    *,
    reg_m: float | None = None,
    tol: float = 1e-4,
    max_iter: int = 10_000,
    eps_scaling: int = 0,
    omega: float | str = "auto",
    f: np.ndarray | None = None,
    g: np.ndarray | None = None,
    keep_mass: float = 1.0,
    max_per_row: int | None = None,
    prune: float = 0.0,
    stat_factors: tuple[np.ndarray, np.ndarray] | None = None,
    column_nearest: np.ndarray | None = None,
    support_max: int | None = None,
    max_rounds: int = MAX_ROUNDS,
) -> StreamOutput:
    """Entropic OT on one block with a factorised cost, never forming the dense block.

    See the module documentation for the scheme. The returned entries are the plan's rows
    from the last exact pass, sparsified by :func:`.sparsify_rows`.

    Parameters
    ----------
    cost
        The block's :class:`FactoredCost`.
    a, b
        Positive masses of the block's rows and columns.
    %(eps)s
    %(reg_m)s
    tol, max_iter
        Stop when an exact pass's relative L1 marginal error (balanced) or largest change of
        the potentials over ``eps`` (unbalanced) is below ``tol``; iteration cap of each
        sparse phase.
    %(eps_scaling)s
        Only the first sparse phase of a cold start has them.
    omega
        Over-relaxation of the sparse phase (``"auto"`` or a value in ``[1, 2)``).
    f, g
        Warm-start potentials (e.g. the previous Gromov-Wasserstein iteration's).
    keep_mass, max_per_row, prune
        Sparsification of the stored rows (:func:`.sparsify_rows`).
    stat_factors
        ``(L, R)``: also return ``L^T T R`` of the stored pass's full plan ``T``.
    column_nearest
        ``(m, k)``: for every column, rows of its smallest costs (from
        :meth:`FactoredCost.max_and_nearest` of the transposed cost), added to the support of
        sharp plans; computed when needed and not given (and returned for reuse).
    support_max, max_rounds
        Largest number of entries per row in the sparse phase's support (default
        ``SUPPORT_MAX``); largest number of (exact pass, sparse phase) rounds.

    Examples
    --------
    >>> x, y = np.random.default_rng(0).normal(size=(2, 30, 2))
    >>> cost = FactoredCost.sqeuclidean(x, y, dtype="float64")
    >>> out = solve_stream(cost, np.full(30, 1 / 30), np.full(30, 1 / 30), 0.5)
    >>> bool(out.converged), round(float(out.vals.sum()), 6)
    (True, 1.0)

    """
    keep = {"keep_mass": keep_mass, "max_per_row": max_per_row, "prune": prune}
    solve = _StreamSolve(cost, a, b, eps, reg_m, tol, max_iter, support_max, stat_factors, keep)
    cold = f is None
    res, diffuse = solve.start(f, g)
    if not diffuse and res.error >= solve.tol:
        stages = eps_scaling if cold else 0
        res, diffuse, column_nearest = solve.sharp_rounds(
            res, column_nearest, stages=stages, omega=omega, max_rounds=max_rounds
        )
    if diffuse and res.error >= solve.tol:
        res = solve.diffuse_passes(res, trusted=solve.passes > 0 or not cold)
    return solve.output(res, column_nearest)


class _StreamSolve:
    """State of one :func:`solve_stream` call: the block, its tolerance and the counters.

    A cold start begins with :meth:`start`; then sharp plans go through :meth:`sharp_rounds`
    and spread-out ones through :meth:`diffuse_passes` (see the module documentation).
    """

    def __init__(
        self,
        cost: FactoredCost,
        a: np.ndarray,
        b: np.ndarray,
        eps: float,
        reg_m: float | None,
        tol: float,
        max_iter: int,
        support_max: int | None,
        stat_factors: tuple[np.ndarray, np.ndarray] | None,
        keep: dict[str, Any],
    ) -> None:
        self.cost, self.eps, self.reg_m, self.max_iter = cost, eps, reg_m, max_iter
        self.a, self.b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        self.fi = 1.0 if reg_m is None else reg_m / (reg_m + eps)
        floor = 50 * float(np.finfo(np.dtype(cost.dtype)).eps)
        self.tol = max(tol, floor) if reg_m is None else tol
        self.support_mass = 1.0 - SUPPORT_SLACK * self.tol
        support_max = SUPPORT_MAX if support_max is None else support_max
        self.keep = dict(support_max=support_max, stat_factors=stat_factors, **keep)
        self.passes = self.iters = self.support_size = 0

    def output(self, res: _PassResult, column_nearest: np.ndarray | None) -> StreamOutput:
        """The :class:`StreamOutput` of the last pass ``res``."""
        converged = res.error < self.tol
        return StreamOutput(
            *(res.rows, res.cols, res.vals, res.dropped, res.f, res.g, self.iters, self.passes),
            *(res.error, converged, res.stat, self.support_size, column_nearest),
        )

    def exact_pass(self, f: np.ndarray, g: np.ndarray, **kw: Any) -> _PassResult:
        """One :func:`_exact_pass` over the block (counted)."""
        self.passes += 1
        return _exact_pass(self.cost, self.a, self.b, f, g, self.eps, self.fi, **kw, **self.keep)

    def start(self, f: np.ndarray | None, g: np.ndarray | None) -> tuple[_PassResult, bool]:
        """The first exact pass, and whether the plan is spread out.

        From the given potentials, or (cold, balanced) from a subsampled solve, which alone
        tells a spread-out plan (then no pass is made).
        """
        n, m = self.cost.shape
        cold = f is None
        f = np.zeros(n) if f is None else np.asarray(f, dtype=np.float64)
        g = np.zeros(m) if g is None else np.asarray(g, dtype=np.float64)
        if cold and self.reg_m is None:
            # a subsampled solve: column potentials, and whether the plan is spread out
            g, spread = _subsample_potentials(
                self.cost,
                self.a,
                self.b,
                self.eps,
                self.tol,
                self.max_iter,
                self.support_mass,
                self.keep["support_max"],
            )
            if spread > DIFFUSE_ROWS:
                return _PassResult(f, g, np.inf, None, None, None, None, 0.0, None), True
        res = self.exact_pass(
            f, g, support_mass=self.support_mass, collect=not cold, shifted=not cold
        )
        self.iters += 1
        return res, res.saturated > DIFFUSE_ROWS

    def sharp_rounds(
        self,
        res: _PassResult,
        column_nearest: np.ndarray | None,
        *,
        stages: int,
        omega: float | str,
        max_rounds: int,
    ) -> tuple[_PassResult, bool, np.ndarray]:
        """Sparse phases on the support, checked by exact passes (sharp plans).

        The support grows by what each pass finds. Returns the last pass, whether the plan
        turned out spread out, and the columns' cheapest rows.
        """
        m = self.cost.shape[1]
        # every column also gets its cheapest rows, so that no column is left without support
        if column_nearest is None:
            column_nearest = self.cost.transpose().max_and_nearest(SUPPORT_COLUMN)[1]
        sup_r = np.concatenate([res.support[0], column_nearest.ravel()])
        sup_c = np.concatenate([res.support[1], np.repeat(np.arange(m), column_nearest.shape[1])])
        for _ in range(max_rounds):
            sr, sc, C = _support(self.cost, sup_r, sup_c)
            self.support_size = len(C)
            f, g, its, _ = sparse_sinkhorn(
                sr,
                sc,
                C,
                self.a,
                self.b,
                self.eps,
                f=res.f,
                g=res.g,
                reg_m=self.reg_m,
                tol=0.5 * self.tol,
                max_iter=self.max_iter,
                eps_scaling=stages,
                omega=omega,
            )
            stages = 0
            self.iters += its + 1
            res = self.exact_pass(f, g, support_mass=self.support_mass, collect=True, shifted=True)
            if res.error < self.tol:
                break
            if res.saturated > DIFFUSE_ROWS:
                return res, True, column_nearest
            sup_r = np.concatenate([sr, res.support[0]])
            sup_c = np.concatenate([sc, res.support[1]])
        return res, False, column_nearest

    def diffuse_passes(self, res: _PassResult, trusted: bool) -> _PassResult:
        """Over-relaxed exact passes until one meets ``tol``, then the stored pass.

        ``trusted``: ``res.f`` is a Sinkhorn potential (it stabilises the first pass).
        """
        f, g = res.f, res.g
        om, prev, prev2, locked = 1.0, np.inf, np.inf, False
        for _ in range(MAX_PASSES):
            step = self.exact_pass(
                f, g, omega=om, support_mass=None, collect=False, shifted=trusted
            )
            trusted = True
            self.iters += 1
            err = step.error
            if not np.isfinite(err) or (om > 1.0 and err > GROWTH_LIMIT * prev):
                om, locked, prev, prev2 = 1.0, True, np.inf, np.inf  # roll back this pass
                continue
            if err < self.tol:
                break
            if not locked and om == 1.0 and err < OMEGA_FROM and err < prev < prev2:
                # plain Sinkhorn's rate from the last two ratios -> over-relaxation
                theta = min(max(err / prev, prev / prev2), 0.99)
                om = min(2.0 / (1.0 + np.sqrt(1.0 - theta)), OMEGA_MAX_PASS)
            prev, prev2 = err, prev
            f, g = step.f, step.g
        return self.exact_pass(f, g, support_mass=None, collect=True, shifted=True)
