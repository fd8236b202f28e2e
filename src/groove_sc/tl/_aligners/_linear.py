"""Linear entropic OT on a shared representation: ``eot``, ``leot`` (per group) and ``uot``."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import ot

from ._costs import batched_sqdist, mask_padding, support_max
from ._groups import (
    DEFAULT_KEEP_MASS,
    DEFAULT_MAX_PER_ROW,
    CouplingBuilder,
    GroupLayout,
    GroupWeights,
    check_sparsity,
    check_stream_above,
    pad_gather,
)
from ._problem import AlignProblem, relative_epsilon
from ._registry import AlignResult, register_aligner
from ._sinkhorn import marginal_errors, sinkhorn_padded
from ._stream import FactoredCost, solve_stream

#: Default epsilon relative to the largest cost on the solved support (Perturb-OT's default).
DEFAULT_EPSILON = 5e-3


def _shifted_reps(problem: AlignProblem, layout: GroupLayout) -> tuple[np.ndarray, np.ndarray]:
    xs, xt = problem.rep(shared=True)
    # centring both sides by one common shift keeps the expansion |x|^2 + |y|^2 - 2 x.y accurate
    shift = 0.5 * (xs[layout.source_kept()].mean(0) + xt[layout.target_kept()].mean(0))
    return xs - shift, xt - shift


def _block_costs(
    problem: AlignProblem,
    layout: GroupLayout,
    a_cells: list[np.ndarray],
    b_cells: list[np.ndarray],
    xs: np.ndarray,
    xt: np.ndarray,
    ids: np.ndarray,
) -> tuple[list[tuple[np.ndarray, Any, Any, Any]], float]:
    """Padded squared-Euclidean costs per chunk of the blocks ``ids``, and their largest value."""
    ops = problem.ops
    chunks, cmax = [], 0.0
    for chunk_ids in layout.chunks(ops.itemsize, ops.chunk_bytes, ids):
        si = [layout.source_index[g] for g in chunk_ids]
        ti = [layout.target_index[g] for g in chunk_ids]
        X = ops.asarray(pad_gather(xs, si))
        Y = ops.asarray(pad_gather(xt, ti))
        a = ops.asarray(pad_gather(np.concatenate([a_cells[g] for g in chunk_ids]), _local(si)))
        b = ops.asarray(pad_gather(np.concatenate([b_cells[g] for g in chunk_ids]), _local(ti)))
        C = mask_padding(batched_sqdist(X, Y, ops), a, b, ops)
        cmax = max(cmax, support_max(C, a, b, ops))
        chunks.append((chunk_ids, C, a, b))
    return chunks, cmax


def _local(index: list[np.ndarray]) -> list[np.ndarray]:
    """Positions of each block's cells in the concatenation of the blocks."""
    out, start = [], 0
    for idx in index:
        out.append(np.arange(start, start + len(idx)))
        start += len(idx)
    return out


def _solve_blocks(
    problem: AlignProblem,
    layout: GroupLayout,
    a_cells: list[np.ndarray],
    b_cells: list[np.ndarray],
    *,
    reg_m: float | None,
    tol: float,
    max_iter: int,
    omega: float | str,
    eps_scaling: int,
    prune: float,
    keep_mass: float,
    max_per_row: int | None,
    stream_above: int | None,
    solver: str,
    pot_method: str,
) -> AlignResult:
    ops = problem.ops
    eps_rel = relative_epsilon(problem, DEFAULT_EPSILON)
    keep_mass, max_per_row = check_sparsity(keep_mass, max_per_row)
    stream_above = check_stream_above(stream_above, ops.stream_above)
    if solver not in ("batched", "pot"):
        raise ValueError(f"solver must be 'batched' or 'pot', got {solver!r}.")
    # BLAS threads for the dense blocks (the streamed ones use one thread, see _stream.py)
    largest = layout.largest_dense(stream_above if solver == "batched" else 2**63 - 1)
    with ops.blas_threads_for(largest):
        return _solve_chunks(
            problem, layout, a_cells, b_cells, eps_rel, reg_m=reg_m, tol=tol,
            max_iter=max_iter, omega=omega, eps_scaling=eps_scaling, prune=prune,
            keep_mass=keep_mass, max_per_row=max_per_row, stream_above=stream_above,
            solver=solver, pot_method=pot_method,
        )  # fmt: skip


def _solve_chunks(
    problem: AlignProblem,
    layout: GroupLayout,
    a_cells: list[np.ndarray],
    b_cells: list[np.ndarray],
    eps_rel: float,
    *,
    reg_m: float | None,
    tol: float,
    max_iter: int,
    omega: float | str,
    eps_scaling: int,
    prune: float,
    keep_mass: float,
    max_per_row: int | None,
    stream_above: int,
    solver: str,
    pot_method: str,
) -> AlignResult:
    ops = problem.ops
    xs, xt = _shifted_reps(problem, layout)
    # the POT reference path solves every block dense
    streamed = layout.streamed(stream_above) & (solver == "batched")
    chunks, cmax = _block_costs(
        problem, layout, a_cells, b_cells, xs, xt, np.flatnonzero(~streamed)
    )
    large = {}
    for gid in np.flatnonzero(streamed):
        si, ti = layout.source_index[gid], layout.target_index[gid]
        cost = FactoredCost.sqeuclidean(xs[si], xt[ti], dtype=ops.dtype)
        cmax = max(cmax, cost.max())
        large[gid] = cost
    scale = cmax if cmax > 0 else 1.0
    eps = eps_rel * scale
    reg_m_abs = None if reg_m is None else reg_m * scale
    G = layout.n_groups
    n_iter, error, converged = np.zeros(G, int), np.zeros(G), np.zeros(G, bool)
    builder = CouplingBuilder(
        layout.n_source, layout.n_target, prune=prune, keep_mass=keep_mass,
        max_per_row=max_per_row,
    )  # fmt: skip
    for ids, C, a, b in chunks:
        if solver == "batched":
            out = sinkhorn_padded(
                C, a, b, eps, ops=ops, tol=tol, max_iter=max_iter, reg_m=reg_m_abs,
                omega=omega, eps_scaling=eps_scaling,
            )  # fmt: skip
            plan, n_iter[ids], error[ids], converged[ids] = (
                out.plan,
                out.n_iter,
                out.error,
                out.converged,
            )
        else:
            plan, its = _pot_blocks(C, a, b, eps, reg_m_abs, tol, max_iter, pot_method, ops)
            n_iter[ids] = its
            if reg_m is None:
                error[ids] = marginal_errors(plan, a, b, ops)
                converged[ids] = error[ids] < tol
            else:
                error[ids], converged[ids] = np.nan, its < max_iter
        builder.add(
            ops.to_numpy(plan),
            [layout.source_index[g] for g in ids],
            [layout.target_index[g] for g in ids],
        )
        del plan
    del chunks
    n_passes = 0
    for gid, cost in large.items():
        si, ti = layout.source_index[gid], layout.target_index[gid]
        out = solve_stream(
            cost, a_cells[gid], b_cells[gid], eps, reg_m=reg_m_abs, tol=tol, max_iter=max_iter,
            eps_scaling=eps_scaling, omega=omega, keep_mass=keep_mass,
            max_per_row=max_per_row, prune=prune,
        )  # fmt: skip
        builder.add_sparse(si[out.rows], ti[out.cols], out.vals, out.dropped)
        n_iter[gid], error[gid], converged[gid] = out.n_iter, out.error, out.converged
        n_passes += out.n_passes
    coupling = builder.to_csr()
    transported = float(coupling.sum())
    if transported <= 0:
        raise FloatingPointError(
            f"Method '{problem.method}' transported no mass; increase epsilon or reg_m."
        )
    coupling.data /= transported
    err_name = "marginal_error" if reg_m is None else "scaling_change"
    parameters: dict[str, Any] = {
        "epsilon": eps,
        "epsilon_relative": eps_rel,
        "epsilon_scale": "max",
        "cost": "sqeuclidean",
        "cost_scale": scale,
        "tol": tol,
        "max_iter": max_iter,
        "solver": solver,
        "prune": prune,
        "keep_mass": keep_mass,
        "max_per_row": 0 if max_per_row is None else max_per_row,
        "stream_above": stream_above,
    }
    if reg_m is not None:
        parameters.update(
            reg_m=reg_m_abs, reg_m_relative=reg_m, mass_before_normalisation=transported
        )
    convergence = {
        "converged": bool(converged.all()),
        "n_iter": int(n_iter.max()),
        err_name: float(np.nanmax(error)) if G else 0.0,
        "n_groups": G,
        "dropped_mass": builder.dropped_mass,
        "n_streamed_groups": len(large),
        "n_streamed_passes": n_passes,
        "groups": {
            "names": layout.names,
            "n_iter": n_iter,
            err_name: error,
            "converged": converged,
            "streamed": streamed,
        },
    }
    return AlignResult(coupling=coupling, parameters=parameters, convergence=convergence)


def _pot_blocks(
    C: Any, a: Any, b: Any, eps: float, reg_m: float | None, tol: float, max_iter: int,
    method: str, ops: Any,
) -> tuple[Any, np.ndarray]:  # fmt: skip
    """Reference path: POT on each block of a padded chunk, one call per group."""
    nx = ops.nx
    plan = nx.zeros(C.shape, type_as=C)
    its = np.zeros(C.shape[0], int)
    for g in range(C.shape[0]):
        n, m = int(nx.sum(a[g] > 0)), int(nx.sum(b[g] > 0))
        ag, bg, Cg = a[g, :n], b[g, :m], C[g, :n, :m]
        if reg_m is None:
            mass = nx.sum(ag)
            # POT stops on the L2 error of the column marginal (rows are exact): this bound
            # makes its L1 error at most tol, the criterion of the batched solver
            P, log = ot.sinkhorn(
                ag / mass, bg / mass, Cg, eps, method=method, numItermax=max_iter,
                stopThr=tol / np.sqrt(m), log=True,
            )  # fmt: skip
            P = P * mass
        else:
            P, log = ot.unbalanced.sinkhorn_unbalanced(
                ag, bg, Cg, eps, reg_m, numItermax=max_iter, stopThr=tol, log=True
            )
        plan[g, :n, :m] = P
        its[g] = int(log.get("niter", len(log.get("err", [])) * 10))
    return plan, its


@register_aligner(
    "leot", default_epsilon=DEFAULT_EPSILON, labels="required", shared_rep=True,
    description="entropic OT on a shared latent within each group (block-diagonal)",
)  # fmt: skip
def leot(
    problem: AlignProblem,
    tol: float = 1e-4,
    max_iter: int = 10_000,
    omega: float | str = "auto",
    eps_scaling: int = 3,
    prune: float = 1e-12,
    keep_mass: float = DEFAULT_KEEP_MASS,
    max_per_row: int | None = DEFAULT_MAX_PER_ROW,
    stream_above: int | None = None,
    solver: Literal["batched", "pot"] = "batched",
    pot_method: str = "sinkhorn",
    group_weights: GroupWeights = "source",
) -> AlignResult:
    """Labeled entropic OT: one balanced problem per group, solved batched.

    Cost: squared Euclidean distance in the shared representation. Epsilon is relative to the
    largest cost over same-group pairs (one absolute value for all groups). Each group carries a
    mass proportional to its size (``group_weights``), spread uniformly over its cells.

    Parameters
    ----------
    problem
        Prepared by :func:`groove_sc.tl.align`.
    tol
        Convergence: L1 error of both marginals relative to each group's mass.
    max_iter
        Iteration cap per group.
    omega
        Over-relaxation, ``"auto"`` (adaptive per group) or a value in ``[1, 2)``.
    eps_scaling
        Warm-up stages at ``2**k`` times epsilon (k = eps_scaling, ..., 1), each solved to a
        loose tolerance and warm-starting the next.
    prune
        Entries below ``prune`` times their row's maximum are not stored.
    keep_mass
        Each stored row keeps its largest entries up to this share of its mass, rescaled so
        that the row keeps its full mass (``1.0``: no mass dropped).
    max_per_row
        At most this many entries are stored per row (``None``: no cap). The mass moved from
        dropped entries is ``uns[key_added]["convergence"]["dropped_mass"]``.
    stream_above
        Groups with more source x target pairs than this are solved without a dense block:
        the cost is streamed in row chunks from its factorisation (``None``: 4096 x 4096 on
        CPU, 32768 x 32768 on a GPU; ``0`` streams every group). Same solution up to ``tol``.
    solver
        ``"batched"`` (padded groups in one tensor program) or ``"pot"`` (``ot.sinkhorn`` per
        group, for reference).
    pot_method
        POT's Sinkhorn variant for ``solver="pot"``.
    group_weights
        ``"source"`` (default: every kept source cell has the same mass), ``"target"`` or
        ``"mean"``.

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", method="leot", groupby="perturbation")  # doctest: +SKIP

    """
    layout = problem.layout()
    a, b = layout.cell_masses(layout.group_mass(group_weights))
    result = _solve_blocks(
        problem, layout, a, b, reg_m=None, tol=tol, max_iter=max_iter, omega=omega,
        eps_scaling=eps_scaling, prune=prune, keep_mass=keep_mass, max_per_row=max_per_row,
        stream_above=stream_above, solver=solver, pot_method=pot_method,
    )  # fmt: skip
    result.parameters["group_weights"] = group_weights
    return result


@register_aligner(
    "eot", default_epsilon=DEFAULT_EPSILON, labels="ignored", shared_rep=True, dense=True,
    description="entropic OT on a shared latent over all cells (dense)",
)  # fmt: skip
def eot(
    problem: AlignProblem,
    tol: float = 1e-4,
    max_iter: int = 10_000,
    omega: float | str = "auto",
    eps_scaling: int = 3,
    prune: float = 1e-12,
    keep_mass: float = DEFAULT_KEEP_MASS,
    max_per_row: int | None = DEFAULT_MAX_PER_ROW,
    stream_above: int | None = None,
    solver: Literal["batched", "pot"] = "batched",
    pot_method: str = "sinkhorn",
) -> AlignResult:
    """Unlabeled entropic OT over all cells, uniform marginals.

    Builds the dense ``n_source x n_target`` cost; refused above ``max_pairs`` of
    :func:`groove_sc.tl.align` unless raised. Epsilon is relative to the largest cost.

    Parameters
    ----------
    problem
        Prepared by :func:`groove_sc.tl.align`.
    tol
        Convergence: L1 error of both marginals relative to each group's mass.
    max_iter
        Iteration cap per group.
    omega
        Over-relaxation, ``"auto"`` (adaptive per group) or a value in ``[1, 2)``.
    eps_scaling
        Warm-up stages at ``2**k`` times epsilon (k = eps_scaling, ..., 1), each solved to a
        loose tolerance and warm-starting the next.
    prune
        Entries below ``prune`` times their row's maximum are not stored.
    keep_mass
        Each stored row keeps its largest entries up to this share of its mass, rescaled so
        that the row keeps its full mass (``1.0``: no mass dropped).
    max_per_row
        At most this many entries are stored per row (``None``: no cap). The mass moved from
        dropped entries is ``uns[key_added]["convergence"]["dropped_mass"]``.
    stream_above
        Groups with more source x target pairs than this are solved without a dense block:
        the cost is streamed in row chunks from its factorisation (``None``: 4096 x 4096 on
        CPU, 32768 x 32768 on a GPU; ``0`` streams every group). Same solution up to ``tol``.
    solver
        ``"batched"`` (padded groups in one tensor program) or ``"pot"`` (``ot.sinkhorn`` per
        group, for reference).
    pot_method
        POT's Sinkhorn variant for ``solver="pot"``.

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", method="eot")  # doctest: +SKIP

    """
    layout = problem.layout()
    a, b = layout.cell_masses(np.ones(1))
    return _solve_blocks(
        problem, layout, a, b, reg_m=None, tol=tol, max_iter=max_iter, omega=omega,
        eps_scaling=eps_scaling, prune=prune, keep_mass=keep_mass, max_per_row=max_per_row,
        stream_above=stream_above, solver=solver, pot_method=pot_method,
    )  # fmt: skip


@register_aligner(
    "uot", default_epsilon=DEFAULT_EPSILON, labels="required", shared_rep=True,
    description="unbalanced entropic OT on a shared latent within each group",
)  # fmt: skip
def uot(
    problem: AlignProblem,
    reg_m: float = 0.1,
    tol: float = 1e-6,
    max_iter: int = 10_000,
    prune: float = 1e-12,
    keep_mass: float = DEFAULT_KEEP_MASS,
    max_per_row: int | None = DEFAULT_MAX_PER_ROW,
    stream_above: int | None = None,
    solver: Literal["batched", "pot"] = "batched",
) -> AlignResult:
    """Unbalanced entropic OT per group (KL marginal penalties, POT's ``reg_type="kl"``).

    Every kept source cell has mass ``1 / n_source_kept`` and every kept target cell
    ``1 / n_target_kept``, so groups whose sizes differ between the modalities need not be
    balanced: the KL penalty ``reg_m`` (relative to the cost scale, like epsilon) decides how
    much mass is created or destroyed. The stored coupling is rescaled to total mass 1; the mass
    before rescaling is recorded as ``parameters["mass_before_normalisation"]``.

    Parameters
    ----------
    problem
        Prepared by :func:`groove_sc.tl.align`.
    reg_m
        Marginal relaxation, relative to the largest same-group cost.
    tol
        Stop when the log-scalings change by less than ``tol``.
    max_iter
        Iteration cap.
    prune
        Entries below ``prune`` times their row's maximum are not stored.
    keep_mass
        Each stored row keeps its largest entries up to this share of its mass, rescaled so
        that the row keeps its full mass (``1.0``: no mass dropped).
    max_per_row
        At most this many entries are stored per row (``None``: no cap). The mass moved from
        dropped entries is ``uns[key_added]["convergence"]["dropped_mass"]``.
    stream_above
        Groups with more source x target pairs than this are solved without a dense block:
        the cost is streamed in row chunks from its factorisation (``None``: 4096 x 4096 on
        CPU, 32768 x 32768 on a GPU; ``0`` streams every group). Same solution up to ``tol``.
    solver
        ``"batched"`` or ``"pot"`` (``ot.unbalanced.sinkhorn_unbalanced`` per group).

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", method="uot", reg_m=0.1)  # doctest: +SKIP

    """
    if not reg_m > 0:
        raise ValueError(f"reg_m must be positive, got {reg_m!r}.")
    layout = problem.layout()
    ns, nt = layout.source_sizes.sum(), layout.target_sizes.sum()
    a = [np.full(len(i), 1.0 / ns) for i in layout.source_index]
    b = [np.full(len(i), 1.0 / nt) for i in layout.target_index]
    return _solve_blocks(
        problem, layout, a, b, reg_m=reg_m, tol=tol, max_iter=max_iter, omega=1.0,
        eps_scaling=0, prune=prune, keep_mass=keep_mass, max_per_row=max_per_row,
        stream_above=stream_above, solver=solver, pot_method="sinkhorn",
    )  # fmt: skip
