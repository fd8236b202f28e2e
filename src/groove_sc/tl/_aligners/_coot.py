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

from dataclasses import asdict
from typing import Any

import numpy as np

from . import _docparams as docs
from ._blockwise import Blocks, Chunk
from ._costs import mask_padding
from ._groups import GroupLayout
from ._options import FeatureIterations, Grouping, Inner, OptionGroup, Storage, aligner_options
from ._problem import AlignProblem, relative_epsilon
from ._registry import AlignResult, register_aligner
from ._sinkhorn import sinkhorn_padded
from ._stream import FactoredCost

#: Default epsilon relative to the largest initial sample cost.
DEFAULT_EPSILON = 1e-2
#: Default epsilon of the feature plan relative to the largest initial feature cost (larger than
#: the sample one: the feature cost sharpens as the sample plan does, and a near-permutation
#: feature plan makes its Sinkhorn solves very slow).
DEFAULT_EPSILON_FEATURE = 5e-2


def _sample_cost(ch: Chunk, Tf: Any, ops: Any) -> Any:
    """Sample cost ``cx_i + cy_j - 2 (X Tf Y^T)_ij``: padded with ``inf`` or factorised."""
    if ch.streamed:
        tf = ops.to_numpy(Tf).astype(np.float64)
        return FactoredCost(ch.cx, ch.cy, 2.0 * (ch.X @ tf), ch.Y, dtype=ops.dtype)
    cross = (ch.X @ Tf) @ ops.transpose(ch.Y)
    C = ch.cx[:, :, None] + ch.cy[:, None, :] - 2.0 * cross
    return mask_padding(C, ch.a, ch.b, ops)


def _feature_total(S: Any, ch: Chunk, stat: Any, ops: Any) -> Any:
    """``S`` plus the chunk's ``X^T Ts Y`` summed over its blocks (backend array)."""
    return S + (ops.asarray(stat) if ch.streamed else ops.nx.sum(stat, axis=0))


def _prepare(blocks: Blocks) -> tuple[np.ndarray, np.ndarray, Any, Any]:
    """Gather each chunk's ``X``, ``Y``, ``cx = (X**2) wx`` and ``cy``.

    Returns the uniform feature weights ``wx, wy`` and the feature-cost terms
    ``fx = (X**2)^T a``, ``fy``.
    """
    ops = blocks.ops
    X, Y = blocks.problem.rep()
    d1, d2 = X.shape[1], Y.shape[1]
    X = np.where(blocks.a[:, None] > 0, X, 0.0)  # cells left out enter no statistic
    Y = np.where(blocks.b[:, None] > 0, Y, 0.0)
    wx, wy = np.full(d1, 1.0 / d1), np.full(d2, 1.0 / d2)
    fx, fy = ops.asarray((X**2).T @ blocks.a), ops.asarray((Y**2).T @ blocks.b)
    cx, cy = (X**2) @ wx, (Y**2) @ wy
    for ch in blocks.chunks:
        blocks.gather(ch, "source", X=X, cx=cx)
        blocks.gather(ch, "target", Y=Y, cy=cy)
    return wx, wy, fx, fy


def _sample_step(blocks: Blocks, Tf: Any, eps: float, inner: dict[str, Any]) -> Any:
    """Solve every chunk's sample plan for the feature plan ``Tf``; return ``X^T Ts Y``."""
    S = 0.0
    for ch in blocks.chunks:
        cost = _sample_cost(ch, Tf, blocks.ops)
        stat = blocks.sinkhorn(ch, cost, eps, **inner, stat=(ch.X, ch.Y))
        S = _feature_total(S, ch, stat, blocks.ops)
    return S


def solve_coot(
    problem: AlignProblem,
    layout: GroupLayout,
    group_mass: np.ndarray,
    outer: FeatureIterations,
    inner_opts: Inner,
    storage: Storage,
) -> AlignResult:
    """Entropic COOT with the sample plan restricted to the blocks of ``layout``.

    Blocks with more than ``stream_above`` pairs are solved streamed (:mod:`._stream`) from
    their factorised sample cost.
    """
    ops, nx = problem.ops, problem.ops.nx
    epsilon_feature, tol, max_iter = outer.epsilon_feature, outer.tol, outer.max_iter
    a, b = layout.cell_masses(group_mass)
    blocks = Blocks(problem, layout, a, b, **asdict(storage))
    with blocks.threads():
        wx, wy, fx, fy = _prepare(blocks)
        Tf = ops.asarray(np.outer(wx, wy))
        S0 = 0.0
        for ch in blocks.chunks:
            S0 = _feature_total(S0, ch, blocks.product_statistic(ch, ch.X, ch.Y), ops)
        eps_rel = relative_epsilon(problem, DEFAULT_EPSILON)
        eps_f_rel = DEFAULT_EPSILON_FEATURE if epsilon_feature is None else float(epsilon_feature)
        if not eps_f_rel > 0:
            raise ValueError(f"epsilon_feature must be positive, got {epsilon_feature!r}.")
        s_scale = blocks.cost_scale([_sample_cost(ch, Tf, ops) for ch in blocks.chunks])
        f_scale = float(nx.max(fx[:, None] + fy[None, :] - 2.0 * S0))
        eps_s, eps_f = eps_rel * (s_scale or 1.0), eps_f_rel * (f_scale if f_scale > 0 else 1.0)
        fa, fb = ops.asarray(wx[None]), ops.asarray(wy[None])
        inner = {"tol": inner_opts.inner_tol, "max_iter": inner_opts.inner_max_iter}
        change, n_done, fout = np.inf, 0, None
        while n_done < max_iter:
            n_done += 1
            S = _sample_step(blocks, Tf, eps_s, inner)
            warm = {} if fout is None else {"f": fout.f, "g": fout.g}
            cost_f = (fx[:, None] + fy[None, :] - 2.0 * S)[None]
            fout = sinkhorn_padded(cost_f, fa, fb, eps_f, ops=ops, **inner, **warm)
            change = float(nx.sum(nx.abs(fout.plan[0] - Tf)))
            Tf = fout.plan[0]
            if change < tol:
                break
        for ch in blocks.chunks:
            blocks.add(ch)
        coupling = blocks.builder.to_csr()
    feat_ok, feat_err = True, 0.0
    if fout is not None:
        feat_ok, feat_err = bool(fout.converged[0]), float(fout.error[0])
    parameters = {
        "epsilon": eps_s,
        "epsilon_relative": eps_rel,
        "epsilon_feature": eps_f,
        "epsilon_feature_relative": eps_f_rel,
        "epsilon_scale": "max of the initial sample / feature cost",
        "tol": tol,
        "max_iter": max_iter,
        **asdict(inner_opts),
    }
    summary = {
        "converged": change < tol and feat_ok and bool(blocks.converged.all()),
        "n_iter": n_done,
        "feature_plan_change": change,
        "feature_marginal_error": feat_err,
        "marginal_error": float(blocks.error.max()),
    }
    groups = {
        "inner_n_iter": blocks.n_iter,
        "marginal_error": blocks.error,
        "converged": blocks.converged,
    }
    result = blocks.result(coupling, parameters, summary, groups)
    result.parameters["feature_coupling_shape"] = np.array([len(wx), len(wy)])
    result.convergence["feature_coupling"] = ops.to_numpy(Tf).astype(np.float64)
    return result


#: The options of the COOT aligners (``cootl`` adds its group weights).
COOT_OPTIONS = (
    OptionGroup(FeatureIterations(), docs.COOT_OUTER),
    OptionGroup(Inner(), docs.INNER),
    OptionGroup(Storage(), docs.storage("sample cost")),
)
#: The registry entries of the COOT aligners, and their one-line descriptions.
COOT = {"default_epsilon": DEFAULT_EPSILON, "shared_rep": False}
DESCRIPTION = {
    "coot": "entropic co-optimal transport over all cells (dense)",
    "cootl": "labeled entropic COOT: sample plan within groups, one shared feature plan",
}


@register_aligner("coot", labels="ignored", dense=True, description=DESCRIPTION["coot"], **COOT)
@aligner_options(*COOT_OPTIONS)
def coot(problem: AlignProblem, *options: Any) -> AlignResult:
    """Unlabeled entropic COOT between each modality's own representation (uniform weights).

    ``use_rep`` may differ per modality (``{"rna": "X_pca", "prot": "X"}``); the feature plan is
    stored in ``uns[key_added]["convergence"]["feature_coupling"]``. Matches
    ``ot.coot.co_optimal_transport`` with the same absolute epsilons.

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", method="coot", use_rep="X")
    >>> mdata.uns["groove_coupling"]["convergence"]["feature_coupling"].shape
    (40, 10)

    """
    return solve_coot(problem, problem.layout(), np.ones(1), *options)


@register_aligner("cootl", labels="required", description=DESCRIPTION["cootl"], **COOT)
@aligner_options(*COOT_OPTIONS, OptionGroup(Grouping(), docs.GROUP_WEIGHTS))
def cootl(
    problem: AlignProblem,
    outer: FeatureIterations,
    inner: Inner,
    storage: Storage,
    grouping: Grouping,
) -> AlignResult:
    """Labeled entropic COOT: sample plan restricted to same-group pairs, one feature plan.

    One joint problem (the feature plan is shared by all groups, so features correspond the
    same way in every perturbation); memory ``O(n d + sum_g n_g m_g + d1 d2)``.

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", method="cootl", use_rep="X")
    >>> mdata.uns["groove_coupling"]["parameters"]["group_weights"]
    'source'

    """
    layout = problem.layout()
    mass = layout.group_mass(grouping.group_weights)
    result = solve_coot(problem, layout, mass, outer, inner, storage)
    result.parameters["group_weights"] = grouping.group_weights
    return result
