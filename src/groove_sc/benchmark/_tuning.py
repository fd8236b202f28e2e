"""Choosing an aligner's epsilon without the truth, by held-out-group cross-validation.

The truth (which cell is which) is unknown in a real weakly paired screen, but the perturbation
labels are known, and a coupling that resolves structure *within* a block of cells should also
resolve groups the aligner was not told about. The criterion hides part of the labels:

- **label-constrained aligners** (``leot``, ``egw``, ``egwl``, ``fgw``, ...): groups are paired at
  random; in fold ``k`` the groups of a share of the pairs are merged into one pseudo-group
  ``{a, b}`` (every other cell is left unlabeled, so only the merged blocks are solved) and the
  aligner only knows that a cell belongs to ``a`` or ``b``. Each group is merged in exactly one
  fold, and the hidden label is then used to score the coupling of the merged blocks.
- **unlabeled aligners** (``eot``, ``egw_all``, ``coot``, ...) never see the labels: the whole
  coupling is scored with them, no folds needed.

Two scores of a coupling against hidden labels are available:

- ``"barycentric"`` (default): each source cell is projected to ``Q_i @ Y`` (``Q`` the
  row-normalised coupling, ``Y`` the target's features, as in the barycentric metrics); the
  score is the probability that a target cell of the source cell's own (hidden) group is closer
  to the projection than a target cell of the other group(s) of the block, averaged over source
  cells (0.5 blind, 1 perfect). It is a group-level analogue of barycentric FOSCTTM: it rewards
  smoothing within a group and penalises mass that leaks into the wrong group.
- ``"mass"``: the share of the block's mass that joins cells of the same hidden group, scaled
  so that 0 is a coupling blind to the hidden label and 1 is perfect (rewards sharp couplings,
  closer to ``trace`` and top-k accuracy).

The candidate with the best mean score wins; candidates within ``tol`` of the best count as
tied and the largest epsilon among them is taken (the smoother, more stable coupling). The
oracle alternative (:func:`choose_oracle`) picks the candidate with the best truth-based metric
and exists only to measure how much the truth-free choice loses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from mudata import MuData

from .._labels import label_codes
from ..tl._aligners._auto_epsilon import choose_truth_free, hidden_mass
from ..tl._aligners._auto_epsilon import projection_auc as _projection_auc
from ._table import lower_is_better
from ._views import dense

if TYPE_CHECKING:
    from ._alignment import Alignment, Scored

#: Name of the temporary label column holding merged groups during cross-validation.
CV_COLUMN = "_groove_cv_group"
#: Multipliers of the aligner's default epsilon tried by the tuners.
DEFAULT_EPSILON_FACTORS = (0.2, 0.5, 1.0, 2.0, 5.0)


def candidate_epsilons(default: float, factors: Sequence[float]) -> list[float]:
    """The candidate epsilons: ``default`` times each factor, sorted, duplicates removed.

    Examples
    --------
    >>> candidate_epsilons(5e-3, (0.5, 1.0, 2.0))
    [0.0025, 0.005, 0.01]

    """
    if default is None or not np.isfinite(default) or default <= 0:
        raise ValueError(f"The default epsilon must be a positive number, got {default!r}.")
    values = sorted({float(f) * float(default) for f in factors if float(f) > 0})
    if not values:
        raise ValueError(f"epsilon factors must hold positive numbers, got {list(factors)}.")
    return values


def label_agreement(
    P: sp.spmatrix,
    source_labels: pd.Series,
    target_labels: pd.Series,
    source_blocks: np.ndarray | None = None,
    target_blocks: np.ndarray | None = None,
) -> float:
    """Scaled share of a coupling's mass joining cells of the same label.

    Parameters
    ----------
    P
        ``(n_source, n_target)`` coupling.
    source_labels, target_labels
        The labels scored (cells with a missing label are left out).
    source_blocks, target_blocks
        Optional block id per cell (``-1``: outside every block). Only mass within blocks is
        scored, and the random baseline is computed per block: a source cell of label ``g`` in
        block ``k`` would send ``n_target(g, k) / n_target(k)`` of its mass to label ``g`` under
        a coupling blind to the labels.

    Returns
    -------
    ``(agree - baseline) / (1 - baseline)``; NaN when there is no mass to score or the
    baseline is 1.

    Examples
    --------
    >>> P = sp.identity(3, format="csr") / 3
    >>> round(label_agreement(P, pd.Series(["a", "a", "b"]), pd.Series(["a", "b", "b"])), 3)
    0.4

    """
    names = pd.Index(sorted(set(source_labels.dropna().astype(str))))
    s = label_codes(source_labels, names)
    t = label_codes(target_labels, names)
    if source_blocks is None:
        source_blocks = np.zeros(len(s), dtype=np.int64)
        target_blocks = np.zeros(len(t), dtype=np.int64)
    return hidden_mass(P, s, t, np.asarray(source_blocks), np.asarray(target_blocks))


def projection_auc(
    P: sp.spmatrix,
    y_target: np.ndarray,
    source_labels: pd.Series,
    target_labels: pd.Series,
    source_blocks: np.ndarray | None = None,
    target_blocks: np.ndarray | None = None,
    chunk: int = 1024,
) -> float:
    """Probability that an own-group target cell is closer to a cell's projection than another.

    Parameters
    ----------
    P
        ``(n_source, n_target)`` coupling.
    y_target
        ``(n_target, d)`` target representation projected by ``Q @ Y``.
    source_labels, target_labels
        The (hidden) labels scored; cells with a missing label are left out.
    source_blocks, target_blocks
        Optional block id per cell (``-1``: outside every block); a source cell is compared
        with the target cells of its block only. Default: one block.
    chunk
        Source cells per distance computation.

    Returns
    -------
    Mean over scored source cells (ties count one half); NaN when no source cell has mass and
    target cells of both its own and another group in its block.

    Examples
    --------
    >>> labels = pd.Series(["a", "a", "b", "b"])
    >>> y = np.array([[0.0], [0.1], [5.0], [5.1]])
    >>> projection_auc(sp.identity(4, format="csr"), y, labels, labels)
    1.0

    """
    names = pd.Index(sorted(set(source_labels.dropna().astype(str))))
    s = label_codes(source_labels, names)
    t = label_codes(target_labels, names)
    if source_blocks is None:
        source_blocks = np.zeros(len(s), dtype=np.int64)
        target_blocks = np.zeros(len(t), dtype=np.int64)
    P = sp.csr_matrix(P, dtype=np.float64)
    mass = np.asarray(P.sum(axis=1)).ravel()
    y = np.asarray(y_target, dtype=np.float64)
    proj = np.asarray(P @ y) / np.maximum(mass, 1e-300)[:, None]
    scored = np.where(mass > 0, s, -1)  # cells without mass have no projection
    return _projection_auc(proj, y, scored, t, source_blocks, target_blocks, chunk)


def merge_folds(groups: Sequence[str], n_folds: int, seed: int) -> list[dict[str, str]]:
    """Random pairs of groups, split into folds; per fold a map ``group -> merged name``.

    With an odd number of groups one group is never merged. Fewer than two groups give no fold.

    Examples
    --------
    >>> merge_folds(["a", "b", "c", "d"], n_folds=2, seed=0)
    [{'c': 'c|a', 'a': 'c|a'}, {'b': 'b|d', 'd': 'b|d'}]

    """
    groups = sorted(str(g) for g in groups)
    order = list(np.random.default_rng(seed).permutation(len(groups)))
    pairs = [(groups[order[i]], groups[order[i + 1]]) for i in range(0, len(order) - 1, 2)]
    n_folds = max(1, min(int(n_folds), len(pairs)))
    folds = []
    for k in range(n_folds):
        mapping = {}
        for a, b in pairs[k::n_folds]:
            mapping[a] = mapping[b] = f"{a}|{b}"
        if mapping:
            folds.append(mapping)
    return folds


#: ``align(groupby_column) -> (n_source, n_target) coupling`` at one candidate epsilon.
AlignAt = Callable[[str | None], sp.spmatrix]
Criterion = Literal["barycentric", "mass"]


def heldout_group_score(
    align_at: AlignAt,
    source_labels: pd.Series,
    target_labels: pd.Series,
    set_cv_labels: Callable[[dict[str, str] | None], None],
    labeled: bool,
    n_folds: int = 2,
    seed: int = 0,
    criterion: Criterion = "barycentric",
    y_target: np.ndarray | None = None,
) -> float:
    """The truth-free score of one candidate (see the module docstring).

    Parameters
    ----------
    align_at
        Runs the aligner at the candidate epsilon with the given label column (or ``None``) and
        returns the source x target coupling.
    source_labels, target_labels
        The real labels of the two modalities.
    set_cv_labels
        Writes (``mapping``) or removes (``None``) the column :data:`CV_COLUMN` in which the
        groups of ``mapping`` carry their merged name and every other cell is unlabeled (so
        the aligner only solves the merged blocks).
    labeled
        Whether the aligner uses labels (then folds of merged groups are used).
    n_folds
        Folds of merged group pairs.
    seed
        Seed of the random pairing of groups.
    criterion
        ``"barycentric"`` (:func:`projection_auc`, needs ``y_target``) or ``"mass"``
        (:func:`label_agreement`).
    y_target
        Target representation projected by the barycentric criterion.

    Returns
    -------
    Mean score over folds (higher is better); NaN when nothing could be scored.

    Examples
    --------
    >>> labels = pd.Series(["a", "a", "b", "b"])
    >>> def align_at(groupby):  # a coupling that keeps every cell in its group
    ...     return sp.csr_matrix(np.kron(np.eye(2), np.ones((2, 2))) / 8)
    >>> heldout_group_score(align_at, labels, labels, print, labeled=False, criterion="mass")
    1.0

    """
    if criterion not in ("barycentric", "mass"):
        raise ValueError(f"criterion must be 'barycentric' or 'mass', got {criterion!r}.")
    if criterion == "barycentric" and y_target is None:
        raise ValueError("criterion='barycentric' needs y_target (the target representation).")

    def score(P, s_blocks=None, t_blocks=None) -> float:
        if criterion == "mass":
            return label_agreement(P, source_labels, target_labels, s_blocks, t_blocks)
        return projection_auc(P, y_target, source_labels, target_labels, s_blocks, t_blocks)

    if not labeled:
        return score(align_at(None))
    shared = set(source_labels.dropna().astype(str)) & set(target_labels.dropna().astype(str))
    scores = []
    for mapping in merge_folds(sorted(shared), n_folds, seed):
        set_cv_labels(mapping)
        try:
            P = align_at(CV_COLUMN)
        finally:
            set_cv_labels(None)
        blocks = pd.Index(sorted(set(mapping.values())))

        def block_of(labels: pd.Series, mapping=mapping, blocks=blocks) -> np.ndarray:
            merged = labels.astype("object").map(mapping)
            return label_codes(merged, blocks)

        scores.append(score(P, block_of(source_labels), block_of(target_labels)))
    scores = [s for s in scores if np.isfinite(s)]
    return float(np.mean(scores)) if scores else float("nan")


def choose_oracle(
    candidates: Sequence[float], values: Sequence[float], lower_is_better: bool
) -> float:
    """The candidate with the best truth-based value (ties: the larger epsilon).

    Examples
    --------
    >>> choose_oracle([0.1, 0.2], [0.3, 0.3], lower_is_better=True)
    0.2

    """
    v = np.asarray(values, dtype=float)
    if not np.isfinite(v).any():
        return float("nan")
    v = np.where(np.isfinite(v), v, np.inf if lower_is_better else -np.inf)
    best = v.min() if lower_is_better else v.max()
    return float(max(c for c, x in zip(candidates, v) if x == best))


def tuned_scores(alignment: Alignment, tuning: str, seed: int) -> Scored:
    """Scores, seconds and relative epsilon of one tuning mode of an alignment.

    ``"default"`` aligns at the aligner's default epsilon (or ``aligner_kwargs``'s);
    ``"truth_free"`` picks a candidate by :func:`heldout_group_score`, ``"oracle"`` by the
    truth-based ``oracle_metric`` (:func:`choose_oracle`). The seconds of a tuned row are the
    cost of the whole procedure: the held-out-group alignments plus the final one
    (truth-free), or every candidate's alignment (oracle). Aligners without an epsilon, or not
    in ``tune_aligners``, keep their default row.

    Examples
    --------
    >>> from groove_sc.benchmark._alignment import Alignment
    >>> from groove_sc.benchmark._options import RunOptions
    >>> from groove_sc.benchmark._views import blind_view
    >>> blind = blind_view(mdata, ["rna", "prot"], "perturbation")
    >>> _ = gs.benchmark.LEARNERS["labels"](blind, "X_labels", groupby="perturbation", seed=0)
    >>> cell = Alignment(RunOptions(source="rna", target="prot"), blind, mdata, "X_labels", "leot")
    >>> default = tuned_scores(cell, "default", seed=0)[2]
    >>> tuned = tuned_scores(cell, "truth_free", seed=0)[2]
    >>> any(np.isclose(tuned, default * f) for f in DEFAULT_EPSILON_FACTORS)
    True

    """
    opts = alignment.options
    untuned = opts.tune_aligners is not None and alignment.aligner not in opts.tune_aligners
    if tuning == "default" or untuned:
        return alignment.scores(alignment.fixed_epsilon)
    default = alignment.scores(None)[2]
    if not np.isfinite(default):
        return alignment.scores(None)
    candidates = candidate_epsilons(default, opts.epsilon_factors)
    choose = _truth_free_choice if tuning == "truth_free" else _oracle_choice
    chosen, cost = choose(alignment, candidates, seed)
    if not np.isfinite(chosen):
        raise RuntimeError(f"no candidate epsilon of {candidates} could be scored.")
    scores, seconds, eps_rel = alignment.scores(chosen)
    return scores, (cost + seconds if tuning == "truth_free" else cost), eps_rel


def _truth_free_choice(
    alignment: Alignment, candidates: list[float], seed: int
) -> tuple[float, float]:
    """The truth-free candidate and the seconds of its held-out-group alignments."""
    opts = alignment.options
    if opts.groupby is None:
        raise ValueError("truth-free tuning needs labels (groupby).")
    alignment.spent, scores = 0.0, []
    for epsilon in candidates:
        try:
            scores.append(_heldout_score(alignment, epsilon, seed))
        except Exception:  # noqa: BLE001 - a failing candidate is just not chosen
            scores.append(np.nan)
    return choose_truth_free(candidates, scores, opts.tuning_tol), alignment.spent


def _oracle_choice(alignment: Alignment, candidates: list[float], seed: int) -> tuple[float, float]:
    """The oracle candidate and the seconds of every candidate's alignment."""
    metric = alignment.options.oracle_metric
    values, cost = [], 0.0
    for epsilon in candidates:
        try:
            res, seconds, _ = alignment.scores(epsilon)
            values.append(res.get(metric, np.nan))
            cost += seconds
        except Exception:  # noqa: BLE001 - a failing candidate is just not chosen
            values.append(np.nan)
    return choose_oracle(candidates, values, lower_is_better(metric)), cost


def _heldout_score(alignment: Alignment, epsilon: float, seed: int) -> float:
    """:func:`heldout_group_score` of one candidate epsilon, on the alignment's blind view."""
    opts, blind = alignment.options, alignment.blind
    mods = (opts.source, opts.target)
    labels = {m: blind.mod[m].obs[opts.groupby] for m in mods}
    return heldout_group_score(
        lambda groupby: alignment.coupling(epsilon, groupby),
        labels[opts.source],
        labels[opts.target],
        lambda mapping: _set_cv_labels(blind, mods, opts.groupby, mapping),
        labeled=alignment.groupby is not None,
        n_folds=opts.cv_folds,
        seed=seed,
        criterion=opts.tuning_criterion,
        y_target=dense(blind.mod[opts.target].X),
    )


def _set_cv_labels(
    blind: MuData, mods: Sequence[str], groupby: str, mapping: dict[str, str] | None
) -> None:
    """Write (``mapping``) or remove (``None``) the merged-group column :data:`CV_COLUMN`."""
    for m in mods:
        obs = blind.mod[m].obs
        if mapping is None:
            obs.drop(columns=CV_COLUMN, inplace=True, errors="ignore")
        else:
            merged = obs[groupby].astype("object").map(mapping)
            obs[CV_COLUMN] = pd.Categorical(merged)
