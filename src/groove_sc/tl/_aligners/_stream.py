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
- **Sparse phase** (:func:`sparse_sinkhorn`): log-stabilised Sinkhorn restricted to the support
  (kernel truncation, Schmitzer 2019), with epsilon scaling and adaptive over-relaxation as in
  the padded solver; two sparse matrix-vector products per iteration.

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

import contextlib
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

#: Entries of one streamed row chunk of the cost (16 MB in float32).
STREAM_CHUNK_ENTRIES = 2**22
#: Entries per row of the sparse phase's support: each row's largest entries holding all but
#: ``SUPPORT_SLACK * tol`` of its mass, at most ``SUPPORT_MAX`` (searched among the
#: ``SUPPORT_FIRST`` largest first).
SUPPORT_FIRST = 512
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
#: Absorb scalings into the potentials once ``|log u|`` or ``|log v|`` exceeds this.
ABSORB_AT = 30.0
#: Tolerance of the epsilon-scaling warm-up stages (relative L1 marginal error).
STAGE_TOL = 1e-3
#: Over-relaxation is abandoned when the error grows by more than this per check.
GROWTH_LIMIT = 3.0


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
        >>> cost.shape  # doctest: +SKIP
        (11000, 11000)

        """
        return len(self.alpha), len(self.beta)

    def chunk_rows(self) -> int:
        """Rows per streamed chunk.

        Examples
        --------
        >>> cost.chunk_rows()  # doctest: +SKIP
        381

        """
        return max(1, STREAM_CHUNK_ENTRIES // max(self.shape[1], 1))

    def rows(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Dense rows ``start:stop`` of the cost (written into ``out`` when given).

        Examples
        --------
        >>> cost.rows(0, 10).shape  # doctest: +SKIP
        (10, 11000)

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
        >>> A, BT = cost.logit_factors(0.1, np.zeros(cost.shape[1]))  # doctest: +SKIP

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
        >>> cost.pairs(np.array([0]), np.array([3]))  # doctest: +SKIP

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
        >>> cost.transpose().shape  # doctest: +SKIP

        """
        return FactoredCost(
            self.beta, self.alpha, -self._QT.T, self.P, nonneg=self.nonneg, dtype=self.dtype
        )

    def max_and_nearest(self, k: int) -> tuple[float, np.ndarray]:
        """Largest entry and, per row, the columns of its ``k`` smallest entries (streamed).

        Examples
        --------
        >>> cmax, nearest = cost.max_and_nearest(16)  # doctest: +SKIP

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
        >>> cost.max()  # doctest: +SKIP

        """
        n, step = self.shape[0], self.chunk_rows()
        return max((float(self.rows(s, s + step).max()) for s in range(0, n, step)), default=0.0)


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

    Examples
    --------
    >>> out = solve_stream(cost, a, b, 0.1)  # doctest: +SKIP
    >>> out.converged  # doctest: +SKIP
    True

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


@dataclass
class _PassResult:
    f: np.ndarray
    g: np.ndarray
    error: float
    support: tuple[np.ndarray, np.ndarray] | None
    rows: np.ndarray | None
    cols: np.ndarray | None
    vals: np.ndarray | None
    dropped: float
    stat: np.ndarray | None
    saturated: float = 0.0


def _sorted_top(L: np.ndarray, k: int, buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` largest values, largest first, and their running sums (float64)."""
    m = L.shape[1]
    if k < m:
        work = buf[: len(L)]
        np.copyto(work, L)
        work.partition(m - k, axis=1)
        top = work[:, m - k :].copy()
    else:
        top = L.copy()
    top.sort(axis=1)
    top = top[:, ::-1]
    return top, np.cumsum(top, axis=1, dtype=np.float64)


def _threshold(
    top: np.ndarray, cs: np.ndarray, need: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Threshold per row: the fewest largest entries (at most ``k``) holding ``need``.

    Returns the smallest of those values, their number, and whether ``k`` entries sufficed.
    """
    k = min(k, top.shape[1])
    before = cs[:, :k] - top[:, :k]
    cnt = np.clip((before < need[:, None]).sum(axis=1), 1, k)
    idx = np.arange(len(top))
    enough = (cnt < k) | (cs[idx, cnt - 1] >= need)
    tau = np.maximum(top[idx, cnt - 1], np.finfo(top.dtype).tiny)  # never select zeros
    return tau, cnt, enough


def _entries(mask: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    flat = np.flatnonzero(mask)
    return flat // m, flat % m


def _trim(r: np.ndarray, c: np.ndarray, v: np.ndarray, cap: np.ndarray) -> tuple[np.ndarray, ...]:
    """At most ``cap[i]`` entries of row ``i`` (equal values at the threshold), largest kept."""
    counts = np.bincount(r, minlength=len(cap))
    over = np.flatnonzero(counts > cap)
    if not len(over):
        return r, c, v
    keep = np.ones(len(r), dtype=bool)
    starts = np.concatenate([[0], np.cumsum(counts)])
    for i in over:
        seg = np.arange(starts[i], starts[i + 1])
        keep[seg[np.argsort(-v[seg], kind="stable")[cap[i] :]]] = False
    return r[keep], c[keep], v[keep]


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
    support_mass: float | None,
    support_max: int,
    keep_mass: float,
    max_per_row: int | None,
    prune: float,
    stat_factors: tuple[np.ndarray, np.ndarray] | None,
    collect: bool,
    shifted: bool = False,
) -> _PassResult:
    """One exact Sinkhorn iteration over the block, streamed by row chunks (see module doc).

    ``omega`` over-relaxes both updates (``1`` for the stored pass, whose rows are exact);
    ``support_mass=None`` skips the support; ``collect`` stores the sparsified rows (and the
    statistic). ``shifted``: the input ``f`` is a Sinkhorn potential, so ``-f / eps``
    stabilises the exponentials without a row maximum (rows where it does not are redone).
    """
    n, m = cost.shape
    dt = np.dtype(cost.dtype)
    f_new = np.empty(n)
    colsum = np.zeros(m)
    row_err = 0.0
    k_sup = min(support_max, m)
    k_first = min(SUPPORT_FIRST, k_sup)
    k_out = m if max_per_row is None else min(max_per_row, m)
    want_support = support_mass is not None
    # the stored rows are a prefix of the support's rows: read them from the support entries
    nested = want_support and keep_mass <= support_mass and k_out <= k_sup
    sup_rows, sup_cols, saturated = [], [], 0
    out_r, out_c, out_v, dropped = [], [], [], 0.0
    stat = None
    if stat_factors is not None and collect:
        left, right = (np.asarray(x, dtype=dt) for x in stat_factors)
        stat = np.zeros((left.shape[1], right.shape[1]))
    step = cost.chunk_rows()
    buf = np.empty((min(step, n), m), dtype=dt)
    work = np.empty_like(buf) if want_support or collect else None
    mask = np.empty(buf.shape, dtype=bool) if want_support or collect else None
    # logits L_ij = (g_j - C_ij) / eps + log b_j - shift_i from one matrix product per chunk;
    # shift_i: the row's log-sum from the input potentials, or (cold) the row maximum
    shift = None if not shifted else -f / (fi * eps)
    A, BT = cost.logit_factors(eps, g / eps + np.log(b), shift)
    floor = dt.type(np.log(np.finfo(dt).tiny))
    for s in range(0, n, step):
        e = min(n, s + step)
        L = np.matmul(A[s:e], BT, out=buf[: e - s])
        if shift is None:
            base = L.max(axis=1).astype(np.float64)
            L -= base.astype(dt)[:, None]
        else:
            base = shift[s:e]
        # below EXP_FLOOR the exponentials would be subnormal: slow on CPUs, and negligible
        np.maximum(L, floor, out=L)
        with np.errstate(over="ignore"):
            np.exp(L, out=L)
        rs = L.sum(axis=1).astype(np.float64)
        bad = ~np.isfinite(rs) | (rs <= 0)
        if bad.any():  # the shift was off by too much for this dtype: use the row maximum
            rows = np.flatnonzero(bad)
            Lb = A[s + rows] @ BT
            mxb = Lb.max(axis=1)
            np.exp(Lb - mxb[:, None], out=Lb)
            L[rows] = Lb
            base = base.copy()  # Lb carried the shift: add it back
            base[rows] = mxb if shift is None else mxb + shift[s + rows]
            rs[rows] = Lb.sum(axis=1)
        lse = base + np.log(rs)
        a_c, f_c = a[s:e], f[s:e]
        with np.errstate(over="ignore"):
            row_err += float(np.abs(a_c * np.exp(f_c / eps + lse) - a_c).sum())
        f_sk = -fi * eps * lse
        f_new[s:e] = f_sk if omega == 1.0 else f_c + omega * (f_sk - f_c)
        w = (a_c * np.exp(base + f_new[s:e] / eps)).astype(dt)
        total = w * rs
        if not (collect or want_support):
            colsum += (w @ L).astype(np.float64)
            continue
        L *= w[:, None]  # the plan's rows
        colsum += L.sum(axis=0).astype(np.float64)
        if stat is not None:
            stat += left[s:e].T.astype(np.float64) @ (L @ right).astype(np.float64)
        top = cs = None
        if want_support:  # the largest entries holding support_mass of each row
            top, cs = _sorted_top(L, max(k_first, k_out if collect and nested else 0), work)
            tau, _, enough = _threshold(top, cs, support_mass * total, k_first)
            if not enough.all() and k_sup > k_first:
                rest = np.flatnonzero(~enough)
                top2, cs2 = _sorted_top(L[rest], k_sup, work)
                tau[rest], _, enough2 = _threshold(top2, cs2, support_mass * total[rest], k_sup)
                saturated += int((~enough2).sum())
            msk = mask[: e - s]
            np.greater_equal(L, tau.astype(dt)[:, None], out=msk)
            ri, ci = _entries(msk, m)
            sup_rows.append(ri + s)
            sup_cols.append(ci)
        if not collect:
            continue
        msk = mask[: e - s]
        if nested:
            rowmax = top[:, 0].astype(np.float64)
            tau_o, cnt, _ = _threshold(top, cs, keep_mass * total, k_out)
            if prune > 0:
                tau_o = np.maximum(tau_o, prune * rowmax)
            v = L[ri, ci]
            sel = v >= tau_o.astype(dt)[ri]
            r, c, v = _trim(ri[sel], ci[sel], v[sel].astype(np.float64), cnt)
        elif keep_mass >= 1.0 and k_out == m:
            rowmax = L.max(axis=1).astype(np.float64)
            np.greater(L, (prune * rowmax).astype(dt)[:, None], out=msk)
            r, c = _entries(msk, m)
            v = L[r, c].astype(np.float64)
        else:
            top_o, cs_o = _sorted_top(L, k_out, work)
            tau_o, cnt, _ = _threshold(top_o, cs_o, keep_mass * total, k_out)
            if prune > 0:
                tau_o = np.maximum(tau_o, prune * top_o[:, 0].astype(np.float64))
            np.greater_equal(L, tau_o.astype(dt)[:, None], out=msk)
            r, c = _entries(msk, m)
            r, c, v = _trim(r, c, L[r, c].astype(np.float64), cnt)
        kept = np.bincount(r, weights=v, minlength=e - s)
        scale = np.divide(total, kept, out=np.zeros(e - s), where=kept > 0)
        dropped += float((total - kept).clip(min=0).sum())
        out_r.append(r + s)
        out_c.append(c)
        out_v.append(v * scale[r])
    if fi == 1.0:
        error = (row_err + float(np.abs(colsum - b).sum())) / float(a.sum())
    safe = np.maximum(colsum, np.finfo(np.float64).tiny)
    g_sk = fi * g - fi * eps * np.log(safe / b)
    g_new = g_sk if omega == 1.0 else g + omega * (g_sk - g)
    if fi != 1.0:
        error = float(max(np.abs(f_new - f).max(), np.abs(g_new - g).max()) / eps)
    rows = cols = vals = None
    if collect:
        rows, cols, vals = np.concatenate(out_r), np.concatenate(out_c), np.concatenate(out_v)
    support = None
    if want_support:
        support = (np.concatenate(sup_rows), np.concatenate(sup_cols))
    return _PassResult(
        f_new, g_new, error, support, rows, cols, vals, dropped, stat, saturated / max(n, 1)
    )


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
    out = sinkhorn_padded(
        C, ops.asarray(a_sub), ops.asarray(b_sub), eps, ops=ops, tol=tol, max_iter=max_iter,
        eps_scaling=3,
    )  # fmt: skip
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


def sparse_sinkhorn(
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

    Same parametrisation, stopping rule, epsilon scaling and over-relaxation as
    :func:`._sinkhorn.sinkhorn_padded` for one problem; entries outside the support are
    treated as infinite cost. Every row and column must hold at least one entry.

    Parameters
    ----------
    rows, cols, C
        Support entries (sorted by row, no duplicates) and their costs.
    a, b
        Row and column masses (positive); equal totals unless ``reg_m`` is given.
    eps
        Absolute regularisation.
    f, g
        Warm-start potentials (default: row minima and column minima of the reduced cost).
    reg_m
        Absolute KL marginal penalty (unbalanced); ``None`` for balanced.
    tol, max_iter, eps_scaling, omega, omega_max, check_every
        As in :func:`._sinkhorn.sinkhorn_padded`.

    Returns
    -------
    ``(f, g, n_iter, error)``: potentials, iterations (warm-up stages included) and the last
    error on the support.

    Examples
    --------
    >>> f, g, it, err = sparse_sinkhorn(r, c, C, a, b, 0.05)  # doctest: +SKIP

    """
    n, m = len(a), len(b)
    balanced = reg_m is None
    fi = 1.0 if balanced else reg_m / (reg_m + eps)
    if not balanced:
        omega, eps_scaling = 1.0, 0
    adaptive = omega == "auto"
    om0 = 1.0 if adaptive else float(omega)
    if f is None:
        f = np.full(n, np.inf)
        np.minimum.at(f, rows, C)
        g = np.full(m, np.inf)
        np.minimum.at(g, cols, C - f[rows])
    f, g = f.astype(np.float64).copy(), g.astype(np.float64).copy()
    # kernel entries at most 1, and every row and column holding an entry equal to 1
    expo = f[rows] + g[cols] - C
    row_max = np.full(n, -np.inf)
    np.maximum.at(row_max, rows, expo)
    f -= row_max
    expo -= row_max[rows]
    col_max = np.full(m, -np.inf)
    np.maximum.at(col_max, cols, expo)
    g -= col_max
    del expo
    if len(rows) > 1 and np.any(np.diff(rows) < 0):
        raise ValueError("sparse_sinkhorn needs the support sorted by row.")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    mass = float(a.sum())

    def rebuild(eps_s: float) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        data = np.exp((f[rows] + g[cols] - C) / eps_s)
        K = sp.csr_matrix((data, cols, indptr), shape=(n, m))
        return K, K.T.tocsr()

    stage = eps_scaling
    eps_s = eps * 2.0**stage
    K, KT = rebuild(eps_s)
    lu, lv = np.zeros(n), np.zeros(m)
    snap = (lu, lv)
    om, locked, prev = om0, False, np.inf
    total, err = 0, np.inf
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        while total < max_iter:
            keep = 1.0 - om
            cu = 0.0 if balanced else (fi - 1.0) * f / eps_s
            cv = 0.0 if balanced else (fi - 1.0) * g / eps_s
            for it in range(check_every):
                last = it == check_every - 1
                S = K @ (np.exp(lv) * b)
                if last:
                    row_err = np.abs(a * np.exp(lu) * S - a).sum()
                    lu_old = lu
                lu = keep * lu + om * (cu - fi * np.log(S))
                T = KT @ (np.exp(lu) * a)
                if last:
                    col_err = np.abs(b * np.exp(lv) * T - b).sum()
                    lv_old = lv
                lv = keep * lv + om * (cv - fi * np.log(T))
            total += check_every
            if balanced:
                err = (row_err + col_err) / mass
            else:
                err = max(np.abs(lu - lu_old).max(), np.abs(lv - lv_old).max())
            big = max(np.abs(lu).max(), np.abs(lv).max())
            if not (np.isfinite(err) and np.isfinite(big)) or (
                om > 1.0 and err > GROWTH_LIMIT * prev
            ):
                if om == 1.0:
                    raise FloatingPointError(
                        "Sinkhorn diverged (non-finite scalings); increase epsilon or use "
                        "dtype='float64'."
                    )
                lu, lv = snap
                om, locked, prev = 1.0, True, np.inf
                continue
            stage_tol = max(tol, STAGE_TOL) if stage > 0 else tol
            if err < stage_tol:
                f, g = f + eps_s * lu, g + eps_s * lv
                lu, lv = np.zeros(n), np.zeros(m)
                if stage == 0:
                    break
                stage -= 1
                eps_s = eps * 2.0**stage
                K, KT = rebuild(eps_s)
                om, prev, snap = om0, np.inf, (lu, lv)
                continue
            if adaptive and not locked and om == 1.0 and err < 1e-2 and err < prev:
                theta = min(max(err / prev, 0.0), 1.0) ** (1.0 / check_every)
                om = min(2.0 / (1.0 + np.sqrt(1.0 - theta)), omega_max)
            prev = err
            snap = (lu, lv)
            if big > ABSORB_AT:
                f, g = f + eps_s * lu, g + eps_s * lv
                lu, lv = np.zeros(n), np.zeros(m)
                snap = (lu, lv)
                K, KT = rebuild(eps_s)
        else:
            f, g = f + eps_s * lu, g + eps_s * lv
    return f, g, total, float(err)


def solve_stream(
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
    from the last exact pass, sparsified by :func:`.sparsify_rows` (``keep_mass``,
    ``max_per_row``, ``prune``).

    Parameters
    ----------
    cost
        The block's :class:`FactoredCost`.
    a, b
        Positive masses of the block's rows and columns.
    eps
        Absolute regularisation.
    reg_m
        Absolute KL marginal penalty (unbalanced); ``None`` for balanced.
    tol
        Stop when the exact pass's relative L1 marginal error (balanced) or largest change of
        the potentials over ``eps`` (unbalanced) is below ``tol``.
    max_iter
        Iteration cap of each sparse phase.
    eps_scaling
        Epsilon-scaling warm-up stages of the first sparse phase (balanced only).
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
        sharp plans; computed here when needed and not given (and returned for reuse).
    support_max
        Largest number of entries per row in the sparse phase's support (each row's largest
        entries holding all but ``0.25 * tol`` of its mass); default ``SUPPORT_MAX``.
    max_rounds
        Largest number of (exact pass, sparse phase) rounds.

    Returns
    -------
    :class:`StreamOutput`

    Examples
    --------
    >>> cost = FactoredCost.sqeuclidean(x, y)  # doctest: +SKIP
    >>> out = solve_stream(cost, np.full(n, 1 / n), np.full(m, 1 / n), 0.05)  # doctest: +SKIP

    """
    # the chunk products are small: one BLAS thread avoids synchronisation, which costs
    # several times the work when other processes share the cores
    with _one_blas_thread():
        return _solve_stream(
            cost, a, b, eps, reg_m=reg_m, tol=tol, max_iter=max_iter, eps_scaling=eps_scaling,
            omega=omega, f=f, g=g, keep_mass=keep_mass, max_per_row=max_per_row, prune=prune,
            stat_factors=stat_factors, column_nearest=column_nearest, support_max=support_max,
            max_rounds=max_rounds,
        )  # fmt: skip


def _one_blas_thread() -> contextlib.AbstractContextManager:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _solve_stream(
    cost: FactoredCost,
    a: np.ndarray,
    b: np.ndarray,
    eps: float,
    *,
    reg_m: float | None,
    tol: float,
    max_iter: int,
    eps_scaling: int,
    omega: float | str,
    f: np.ndarray | None,
    g: np.ndarray | None,
    keep_mass: float,
    max_per_row: int | None,
    prune: float,
    stat_factors: tuple[np.ndarray, np.ndarray] | None,
    column_nearest: np.ndarray | None,
    support_max: int | None,
    max_rounds: int,
) -> StreamOutput:
    n, m = cost.shape
    support_max = SUPPORT_MAX if support_max is None else support_max
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    fi = 1.0 if reg_m is None else reg_m / (reg_m + eps)
    floor = 50 * float(np.finfo(np.dtype(cost.dtype)).eps)
    tol_eff = max(tol, floor) if reg_m is None else tol
    cold = f is None
    f = np.zeros(n) if f is None else np.asarray(f, dtype=np.float64)
    g = np.zeros(m) if g is None else np.asarray(g, dtype=np.float64)
    kw = dict(
        support_max=support_max, keep_mass=keep_mass, max_per_row=max_per_row, prune=prune,
        stat_factors=stat_factors,
    )  # fmt: skip
    support_mass = 1.0 - SUPPORT_SLACK * tol_eff
    passes, iters, support_size = 0, 0, 0
    warm = not cold
    if cold and reg_m is None:
        # a subsampled solve: column potentials, and whether the plan is spread out
        g, spread = _subsample_potentials(
            cost, a, b, eps, tol_eff, max_iter, support_mass, support_max
        )
        diffuse = spread > DIFFUSE_ROWS
        res = _PassResult(f, g, np.inf, None, None, None, None, 0.0, None)
    if not (cold and reg_m is None and diffuse):
        res = _exact_pass(
            cost, a, b, f, g, eps, fi, support_mass=support_mass, collect=warm, shifted=warm,
            **kw,
        )  # fmt: skip
        passes, iters = 1, 1
        diffuse = res.saturated > DIFFUSE_ROWS
    if not diffuse and res.error >= tol_eff:
        # sharp plans: sparse phases on the support, checked by exact passes; every column
        # also gets its cheapest rows, so that no column is left without support
        if column_nearest is None:
            column_nearest = cost.transpose().max_and_nearest(SUPPORT_COLUMN)[1]
        sup_r = np.concatenate([res.support[0], column_nearest.ravel()])
        sup_c = np.concatenate([res.support[1], np.repeat(np.arange(m), column_nearest.shape[1])])
        stages = eps_scaling if cold else 0
        for _ in range(max_rounds):
            sr, sc, C = _support(cost, sup_r, sup_c)
            support_size = len(C)
            f, g, its, _ = sparse_sinkhorn(
                sr, sc, C, a, b, eps, f=res.f, g=res.g, reg_m=reg_m, tol=0.5 * tol_eff,
                max_iter=max_iter, eps_scaling=stages, omega=omega,
            )  # fmt: skip
            stages = 0
            iters += its
            res = _exact_pass(
                cost, a, b, f, g, eps, fi, support_mass=support_mass, collect=True,
                shifted=True, **kw,
            )  # fmt: skip
            passes += 1
            iters += 1
            if res.error < tol_eff:
                break
            if res.saturated > DIFFUSE_ROWS:
                diffuse = True
                break
            # grow the support by the entries the exact pass found
            sup_r = np.concatenate([sr, res.support[0]])
            sup_c = np.concatenate([sc, res.support[1]])
    if diffuse and res.error >= tol_eff:
        # spread-out plans: exact passes (over-relaxed), from the subsampled solve when cold
        f, g = res.f, res.g
        om, prev, prev2, locked, trusted = 1.0, np.inf, np.inf, False, passes > 0 or warm
        for _ in range(MAX_PASSES):
            step_res = _exact_pass(
                cost, a, b, f, g, eps, fi, omega=om, support_mass=None, collect=False,
                shifted=trusted, **kw,
            )  # fmt: skip
            trusted = True
            passes += 1
            iters += 1
            err = step_res.error
            if not np.isfinite(err) or (om > 1.0 and err > GROWTH_LIMIT * prev):
                om, locked, prev, prev2 = 1.0, True, np.inf, np.inf  # roll back this pass
                continue
            if err < tol_eff:
                break
            if not locked and om == 1.0 and err < OMEGA_FROM and err < prev < prev2:
                # plain Sinkhorn's rate from the last two ratios -> over-relaxation
                theta = min(max(err / prev, prev / prev2), 0.99)
                om = min(2.0 / (1.0 + np.sqrt(1.0 - theta)), OMEGA_MAX_PASS)
            prev, prev2 = err, prev
            f, g = step_res.f, step_res.g
        res = _exact_pass(
            cost, a, b, f, g, eps, fi, support_mass=None, collect=True, shifted=True, **kw
        )
        passes += 1
    return StreamOutput(
        rows=res.rows, cols=res.cols, vals=res.vals, dropped=res.dropped, f=res.f, g=res.g,
        n_iter=iters, n_passes=passes, error=res.error, converged=res.error < tol_eff,
        stat=res.stat, support_size=support_size, column_nearest=column_nearest,
    )  # fmt: skip
