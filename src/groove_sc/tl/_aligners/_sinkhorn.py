"""Batched, stabilised Sinkhorn over padded groups (numpy or torch, through POT's backend).

One call solves ``G`` independent entropic OT problems of (padded) size ``N x M`` in one tensor
program:

    P_g = diag(a_g) exp((f_g + g_g - C_g) / eps) diag(b_g),

(the entropy is taken relative to ``a_g b_g^T``, as in POT's ``reg_type="kl"``). The iteration
runs on kernel-domain scalings ``exp(lu), exp(lv)`` around absorbed log-domain potentials ``f, g``:
the kernel ``exp((f + g - C) / eps)`` has entries at most 1, and when the scalings grow they are
absorbed into ``f, g`` and the kernel is rebuilt (Schmitzer 2019), so float32 is safe at small
epsilon. Padding has ``C = inf`` and zero masses.

Accelerations: adaptive over-relaxation per group (Thibault et al. 2017; Lehmann et al. 2021:
``omega = 2 / (1 + sqrt(1 - theta))`` from the measured plain-Sinkhorn rate ``theta``, with a
fall-back to ``omega = 1`` whenever the error grows), optional epsilon scaling (warm start from a
sequence of larger epsilons), and compaction (converged groups leave the batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._backend import ArrayOps

#: Absorb scalings into the potentials once ``|log u|`` or ``|log v|`` exceeds this.
ABSORB_AT = 30.0


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
        Iterations per group (numpy).
    error
        Per group: L1 marginal error of the returned plan relative to the group mass (balanced),
        or the last change of the log-scalings (unbalanced).
    converged
        ``error < tol`` per group.

    Examples
    --------
    >>> out = sinkhorn_padded(C, a, b, 0.1, ops=ops)  # doctest: +SKIP
    >>> out.converged.all()  # doctest: +SKIP
    True

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
    >>> marginal_errors(P, a, b, ops)  # doctest: +SKIP

    """
    nx = ops.nx
    mass = nx.sum(a, axis=1)
    row = nx.sum(nx.abs(nx.sum(plan, axis=2) - a), axis=1)
    col = nx.sum(nx.abs(nx.sum(plan, axis=1) - b), axis=1)
    return ops.to_numpy((row + col) / mass).astype(np.float64)


def _initial_potentials(C: Any, f: Any, g: Any, eps: float, rowv: Any, colv: Any, nx: Any):
    """Potentials with ``f + g <= C`` and each valid row's kernel maximum equal to 1."""
    if f is None:
        f = nx.where(rowv, nx.min(C, axis=2), 0.0)
        g = None
    if g is None:
        g = nx.where(colv, nx.min(C - f[:, :, None], axis=1), 0.0)
    # shift f so that max_j (f_i + g_j - C_ij) = 0 on valid rows (no overflow on warm starts)
    slack = nx.max(f[:, :, None] + g[:, None, :] - C, axis=2)
    f = nx.where(rowv, f - slack, 0.0)
    return f, g


def sinkhorn_padded(
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
    omega_max: float = 1.9,
    check_every: int = 10,
    eps_scaling: int = 0,
) -> SinkhornOutput:
    """Solve a batch of padded entropic OT problems.

    Parameters
    ----------
    C
        Costs ``(G, N, M)``; ``inf`` on padding.
    a, b
        Masses ``(G, N)``, ``(G, M)``; zero on padding. Per group, ``a`` and ``b`` must have the
        same total (balanced) unless ``reg_m`` is given.
    eps
        Absolute entropic regularisation.
    ops
        Backend, device and dtype.
    tol
        Stop a group when its relative L1 marginal error (balanced) or its largest change of
        log-scalings (unbalanced) is below ``tol``.
    max_iter
        Iteration cap per group.
    f, g
        Warm-start potentials (in cost units), e.g. from a previous call on a nearby cost.
    reg_m
        Absolute KL marginal penalty for unbalanced OT (``None``: balanced).
    omega
        Over-relaxation: ``"auto"`` (adaptive per group, balanced only) or a fixed value in
        ``[1, 2)``.
    omega_max
        Cap of the adaptive over-relaxation.
    check_every
        Iterations between convergence checks (each check synchronises with the device).
    eps_scaling
        Number of warm-start stages at ``eps * 2**k`` (k = eps_scaling, ..., 1) before ``eps``.

    Returns
    -------
    :class:`SinkhornOutput`

    Examples
    --------
    >>> ops = resolve_backend("cpu", dtype="float64")  # doctest: +SKIP
    >>> C, a, b = ops.asarray(C), ops.asarray(a), ops.asarray(b)  # doctest: +SKIP
    >>> out = sinkhorn_padded(C, a, b, 0.05, ops=ops)  # doctest: +SKIP

    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _sinkhorn_padded(
            C, a, b, eps, ops=ops, tol=tol, max_iter=max_iter, f=f, g=g, reg_m=reg_m,
            omega=omega, omega_max=omega_max, check_every=check_every, eps_scaling=eps_scaling,
        )  # fmt: skip


def _sinkhorn_padded(
    C: Any,
    a: Any,
    b: Any,
    eps: float,
    *,
    ops: ArrayOps,
    tol: float,
    max_iter: int,
    f: Any,
    g: Any,
    reg_m: float | None,
    omega: float | str,
    omega_max: float,
    check_every: int,
    eps_scaling: int,
) -> SinkhornOutput:
    nx = ops.nx
    for k in range(eps_scaling, 0, -1):
        stage = _sinkhorn_padded(
            C, a, b, eps * 2.0**k, ops=ops, tol=max(tol, 1e-2), max_iter=max_iter, f=f, g=g,
            reg_m=reg_m, omega=omega, omega_max=omega_max, check_every=check_every,
            eps_scaling=0,
        )  # fmt: skip
        f, g = stage.f, stage.g
    G = C.shape[0]
    rowv, colv = a > 0, b > 0
    f, g = _initial_potentials(C, f, g, eps, rowv, colv, nx)
    balanced = reg_m is None
    fi = 1.0 if balanced else reg_m / (reg_m + eps)
    adaptive = omega == "auto" and balanced
    om_np = np.ones(G) if adaptive else np.full(G, float(1.0 if omega == "auto" else omega))
    if not 1.0 <= om_np.max() < 2.0:
        raise ValueError(f"omega must be in [1, 2), got {omega!r}.")
    mass = nx.sum(a, axis=1)

    tol = max(tol, 50 * float(np.finfo(ops.dtype).eps)) if balanced else tol

    # outputs for all groups; the working set shrinks as groups converge
    f_out, g_out = f * 1.0, g * 1.0
    n_iter = np.zeros(G, dtype=np.int64)
    err_out = np.full(G, np.inf)
    done = np.zeros(G, dtype=bool)
    active = np.arange(G)
    Ca, aa, ba, fa, ga, rva, cva, ma = C, a, b, f, g, rowv, colv, mass
    lu, lv = nx.zeros(a.shape, type_as=a), nx.zeros(b.shape, type_as=b)
    K = nx.exp((fa[:, :, None] + ga[:, None, :] - Ca) / eps)
    prev_err = np.full(G, np.inf)
    it = 0
    while len(active) and it < max_iter:
        om = ops.asarray(om_np[active])[:, None]
        for _ in range(min(check_every, max_iter - it)):
            S = (K @ (nx.exp(lv) * ba)[:, :, None])[:, :, 0]
            row_err = nx.sum(nx.abs(aa * nx.exp(lu) * S - aa), axis=1)
            if balanced:
                lu_t = nx.where(rva, -nx.log(S), 0.0)
            else:
                lu_t = nx.where(rva, (fi - 1.0) * fa / eps - fi * nx.log(S), 0.0)
            lu_new = lu + om * (lu_t - lu)
            T = ((nx.exp(lu_new) * aa)[:, None, :] @ K)[:, 0, :]
            col_err = nx.sum(nx.abs(ba * nx.exp(lv) * T - ba), axis=1)
            if balanced:
                lv_t = nx.where(cva, -nx.log(T), 0.0)
            else:
                lv_t = nx.where(cva, (fi - 1.0) * ga / eps - fi * nx.log(T), 0.0)
            lv_new = lv + om * (lv_t - lv)
            if balanced:
                err = (row_err + col_err) / ma
            else:
                err = nx.maximum(
                    nx.max(nx.abs(lu_new - lu), axis=1), nx.max(nx.abs(lv_new - lv), axis=1)
                )
            lu, lv = lu_new, lv_new
            it += 1
        err_np = ops.to_numpy(err).astype(np.float64)
        err_np = np.where(np.isfinite(err_np), err_np, np.inf)
        n_iter[active] = it
        err_out[active] = err_np
        if adaptive:
            cur, prev = om_np[active], prev_err[active]
            theta = np.clip(err_np / np.maximum(prev, 1e-300), 0.0, 1.0) ** (1.0 / check_every)
            start = (cur == 1.0) & (err_np < 1e-2) & (err_np < prev)
            cur = np.where(start, np.minimum(2.0 / (1.0 + np.sqrt(1.0 - theta)), omega_max), cur)
            cur = np.where((om_np[active] > 1.0) & (err_np >= prev), 1.0, cur)
            om_np[active] = cur
            prev_err[active] = err_np
        finished = err_np < tol
        if finished.any():
            fin, keep = np.flatnonzero(finished), np.flatnonzero(~finished)
            idx, glob = ops.index(fin), ops.index(active[fin])
            f_out[glob] = fa[idx] + eps * lu[idx]
            g_out[glob] = ga[idx] + eps * lv[idx]
            done[active[fin]] = True
            active = active[keep]
            kidx = ops.index(keep)
            Ca, aa, ba, fa, ga = Ca[kidx], aa[kidx], ba[kidx], fa[kidx], ga[kidx]
            rva, cva, ma, K, lu, lv = rva[kidx], cva[kidx], ma[kidx], K[kidx], lu[kidx], lv[kidx]
        if len(active):
            big = max(float(nx.max(nx.abs(lu))), float(nx.max(nx.abs(lv))))
            if not np.isfinite(big):
                raise FloatingPointError(
                    "Sinkhorn diverged (non-finite scalings); increase epsilon or use "
                    "dtype='float64'."
                )
            if big > ABSORB_AT:
                fa, ga = fa + eps * lu, ga + eps * lv
                lu, lv = lu * 0.0, lv * 0.0
                K = nx.exp((fa[:, :, None] + ga[:, None, :] - Ca) / eps)
    if len(active):  # not converged within max_iter
        glob = ops.index(active)
        f_out[glob] = fa + eps * lu
        g_out[glob] = ga + eps * lv
    f_out = nx.where(rowv, f_out, 0.0)
    g_out = nx.where(colv, g_out, 0.0)
    plan = a[:, :, None] * b[:, None, :] * nx.exp((f_out[:, :, None] + g_out[:, None, :] - C) / eps)
    if balanced:
        error = marginal_errors(plan, a, b, ops)
        converged = error < tol
    else:
        error, converged = err_out, done
    return SinkhornOutput(plan, f_out, g_out, n_iter, error, converged)
