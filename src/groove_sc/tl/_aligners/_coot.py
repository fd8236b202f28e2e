"""Entropic co-optimal transport (COOT): ``coot`` over all cells, ``cootl`` label-restricted.

COOT (Redko et al. 2020) couples samples *and* features: with sample plan ``Ts`` and feature
plan ``Tf``, it minimises ``sum_{ijkl} (X_ik - Y_jl)^2 Ts_ij Tf_kl`` plus entropies. Block
coordinate descent alternates a Sinkhorn solve for ``Ts`` with cost
``cx_i + cy_j - 2 (X Tf Y^T)_ij`` and one for ``Tf`` with cost ``fx_k + fy_l - 2 (X^T Ts Y)_kl``,
as POT's ``ot.coot.co_optimal_transport`` does (sample plan first, from product couplings).

``cootl`` restricts ``Ts`` to same-group pairs and keeps one feature plan shared by all groups:
the sample costs are computed per block (batched over padded groups) and ``X^T Ts Y`` is summed
over blocks, so no ``n x m`` matrix is formed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._costs import mask_padding, support_max
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
from ._sinkhorn import sinkhorn_padded
from ._stream import FactoredCost, solve_stream

#: Default epsilon relative to the largest initial sample cost.
DEFAULT_EPSILON = 1e-2
#: Default epsilon of the feature plan relative to the largest initial feature cost (larger than
#: the sample one: the feature cost sharpens as the sample plan does, and a near-permutation
#: feature plan makes its Sinkhorn solves very slow).
DEFAULT_EPSILON_FEATURE = 5e-2


def solve_coot(
    problem: AlignProblem,
    layout: GroupLayout,
    group_mass: np.ndarray,
    *,
    epsilon_feature: float | None,
    tol: float,
    max_iter: int,
    inner_tol: float,
    inner_max_iter: int,
    prune: float,
    keep_mass: float = 1.0,
    max_per_row: int | None = None,
    stream_above: int | None = None,
) -> AlignResult:
    """Entropic COOT with the sample plan restricted to the blocks of ``layout``.

    Blocks with more than ``stream_above`` pairs are solved streamed (:mod:`._stream`) from
    their factorised sample cost; the stored rows are sparsified by ``keep_mass`` and
    ``max_per_row`` (:func:`.sparsify_rows`).

    Examples
    --------
    >>> solve_coot(problem, layout, mass, epsilon_feature=None, tol=1e-6, max_iter=100,
    ...            inner_tol=1e-4, inner_max_iter=5000, prune=1e-12)  # doctest: +SKIP

    """
    keep_mass, max_per_row = check_sparsity(keep_mass, max_per_row)
    stream_above = check_stream_above(stream_above, problem.ops.stream_above)
    # BLAS threads for the dense blocks (the streamed ones use one thread, see _stream.py)
    with problem.ops.blas_threads_for(layout.largest_dense(stream_above)):
        return _solve_coot(
            problem, layout, group_mass, epsilon_feature=epsilon_feature, tol=tol,
            max_iter=max_iter, inner_tol=inner_tol, inner_max_iter=inner_max_iter, prune=prune,
            keep_mass=keep_mass, max_per_row=max_per_row, stream_above=stream_above,
        )  # fmt: skip


def _solve_coot(
    problem: AlignProblem,
    layout: GroupLayout,
    group_mass: np.ndarray,
    *,
    epsilon_feature: float | None,
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
    X, Y = problem.rep()
    d1, d2 = X.shape[1], Y.shape[1]
    a_cells, b_cells = layout.cell_masses(group_mass)
    a_all, b_all = np.zeros(layout.n_source), np.zeros(layout.n_target)
    for si, ti, a, b in zip(layout.source_index, layout.target_index, a_cells, b_cells):
        a_all[si], b_all[ti] = a, b
    X = np.where(a_all[:, None] > 0, X, 0.0)  # cells left out do not enter any statistic
    Y = np.where(b_all[:, None] > 0, Y, 0.0)
    wx, wy = np.full(d1, 1.0 / d1), np.full(d2, 1.0 / d2)
    cx, cy = (X**2) @ wx, (Y**2) @ wy
    fx, fy = ops.asarray((X**2).T @ a_all), ops.asarray((Y**2).T @ b_all)

    streamed = layout.streamed(stream_above)
    larges = [
        {"gid": int(g), "si": layout.source_index[g], "ti": layout.target_index[g], "out": None}
        for g in np.flatnonzero(streamed)
    ]
    chunks = []
    for ids in layout.chunks(ops.itemsize, ops.chunk_bytes, np.flatnonzero(~streamed)):
        si = [layout.source_index[g] for g in ids]
        ti = [layout.target_index[g] for g in ids]
        chunks.append(
            {
                "ids": ids,
                "X": ops.asarray(pad_gather(X, si)),
                "Y": ops.asarray(pad_gather(Y, ti)),
                "cx": ops.asarray(pad_gather(cx, si)),
                "cy": ops.asarray(pad_gather(cy, ti)),
                "a": ops.asarray(pad_gather(a_all, si)),
                "b": ops.asarray(pad_gather(b_all, ti)),
                "f": None,
                "g": None,
                "plan": None,
            }
        )

    def sample_cost(ch: dict[str, Any], Tf: Any) -> Any:
        cross = (ch["X"] @ Tf) @ ops.transpose(ch["Y"])
        C = ch["cx"][:, :, None] + ch["cy"][:, None, :] - 2.0 * cross
        return mask_padding(C, ch["a"], ch["b"], ops)

    def large_cost(lg: dict[str, Any], Tf: Any) -> FactoredCost:
        si, ti = lg["si"], lg["ti"]
        tf = ops.to_numpy(Tf).astype(np.float64)
        return FactoredCost(cx[si], cy[ti], 2.0 * (X[si] @ tf), Y[ti], dtype=ops.dtype)

    def feature_cost(S: Any) -> Any:
        return (fx[:, None] + fy[None, :] - 2.0 * S)[None]

    Tf = ops.asarray(np.outer(wx, wy))
    S0 = 0.0
    for ch in chunks:
        mass = nx.sum(ch["a"], axis=1)[:, None, None]
        xa = ops.transpose(ch["X"]) @ ch["a"][:, :, None]
        yb = ops.transpose(ch["Y"]) @ ch["b"][:, :, None]
        S0 = S0 + nx.sum((xa @ ops.transpose(yb)) / mass, axis=0)
    for lg in larges:
        si, ti = lg["si"], lg["ti"]
        S0 = S0 + ops.asarray(np.outer(X[si].T @ a_all[si], Y[ti].T @ b_all[ti]) / a_all[si].sum())
    eps_rel = relative_epsilon(problem, DEFAULT_EPSILON)
    eps_f_rel = DEFAULT_EPSILON_FEATURE if epsilon_feature is None else float(epsilon_feature)
    if not eps_f_rel > 0:
        raise ValueError(f"epsilon_feature must be positive, got {epsilon_feature!r}.")
    s_scale = max(
        [support_max(sample_cost(ch, Tf), ch["a"], ch["b"], ops) for ch in chunks]
        + [large_cost(lg, Tf).max() for lg in larges]
    )
    f_scale = float(nx.max(feature_cost(S0)))
    eps_s = eps_rel * (s_scale if s_scale > 0 else 1.0)
    eps_f = eps_f_rel * (f_scale if f_scale > 0 else 1.0)
    fa, fb = ops.asarray(wx[None]), ops.asarray(wy[None])
    ff = gf = None

    G = layout.n_groups
    inner_iter, inner_err, inner_ok = np.zeros(G, int), np.zeros(G), np.zeros(G, bool)
    change, n_done, n_passes = np.inf, 0, 0
    feat_ok, feat_err = True, 0.0
    for it in range(1, max_iter + 1):
        n_done = it
        S = 0.0
        for ch in chunks:
            out = sinkhorn_padded(
                sample_cost(ch, Tf), ch["a"], ch["b"], eps_s, ops=ops, tol=inner_tol,
                max_iter=inner_max_iter, f=ch["f"], g=ch["g"],
            )  # fmt: skip
            ch["f"], ch["g"], ch["plan"] = out.f, out.g, out.plan
            ids = ch["ids"]
            inner_iter[ids], inner_err[ids], inner_ok[ids] = out.n_iter, out.error, out.converged
            S = S + nx.sum((ops.transpose(ch["X"]) @ out.plan) @ ch["Y"], axis=0)
        for lg in larges:
            si, ti, prev = lg["si"], lg["ti"], lg["out"]
            out = solve_stream(
                large_cost(lg, Tf), a_all[si], b_all[ti], eps_s, tol=inner_tol,
                max_iter=inner_max_iter, f=None if prev is None else prev.f,
                g=None if prev is None else prev.g, keep_mass=keep_mass,
                max_per_row=max_per_row, prune=prune, stat_factors=(X[si], Y[ti]),
                column_nearest=None if prev is None else prev.column_nearest,
            )  # fmt: skip
            lg["out"] = out
            n_passes += out.n_passes
            gid = lg["gid"]
            inner_iter[gid], inner_err[gid], inner_ok[gid] = out.n_iter, out.error, out.converged
            S = S + ops.asarray(out.stat)
        fout = sinkhorn_padded(
            feature_cost(S), fa, fb, eps_f, ops=ops, tol=inner_tol, max_iter=inner_max_iter,
            f=ff, g=gf,
        )  # fmt: skip
        ff, gf = fout.f, fout.g
        feat_ok, feat_err = bool(fout.converged[0]), float(fout.error[0])
        change = float(nx.sum(nx.abs(fout.plan[0] - Tf)))
        Tf = fout.plan[0]
        if change < tol:
            break

    builder = CouplingBuilder(
        layout.n_source, layout.n_target, prune=prune, keep_mass=keep_mass,
        max_per_row=max_per_row,
    )  # fmt: skip
    for ch in chunks:
        builder.add(
            ops.to_numpy(ch["plan"]),
            [layout.source_index[g] for g in ch["ids"]],
            [layout.target_index[g] for g in ch["ids"]],
        )
    for lg in larges:
        out = lg["out"]
        builder.add_sparse(lg["si"][out.rows], lg["ti"][out.cols], out.vals, out.dropped)
    converged = change < tol and feat_ok and bool(inner_ok.all())
    parameters = {
        "epsilon": eps_s,
        "epsilon_relative": eps_rel,
        "epsilon_feature": eps_f,
        "epsilon_feature_relative": eps_f_rel,
        "epsilon_scale": "max of the initial sample / feature cost",
        "tol": tol,
        "max_iter": max_iter,
        "inner_tol": inner_tol,
        "inner_max_iter": inner_max_iter,
        "prune": prune,
        "keep_mass": keep_mass,
        "max_per_row": 0 if max_per_row is None else max_per_row,
        "stream_above": stream_above,
    }
    coupling = builder.to_csr()
    convergence = {
        "converged": converged,
        "n_iter": n_done,
        "feature_plan_change": change,
        "feature_marginal_error": feat_err,
        "marginal_error": float(inner_err.max()),
        "n_groups": G,
        "dropped_mass": builder.dropped_mass,
        "n_streamed_groups": len(larges),
        "n_streamed_passes": n_passes,
        "groups": {
            "names": layout.names,
            "inner_n_iter": inner_iter,
            "marginal_error": inner_err,
            "converged": inner_ok,
            "streamed": streamed,
        },
    }
    result = AlignResult(coupling, parameters, convergence)
    result.parameters["feature_coupling_shape"] = np.array([d1, d2])
    result.convergence["feature_coupling"] = ops.to_numpy(Tf).astype(np.float64)
    return result


@register_aligner(
    "coot", default_epsilon=DEFAULT_EPSILON, labels="ignored", shared_rep=False, dense=True,
    description="entropic co-optimal transport over all cells (dense)",
)  # fmt: skip
def coot(
    problem: AlignProblem,
    epsilon_feature: float | None = None,
    tol: float = 1e-6,
    max_iter: int = 100,
    inner_tol: float = 1e-4,
    inner_max_iter: int = 10_000,
    prune: float = 1e-12,
    keep_mass: float = DEFAULT_KEEP_MASS,
    max_per_row: int | None = DEFAULT_MAX_PER_ROW,
    stream_above: int | None = None,
) -> AlignResult:
    """Unlabeled entropic COOT between each modality's own representation (uniform weights).

    ``use_rep`` may differ per modality (``{"rna": "X_pca", "prot": "X"}``); the feature plan is
    stored in ``uns[key_added]["convergence"]["feature_coupling"]``. Matches
    ``ot.coot.co_optimal_transport`` with the same absolute epsilons.

    Parameters
    ----------
    problem
        Prepared by :func:`groove_sc.tl.align`.
    epsilon_feature
        Relative epsilon of the feature plan (default ``5e-2``).
    tol
        Stop when the feature plan changes by less than ``tol`` (L1).
    max_iter
        Block-coordinate iterations.
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
        streaming row chunks of the factorised sample cost (``None``: 4096 x 4096 on CPU,
        32768 x 32768 on a GPU; ``0`` streams every group).

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", method="coot", use_rep="X")  # doctest: +SKIP

    """
    layout = problem.layout()
    return solve_coot(
        problem, layout, np.ones(1), epsilon_feature=epsilon_feature, tol=tol,
        max_iter=max_iter, inner_tol=inner_tol, inner_max_iter=inner_max_iter, prune=prune,
        keep_mass=keep_mass, max_per_row=max_per_row, stream_above=stream_above,
    )  # fmt: skip


@register_aligner(
    "cootl", default_epsilon=DEFAULT_EPSILON, labels="required", shared_rep=False,
    description="labeled entropic COOT: sample plan within groups, one shared feature plan",
)  # fmt: skip
def cootl(
    problem: AlignProblem,
    epsilon_feature: float | None = None,
    tol: float = 1e-6,
    max_iter: int = 100,
    inner_tol: float = 1e-4,
    inner_max_iter: int = 10_000,
    prune: float = 1e-12,
    keep_mass: float = DEFAULT_KEEP_MASS,
    max_per_row: int | None = DEFAULT_MAX_PER_ROW,
    stream_above: int | None = None,
    group_weights: GroupWeights = "source",
) -> AlignResult:
    """Labeled entropic COOT: sample plan restricted to same-group pairs, one feature plan.

    One joint problem (the feature plan is shared by all groups, so features correspond the
    same way in every perturbation); memory ``O(n d + sum_g n_g m_g + d1 d2)``.

    Parameters
    ----------
    problem
        Prepared by :func:`groove_sc.tl.align`.
    epsilon_feature
        Relative epsilon of the feature plan (default ``5e-2``).
    tol
        Stop when the feature plan changes by less than ``tol`` (L1).
    max_iter
        Block-coordinate iterations.
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
        streaming row chunks of the factorised sample cost (``None``: 4096 x 4096 on CPU,
        32768 x 32768 on a GPU; ``0`` streams every group).
    group_weights
        Mass of each group: ``"source"``, ``"target"`` or ``"mean"`` group size.

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", method="cootl", use_rep="X")  # doctest: +SKIP

    """
    layout = problem.layout()
    result = solve_coot(
        problem, layout, layout.group_mass(group_weights), epsilon_feature=epsilon_feature,
        tol=tol, max_iter=max_iter, inner_tol=inner_tol, inner_max_iter=inner_max_iter,
        prune=prune, keep_mass=keep_mass, max_per_row=max_per_row, stream_above=stream_above,
    )  # fmt: skip
    result.parameters["group_weights"] = group_weights
    return result
