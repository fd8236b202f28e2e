"""``epsilon="auto"``: a truth-free epsilon by held-out-group cross-validation.

In a weakly paired screen nobody knows which cell is which, but the labels are known. A coupling
that resolves structure *within* a block of cells should also tell apart groups that it was not
told about. So the groups are paired at random and each pair is merged into one block: the
aligner only knows that a cell belongs to ``a`` or ``b``, and its coupling is scored with the
hidden label by :func:`hidden_mass`, the share of the block's mass that joins cells of the same
hidden group, scaled so that 0 is the label-only answer (a coupling uniform within each merged
block, blind to the hidden group) and 1 a coupling that never crosses hidden groups. The
barycentric :func:`projection_auc` is recorded beside it; it is not used for the choice because
it rises with epsilon whatever the data (smoothing towards the group centroid always helps to
tell *groups* apart), whereas the choice concerns cells.

The method default is kept as long as it beats the label-only answer by more than chance (mean +
2 sd of the score with the hidden groups permuted within each block, :func:`null_threshold`, and
at least ``tol``). Only when it does not does the choice move, and only towards the label-only
coupling: to the smallest larger candidate that beats chance, or, if none does, to a smooth
epsilon close to the label-only coupling (:data:`FALLBACK_EPSILON`, or :data:`FALLBACK_FACTOR`
times the largest candidate if that is larger). The criterion never moves to
a *sharper* epsilon: the mass joining same-hidden-group cells grows as the coupling sharpens
whether or not the cells it matches correspond, and on a latent trained with all labels the
held-out groups are separated at every epsilon, so a higher score there is no evidence of better
cell-level matching (on simulations the sharpest candidate scored higher and matched cells
worse; on the real development set it tied and matched cells worse).

The cross-validation solves subsampled merged blocks, sized so that all candidates together
cost about ``budget`` times the final alignment (pairwise blocks are quadratic in their cells).
The candidates are solved from the default upwards and the search stops at the first one that
beats chance, so on data where the default does, only the default is solved (the others are
recorded with NaN scores and ``evaluated`` False).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from ._problem import AlignProblem
    from ._registry import Aligner

#: Candidates, as multiples of the method's default epsilon (the default and smoother ones).
AUTO_FACTORS = (1.0, 4.0, 16.0)
#: Relative epsilon used when no candidate beats the label-only coupling: this, or
#: :data:`FALLBACK_FACTOR` times the largest candidate if that is larger.
FALLBACK_EPSILON = 1.0
#: The fallback is at least this many times the largest candidate.
FALLBACK_FACTOR = 16.0
#: A candidate must beat the label-only score (0) by at least this much.
AUTO_TOL = 0.005
#: Cross-validation cost, in multiples of the final alignment.
AUTO_BUDGET = 2.0
#: Cells per group and modality kept in the cross-validation, at most.
AUTO_MAX_CELLS = 256
#: Permutations of the hidden groups that give a candidate's chance level.
AUTO_PERMUTATIONS = 20


def projection_auc(
    proj: np.ndarray,
    y_target: np.ndarray,
    source_hidden: np.ndarray,
    target_hidden: np.ndarray,
    source_blocks: np.ndarray,
    target_blocks: np.ndarray,
    chunk: int = 1024,
) -> float:
    """Probability that an own-group target cell is closer to a projection than another.

    Parameters
    ----------
    proj
        ``(n_source, d)`` projections of the source cells (rows of scored cells only matter).
    y_target
        ``(n_target, d)`` target representation.
    source_hidden, target_hidden
        Hidden group codes (``-1``: not scored).
    source_blocks, target_blocks
        Block of each cell (``-1``: outside every block); a source cell is compared with the
        target cells of its block only.
    chunk
        Source cells per distance computation.

    Returns
    -------
    Mean over scored source cells (ties count one half); NaN when nothing can be scored.

    Examples
    --------
    >>> y = np.array([[0.0], [1.0], [10.0], [11.0]])
    >>> proj = np.array([[0.5], [10.5]])
    >>> projection_auc(proj, y, np.array([0, 1]), np.array([0, 0, 1, 1]),
    ...                np.array([0, 0]), np.array([0, 0, 0, 0]))
    1.0

    """
    from scipy.stats import rankdata

    y = np.asarray(y_target, dtype=np.float64)
    aucs = []
    for block in np.unique(source_blocks[source_blocks >= 0]):
        rows = np.flatnonzero((source_blocks == block) & (source_hidden >= 0))
        cols = np.flatnonzero((target_blocks == block) & (target_hidden >= 0))
        if not len(rows) or len(np.unique(target_hidden[cols])) < 2:
            continue
        yb, tb = y[cols], target_hidden[cols]
        for start in range(0, len(rows), chunk):
            r = rows[start : start + chunk]
            p = np.asarray(proj[r], dtype=np.float64)
            d = (p**2).sum(1)[:, None] + (yb**2).sum(1)[None, :] - 2.0 * p @ yb.T
            own = tb[None, :] == source_hidden[r][:, None]
            n_own = own.sum(1)
            n_other = len(cols) - n_own
            ok = (n_own > 0) & (n_other > 0)
            own_rank = (rankdata(d, axis=1) * own).sum(1)
            farther = (own_rank - n_own * (n_own + 1) / 2.0) / np.maximum(n_own * n_other, 1)
            aucs.append(1.0 - farther[ok])
    values = np.concatenate(aucs) if aucs else np.empty(0)
    return float(values.mean()) if values.size else float("nan")


def _near_best(candidates: Sequence[float], scores: Sequence[float], tol: float) -> list[float]:
    """The candidates whose (finite) score is within ``tol`` of the best; empty if none."""
    scores = np.asarray(scores, dtype=float)
    ok = np.isfinite(scores)
    if not ok.any():
        return []
    best = scores[ok].max()
    return [c for c, s, k in zip(candidates, scores, ok) if k and s >= best - tol]


def choose_truth_free(candidates: Sequence[float], scores: Sequence[float], tol: float) -> float:
    """The largest candidate whose score is within ``tol`` of the best (NaN scores ignored).

    Returns NaN when no candidate has a finite score.

    Examples
    --------
    >>> choose_truth_free([0.1, 0.2, 0.4], [0.50, 0.60, 0.595], tol=0.01)
    0.4

    """
    near = _near_best(candidates, scores, tol)
    return float(max(near)) if near else float("nan")


def choose_guarded(candidates: Sequence[float], beats: Sequence[bool], default: float) -> float:
    """The default if it beats chance, else the smallest larger candidate that does.

    Returns NaN when neither the default nor any larger candidate beats chance (the caller
    falls back to a smooth epsilon).

    Examples
    --------
    >>> choose_guarded([0.05, 0.2, 0.8], [True, True, True], default=0.05)
    0.05
    >>> choose_guarded([0.05, 0.2, 0.8], [False, False, True], default=0.05)
    0.8

    """
    ok = [float(c) for c, b in zip(candidates, beats) if b and c >= default]
    return min(ok) if ok else float("nan")


def _merged_blocks(
    problem: AlignProblem, fraction: float, max_cells: int, rng: np.random.Generator
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """Random pairs of the problem's groups as blocks, on a subsample of each group's cells.

    Returns ``(source_hidden, target_hidden, source_blocks, target_blocks)`` (``-1``: cell
    not kept) and the block names.
    """
    layout = problem.layout()
    n_groups = layout.n_groups
    order = rng.permutation(n_groups)
    n_pairs = n_groups // 2
    block_of_group = np.full(n_groups, -1, dtype=np.int64)
    block_of_group[order[: 2 * n_pairs]] = np.repeat(np.arange(n_pairs), 2)
    out = []
    sides = ((layout.source_index, problem.n_source), (layout.target_index, problem.n_target))
    for index, n in sides:
        hidden = np.full(n, -1, dtype=np.int64)
        blocks = np.full(n, -1, dtype=np.int64)
        sizes = np.array([len(c) for c in index])
        cells = np.concatenate(index)
        group = np.repeat(np.arange(len(index)), sizes)
        # a random subsample of each group: cells ranked by a random key within their group
        order = np.lexsort((rng.random(len(cells)), group))
        rank = np.empty(len(cells), dtype=np.int64)
        rank[order] = np.arange(len(cells)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        k = np.minimum(sizes, np.minimum(max_cells, np.maximum(8, np.ceil(fraction * sizes))))
        keep = (rank < k[group]) & (block_of_group[group] >= 0)
        hidden[cells[keep]] = group[keep]
        blocks[cells[keep]] = block_of_group[group[keep]]
        out.append((hidden, blocks))
    names = np.array([f"cv{i}" for i in range(n_pairs)])
    (s_hidden, s_blocks), (t_hidden, t_blocks) = out
    return (s_hidden, t_hidden, s_blocks, t_blocks), names


def hidden_mass(
    P: sp.spmatrix,
    source_hidden: np.ndarray,
    target_hidden: np.ndarray,
    source_blocks: np.ndarray,
    target_blocks: np.ndarray,
) -> float:
    """Share of the coupling's mass joining cells of the same hidden group, scaled.

    Only mass between cells of one block is scored (``-1``: a cell outside every block or
    without a hidden group). ``0`` is a coupling blind to the hidden group: a source cell of
    group ``g`` in block ``k`` sends ``n_target(g, k) / n_target(k)`` of its mass to group
    ``g``; ``1`` is a coupling that never crosses hidden groups. The benchmark's
    :func:`groove_sc.benchmark.label_agreement` is this score on label columns.

    Returns
    -------
    ``(agree - baseline) / (1 - baseline)``; NaN when there is no mass to score or the
    baseline is 1.

    Examples
    --------
    >>> P = sp.csr_matrix(np.eye(2) / 2)
    >>> hidden_mass(P, np.array([0, 1]), np.array([0, 1]), np.zeros(2, int), np.zeros(2, int))
    1.0

    """
    P = sp.coo_matrix(P)
    keep = (source_hidden[P.row] >= 0) & (target_hidden[P.col] >= 0)
    keep &= (source_blocks[P.row] >= 0) & (source_blocks[P.row] == target_blocks[P.col])
    rows, cols, mass = P.row[keep], P.col[keep], P.data[keep]
    total = float(mass.sum())
    if total <= 0:
        return float("nan")
    agree = float(mass[source_hidden[rows] == target_hidden[cols]].sum()) / total
    # the blind baseline: per block, the hidden-group frequencies of its target cells
    ok = (target_hidden >= 0) & (target_blocks >= 0)
    n_groups = int(max(source_hidden.max(initial=-1), target_hidden.max(initial=-1))) + 1
    n_blocks = int(max(source_blocks.max(initial=-1), target_blocks.max(initial=-1))) + 1
    counts = np.zeros((max(n_blocks, 1), max(n_groups, 1)))
    np.add.at(counts, (target_blocks[ok], target_hidden[ok]), 1.0)
    freq = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    row_mass = np.bincount(rows, weights=mass, minlength=P.shape[0])
    used = np.flatnonzero(row_mass > 0)
    base = float((row_mass[used] * freq[source_blocks[used], source_hidden[used]]).sum()) / total
    return (agree - base) / (1.0 - base) if base < 1.0 else float("nan")


def null_threshold(
    P: sp.spmatrix,
    source_hidden: np.ndarray,
    target_hidden: np.ndarray,
    source_blocks: np.ndarray,
    target_blocks: np.ndarray,
    rng: np.random.Generator,
    n_perm: int = AUTO_PERMUTATIONS,
) -> float:
    """Mean + 2 sd of :func:`hidden_mass` with target hidden groups permuted within blocks.

    What a coupling blind to the hidden groups scores by chance on these cells: a candidate must
    beat it to count as better than the label-only answer.

    Examples
    --------
    >>> P, hidden, blocks = sp.csr_matrix(np.eye(4) / 4), np.array([0, 0, 1, 1]), np.zeros(4, int)
    >>> round(null_threshold(P, hidden, hidden, blocks, blocks, np.random.default_rng(0)), 3)
    1.129

    """
    ok = np.flatnonzero(target_hidden >= 0)
    values = []
    for _ in range(n_perm):
        order = ok[np.lexsort((rng.random(len(ok)), target_blocks[ok]))]
        shuffled = target_hidden.copy()
        shuffled[order] = target_hidden[ok[np.argsort(target_blocks[ok], kind="stable")]]
        values.append(hidden_mass(P, source_hidden, shuffled, source_blocks, target_blocks))
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(values.mean() + 2.0 * values.std()) if values.size else 0.0


def _block_centroid_projection(y: np.ndarray, s_blocks: np.ndarray, t_blocks: np.ndarray):
    """Projection of the uniform-within-block coupling: each source cell -> its block centroid."""
    n_blocks = int(max(s_blocks.max(initial=-1), t_blocks.max(initial=-1)) + 1)
    ok = t_blocks >= 0
    sums = np.zeros((n_blocks, y.shape[1]))
    np.add.at(sums, t_blocks[ok], y[ok])
    counts = np.bincount(t_blocks[ok], minlength=n_blocks)
    centroids = sums / np.maximum(counts, 1)[:, None]
    return centroids[np.maximum(s_blocks, 0)]


def _projection(P: sp.spmatrix, y: np.ndarray) -> np.ndarray:
    P = sp.csr_matrix(P, dtype=np.float64)
    mass = np.asarray(P.sum(axis=1)).ravel()
    return np.asarray(P @ y) / np.maximum(mass, 1e-300)[:, None]


def auto_epsilon(
    problem: AlignProblem,
    aligner: Aligner,
    method_kwargs: dict[str, Any],
    y_target: np.ndarray,
    *,
    factors: Sequence[float] = AUTO_FACTORS,
    tol: float = AUTO_TOL,
    budget: float = AUTO_BUDGET,
    max_cells: int = AUTO_MAX_CELLS,
    seed: int = 0,
) -> tuple[float | None, dict[str, Any]]:
    """Choose a relative epsilon for ``aligner`` on ``problem`` without the truth.

    Parameters
    ----------
    problem
        The labeled problem (its ``epsilon`` is ignored).
    aligner
        The registered aligner; its ``default_epsilon`` scales the candidates.
    method_kwargs
        Keyword arguments of the aligner.
    y_target
        ``(n_target, d)`` target representation used by the score.
    factors
        Candidates as multiples of the default epsilon (factors below 1 are ignored: the
        choice never sharpens; the default itself is always a candidate).
    tol
        Least margin over the label-only score for a candidate to count as beating it.
    budget
        Cost of the cross-validation in multiples of the final alignment.
    max_cells
        Cells per group and modality kept in the cross-validation, at most.
    seed
        Seed of the random group pairs and subsamples.

    Returns
    -------
    ``(epsilon, info)``: the relative epsilon (``None``: keep the method default, with the
    reason in ``info["mode"]``) and the record stored in ``uns[key_added]["epsilon_auto"]``.

    Examples
    --------
    >>> from groove_sc.tl._aligners._problem import build_problem
    >>> problem, _ = build_problem(mdata, "rna", "prot", "leot", "X_true_shared",
    ...                            "perturbation", None, "cpu", None, "float32")
    >>> eps, info = auto_epsilon(problem, gs.tl.ALIGNERS["leot"], {}, problem.rep()[1])
    >>> info["mode"], info["candidates"].tolist(), bool(eps in info["candidates"] or eps == 1.0)
    ('auto', [0.05, 0.2, 0.8], True)

    """
    start = time.perf_counter()
    default = aligner.default_epsilon
    if default is None:
        return None, {"mode": "not applicable: the method has no epsilon"}
    if not problem.labeled:
        return None, {"mode": "method default: no labels to hold out (groupby=None)"}
    if problem.layout().n_groups < 2:
        return None, {"mode": "method default: fewer than two groups to hold out"}
    candidates = sorted({float(f) * float(default) for f in factors if f >= 1})
    if not candidates or not np.isclose(candidates[0], default):
        candidates = sorted({float(default), *candidates})
    rng = np.random.default_rng(seed)
    fraction = float(np.sqrt(budget / (2.0 * len(candidates))))
    cells, names = _merged_blocks(problem, fraction, max_cells, rng)
    y = np.asarray(y_target, dtype=np.float64)
    label_only = _block_centroid_projection(y, cells[2], cells[3])
    baseline = projection_auc(label_only, y, *cells)
    auc, mass, null, evaluated = _score_candidates(
        problem, aligner, method_kwargs, candidates, cells, names, y, rng, tol
    )
    beats = _beats(mass, null, tol)
    chosen = choose_guarded(candidates, beats, default)
    fallback = not np.isfinite(chosen)
    if fallback:
        chosen = max(FALLBACK_EPSILON, FALLBACK_FACTOR * max(candidates))
    info = {
        "mode": "auto",
        "candidates": np.asarray(candidates),
        "scores": mass,
        "projection_auc": auc,
        "label_only_score": 0.0,
        "chance_threshold": null,
        "evaluated": evaluated,
        "label_only_projection_auc": float(baseline),
        "chosen": float(chosen),
        "fallback": fallback,
        "criterion": "held-out merged group pairs, scaled same-group mass; the default is kept "
        "while it beats chance, else the smallest smoother candidate that does",
        "n_blocks": len(names),
        "cells_per_group_fraction": min(1.0, fraction),
        "seconds": time.perf_counter() - start,
    }
    return float(chosen), info


def _score_candidates(
    problem: AlignProblem,
    aligner: Aligner,
    method_kwargs: dict[str, Any],
    candidates: Sequence[float],
    cells: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    names: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    tol: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Solve the merged blocks at each candidate epsilon, in increasing order, and score them.

    Stops at the first candidate that beats chance (no later one can be chosen). The merged
    blocks keep the real groups' mean cost (:attr:`AlignProblem.mean_cost`), so that a candidate
    is tried at the epsilon the final alignment would use. Returns, per candidate, the
    projection AUC, the scaled hidden-group mass and its chance threshold (NaN for a candidate
    whose solve failed or that was not needed), and whether it was solved.
    """
    from ._linear import mean_group_cost

    _, _, s_blocks, t_blocks = cells
    n = len(candidates)
    mean_cost = problem.mean_cost if problem.mean_cost is not None else mean_group_cost(problem)
    scores, masses, nulls = [], [], []
    for eps in candidates:
        sub = replace(
            problem,
            source_codes=s_blocks,
            target_codes=t_blocks,
            group_names=names,
            epsilon=eps,
            mean_cost=mean_cost,
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                P = aligner(sub, **method_kwargs).coupling
            scores.append(projection_auc(_projection(P, y), y, *cells))
            masses.append(hidden_mass(P, *cells))
            nulls.append(null_threshold(P, *cells, rng))
        except (FloatingPointError, ValueError, RuntimeError):
            scores.append(float("nan"))
            masses.append(float("nan"))
            nulls.append(float("nan"))
        if _beats(masses[-1], nulls[-1], tol):
            break
    evaluated = np.arange(n) < len(masses)
    pad = [float("nan")] * (n - len(masses))
    scores, masses, nulls = (np.asarray(x + pad, dtype=float) for x in (scores, masses, nulls))
    return scores, masses, nulls, evaluated


def _beats(mass: Any, null: Any, tol: float) -> np.ndarray:
    """Whether each scaled hidden-group mass beats both ``tol`` and its chance threshold."""
    mass, null = np.asarray(mass, dtype=float), np.asarray(null, dtype=float)
    return np.isfinite(mass) & (mass > np.maximum(tol, null))
