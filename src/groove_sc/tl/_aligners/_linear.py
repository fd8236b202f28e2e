"""Linear entropic OT on a shared representation: ``eot``, ``leot`` (per group) and ``uot``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import ot

from . import _docparams as docs
from ._blockwise import Blocks, Chunk
from ._costs import batched_sqdist, blockwise_mean_sqeuclidean, mask_padding
from ._groups import GroupLayout
from ._options import (
    Grouping,
    OptionGroup,
    PotSolver,
    Sinkhorn,
    Solver,
    Storage,
    Unbalanced,
    aligner_options,
)
from ._problem import AlignProblem, relative_epsilon
from ._registry import AlignResult, register_aligner
from ._sinkhorn import marginal_errors
from ._stream import FactoredCost

#: Default epsilon of ``eot`` and ``uot``, relative to the largest cost on the solved support
#: (Perturb-OT's default).
DEFAULT_EPSILON = 5e-3
#: Default epsilon of ``leot``, relative to the mean same-group cost (see :func:`leot`).
LEOT_DEFAULT_EPSILON = 0.05


def _shifted_reps(problem: AlignProblem, layout: GroupLayout) -> tuple[np.ndarray, np.ndarray]:
    xs, xt = problem.rep(shared=True)
    # centring both sides by one common shift keeps the expansion |x|^2 + |y|^2 - 2 x.y accurate
    shift = 0.5 * (xs[layout.source_kept()].mean(0) + xt[layout.target_kept()].mean(0))
    return xs - shift, xt - shift


def mean_group_cost(problem: AlignProblem) -> float | None:
    """The mean same-group cost of ``problem`` with ``leot``'s default group masses.

    ``None`` when the modalities share no representation (only ``leot``-type aligners use it).

    Examples
    --------
    >>> from groove_sc.tl._aligners._problem import build_problem
    >>> problem, _ = build_problem(mdata, "rna", "prot", "leot", "X_true_shared",
    ...                            "perturbation", None, "cpu", None, "float32")
    >>> mean_group_cost(problem) > 0
    True

    """
    try:
        layout = problem.layout()
        xs, xt = _shifted_reps(problem, layout)
    except (ValueError, KeyError):
        return None
    masses = layout.cell_masses(layout.group_mass("source"))
    return blockwise_mean_sqeuclidean(xs, xt, layout.source_index, layout.target_index, *masses)


def _sqeuclidean(blocks: Blocks, ch: Chunk, xs: np.ndarray, xt: np.ndarray) -> Any:
    """The chunk's squared-Euclidean cost: padded with ``inf`` (dense) or factorised (streamed)."""
    X, Y, ops = blocks.take(ch, xs), blocks.take(ch, xt, "target"), blocks.ops
    if ch.streamed:
        return FactoredCost.sqeuclidean(X, Y, dtype=ops.dtype)
    return mask_padding(batched_sqdist(X, Y, ops), ch.a, ch.b, ops)


def _solve_linear(
    problem: AlignProblem,
    layout: GroupLayout,
    masses: tuple[list[np.ndarray], list[np.ndarray]],
    sinkhorn: Sinkhorn,
    storage: Storage,
    solver: PotSolver,
    reg_m: float | None = None,
    epsilon_scale: str = "max",
) -> AlignResult:
    """Balanced (``reg_m=None``) or unbalanced entropic OT on every block of ``layout``.

    ``masses`` holds, per block, the masses of its source and of its target cells. Epsilon is
    relative to the largest cost on the solved support (``epsilon_scale="max"``) or to the
    mean cost of the independent coupling within the blocks (``"mean"``); ``reg_m`` is always
    relative to the largest cost.
    """
    if solver.solver not in ("batched", "pot"):
        raise ValueError(f"solver must be 'batched' or 'pot', got {solver.solver!r}.")
    eps_rel = relative_epsilon(
        problem, LEOT_DEFAULT_EPSILON if epsilon_scale == "mean" else DEFAULT_EPSILON
    )
    streaming = solver.solver == "batched"
    blocks = Blocks(problem, layout, *masses, streaming=streaming, **asdict(storage))
    tol, max_iter = sinkhorn.tol, sinkhorn.max_iter
    with blocks.threads():
        xs, xt = _shifted_reps(problem, layout)
        for ch in blocks.chunks:
            ch.data["C"] = _sqeuclidean(blocks, ch, xs, xt)
        largest = blocks.cost_scale([ch.C for ch in blocks.chunks]) or 1.0
        scale = largest
        if epsilon_scale == "mean":
            mean = problem.mean_cost
            if mean is None:
                mean = blockwise_mean_sqeuclidean(
                    xs, xt, layout.source_index, layout.target_index, *masses
                )
            # 0: every block's cells coincide (a label space), its costs are rounding errors
            scale = mean if mean > 0 else 1.0
        eps, reg_m_abs = eps_rel * scale, None if reg_m is None else reg_m * largest
        for ch in blocks.chunks:  # each chunk's cost and plan are released once stored
            if not streaming:
                method = solver.pot_method
                ch.plan = _pot_chunk(blocks, ch, eps, reg_m_abs, tol, max_iter, method)
            else:
                blocks.sinkhorn(ch, ch.C, eps, reg_m=reg_m_abs, **asdict(sinkhorn))
            blocks.add(ch)
        coupling = blocks.builder.to_csr()
    transported = float(coupling.sum())
    if transported <= 0:
        raise FloatingPointError(
            f"Method '{problem.method}' transported no mass; increase epsilon or reg_m."
        )
    coupling.data /= transported
    parameters: dict[str, Any] = {
        "epsilon": eps,
        "epsilon_relative": eps_rel,
        "epsilon_scale": epsilon_scale,
        "cost": "sqeuclidean",
        "cost_scale": scale,
        "cost_max": largest,
        "tol": tol,
        "max_iter": max_iter,
        "solver": solver.solver,
    }
    if reg_m is not None:
        parameters.update(
            reg_m=reg_m_abs, reg_m_relative=reg_m, mass_before_normalisation=transported
        )
    err_name = "marginal_error" if reg_m is None else "scaling_change"
    summary = {
        "converged": bool(blocks.converged.all()),
        "n_iter": int(blocks.n_iter.max()),
        err_name: float(np.nanmax(blocks.error)) if layout.n_groups else 0.0,
    }
    groups = {"n_iter": blocks.n_iter, err_name: blocks.error, "converged": blocks.converged}
    return blocks.result(coupling, parameters, summary, groups)


def _pot_chunk(
    blocks: Blocks,
    ch: Chunk,
    eps: float,
    reg_m: float | None,
    tol: float,
    max_iter: int,
    method: str,
) -> Any:
    """Reference path: POT on each block of a padded chunk, one call per group."""
    nx, a, b, C = blocks.ops.nx, ch.a, ch.b, ch.C
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
                ag / mass,
                bg / mass,
                Cg,
                eps,
                method=method,
                numItermax=max_iter,
                stopThr=tol / np.sqrt(m),
                log=True,
            )
            P = P * mass
        else:
            P, log = ot.unbalanced.sinkhorn_unbalanced(
                ag, bg, Cg, eps, reg_m, numItermax=max_iter, stopThr=tol, log=True
            )
        plan[g, :n, :m] = P
        its[g] = int(log.get("niter", len(log.get("err", [])) * 10))
    if reg_m is None:
        error = marginal_errors(plan, a, b, blocks.ops)
        blocks.record(ch.ids, its, error, error < tol)
    else:
        blocks.record(ch.ids, its, np.nan, its < max_iter)
    return plan


#: The registry entries of the linear aligners, and their one-line descriptions.
LINEAR = {"default_epsilon": DEFAULT_EPSILON, "shared_rep": True}
DESCRIPTION = {
    "leot": "entropic OT on a shared latent within each group (block-diagonal)",
    "eot": "entropic OT on a shared latent over all cells (dense)",
    "uot": "unbalanced entropic OT on a shared latent within each group",
}
#: The options of the balanced linear aligners (``leot`` adds its group weights).
SINKHORN = OptionGroup(Sinkhorn(tol=1e-4, max_iter=10_000), docs.SINKHORN)
STORAGE = OptionGroup(Storage(), docs.storage())
SOLVER = OptionGroup(PotSolver(), docs.SOLVER)


@register_aligner(
    "leot",
    labels="required",
    description=DESCRIPTION["leot"],
    **{**LINEAR, "default_epsilon": LEOT_DEFAULT_EPSILON},
)
@aligner_options(SINKHORN, STORAGE, SOLVER, OptionGroup(Grouping(), docs.LEOT_GROUP_WEIGHTS))
def leot(
    problem: AlignProblem,
    sinkhorn: Sinkhorn,
    storage: Storage,
    solver: PotSolver,
    grouping: Grouping,
) -> AlignResult:
    """Labeled entropic OT: one balanced problem per group, solved batched.

    Cost: squared Euclidean distance in the shared representation. Epsilon is relative to the
    mean same-group cost (the cost of the coupling uniform within each group, pooled over the
    groups by their mass): one absolute value for all groups, set by the typical distance a
    cell has to its group in the other modality rather than by the most distant pair, which a
    single outlying cell decides. Each group carries a mass proportional to its size
    (``group_weights``), spread uniformly over its cells.

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", method="leot", use_rep="X_true")
    >>> mdata.uns["groove_coupling"]["convergence"]["converged"]
    True

    """
    layout = problem.layout()
    masses = layout.cell_masses(layout.group_mass(grouping.group_weights))
    result = _solve_linear(problem, layout, masses, sinkhorn, storage, solver, epsilon_scale="mean")
    result.parameters["group_weights"] = grouping.group_weights
    return result


@register_aligner("eot", labels="ignored", dense=True, description=DESCRIPTION["eot"], **LINEAR)
@aligner_options(SINKHORN, STORAGE, SOLVER)
def eot(
    problem: AlignProblem, sinkhorn: Sinkhorn, storage: Storage, solver: PotSolver
) -> AlignResult:
    """Unlabeled entropic OT over all cells, uniform marginals.

    Builds the dense ``n_source x n_target`` cost; refused above ``max_pairs`` of
    :func:`groove_sc.tl.align` unless raised. Epsilon is relative to the largest cost.

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", method="eot", use_rep="X_true")
    >>> mdata.uns["groove_coupling"]["groupby"]
    ''

    """
    layout = problem.layout()
    return _solve_linear(problem, layout, layout.cell_masses(np.ones(1)), sinkhorn, storage, solver)


@register_aligner("uot", labels="required", description=DESCRIPTION["uot"], **LINEAR)
@aligner_options(
    OptionGroup(Unbalanced(), docs.UNBALANCED), STORAGE, OptionGroup(Solver(), docs.UOT_SOLVER)
)
def uot(
    problem: AlignProblem, unbalanced: Unbalanced, storage: Storage, solver: Solver
) -> AlignResult:
    """Unbalanced entropic OT per group (KL marginal penalties, POT's ``reg_type="kl"``).

    Every kept source cell has mass ``1 / n_source_kept`` and every kept target cell
    ``1 / n_target_kept``, so groups whose sizes differ between the modalities need not be
    balanced: the KL penalty ``reg_m`` (relative to the cost scale, like epsilon) decides how
    much mass is created or destroyed. The stored coupling is rescaled to total mass 1; the mass
    before rescaling is recorded as ``parameters["mass_before_normalisation"]``.

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", method="uot", use_rep="X_true", reg_m=0.1)
    >>> mdata.uns["groove_coupling"]["parameters"]["reg_m_relative"]
    0.1

    """
    reg_m = unbalanced.reg_m
    if not reg_m > 0:
        raise ValueError(f"reg_m must be positive, got {reg_m!r}.")
    layout = problem.layout()
    ns, nt = layout.source_sizes.sum(), layout.target_sizes.sum()
    a = [np.full(len(i), 1.0 / ns) for i in layout.source_index]
    b = [np.full(len(i), 1.0 / nt) for i in layout.target_index]
    # plain Sinkhorn iterations: no over-relaxation, no warm-up stages
    sinkhorn = Sinkhorn(unbalanced.tol, unbalanced.max_iter, omega=1.0, eps_scaling=0)
    pot = PotSolver(solver.solver)
    return _solve_linear(problem, layout, (a, b), sinkhorn, storage, pot, reg_m=reg_m)
