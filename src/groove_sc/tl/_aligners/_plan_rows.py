"""What an exact pass of the streamed solver keeps of the plan, one row chunk at a time.

Each row chunk of the plan ``T`` exists only while the pass is on it (:mod:`._stream`);
:class:`_PlanRows` keeps from it each row's largest entries (the support of the next sparse
phase), the sparsified stored rows (:func:`.sparsify_rows`'s rule) and, for Gromov-Wasserstein
and COOT, the statistic ``L^T T R`` their next cost needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The support of a row is searched among its ``SUPPORT_FIRST`` largest entries first.
SUPPORT_FIRST = 512


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


class _PlanRows:
    """What an exact pass keeps of each row chunk of the plan: support, stored rows, statistic.

    ``support_mass=None`` skips the support; ``collect`` stores the sparsified rows (and the
    statistic ``L^T T R`` when ``stat_factors`` are given).
    """

    def __init__(
        self,
        shape: tuple[int, int],
        dtype: str,
        chunk: int,
        *,
        support_mass: float | None,
        support_max: int,
        keep_mass: float,
        max_per_row: int | None,
        prune: float,
        stat_factors: tuple[np.ndarray, np.ndarray] | None,
        collect: bool,
    ) -> None:
        n, m = shape
        self.n, self.m, self.dt = n, m, np.dtype(dtype)
        self.support_mass, self.keep_mass, self.prune = support_mass, keep_mass, prune
        self.collect = collect
        self.k_sup = min(support_max, m)
        self.k_first = min(SUPPORT_FIRST, self.k_sup)
        self.k_out = m if max_per_row is None else min(max_per_row, m)
        # the stored rows are a prefix of the support's rows: read them from the support entries
        self.nested = (
            support_mass is not None and keep_mass <= support_mass and self.k_out <= self.k_sup
        )
        self.keeps = support_mass is not None or collect
        self.work = np.empty((chunk, m), dtype=self.dt) if self.keeps else None
        self.mask = np.empty((chunk, m), dtype=bool) if self.keeps else None
        self.stat = None
        if stat_factors is not None and collect:
            self.left, self.right = (np.asarray(x, dtype=self.dt) for x in stat_factors)
            self.stat = np.zeros((self.left.shape[1], self.right.shape[1]))
        self.sup_rows, self.sup_cols, self.saturated = [], [], 0
        self.out_r, self.out_c, self.out_v, self.dropped = [], [], [], 0.0

    def add(self, L: np.ndarray, total: np.ndarray, s: int) -> None:
        """Record the plan's rows ``s:s + len(L)`` (``total``: their masses)."""
        if self.stat is not None:
            e = s + len(L)
            self.stat += self.left[s:e].T.astype(np.float64) @ (L @ self.right).astype(np.float64)
        top = cs = ri = ci = None
        if self.support_mass is not None:
            top, cs, ri, ci = self._support(L, total, s)
        if self.collect:
            self._store(L, total, s, top, cs, ri, ci)

    def _support(self, L: np.ndarray, total: np.ndarray, s: int) -> tuple[np.ndarray, ...]:
        """Each row's largest entries holding ``support_mass`` of it (``SUPPORT_FIRST`` first)."""
        k_first, k_sup = self.k_first, self.k_sup
        k_top = max(k_first, self.k_out if self.collect and self.nested else 0)
        top, cs = _sorted_top(L, k_top, self.work)
        tau, _, enough = _threshold(top, cs, self.support_mass * total, k_first)
        if not enough.all() and k_sup > k_first:
            rest = np.flatnonzero(~enough)
            top2, cs2 = _sorted_top(L[rest], k_sup, self.work)
            tau[rest], _, enough2 = _threshold(top2, cs2, self.support_mass * total[rest], k_sup)
            self.saturated += int((~enough2).sum())
        msk = self.mask[: len(L)]
        np.greater_equal(L, tau.astype(self.dt)[:, None], out=msk)
        ri, ci = _entries(msk, self.m)
        self.sup_rows.append(ri + s)
        self.sup_cols.append(ci)
        return top, cs, ri, ci

    def _store(
        self,
        L: np.ndarray,
        total: np.ndarray,
        s: int,
        top: np.ndarray | None,
        cs: np.ndarray | None,
        ri: np.ndarray | None,
        ci: np.ndarray | None,
    ) -> None:
        """Store the sparsified rows, as :func:`.sparsify_rows` does.

        Each row keeps its largest entries up to ``keep_mass`` of its mass and ``max_per_row``
        (above ``prune`` times its largest), rescaled to the row's mass. ``top, cs, ri, ci``:
        the support's sorted tops and entries, reused when the stored rows are nested in it.
        """
        m, k_out, dt = self.m, self.k_out, self.dt
        msk = self.mask[: len(L)]
        if self.keep_mass >= 1.0 and k_out == m and not self.nested:
            rowmax = L.max(axis=1).astype(np.float64)
            np.greater(L, (self.prune * rowmax).astype(dt)[:, None], out=msk)
            r, c = _entries(msk, m)
            v = L[r, c].astype(np.float64)
        else:
            if not self.nested:
                top, cs = _sorted_top(L, k_out, self.work)
            tau, cnt, _ = _threshold(top, cs, self.keep_mass * total, k_out)
            if self.prune > 0:
                tau = np.maximum(tau, self.prune * top[:, 0].astype(np.float64))
            if self.nested:  # among the support's entries
                sel = L[ri, ci] >= tau.astype(dt)[ri]
                r, c = ri[sel], ci[sel]
            else:
                np.greater_equal(L, tau.astype(dt)[:, None], out=msk)
                r, c = _entries(msk, m)
            r, c, v = _trim(r, c, L[r, c].astype(np.float64), cnt)
        kept = np.bincount(r, weights=v, minlength=len(L))
        scale = np.divide(total, kept, out=np.zeros(len(L)), where=kept > 0)
        self.dropped += float((total - kept).clip(min=0).sum())
        self.out_r.append(r + s)
        self.out_c.append(c)
        self.out_v.append(v * scale[r])

    def result(self, f: np.ndarray, g: np.ndarray, error: float) -> _PassResult:
        """The pass's :class:`_PassResult` with the new potentials and error."""
        rows = cols = vals = support = None
        if self.collect:
            rows, cols = np.concatenate(self.out_r), np.concatenate(self.out_c)
            vals = np.concatenate(self.out_v)
        if self.support_mass is not None:
            support = (np.concatenate(self.sup_rows), np.concatenate(self.sup_cols))
        saturated = self.saturated / max(self.n, 1)
        return _PassResult(
            f, g, error, support, rows, cols, vals, self.dropped, self.stat, saturated
        )
