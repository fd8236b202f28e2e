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
from ._problem import AlignProblem, UseRep, relative_epsilon
from ._registry import AlignResult, register_aligner
from ._sinkhorn import sinkhorn_padded
from ._stream import FactoredCost, StreamOutput, solve_stream

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


@dataclass
class _Large:
    """A block solved streamed (numpy): its factors, masses and last solution."""

    gid: int
    U1: np.ndarray
    V1: np.ndarray
    U2: np.ndarray
    V2: np.ndarray
    c1: np.ndarray
    c2: np.ndarray
    a: np.ndarray
    b: np.ndarray
    zs: np.ndarray | None = None
    zt: np.ndarray | None = None
    out: StreamOutput | None = None

    def cost(self, stat: np.ndarray, alpha: float, fused_scale: float, dtype: str) -> FactoredCost:
        """The linearised (F)GW cost ``2 c1 + 2 c2 - 4 U1 stat U2^T`` (+ fused term)."""
        alpha_t, beta_t = 2.0 * self.c1, 2.0 * self.c2
        P, Q = 4.0 * (self.U1 @ stat), self.U2
        if self.zs is not None:
            w = (1.0 - alpha) / fused_scale
            alpha_t = alpha * alpha_t + w * (self.zs**2).sum(1)
            beta_t = alpha * beta_t + w * (self.zt**2).sum(1)
            P = np.hstack([alpha * P, 2.0 * w * self.zs])
            Q = np.hstack([Q, self.zt])
        return FactoredCost(alpha_t, beta_t, P, Q, dtype=dtype)

    def initial_statistic(self) -> np.ndarray:
        """``V1^T (a b^T / mass) V2`` (the product coupling)."""
        return np.outer(self.V1.T @ self.a, self.V2.T @ self.b) / self.a.sum()


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
    streamed: np.ndarray,
) -> tuple[list[_Chunk], list[_Large], dict[str, float]]:
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
    for ids in layout.chunks(ops.itemsize, ops.chunk_bytes, np.flatnonzero(~streamed)):
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
    larges = []
    for gid in np.flatnonzero(streamed):
        si, ti = layout.source_index[gid], layout.target_index[gid]
        larges.append(
            _Large(
                gid=int(gid),
                U1=U1[si],
                V1=V1[si],
                U2=U2[ti],
                V2=V2[ti],
                c1=c1[si],
                c2=c2[ti],
                a=a_all[si],
                b=b_all[ti],
                zs=None if zs is None else zs[si],
                zt=None if zt is None else zt[ti],
            )  # fmt: skip
        )
    return chunks, larges, scales


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
    keep_mass: float = 1.0,
    max_per_row: int | None = None,
    stream_above: int | None = None,
) -> AlignResult:
    """Entropic (F)GW over the blocks of ``layout`` (joint or independent per block).

    Blocks with more than ``stream_above`` pairs are solved streamed (:mod:`._stream`) from
    their factorised linearised cost; the stored rows are sparsified by ``keep_mass`` and
    ``max_per_row`` (:func:`.sparsify_rows`).

    Examples
    --------
    >>> solve_gw(problem, layout, mass, joint=True, tol=1e-5, max_iter=100,
    ...          inner_tol=1e-4, inner_max_iter=5000, prune=1e-12)  # doctest: +SKIP

    """
    keep_mass, max_per_row = check_sparsity(keep_mass, max_per_row)
    stream_above = check_stream_above(stream_above, problem.ops.stream_above)
    # BLAS threads for the dense blocks (the streamed ones use one thread, see _stream.py)
    with problem.ops.blas_threads_for(layout.largest_dense(stream_above)):
        return _solve_gw(
            problem, layout, group_mass, joint=joint, alpha=alpha, use_rep=use_rep,
            fused_rep=fused_rep, tol=tol, max_iter=max_iter, inner_tol=inner_tol,
            inner_max_iter=inner_max_iter, prune=prune, keep_mass=keep_mass,
            max_per_row=max_per_row, stream_above=stream_above,
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
    keep_mass: float,
    max_per_row: int | None,
    stream_above: int,
) -> AlignResult:
    ops, nx = problem.ops, problem.ops.nx
    # joint: cells carry their share of the global mass; independent: unit mass per block
    if joint:
        a_cells, b_cells = layout.cell_masses(group_mass)
    else:
        a_cells, b_cells = layout.cell_masses(np.ones(layout.n_groups))
    streamed = layout.streamed(stream_above)
    chunks, larges, scales = _chunks(
        problem, layout, a_cells, b_cells, joint, use_rep, fused_rep, streamed
    )
    fscale = scales.get("fused_cost_scale", 1.0)
    eps_rel = relative_epsilon(problem, DEFAULT_EPSILON)

    init = [_initial_statistic(ch, ops) for ch in chunks]
    init_large = [lg.initial_statistic() for lg in larges]
    if joint:
        stat0 = sum(ops.to_numpy(nx.sum(s, axis=0)).astype(np.float64) for s in init)
        stat0 = stat0 + sum(init_large)
        init = [ops.asarray(stat0) for _ in chunks]
        init_large = [stat0 for _ in larges]
    scale = max(
        [support_max(_gradient(ch, s, alpha, ops), ch.a, ch.b, ops) for ch, s in zip(chunks, init)]
        + [lg.cost(s, alpha, fscale, ops.dtype).max() for lg, s in zip(larges, init_large)]
    )
    eps = eps_rel * (scale if scale > 0 else 1.0)

    G = layout.n_groups
    outer_iter, change = np.zeros(G, int), np.full(G, np.inf)
    inner_iter, inner_err, inner_ok = np.zeros(G, int), np.zeros(G), np.zeros(G, bool)
    n_passes = 0

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

    def inner_large(lg: _Large, stat: np.ndarray) -> np.ndarray:
        nonlocal n_passes
        prev = lg.out
        out = solve_stream(
            lg.cost(stat, alpha, fscale, ops.dtype), lg.a, lg.b, eps, tol=inner_tol,
            max_iter=inner_max_iter, f=None if prev is None else prev.f,
            g=None if prev is None else prev.g, keep_mass=keep_mass, max_per_row=max_per_row,
            prune=prune, stat_factors=(lg.V1, lg.V2),
            column_nearest=None if prev is None else prev.column_nearest,
        )  # fmt: skip
        lg.out = out
        n_passes += out.n_passes
        inner_iter[lg.gid], inner_err[lg.gid], inner_ok[lg.gid] = (
            out.n_iter,
            out.error,
            out.converged,
        )
        return out.stat

    if joint:
        stat = stat0
        for it in range(1, max_iter + 1):
            new = sum(
                ops.to_numpy(nx.sum(inner(ch, ops.asarray(stat)), axis=0)).astype(np.float64)
                for ch in chunks
            )
            new = new + sum(inner_large(lg, stat) for lg in larges)
            rel = float(np.linalg.norm(new - stat) / max(float(np.linalg.norm(new)), 1e-300))
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
        for lg, stat in zip(larges, init_large):
            for it in range(1, max_iter + 1):
                new = inner_large(lg, stat)
                rel = float(np.linalg.norm(new - stat) / max(float(np.linalg.norm(new)), 1e-300))
                stat = new
                outer_iter[lg.gid], change[lg.gid] = it, rel
                if rel < tol:
                    break

    builder = CouplingBuilder(
        layout.n_source, layout.n_target, prune=prune, keep_mass=keep_mass,
        max_per_row=max_per_row,
    )  # fmt: skip
    for ch in chunks:
        block_scale = None if joint else group_mass[ch.ids]
        builder.add(
            ops.to_numpy(ch.plan),
            [layout.source_index[g] for g in ch.ids],
            [layout.target_index[g] for g in ch.ids],
            scale=block_scale,
        )
    for lg in larges:
        w = 1.0 if joint else float(group_mass[lg.gid])
        si, ti = layout.source_index[lg.gid], layout.target_index[lg.gid]
        builder.add_sparse(si[lg.out.rows], ti[lg.out.cols], lg.out.vals * w, lg.out.dropped * w)
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
        "keep_mass": keep_mass,
        "max_per_row": 0 if max_per_row is None else max_per_row,
        "stream_above": stream_above,
        **scales,
    }
    convergence = {
        "converged": bool(converged.all()),
        "n_iter": int(outer_iter.max()),
        "relative_change": float(change.max()),
        "inner_n_iter": int(inner_iter.max()),
        "marginal_error": float(inner_err.max()),
        "n_groups": G,
        "dropped_mass": builder.dropped_mass,
        "n_streamed_groups": len(larges),
        "n_streamed_passes": n_passes,
        "groups": {
            "names": layout.names,
            "n_iter": outer_iter,
            "relative_change": change,
            "inner_n_iter": inner_iter,
            "marginal_error": inner_err,
            "converged": converged,
            "streamed": streamed,
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
    keep_mass: float = DEFAULT_KEEP_MASS,
    max_per_row: int | None = DEFAULT_MAX_PER_ROW,
    stream_above: int | None = None,
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
    keep_mass
        Each stored row keeps its largest entries up to this share of its mass, rescaled so
        that the row keeps its full mass (``1.0``: no mass dropped).
    max_per_row
        At most this many entries are stored per row (``None``: no cap). The mass moved from
        dropped entries is ``uns[key_added]["convergence"]["dropped_mass"]``.
    stream_above
        Groups with more source x target pairs than this are solved without a dense block,
        streaming row chunks of the factorised linearised cost (``None``: 4096 x 4096 on CPU,
        32768 x 32768 on a GPU; ``0`` streams every group).
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
        inner_max_iter=inner_max_iter, prune=prune, keep_mass=keep_mass,
        max_per_row=max_per_row, stream_above=stream_above,
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
    keep_mass: float = DEFAULT_KEEP_MASS,
    max_per_row: int | None = DEFAULT_MAX_PER_ROW,
    stream_above: int | None = None,
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
    keep_mass
        Each stored row keeps its largest entries up to this share of its mass, rescaled so
        that the row keeps its full mass (``1.0``: no mass dropped).
    max_per_row
        At most this many entries are stored per row (``None``: no cap). The mass moved from
        dropped entries is ``uns[key_added]["convergence"]["dropped_mass"]``.
    stream_above
        Groups with more source x target pairs than this are solved without a dense block,
        streaming row chunks of the factorised linearised cost (``None``: 4096 x 4096 on CPU,
        32768 x 32768 on a GPU; ``0`` streams every group).

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", method="egw_all", use_rep="X_pca")  # doctest: +SKIP

    """
    layout = problem.layout()
    return solve_gw(
        problem, layout, np.ones(1), joint=True, tol=tol, max_iter=max_iter,
        inner_tol=inner_tol, inner_max_iter=inner_max_iter, prune=prune, keep_mass=keep_mass,
        max_per_row=max_per_row, stream_above=stream_above,
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
    keep_mass: float = DEFAULT_KEEP_MASS,
    max_per_row: int | None = DEFAULT_MAX_PER_ROW,
    stream_above: int | None = None,
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
    keep_mass
        Each stored row keeps its largest entries up to this share of its mass, rescaled so
        that the row keeps its full mass (``1.0``: no mass dropped).
    max_per_row
        At most this many entries are stored per row (``None``: no cap). The mass moved from
        dropped entries is ``uns[key_added]["convergence"]["dropped_mass"]``.
    stream_above
        Groups with more source x target pairs than this are solved without a dense block,
        streaming row chunks of the factorised linearised cost (``None``: 4096 x 4096 on CPU,
        32768 x 32768 on a GPU; ``0`` streams every group).
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
        inner_max_iter=inner_max_iter, prune=prune, keep_mass=keep_mass,
        max_per_row=max_per_row, stream_above=stream_above,
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
    keep_mass: float = DEFAULT_KEEP_MASS,
    max_per_row: int | None = DEFAULT_MAX_PER_ROW,
    stream_above: int | None = None,
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
    keep_mass
        Each stored row keeps its largest entries up to this share of its mass, rescaled so
        that the row keeps its full mass (``1.0``: no mass dropped).
    max_per_row
        At most this many entries are stored per row (``None``: no cap). The mass moved from
        dropped entries is ``uns[key_added]["convergence"]["dropped_mass"]``.
    stream_above
        Groups with more source x target pairs than this are solved without a dense block,
        streaming row chunks of the factorised linearised cost (``None``: 4096 x 4096 on CPU,
        32768 x 32768 on a GPU; ``0`` streams every group).
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
        keep_mass=keep_mass, max_per_row=max_per_row, stream_above=stream_above,
    )  # fmt: skip
    result.parameters["fused_rep"] = fused_rep
    return result
