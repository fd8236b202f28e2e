"""Batched, stabilised Sinkhorn over padded groups (numpy or torch, through POT's backend).

One call solves ``G`` independent entropic OT problems of (padded) size ``N x M``:

    P_g = diag(a_g) exp((f_g + g_g - C_g) / eps) diag(b_g),

(the entropy is taken relative to ``a_g b_g^T``, as in POT's ``reg_type="kl"``; for balanced
problems this is the usual entropic OT plan). The iteration runs on kernel-domain scalings
``exp(lu), exp(lv)`` around absorbed log-domain potentials ``f, g``: the kernel
``exp((f + g - C) / eps)`` has entries at most 1, and when the scalings grow they are absorbed
into ``f, g`` and the kernel is rebuilt (Schmitzer 2019), so float32 is safe at small epsilon.
Padding has ``C = inf`` and zero masses.

Scheduling: the groups are processed through a pool of *slots* (as many as fit the backend's
working-set budget: the CPU caches, or the whole batch on a GPU). All slots iterate together in
one tensor program; when a group converges its slot is refilled with the next group, so the
batch stays full and slow groups do not hold fast ones back.

Accelerations, per slot: epsilon scaling (the group is first solved at ``eps * 2**k``, ...,
``2 eps`` to a loose tolerance, each stage warm-starting the next), and adaptive over-relaxation
(Thibault et al. 2017; Lehmann et al. 2021: ``omega = 2 / (1 + sqrt(1 - theta))`` from the
measured plain-Sinkhorn rate ``theta``). A group whose error grows, or turns non-finite, under
over-relaxation is rolled back to its last checked state and continues with ``omega = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..._docs import doc_params
from ._backend import ArrayOps
from ._sinkhorn_docs import SINKHORN_PARAMS

#: Absorb scalings into the potentials once ``|log u|`` or ``|log v|`` exceeds this.
ABSORB_AT = 30.0
#: Tolerance of the epsilon-scaling warm-up stages (relative L1 marginal error).
STAGE_TOL = 1e-3
#: Over-relaxation is abandoned for a group whose error grows by more than this per check.
GROWTH_LIMIT = 3.0


@dataclass
class SinkhornOutput:
    """Result of :func:`sinkhorn_padded` for a batch of ``G`` groups.

    Attributes
    ----------
    plan
        Padded plans ``(G, N, M)`` (backend array).
    f, g
        Final potentials ``(G, N)``, ``(G, M)`` (backend arrays), for warm starts.
    n_iter
        Iterations per group, warm-up stages included (numpy).
    error
        Per group: L1 marginal error of the returned plan relative to the group mass (balanced),
        or the last change of the log-scalings (unbalanced).
    converged
        ``error < tol`` per group.

    """

    plan: Any
    f: Any
    g: Any
    n_iter: np.ndarray
    error: np.ndarray
    converged: np.ndarray


def marginal_errors(plan: Any, a: Any, b: Any, ops: ArrayOps) -> np.ndarray:
    """Per group ``(|P 1 - a|_1 + |P^T 1 - b|_1) / mass``.

    Examples
    --------
    >>> from groove_sc.tl._aligners._backend import resolve_backend
    >>> P = np.array([[[0.5, 0.0], [0.0, 0.5]]])
    >>> marginal_errors(P, np.full((1, 2), 0.5), np.array([[0.25, 0.75]]), resolve_backend("cpu"))
    array([0.5])

    """
    nx = ops.nx
    mass = nx.sum(a, axis=1)
    row = nx.sum(nx.abs(nx.sum(plan, axis=2) - a), axis=1)
    col = nx.sum(nx.abs(nx.sum(plan, axis=1) - b), axis=1)
    return ops.to_numpy((row + col) / mass).astype(np.float64)


def default_slots(ops: ArrayOps, n: int, m: int, n_groups: int) -> int:
    """Number of groups iterated together: as many padded kernels as fit the working set.

    Examples
    --------
    >>> from groove_sc.tl._aligners._backend import resolve_backend
    >>> default_slots(resolve_backend("cpu"), 200, 200, n_groups=1)
    1

    """
    per_group = max(n * m * ops.itemsize, 1)
    return int(max(1, min(n_groups, ops.memory.working_set_bytes // per_group)))


@doc_params(**SINKHORN_PARAMS)
def sinkhorn_padded(  # noqa: D417 (parameters from SINKHORN_PARAMS)
    C: Any,
    a: Any,
    b: Any,
    eps: float,
    *,
    ops: ArrayOps,
    tol: float = 1e-4,
    max_iter: int = 10_000,
    f: Any = None,
    g: Any = None,
    reg_m: float | None = None,
    omega: float | str = "auto",
    omega_max: float = 1.95,
    check_every: int = 10,
    eps_scaling: int = 0,
    slots: int | None = None,
) -> SinkhornOutput:
    """Solve a batch of padded entropic OT problems.

    Parameters
    ----------
    C
        Costs ``(G, N, M)``; ``inf`` on padding.
    a, b
        Masses ``(G, N)``, ``(G, M)``; zero on padding. Per group, ``a`` and ``b`` must have the
        same total (balanced) unless ``reg_m`` is given.
    %(eps)s
    ops
        Backend, device and dtype.
    tol
        Stop a group when its relative L1 marginal error (balanced) or its largest change of
        log-scalings (unbalanced) is below ``tol``.
    max_iter
        Iteration cap per group (warm-up stages included).
    f, g
        Warm-start potentials (in cost units), e.g. from a previous call on a nearby cost.
    %(reg_m)s
    %(omega)s
    %(omega_max)s
    %(check_every)s
    %(eps_scaling)s
    slots
        Groups iterated together (default: what fits the backend's working set).

    Returns
    -------
    :class:`SinkhornOutput`

    Examples
    --------
    >>> from groove_sc.tl._aligners._backend import resolve_backend
    >>> ops = resolve_backend("cpu", dtype="float64")
    >>> C = ops.asarray(np.array([[[0.0, 1.0], [1.0, 0.0]]]))
    >>> a = b = ops.asarray(np.full((1, 2), 0.5))
    >>> out = sinkhorn_padded(C, a, b, 0.1, ops=ops)
    >>> bool(out.converged.all()), out.plan.shape
    (True, (1, 2, 2))

    """
    balanced = reg_m is None
    if not balanced:
        omega, eps_scaling = 1.0, 0
    if omega != "auto" and not 1.0 <= float(omega) < 2.0:
        raise ValueError(f"omega must be 'auto' or in [1, 2), got {omega!r}.")
    iteration = _Iteration(tol, max_iter, omega, omega_max, check_every, eps_scaling)
    blas = ops.blas_threads_for(C.shape[1] * C.shape[2])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"), blas:
        return _SlotSolver(C, a, b, eps, ops, f, g, reg_m, slots, iteration).run()


class _Iteration(NamedTuple):
    """Iteration controls of :func:`sinkhorn_padded` (see its parameters)."""

    tol: float
    max_iter: int
    omega: float | str
    omega_max: float
    check_every: int
    eps_scaling: int


class _SlotSolver:
    """State of one :func:`sinkhorn_padded` call (see the module docstring)."""

    def __init__(
        self,
        C: Any,
        a: Any,
        b: Any,
        eps: float,
        ops: ArrayOps,
        f: Any,
        g: Any,
        reg_m: float | None,
        slots: int | None,
        iteration: _Iteration,
    ) -> None:
        tol, max_iter, omega, omega_max, check_every, eps_scaling = iteration
        nx = self.nx = ops.nx
        self.ops, self.C, self.a, self.b, self.eps = ops, C, a, b, float(eps)
        self.G, self.N, self.M = C.shape
        self.balanced = reg_m is None
        self.fi = 1.0 if self.balanced else reg_m / (reg_m + eps)
        floor = 50 * float(np.finfo(ops.dtype).eps)
        self.tol = max(tol, floor) if self.balanced else tol
        self.max_iter, self.check_every = max_iter, check_every
        self.adaptive = omega == "auto"
        self.omega0 = 1.0 if self.adaptive else float(omega)
        self.omega_max, self.eps_scaling = omega_max, eps_scaling
        self.f0, self.g0 = f, g
        self.B = slots or default_slots(ops, self.N, self.M, self.G)
        self.rowv, self.colv = a > 0, b > 0
        self.mass = nx.sum(a, axis=1)
        # outputs, filled as groups finish
        self.F = nx.zeros(a.shape, type_as=a)
        self.Gp = nx.zeros(b.shape, type_as=b)
        self.n_iter = np.zeros(self.G, dtype=np.int64)
        self.err = np.full(self.G, np.inf)
        self.done = np.zeros(self.G, dtype=bool)

    # -- slot state ----------------------------------------------------------------------------

    def _initial_potentials(self, gid: Any) -> tuple[Any, Any]:
        nx, C = self.nx, self.C[gid]
        rowv, colv = self.rowv[gid], self.colv[gid]
        if self.f0 is None:
            f = nx.where(rowv, nx.min(C, axis=2), 0.0)
            g = nx.where(colv, nx.min(C - f[:, :, None], axis=1), 0.0)
        else:
            f, g = self.f0[gid], self.g0[gid]
        # shift f so that max_j (f_i + g_j - C_ij) = 0 on valid rows: no overflow on warm starts
        slack = nx.max(f[:, :, None] + g[:, None, :] - C, axis=2)
        return nx.where(rowv, f - slack, 0.0), nx.where(colv, g, 0.0)

    def _kernel(self, gid: Any, f: Any, g: Any, eps: Any) -> Any:
        return self.nx.exp((f[:, :, None] + g[:, None, :] - self.C[gid]) / eps[:, None, None])

    def _assign(self, slot_idx: np.ndarray, gids: np.ndarray) -> None:
        """Start groups ``gids`` in slots ``slot_idx``."""
        ops = self.ops
        si, gi = ops.index(slot_idx), ops.index(gids)
        f, g = self._initial_potentials(gi)
        self.gid[slot_idx] = gids
        self.stage[slot_idx] = self.eps_scaling
        self.iters[slot_idx] = 0
        self.om[slot_idx] = self.omega0
        self.locked[slot_idx] = False
        self.prev[slot_idx] = np.inf
        self.f[si], self.g[si] = f, g
        self.lu[si], self.lv[si] = f * 0.0, g * 0.0
        self.lu_snap[si], self.lv_snap[si] = f * 0.0, g * 0.0
        eps = self.eps * 2.0 ** self.stage[slot_idx]
        self.K[si] = self._kernel(gi, f, g, ops.asarray(eps))
        self.aa[si], self.bb[si] = self.a[gi], self.b[gi]
        self.padr[si] = ops.asarray(1.0) - ops.asarray(1.0) * self.rowv[gi]
        self.padc[si] = ops.asarray(1.0) - ops.asarray(1.0) * self.colv[gi]
        self.ma[si] = self.mass[gi]

    def _absorb(self, slot_idx: np.ndarray, rebuild: bool = True) -> None:
        """Fold the scalings of some slots into their potentials (and rebuild their kernels)."""
        if not len(slot_idx):
            return
        ops = self.ops
        si = ops.index(slot_idx)
        eps = ops.asarray(self.eps * 2.0 ** self.stage[slot_idx])
        self.f[si] = self.f[si] + eps[:, None] * self.lu[si]
        self.g[si] = self.g[si] + eps[:, None] * self.lv[si]
        self.lu[si], self.lv[si] = self.lu[si] * 0.0, self.lv[si] * 0.0
        self.lu_snap[si], self.lv_snap[si] = self.lu[si] * 0.0, self.lv[si] * 0.0
        if rebuild:
            self.K[si] = self._kernel(ops.index(self.gid[slot_idx]), self.f[si], self.g[si], eps)

    # -- main loop -----------------------------------------------------------------------------

    def run(self) -> SinkhornOutput:
        ops = self.ops
        B, N, M = self.B, self.N, self.M
        zeros = ops.asarray(np.zeros((B, N)))
        zeros_m = ops.asarray(np.zeros((B, M)))
        self.K = ops.asarray(np.zeros((B, N, M)))
        self.f, self.g, self.lu, self.lv = zeros * 1.0, zeros_m * 1.0, zeros * 1.0, zeros_m * 1.0
        self.lu_snap, self.lv_snap = zeros * 1.0, zeros_m * 1.0
        self.aa, self.bb, self.padr, self.padc = zeros * 1.0, zeros_m * 1.0, zeros + 1, zeros_m + 1
        self.ma = ops.asarray(np.ones(B))
        self.gid = np.full(B, -1, dtype=np.int64)
        self.stage = np.zeros(B, dtype=np.int64)
        self.iters = np.zeros(B, dtype=np.int64)
        self.om = np.ones(B)
        self.locked = np.zeros(B, dtype=bool)
        self.prev = np.full(B, np.inf)
        queue = list(range(self.G))
        first = min(B, self.G)
        self._assign(np.arange(first), np.array(queue[:first]))
        queue = queue[first:]
        active = self.gid >= 0

        while active.any():
            err, big = self._iterate_block()
            self.iters[active] += self.check_every
            finished = self._check(err, big, active)
            if finished.any():
                self._finish(np.flatnonzero(finished))
                free = np.flatnonzero(finished)
                take = min(len(free), len(queue))
                if take:
                    self._assign(free[:take], np.array(queue[:take]))
                    queue = queue[take:]
                self.gid[free[take:]] = -1
                active = self.gid >= 0
                # once the queue is empty, drop idle slots from the batch
                if not queue and active.any() and not active.all():
                    self._compact(np.flatnonzero(active))
                    active = self.gid >= 0
        return self._output()

    def _iterate_block(self) -> tuple[np.ndarray, np.ndarray]:
        """``check_every`` iterations on all slots; errors of the last one."""
        ops, nx = self.ops, self.nx
        om = ops.asarray(self.om)[:, None]
        keep = 1.0 - om
        K, aa, bb = self.K, self.aa, self.bb
        if self.balanced:
            cu = cv = 0.0
        else:  # unbalanced target: (fi - 1) f / eps - fi log S
            cu = (self.fi - 1.0) * self.f / self.eps
            cv = (self.fi - 1.0) * self.g / self.eps
        omfi = om * self.fi
        lu, lv = self.lu, self.lv
        for step in range(self.check_every):
            last = step == self.check_every - 1
            S = (K @ (nx.exp(lv) * bb)[:, :, None])[:, :, 0] + self.padr
            if last:
                row_err = nx.sum(nx.abs(aa * nx.exp(lu) * S - aa), axis=1)
                lu_old = lu
            lu = keep * lu + om * cu - omfi * nx.log(S)
            T = ((nx.exp(lu) * aa)[:, None, :] @ K)[:, 0, :] + self.padc
            if last:
                col_err = nx.sum(nx.abs(bb * nx.exp(lv) * T - bb), axis=1)
                lv_old = lv
            lv = keep * lv + om * cv - omfi * nx.log(T)
        self.lu, self.lv = lu, lv
        if self.balanced:
            err = (row_err + col_err) / self.ma
        else:
            err = nx.maximum(
                nx.max(nx.abs(lu - lu_old), axis=1), nx.max(nx.abs(lv - lv_old), axis=1)
            )
        big = nx.maximum(nx.max(nx.abs(lu), axis=1), nx.max(nx.abs(lv), axis=1))
        err_np = ops.to_numpy(err).astype(np.float64)
        big_np = ops.to_numpy(big).astype(np.float64)
        return err_np, big_np

    def _check(self, err: np.ndarray, big: np.ndarray, active: np.ndarray) -> np.ndarray:
        """Convergence, stage changes, over-relaxation and roll-backs; returns finished slots."""
        ops = self.ops
        bad = active & ~(np.isfinite(err) & np.isfinite(big))
        grew = active & (self.om > 1.0) & (err > GROWTH_LIMIT * self.prev)
        rollback = bad | grew
        if rollback.any():
            if (bad & (self.om == 1.0)).any():
                raise FloatingPointError(
                    "Sinkhorn diverged (non-finite scalings); increase epsilon or use "
                    "dtype='float64'."
                )
            ri = ops.index(np.flatnonzero(rollback))
            self.lu[ri], self.lv[ri] = self.lu_snap[ri], self.lv_snap[ri]
            self.om[rollback], self.locked[rollback] = 1.0, True
            err = np.where(rollback, np.inf, err)
        stage_tol = np.where(self.stage > 0, max(self.tol, STAGE_TOL), self.tol)
        conv = active & (err < stage_tol)
        out_of_time = active & (self.iters >= self.max_iter)
        # warm-up stage done: absorb, halve epsilon, rebuild the kernel
        up = conv & (self.stage > 0)
        if up.any():
            idx = np.flatnonzero(up)
            self._absorb(idx, rebuild=False)
            self.stage[idx] -= 1
            si = ops.index(idx)
            eps = ops.asarray(self.eps * 2.0 ** self.stage[idx])
            self.K[si] = self._kernel(ops.index(self.gid[idx]), self.f[si], self.g[si], eps)
            self.om[idx], self.prev[idx] = self.omega0, np.inf
            err = np.where(up, np.inf, err)
        if self.adaptive:
            theta = np.clip(err / np.maximum(self.prev, 1e-300), 0.0, 1.0) ** (
                1.0 / self.check_every
            )
            start = active & ~self.locked & (self.om == 1.0) & (err < 1e-2) & (err < self.prev)
            omega = np.minimum(2.0 / (1.0 + np.sqrt(1.0 - theta)), self.omega_max)
            self.om = np.where(start, omega, self.om)
        self.prev = np.where(active, err, self.prev)
        self.err_slot = err
        # snapshot for roll-backs; absorb large scalings
        snap = ops.index(np.flatnonzero(active))
        self.lu_snap[snap], self.lv_snap[snap] = self.lu[snap], self.lv[snap]
        self._absorb(np.flatnonzero(active & (big > ABSORB_AT) & ~up))
        return (conv & (self.stage == 0) & ~up) | (out_of_time & ~(conv & ~up))

    def _finish(self, slot_idx: np.ndarray) -> None:
        ops = self.ops
        si, gi = ops.index(slot_idx), ops.index(self.gid[slot_idx])
        eps = ops.asarray(self.eps * 2.0 ** self.stage[slot_idx])
        self.F[gi] = self.f[si] + eps[:, None] * self.lu[si]
        self.Gp[gi] = self.g[si] + eps[:, None] * self.lv[si]
        gids = self.gid[slot_idx]
        self.n_iter[gids] = self.iters[slot_idx]
        self.err[gids] = self.err_slot[slot_idx]
        self.done[gids] = self.stage[slot_idx] == 0

    def _compact(self, keep: np.ndarray) -> None:
        ki = self.ops.index(keep)
        for name in (
            "K",
            "f",
            "g",
            "lu",
            "lv",
            "lu_snap",
            "lv_snap",
            "aa",
            "bb",
            "padr",
            "padc",
            "ma",
        ):
            setattr(self, name, getattr(self, name)[ki])
        for name in ("gid", "stage", "iters", "om", "locked", "prev", "err_slot"):
            setattr(self, name, getattr(self, name)[keep])
        self.B = len(keep)

    def _output(self) -> SinkhornOutput:
        nx = self.nx
        F = nx.where(self.rowv, self.F, 0.0)
        Gp = nx.where(self.colv, self.Gp, 0.0)
        plan = (
            self.a[:, :, None]
            * self.b[:, None, :]
            * nx.exp((F[:, :, None] + Gp[:, None, :] - self.C) / self.eps)
        )
        if self.balanced:
            error = marginal_errors(plan, self.a, self.b, self.ops)
            converged = self.done & (error < self.tol)
        else:
            error, converged = self.err, self.done & (self.err < self.tol)
        return SinkhornOutput(plan, F, Gp, self.n_iter, error, converged)
