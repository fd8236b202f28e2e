"""Linear entropic OT on a shared representation: ``eot``, ``leot`` (per group) and ``uot``."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import ot

from ..._constants import DEFAULT_PRUNE
from ..._docs import doc_params
from ._blockwise import Blocks, Chunk
from ._costs import batched_sqdist, mask_padding
from ._docparams import ALIGNER_DOCS
from ._groups import DEFAULT_KEEP_MASS, DEFAULT_MAX_PER_ROW, GroupLayout, GroupWeights
from ._problem import AlignProblem, relative_epsilon
from ._registry import AlignResult, register_aligner
from ._sinkhorn import marginal_errors
from ._stream import FactoredCost

#: Default epsilon relative to the largest cost on the solved support (Perturb-OT's default).
DEFAULT_EPSILON = 5e-3


def _shifted_reps(problem: AlignProblem, layout: GroupLayout) -> tuple[np.ndarray, np.ndarray]:
    xs, xt = problem.rep(shared=True)
    # centring both sides by one common shift keeps the expansion |x|^2 + |y|^2 - 2 x.y accurate
    shift = 0.5 * (xs[layout.source_kept()].mean(0) + xt[layout.target_kept()].mean(0))
    return xs - shift, xt - shift


def _sqeuclidean(blocks: Blocks, ch: Chunk, xs: np.ndarray, xt: np.ndarray) -> Any:
    """The chunk's squared-Euclidean cost: padded with ``inf`` (dense) or factorised (streamed)."""
    X, Y, ops = blocks.take(ch, xs), blocks.take(ch, xt, "target"), blocks.ops
    if ch.streamed:
        return FactoredCost.sqeuclidean(X, Y, dtype=ops.dtype)
    return mask_padding(batched_sqdist(X, Y, ops), ch.a, ch.b, ops)


def _solve_linear(
    problem: AlignProblem,
    layout: GroupLayout,
    a_cells: list[np.ndarray],
    b_cells: list[np.ndarray],
    *,
    reg_m: float | None,
    tol: float,
    max_iter: int,
    solver: str,
    pot_method: str = "sinkhorn",
    **options: Any,
) -> AlignResult:
    """Balanced (``reg_m=None``) or unbalanced entropic OT on every block of ``layout``.

    ``options`` holds the storage options of :class:`.Blocks` and the Sinkhorn accelerations
    (``omega``, ``eps_scaling``).
    """
    eps_rel = relative_epsilon(problem, DEFAULT_EPSILON)
    sinkhorn = {"omega": options.pop("omega"), "eps_scaling": options.pop("eps_scaling")}
    blocks = Blocks(problem, layout, a_cells, b_cells, streaming=solver == "batched", **options)
    if solver not in ("batched", "pot"):
        raise ValueError(f"solver must be 'batched' or 'pot', got {solver!r}.")
    with blocks.threads():
        xs, xt = _shifted_reps(problem, layout)
        for ch in blocks.chunks:
            ch.data["C"] = _sqeuclidean(blocks, ch, xs, xt)
        scale = blocks.cost_scale([ch.C for ch in blocks.chunks]) or 1.0
        eps, reg_m_abs = eps_rel * scale, None if reg_m is None else reg_m * scale
        for ch in blocks.chunks:  # each chunk's cost and plan are released once stored
            if solver == "pot":
                ch.plan = _pot_chunk(blocks, ch, eps, reg_m_abs, tol, max_iter, pot_method)
            else:
                blocks.sinkhorn(
                    ch, ch.C, eps, tol=tol, max_iter=max_iter, reg_m=reg_m_abs, **sinkhorn
                )
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
        "epsilon_scale": "max",
        "cost": "sqeuclidean",
        "cost_scale": scale,
        "tol": tol,
        "max_iter": max_iter,
        "solver": solver,
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


@register_aligner(
    "leot",
    default_epsilon=DEFAULT_EPSILON,
    labels="required",
    shared_rep=True,
    description="entropic OT on a shared latent within each group (block-diagonal)",
)
@doc_params(**ALIGNER_DOCS)
def leot(  # noqa: D417 (parameters from ALIGNER_DOCS)
    problem: AlignProblem,
    tol: float = 1e-4,
    max_iter: int = 10_000,
    omega: float | str = "auto",
    eps_scaling: int = 3,
    prune: float = DEFAULT_PRUNE,
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
    %(problem)s
    %(sinkhorn)s
    %(sparsity)s
    %(stream_above_linear)s
    %(solver)s
    group_weights
        ``"source"`` (default: every kept source cell has the same mass), ``"target"`` or
        ``"mean"``.

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", method="leot", use_rep="X_true")
    >>> mdata.uns["groove_coupling"]["convergence"]["converged"]
    True

    """
    layout = problem.layout()
    a, b = layout.cell_masses(layout.group_mass(group_weights))
    result = _solve_linear(
        problem,
        layout,
        a,
        b,
        reg_m=None,
        tol=tol,
        max_iter=max_iter,
        omega=omega,
        eps_scaling=eps_scaling,
        prune=prune,
        keep_mass=keep_mass,
        max_per_row=max_per_row,
        stream_above=stream_above,
        solver=solver,
        pot_method=pot_method,
    )
    result.parameters["group_weights"] = group_weights
    return result


@register_aligner(
    "eot",
    default_epsilon=DEFAULT_EPSILON,
    labels="ignored",
    shared_rep=True,
    dense=True,
    description="entropic OT on a shared latent over all cells (dense)",
)
@doc_params(**ALIGNER_DOCS)
def eot(  # noqa: D417 (parameters from ALIGNER_DOCS)
    problem: AlignProblem,
    tol: float = 1e-4,
    max_iter: int = 10_000,
    omega: float | str = "auto",
    eps_scaling: int = 3,
    prune: float = DEFAULT_PRUNE,
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
    %(problem)s
    %(sinkhorn)s
    %(sparsity)s
    %(stream_above_linear)s
    %(solver)s

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", method="eot", use_rep="X_true")
    >>> mdata.uns["groove_coupling"]["groupby"]
    ''

    """
    layout = problem.layout()
    a, b = layout.cell_masses(np.ones(1))
    return _solve_linear(
        problem,
        layout,
        a,
        b,
        reg_m=None,
        tol=tol,
        max_iter=max_iter,
        omega=omega,
        eps_scaling=eps_scaling,
        prune=prune,
        keep_mass=keep_mass,
        max_per_row=max_per_row,
        stream_above=stream_above,
        solver=solver,
        pot_method=pot_method,
    )


@register_aligner(
    "uot",
    default_epsilon=DEFAULT_EPSILON,
    labels="required",
    shared_rep=True,
    description="unbalanced entropic OT on a shared latent within each group",
)
@doc_params(**ALIGNER_DOCS)
def uot(  # noqa: D417 (parameters from ALIGNER_DOCS)
    problem: AlignProblem,
    reg_m: float = 0.1,
    tol: float = 1e-6,
    max_iter: int = 10_000,
    prune: float = DEFAULT_PRUNE,
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
    %(problem)s
    reg_m
        Marginal relaxation, relative to the largest same-group cost.
    tol
        Stop when the log-scalings change by less than ``tol``.
    max_iter
        Iteration cap.
    %(sparsity)s
    %(stream_above_linear)s
    solver
        ``"batched"`` or ``"pot"`` (``ot.unbalanced.sinkhorn_unbalanced`` per group).

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", method="uot", use_rep="X_true", reg_m=0.1)
    >>> mdata.uns["groove_coupling"]["parameters"]["reg_m_relative"]
    0.1

    """
    if not reg_m > 0:
        raise ValueError(f"reg_m must be positive, got {reg_m!r}.")
    layout = problem.layout()
    ns, nt = layout.source_sizes.sum(), layout.target_sizes.sum()
    a = [np.full(len(i), 1.0 / ns) for i in layout.source_index]
    b = [np.full(len(i), 1.0 / nt) for i in layout.target_index]
    return _solve_linear(
        problem,
        layout,
        a,
        b,
        reg_m=reg_m,
        tol=tol,
        max_iter=max_iter,
        omega=1.0,
        eps_scaling=0,
        prune=prune,
        keep_mass=keep_mass,
        max_per_row=max_per_row,
        stream_above=stream_above,
        solver=solver,
    )
