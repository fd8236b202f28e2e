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

from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from . import _docparams as docs
from ._blockwise import Blocks, Chunk
from ._costs import batched_sqdist, mask_padding, mean_sqdist, sqeuclidean_factors
from ._costs import weighted_square_rowsums as square_rowsums
from ._groups import GroupLayout
from ._options import Fused, Grouping, Inner, Iterations, OptionGroup, Storage, aligner_options
from ._problem import AlignProblem, UseRep, relative_epsilon, rep_key
from ._registry import AlignResult, register_aligner
from ._stream import FactoredCost

#: Default epsilon relative to the largest entry of the initial linearised GW cost.
DEFAULT_EPSILON = 5e-3


def _geometry(x: np.ndarray, kept: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray, float]:
    x = x - x[kept].mean(axis=0)
    scale = mean_sqdist(x[kept])
    if not scale > 0:
        raise ValueError(
            f"All cells to align have the same representation in {where}; GW compares "
            "distances within each modality and needs distinct points. Check that use_rep "
            "holds the cells' embedding (not a constant)."
        )
    U, V = sqeuclidean_factors(x, scale)
    return U, V, scale


def _prepare(
    blocks: Blocks, joint: bool, use_rep: UseRep | None, fused_rep: str | None
) -> dict[str, float]:
    """Gather each chunk's geometry factors ``U, V``, ``c = sum_k p_k C_ik^2`` and fused cost."""
    problem, layout, ops = blocks.problem, blocks.layout, blocks.ops
    ks, kt = layout.source_kept(), layout.target_kept()
    xs, xt = problem.rep(use_rep)
    rep = problem.use_rep if use_rep is None else use_rep
    U1, V1, s1 = _geometry(xs, ks, f"'{problem.source}' ({rep_key(rep, problem.source)!r})")
    U2, V2, s2 = _geometry(xt, kt, f"'{problem.target}' ({rep_key(rep, problem.target)!r})")
    c1, c2 = np.zeros(layout.n_source), np.zeros(layout.n_target)
    if joint:  # c over all kept cells with their global mass
        c1[ks] = square_rowsums(U1[ks], V1[ks], blocks.a[ks])
        c2[kt] = square_rowsums(U2[kt], V2[kt], blocks.b[kt])
    else:  # c over the block's own cells, unit mass
        for si, ti in zip(layout.source_index, layout.target_index):
            c1[si] = square_rowsums(U1[si], V1[si], blocks.a[si])
            c2[ti] = square_rowsums(U2[ti], V2[ti], blocks.b[ti])
    scales = {"source_geometry_scale": s1, "target_geometry_scale": s2}
    if fused_rep is not None:
        zs, zt = problem.rep(fused_rep, shared=True)
        shift = zs[ks].mean(0)
        zs, zt = zs - shift, zt - shift
        scales["fused_cost_scale"] = mean_sqdist(zs[ks], zt[kt])
    for ch in blocks.chunks:
        blocks.gather(ch, "source", U1=U1, V1=V1, c1=c1)
        blocks.gather(ch, "target", U2=U2, V2=V2, c2=c2)
        if fused_rep is not None and ch.streamed:
            blocks.gather(ch, "source", zs=zs)
            blocks.gather(ch, "target", zt=zt)
        elif fused_rep is not None:
            D = batched_sqdist(blocks.take(ch, zs), blocks.take(ch, zt, "target"), ops)
            ch.data["fused"] = D / scales["fused_cost_scale"]
    return scales


def _cost(ch: Chunk, stat: Any, alpha: float, fscale: float, ops: Any) -> Any:
    """Linearised (F)GW cost ``2 c1 + 2 c2 - 4 U1 stat U2^T`` (+ fused term) of a chunk.

    Dense: padded with ``inf``, ``stat`` is ``(r1, r2)`` or ``(G, r1, r2)``; streamed: a
    :class:`.FactoredCost` (the fused cost divided by ``fscale``).
    """
    if ch.streamed:
        alpha_t, beta_t = 2.0 * ch.c1, 2.0 * ch.c2
        P, Q = 4.0 * (ch.U1 @ stat), ch.U2
        if "zs" in ch.data:
            w = (1.0 - alpha) / fscale
            alpha_t = alpha * alpha_t + w * (ch.zs**2).sum(1)
            beta_t = alpha * beta_t + w * (ch.zt**2).sum(1)
            P = np.hstack([alpha * P, 2.0 * w * ch.zs])
            Q = np.hstack([Q, ch.zt])
        return FactoredCost(alpha_t, beta_t, P, Q, dtype=ops.dtype)
    cross = (ch.U1 @ stat) @ ops.transpose(ch.U2)
    grad = 2.0 * (ch.c1[:, :, None] + ch.c2[:, None, :] - 2.0 * cross)
    if "fused" in ch.data:
        grad = alpha * grad + (1.0 - alpha) * ch.fused
    return mask_padding(grad, ch.a, ch.b, ops)


def _joint_total(blocks: Blocks, stats: list[Any]) -> np.ndarray:
    """The chunks' statistics summed over all blocks, in float64 numpy (dense ones first)."""
    ops, chunks = blocks.ops, blocks.chunks
    dense = [ops.to_numpy(ops.nx.sum(s, axis=0)) for ch, s in zip(chunks, stats) if not ch.streamed]
    return sum(s.astype(np.float64) for s in dense) + sum(
        s for ch, s in zip(chunks, stats) if ch.streamed
    )


def _change(new: Any, old: Any, ops: Any = None) -> Any:
    """Relative change of the statistic: per block (backend ``(G, r1, r2)``) or in total."""
    if ops is None:
        return float(np.linalg.norm(new - old) / max(float(np.linalg.norm(new)), 1e-300))
    nx = ops.nx
    diff = nx.sqrt(nx.sum((new - old) ** 2, axis=(1, 2)))
    norm = nx.sqrt(nx.sum(new**2, axis=(1, 2)))
    return ops.to_numpy(diff / nx.maximum(norm, 1e-300)).astype(float)


def _outer(
    blocks: Blocks,
    inner: Callable[[Chunk, Any], Any],
    init: list[Any],
    stat0: np.ndarray | None,
    tol: float,
    max_iter: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Projected-gradient iterations ``stat <- inner(chunk, stat)``.

    From ``init`` per chunk, or jointly from the total ``stat0``; returns the outer iterations
    and the last relative change per block.
    """
    ops, chunks, G = blocks.ops, blocks.chunks, blocks.layout.n_groups
    outer_iter, change = np.zeros(G, int), np.full(G, np.inf)
    if stat0 is not None:
        stat = stat0
        for it in range(1, max_iter + 1):
            stats = [inner(ch, stat if ch.streamed else ops.asarray(stat)) for ch in chunks]
            new = _joint_total(blocks, stats)
            rel, stat = _change(new, stat), new
            outer_iter[:], change[:] = it, rel
            if rel < tol:
                break
        return outer_iter, change
    for ch, stat in zip(chunks, init):
        for it in range(1, max_iter + 1):
            new = inner(ch, stat)
            rel, stat = _change(new, stat, None if ch.streamed else ops), new
            outer_iter[ch.ids], change[ch.ids] = it, rel
            if np.all(rel < tol):
                break
    return outer_iter, change


def solve_gw(
    problem: AlignProblem,
    layout: GroupLayout,
    group_mass: np.ndarray,
    outer: Iterations,
    inner_opts: Inner,
    storage: Storage,
    *,
    joint: bool,
    fused: Fused | None = None,
    use_rep: UseRep | None = None,
) -> AlignResult:
    """Entropic (F)GW over the blocks of ``layout`` (joint or independent per block).

    Blocks with more than ``stream_above`` pairs are solved streamed (:mod:`._stream`) from
    their factorised linearised cost; the stored rows are sparsified by ``keep_mass`` and
    ``max_per_row`` (:func:`.sparsify_rows`). ``fused`` (with ``fused_rep`` set): fused GW.
    """
    alpha, fused_rep = (1.0, None) if fused is None else (fused.alpha, fused.fused_rep)
    tol, max_iter = outer.tol, outer.max_iter
    # joint: cells carry their share of the global mass; independent: unit mass per block
    a, b = layout.cell_masses(group_mass if joint else np.ones(layout.n_groups))
    blocks = Blocks(problem, layout, a, b, **asdict(storage))
    ops = problem.ops
    with blocks.threads():
        scales = _prepare(blocks, joint, use_rep, fused_rep)
        fscale = scales.get("fused_cost_scale", 1.0)
        init = [blocks.product_statistic(ch, ch.V1, ch.V2) for ch in blocks.chunks]
        stat0 = _joint_total(blocks, init) if joint else None
        if joint:
            init = [stat0 if ch.streamed else ops.asarray(stat0) for ch in blocks.chunks]
        scale = blocks.cost_scale(
            [_cost(ch, s, alpha, fscale, ops) for ch, s in zip(blocks.chunks, init)]
        )
        eps_rel = relative_epsilon(problem, DEFAULT_EPSILON)
        eps = eps_rel * (scale or 1.0)
        inner_solve = {"tol": inner_opts.inner_tol, "max_iter": inner_opts.inner_max_iter}

        def inner(ch: Chunk, stat: Any) -> Any:
            cost = _cost(ch, stat, alpha, fscale, ops)
            return blocks.sinkhorn(ch, cost, eps, **inner_solve, stat=(ch.V1, ch.V2))

        outer_iter, change = _outer(blocks, inner, init, stat0, tol, max_iter)
        for ch in blocks.chunks:
            blocks.add(ch, scale=None if joint else group_mass[ch.ids])
        coupling = blocks.builder.to_csr()
    converged = (change < tol) & blocks.converged
    parameters = {
        "epsilon": eps,
        "epsilon_relative": eps_rel,
        "epsilon_scale": "max of the initial linearised cost",
        "cost": "sqeuclidean / mean",
        "alpha": alpha,
        **asdict(outer),
        **asdict(inner_opts),
        "joint": joint,
        **scales,
    }
    summary = {
        "converged": bool(converged.all()),
        "n_iter": int(outer_iter.max()),
        "relative_change": float(change.max()),
        "inner_n_iter": int(blocks.n_iter.max()),
        "marginal_error": float(blocks.error.max()),
    }
    groups = {
        "n_iter": outer_iter,
        "relative_change": change,
        "inner_n_iter": blocks.n_iter,
        "marginal_error": blocks.error,
        "converged": converged,
    }
    return blocks.result(coupling, parameters, summary, groups)


#: The options of every GW aligner after its own: outer and inner iterations, storage.
GW_OPTIONS = (
    OptionGroup(Iterations(tol=1e-5, max_iter=200), docs.GW_OUTER),
    OptionGroup(Inner(), docs.INNER),
    OptionGroup(Storage(), docs.storage("linearised cost")),
)
GROUPING = OptionGroup(Grouping(), docs.GROUP_WEIGHTS)
#: The registry entries of the GW aligners, and their one-line descriptions.
GW = {"default_epsilon": DEFAULT_EPSILON, "shared_rep": False}
DESCRIPTION = {
    "egw": "entropic Gromov-Wasserstein, one independent problem per group",
    "egw_all": "entropic Gromov-Wasserstein over all cells (dense)",
    "egwl": "labeled entropic GW: one joint problem, support restricted to same-group pairs",
    "fgw": "entropic fused GW, per group (over all cells with groupby=None)",
}


def _grouped(
    problem: AlignProblem,
    outer: Iterations,
    inner: Inner,
    storage: Storage,
    grouping: Grouping,
    *,
    joint: bool,
) -> AlignResult:
    """Entropic GW on the groups of ``problem``, each with the mass of ``grouping``."""
    layout = problem.layout()
    mass = layout.group_mass(grouping.group_weights)
    return solve_gw(problem, layout, mass, outer, inner, storage, joint=joint)


@register_aligner("egw", labels="required", description=DESCRIPTION["egw"], **GW)
@aligner_options(*GW_OPTIONS, GROUPING)
def egw(problem: AlignProblem, *options: Any) -> AlignResult:
    """Entropic GW per group: each group is an independent unit-mass problem, then scaled.

    Matches ``ot.gromov.entropic_gromov_wasserstein`` run on each group's (normalised) distance
    matrices. Each modality uses its own ``use_rep`` (a str or ``{modality: key}``).

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", method="egw", use_rep={"rna": "X_true", "prot": "X"})
    >>> mdata.uns["groove_coupling"]["parameters"]["joint"]
    False

    """
    return _grouped(problem, *options, joint=False)


@register_aligner("egw_all", labels="ignored", dense=True, description=DESCRIPTION["egw_all"], **GW)
@aligner_options(*GW_OPTIONS)
def egw_all(problem: AlignProblem, *options: Any) -> AlignResult:
    """Unlabeled entropic GW over all cells, uniform marginals (dense ``n x m`` plan).

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", method="egw_all", use_rep="X_true")
    >>> mdata.uns["groove_coupling"]["convergence"]["n_groups"]
    1

    """
    return solve_gw(problem, problem.layout(), np.ones(1), *options, joint=True)


@register_aligner("egwl", labels="required", description=DESCRIPTION["egwl"], **GW)
@aligner_options(*GW_OPTIONS, GROUPING)
def egwl(problem: AlignProblem, *options: Any) -> AlignResult:
    """Labeled entropic GW: the GW objective over all cells, plans restricted to same-group pairs.

    Unlike ``egw``, distances between cells of different groups enter the objective (the
    gradient statistic sums over all blocks), so the groups are aligned consistently with each
    other; memory is ``O(n d + sum_g n_g m_g)``, no ``n x n`` or ``n x m`` matrix.

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", method="egwl", use_rep="X_true")
    >>> mdata.uns["groove_coupling"]["parameters"]["joint"]
    True

    """
    return _grouped(problem, *options, joint=True)


@register_aligner("fgw", labels="optional", dense=True, description=DESCRIPTION["fgw"], **GW)
@aligner_options(OptionGroup(Fused(), docs.FUSED), *GW_OPTIONS, GROUPING)
def fgw(
    problem: AlignProblem,
    fused: Fused,
    outer: Iterations,
    inner: Inner,
    storage: Storage,
    grouping: Grouping,
) -> AlignResult:
    """Entropic fused GW: ``alpha * GW + (1 - alpha) * <M, T>``, per group by default.

    ``M`` is the squared Euclidean distance in a shared representation (``fused_rep``, by
    default ``use_rep`` when that is one key), divided by its mean over all kept pairs; the GW
    geometries come from ``use_rep`` (str or per-modality dict). Matches
    ``ot.gromov.entropic_fused_gromov_wasserstein`` on each group.

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", method="fgw", use_rep="X_true", alpha=0.5)
    >>> mdata.uns["groove_coupling"]["parameters"]["fused_rep"]
    'X_true'

    """
    if not 0.0 <= fused.alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {fused.alpha!r}.")
    if fused.fused_rep is None:
        if not isinstance(problem.use_rep, str):
            raise ValueError(
                "fgw needs a shared representation for its feature cost: use_rep is a "
                "per-modality dict, so pass fused_rep='X_groove' (an obsm key in both)."
            )
        fused = replace(fused, fused_rep=problem.use_rep)
    layout = problem.layout()
    mass = layout.group_mass(grouping.group_weights)
    result = solve_gw(problem, layout, mass, outer, inner, storage, joint=False, fused=fused)
    result.parameters["fused_rep"] = fused.fused_rep
    return result
