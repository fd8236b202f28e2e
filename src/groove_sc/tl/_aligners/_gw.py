"""Entropic (fused) Gromov-Wasserstein on factorised squared-Euclidean geometries.

Methods: ``egw`` (independent problem per group), ``egw_all`` (one problem over all cells),
``egwl`` (one joint problem whose support is restricted to same-group pairs) and ``fgw`` (fused
GW, per group by default).

Each modality's geometry is ``C = |x_i - x_k|^2 / s`` with ``s`` the mean squared distance over
its kept cells (so both geometries have mean 1 and GW compares shapes, not units). ``C`` is never
formed: ``C = U V^T`` with factors of rank ``d + 2`` (:func:`sqeuclidean_factors`), so the GW
gradient on a block is

    grad = 2 * (c1_i + c2_j - 2 * U1_i (V1^T T V2) U2_j^T),   c1_i = sum_k p_k C1_ik^2,

with the ``(d1 + 2) x (d2 + 2)`` statistic ``V1^T T V2`` summed over blocks. The iteration is
POT's projected-gradient scheme for entropic GW (Peyre et al. 2016): ``T <- Sinkhorn(grad(T),
eps)`` from ``T = p q^T``, with each Sinkhorn warm-started from the previous potentials and
batched over padded groups. For ``egwl`` the statistic sums over all groups, which is what couples
them; the plan only ever exists as same-group blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._costs import (
    batched_sqdist,
    mask_padding,
    mean_sqdist,
    sqeuclidean_factors,
    support_max,
    weighted_square_rowsums,
)
from ._groups import CouplingBuilder, GroupLayout, GroupWeights, pad_gather
from ._problem import AlignProblem, UseRep, relative_epsilon
from ._registry import AlignResult, register_aligner
from ._sinkhorn import sinkhorn_padded

#: Default epsilon relative to the largest entry of the initial linearised GW cost.
DEFAULT_EPSILON = 5e-3


@dataclass
class _Chunk:
    """Padded data of a batch of blocks (backend arrays)."""

    ids: np.ndarray
    U1: Any
    V1: Any
    U2: Any
    V2: Any
    c1: Any
    c2: Any
    a: Any
    b: Any
    fused: Any = None
    f: Any = None
    g: Any = None
    plan: Any = None


def _geometry(x: np.ndarray, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    x = x - x[kept].mean(axis=0)
    scale = mean_sqdist(x[kept])
    if not scale > 0:
        raise ValueError(
            "All cells to align have the same representation in one modality; GW needs "
            "distinct points."
        )
    U, V = sqeuclidean_factors(x, scale)
    return U, V, scale


def _chunks(
    problem: AlignProblem,
    layout: GroupLayout,
    a_cells: list[np.ndarray],
    b_cells: list[np.ndarray],
    joint: bool,
    use_rep: UseRep | None,
    fused_rep: str | None,
) -> tuple[list[_Chunk], dict[str, float]]:
    ops = problem.ops
    xs, xt = problem.rep(use_rep)
    U1, V1, s1 = _geometry(xs, layout.source_kept())
    U2, V2, s2 = _geometry(xt, layout.target_kept())
    a_all = np.zeros(layout.n_source)
    b_all = np.zeros(layout.n_target)
    c1 = np.zeros(layout.n_source)
    c2 = np.zeros(layout.n_target)
    for si, ti, a, b in zip(layout.source_index, layout.target_index, a_cells, b_cells):
        a_all[si], b_all[ti] = a, b
        if not joint:  # c1 over the block's own cells, unit mass
            c1[si] = weighted_square_rowsums(U1[si], V1[si], a)
            c2[ti] = weighted_square_rowsums(U2[ti], V2[ti], b)
    if joint:
        ks, kt = layout.source_kept(), layout.target_kept()
        c1[ks] = weighted_square_rowsums(U1[ks], V1[ks], a_all[ks])
        c2[kt] = weighted_square_rowsums(U2[kt], V2[kt], b_all[kt])
    scales = {"source_geometry_scale": s1, "target_geometry_scale": s2}
    zs = zt = None
    if fused_rep is not None:
        zs, zt = problem.rep(fused_rep, shared=True)
        shift = zs[layout.source_kept()].mean(0)
        zs, zt = zs - shift, zt - shift
        sf = mean_sqdist(zs[layout.source_kept()], zt[layout.target_kept()])
        scales["fused_cost_scale"] = sf
    chunks = []
    for ids in layout.chunks(ops.itemsize, ops.chunk_bytes):
        si = [layout.source_index[g] for g in ids]
        ti = [layout.target_index[g] for g in ids]
        ch = _Chunk(
            ids=ids,
            U1=ops.asarray(pad_gather(U1, si)),
            V1=ops.asarray(pad_gather(V1, si)),
            U2=ops.asarray(pad_gather(U2, ti)),
            V2=ops.asarray(pad_gather(V2, ti)),
            c1=ops.asarray(pad_gather(c1, si)),
            c2=ops.asarray(pad_gather(c2, ti)),
            a=ops.asarray(pad_gather(a_all, si)),
            b=ops.asarray(pad_gather(b_all, ti)),
        )
        if zs is not None:
            D = batched_sqdist(
                ops.asarray(pad_gather(zs, si)), ops.asarray(pad_gather(zt, ti)), ops
            )
            ch.fused = D / scales["fused_cost_scale"]
        chunks.append(ch)
    return chunks, scales


def _statistic(ch: _Chunk, plan: Any, ops: Any) -> Any:
    """Per block ``V1^T T V2`` ``(G, r1, r2)``."""
    return (ops.transpose(ch.V1) @ plan) @ ch.V2


def _initial_statistic(ch: _Chunk, ops: Any) -> Any:
    """Per block ``V1^T (a b^T / mass) V2`` (the product coupling)."""
    mass = ops.nx.sum(ch.a, axis=1)[:, None, None]
    va = ops.transpose(ch.V1) @ ch.a[:, :, None]
    vb = ops.transpose(ch.V2) @ ch.b[:, :, None]
    return (va @ ops.transpose(vb)) / mass


def _gradient(ch: _Chunk, stat: Any, alpha: float, ops: Any) -> Any:
    """Linearised (F)GW cost on the blocks; ``stat`` is ``(r1, r2)`` or ``(G, r1, r2)``."""
    cross = (ch.U1 @ stat) @ ops.transpose(ch.U2)
    grad = 2.0 * (ch.c1[:, :, None] + ch.c2[:, None, :] - 2.0 * cross)
    if ch.fused is not None:
        grad = alpha * grad + (1.0 - alpha) * ch.fused
    return mask_padding(grad, ch.a, ch.b, ops)


def solve_gw(
    problem: AlignProblem,
    layout: GroupLayout,
    group_mass: np.ndarray,
    *,
    joint: bool,
    alpha: float = 1.0,
    use_rep: UseRep | None = None,
    fused_rep: str | None = None,
    tol: float,
    max_iter: int,
    inner_tol: float,
    inner_max_iter: int,
    prune: float,
) -> AlignResult:
    """Entropic (F)GW over the blocks of ``layout`` (joint or independent per block).

    Examples
    --------
    >>> solve_gw(problem, layout, mass, joint=True, tol=1e-5, max_iter=100,
    ...          inner_tol=1e-4, inner_max_iter=5000, prune=1e-12)  # doctest: +SKIP

    """
    largest = int((layout.source_sizes * layout.target_sizes).max())
    with problem.ops.blas_threads_for(largest):
        return _solve_gw(
            problem, layout, group_mass, joint=joint, alpha=alpha, use_rep=use_rep,
            fused_rep=fused_rep, tol=tol, max_iter=max_iter, inner_tol=inner_tol,
            inner_max_iter=inner_max_iter, prune=prune,
        )  # fmt: skip


def _solve_gw(
    problem: AlignProblem,
    layout: GroupLayout,
    group_mass: np.ndarray,
    *,
    joint: bool,
    alpha: float,
    use_rep: UseRep | None,
    fused_rep: str | None,
    tol: float,
    max_iter: int,
    inner_tol: float,
    inner_max_iter: int,
    prune: float,
) -> AlignResult:
    ops, nx = problem.ops, problem.ops.nx
    # joint: cells carry their share of the global mass; independent: unit mass per block
    if joint:
        a_cells, b_cells = layout.cell_masses(group_mass)
    else:
        a_cells, b_cells = layout.cell_masses(np.ones(layout.n_groups))
    chunks, scales = _chunks(problem, layout, a_cells, b_cells, joint, use_rep, fused_rep)
    eps_rel = relative_epsilon(problem, DEFAULT_EPSILON)

    init = [_initial_statistic(ch, ops) for ch in chunks]
    if joint:
        stat0 = sum(nx.sum(s, axis=0) for s in init)
        init = [stat0 for _ in chunks]
    scale = max(
        support_max(_gradient(ch, s, alpha, ops), ch.a, ch.b, ops) for ch, s in zip(chunks, init)
    )
    eps = eps_rel * (scale if scale > 0 else 1.0)

    G = layout.n_groups
    outer_iter, change = np.zeros(G, int), np.full(G, np.inf)
    inner_iter, inner_err, inner_ok = np.zeros(G, int), np.zeros(G), np.zeros(G, bool)

    def inner(ch: _Chunk, stat: Any) -> Any:
        out = sinkhorn_padded(
            _gradient(ch, stat, alpha, ops), ch.a, ch.b, eps, ops=ops, tol=inner_tol,
            max_iter=inner_max_iter, f=ch.f, g=ch.g,
        )  # fmt: skip
        ch.f, ch.g, ch.plan = out.f, out.g, out.plan
        inner_iter[ch.ids], inner_err[ch.ids], inner_ok[ch.ids] = (
            out.n_iter,
            out.error,
            out.converged,
        )
        return _statistic(ch, out.plan, ops)

    if joint:
        stat = init[0]
        for it in range(1, max_iter + 1):
            new = sum(nx.sum(inner(ch, stat), axis=0) for ch in chunks)
            rel = float(nx.norm(new - stat) / max(float(nx.norm(new)), 1e-300))
            stat = new
            outer_iter[:], change[:] = it, rel
            if rel < tol:
                break
    else:
        for ch, stat in zip(chunks, init):
            for it in range(1, max_iter + 1):
                new = inner(ch, stat)
                diff = nx.sqrt(nx.sum((new - stat) ** 2, axis=(1, 2)))
                norm = nx.sqrt(nx.sum(new**2, axis=(1, 2)))
                rel = ops.to_numpy(diff / nx.maximum(norm, 1e-300)).astype(float)
                stat = new
                outer_iter[ch.ids], change[ch.ids] = it, rel
                if np.all(rel < tol):
                    break

    builder = CouplingBuilder(layout.n_source, layout.n_target, prune=prune)
    for ch in chunks:
        block_scale = None if joint else group_mass[ch.ids]
        builder.add(
            ops.to_numpy(ch.plan),
            [layout.source_index[g] for g in ch.ids],
            [layout.target_index[g] for g in ch.ids],
            scale=block_scale,
        )
    coupling = builder.to_csr()
    converged = (change < tol) & inner_ok
    parameters: dict[str, Any] = {
        "epsilon": eps,
        "epsilon_relative": eps_rel,
        "epsilon_scale": "max of the initial linearised cost",
        "cost": "sqeuclidean / mean",
        "alpha": alpha,
        "tol": tol,
        "max_iter": max_iter,
        "inner_tol": inner_tol,
        "inner_max_iter": inner_max_iter,
        "joint": joint,
        "prune": prune,
        **scales,
    }
    convergence = {
        "converged": bool(converged.all()),
        "n_iter": int(outer_iter.max()),
        "relative_change": float(change.max()),
        "inner_n_iter": int(inner_iter.max()),
        "marginal_error": float(inner_err.max()),
        "n_groups": G,
        "groups": {
            "names": layout.names,
            "n_iter": outer_iter,
            "relative_change": change,
            "inner_n_iter": inner_iter,
            "marginal_error": inner_err,
            "converged": converged,
        },
    }
    return AlignResult(coupling=coupling, parameters=parameters, convergence=convergence)


@register_aligner(
    "egw", default_epsilon=DEFAULT_EPSILON, labels="required", shared_rep=False,
    description="entropic Gromov-Wasserstein, one independent problem per group",
)  # fmt: skip
def egw(
    problem: AlignProblem,
    tol: float = 1e-5,
    max_iter: int = 200,
    inner_tol: float = 1e-4,
    inner_max_iter: int = 10_000,
    prune: float = 1e-12,
    group_weights: GroupWeights = "source",
) -> AlignResult:
    """Entropic GW per group: each group is an independent unit-mass problem, then scaled.

    Matches ``ot.gromov.entropic_gromov_wasserstein`` run on each group's (normalised) distance
    matrices. Each modality uses its own ``use_rep`` (a str or ``{modality: key}``).

    Parameters
    ----------
    problem
        Prepared by :func:`groove_sc.tl.align`.
    tol
        Outer convergence: relative change of the ``(d1 + 2) x (d2 + 2)`` statistic
        ``V1^T T V2`` (which determines the gradient) between iterations.
    max_iter
        Outer (projected-gradient) iteration cap.
    inner_tol
        Tolerance of each Sinkhorn solve (relative L1 marginal error).
    inner_max_iter
        Iteration cap of each Sinkhorn solve.
    prune
        Entries below ``prune`` times their row's maximum are not stored.
    group_weights
        Mass of each group: ``"source"``, ``"target"`` or ``"mean"`` group size.

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", method="egw",
    ...             use_rep={"rna": "X_pca", "prot": "X"})  # doctest: +SKIP

    """
    layout = problem.layout()
    mass = layout.group_mass(group_weights)
    return solve_gw(
        problem, layout, mass, joint=False, tol=tol, max_iter=max_iter, inner_tol=inner_tol,
        inner_max_iter=inner_max_iter, prune=prune,
    )  # fmt: skip


@register_aligner(
    "egw_all", default_epsilon=DEFAULT_EPSILON, labels="ignored", shared_rep=False, dense=True,
    description="entropic Gromov-Wasserstein over all cells (dense)",
)  # fmt: skip
def egw_all(
    problem: AlignProblem,
    tol: float = 1e-5,
    max_iter: int = 200,
    inner_tol: float = 1e-4,
    inner_max_iter: int = 10_000,
    prune: float = 1e-12,
) -> AlignResult:
    """Unlabeled entropic GW over all cells, uniform marginals (dense ``n x m`` plan).

    Parameters
    ----------
    problem
        Prepared by :func:`groove_sc.tl.align`.
    tol
        Outer convergence: relative change of the ``(d1 + 2) x (d2 + 2)`` statistic
        ``V1^T T V2`` (which determines the gradient) between iterations.
    max_iter
        Outer (projected-gradient) iteration cap.
    inner_tol
        Tolerance of each Sinkhorn solve (relative L1 marginal error).
    inner_max_iter
        Iteration cap of each Sinkhorn solve.
    prune
        Entries below ``prune`` times their row's maximum are not stored.

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", method="egw_all", use_rep="X_pca")  # doctest: +SKIP

    """
    layout = problem.layout()
    return solve_gw(
        problem, layout, np.ones(1), joint=True, tol=tol, max_iter=max_iter,
        inner_tol=inner_tol, inner_max_iter=inner_max_iter, prune=prune,
    )  # fmt: skip


@register_aligner(
    "egwl", default_epsilon=DEFAULT_EPSILON, labels="required", shared_rep=False,
    description="labeled entropic GW: one joint problem, support restricted to same-group pairs",
)  # fmt: skip
def egwl(
    problem: AlignProblem,
    tol: float = 1e-5,
    max_iter: int = 200,
    inner_tol: float = 1e-4,
    inner_max_iter: int = 10_000,
    prune: float = 1e-12,
    group_weights: GroupWeights = "source",
) -> AlignResult:
    """Labeled entropic GW: the GW objective over all cells, plans restricted to same-group pairs.

    Unlike ``egw``, distances between cells of different groups enter the objective (the
    gradient statistic sums over all blocks), so the groups are aligned consistently with each
    other; memory is ``O(n d + sum_g n_g m_g)``, no ``n x n`` or ``n x m`` matrix.

    Parameters
    ----------
    problem
        Prepared by :func:`groove_sc.tl.align`.
    tol
        Outer convergence: relative change of the ``(d1 + 2) x (d2 + 2)`` statistic
        ``V1^T T V2`` (which determines the gradient) between iterations.
    max_iter
        Outer (projected-gradient) iteration cap.
    inner_tol
        Tolerance of each Sinkhorn solve (relative L1 marginal error).
    inner_max_iter
        Iteration cap of each Sinkhorn solve.
    prune
        Entries below ``prune`` times their row's maximum are not stored.
    group_weights
        Mass of each group: ``"source"``, ``"target"`` or ``"mean"`` group size.

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", method="egwl", use_rep="X_groove")  # doctest: +SKIP

    """
    layout = problem.layout()
    mass = layout.group_mass(group_weights)
    return solve_gw(
        problem, layout, mass, joint=True, tol=tol, max_iter=max_iter, inner_tol=inner_tol,
        inner_max_iter=inner_max_iter, prune=prune,
    )  # fmt: skip


@register_aligner(
    "fgw", default_epsilon=DEFAULT_EPSILON, labels="optional", shared_rep=False, dense=True,
    description="entropic fused GW, per group (over all cells with groupby=None)",
)  # fmt: skip
def fgw(
    problem: AlignProblem,
    alpha: float = 0.5,
    fused_rep: str | None = None,
    tol: float = 1e-5,
    max_iter: int = 200,
    inner_tol: float = 1e-4,
    inner_max_iter: int = 10_000,
    prune: float = 1e-12,
    group_weights: GroupWeights = "source",
) -> AlignResult:
    """Entropic fused GW: ``alpha * GW + (1 - alpha) * <M, T>``, per group by default.

    ``M`` is the squared Euclidean distance in a shared representation (``fused_rep``, by
    default ``use_rep`` when that is one key), divided by its mean over all kept pairs; the GW
    geometries come from ``use_rep`` (str or per-modality dict). Matches
    ``ot.gromov.entropic_fused_gromov_wasserstein`` on each group.

    Parameters
    ----------
    problem
        Prepared by :func:`groove_sc.tl.align`.
    alpha
        Weight of the GW term in ``[0, 1]``.
    fused_rep
        Shared ``obsm`` key for the feature cost ``M``.
    tol
        Outer convergence: relative change of the ``(d1 + 2) x (d2 + 2)`` statistic
        ``V1^T T V2`` (which determines the gradient) between iterations.
    max_iter
        Outer (projected-gradient) iteration cap.
    inner_tol
        Tolerance of each Sinkhorn solve (relative L1 marginal error).
    inner_max_iter
        Iteration cap of each Sinkhorn solve.
    prune
        Entries below ``prune`` times their row's maximum are not stored.
    group_weights
        Mass of each group: ``"source"``, ``"target"`` or ``"mean"`` group size.

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", method="fgw", alpha=0.5)  # doctest: +SKIP

    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}.")
    if fused_rep is None:
        if not isinstance(problem.use_rep, str):
            raise ValueError(
                "fgw needs a shared representation for its feature cost: use_rep is a "
                "per-modality dict, so pass fused_rep='X_groove' (an obsm key in both)."
            )
        fused_rep = problem.use_rep
    layout = problem.layout()
    mass = layout.group_mass(group_weights)
    result = solve_gw(
        problem, layout, mass, joint=False, alpha=alpha, fused_rep=fused_rep, tol=tol,
        max_iter=max_iter, inner_tol=inner_tol, inner_max_iter=inner_max_iter, prune=prune,
    )  # fmt: skip
    result.parameters["fused_rep"] = fused_rep
    return result
