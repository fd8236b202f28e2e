"""``benchmark.run``: every learner x every aligner x every seed, scored in one tidy table.

This module validates the request and hands each seed to
:func:`~groove_sc.benchmark._seed.run_seed`, in this process or in parallel ones
(:mod:`~groove_sc.benchmark._parallel`); the options are :class:`RunOptions`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pandas as pd
from mudata import MuData

from .._constants import DEFAULT_GROUPBY, DEFAULT_TRUTH_KEY
from .._docs import doc_params
from .._mudata import check_modalities, obs_column
from ..metrics import truth_pairs
from ._options import RunOptions, Tuning, option_docs
from ._parallel import run_seeds_in_processes
from ._progress import show_progress
from ._registry import LEARNERS, check_names
from ._seed import run_seed
from ._table import as_table
from ._tuning import DEFAULT_EPSILON_FACTORS


@doc_params(run_options=option_docs())
def run(  # noqa: D417 - the options' entries come from the %(run_options)s fragment
    mdata: MuData,
    learners: Sequence[str],
    aligners: Sequence[str],
    truth_key: str = DEFAULT_TRUTH_KEY,
    label_key: str | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    learner_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    aligner_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    n_jobs: int = 1,
    source: str | None = None,
    target: str | None = None,
    groupby: str | None = DEFAULT_GROUPBY,
    *,
    tuning: Tuning | Sequence[Tuning] = "default",
    epsilon_factors: Sequence[float] = DEFAULT_EPSILON_FACTORS,
    cv_folds: int = 2,
    tuning_tol: float = 0.01,
    tuning_criterion: Literal["barycentric", "mass"] = "barycentric",
    tune_aligners: Sequence[str] | None = None,
    oracle_metric: str = "foscttm_barycentric",
    target_rep: str | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Score every learner x every aligner x every seed on one dataset.

    For each seed and learner, the learner embeds both modalities of a *truth-free view* of
    ``mdata`` (the data, the features and ``obs[groupby]`` only: it cannot read
    ``obs[truth_key]`` or any simulation oracle), then every aligner couples ``source`` to
    ``target`` cells with :func:`groove_sc.tl.align` on that embedding, and the coupling is scored
    against the truth. ``mdata`` itself is not modified.

    **Rows.** One row per (learner, aligner, seed, tuning, metric), in long ("tidy") form:

    - coupling metrics of :func:`groove_sc.metrics.evaluate_matching` (``foscttm_barycentric``,
      ``trace``, ``trace_random_group``, ``top{1,5,10}_accuracy``, ``frac_unmatched``, label
      metrics with ``label_key``), ``converged`` (1/0) and the barycentric imputation of the
      target's ``.X`` (``imputation_pearson_cell``, ``..._spearman_cell``,
      ``..._pearson_feature``, ``..._spearman_feature``, ``imputation_mse``; see
      :func:`groove_sc.metrics.evaluate_imputation`), source cells with a true partner only;
    - learner-only rows: ``aligner="latent"`` with ``foscttm_latent`` (shared-space learners) and
      ``aligner="decoder"`` with the same ``imputation_*`` metrics for the decoder translation
      of learners that return a model (GROOVE variants; count targets are put on the ``.X``
      scale: ``log1p`` of counts normalised to 10,000); their ``tuning`` is ``"n/a"``.

    ``fit_seconds`` is the learner's time, ``align_seconds`` the aligner's (including the
    epsilon search for tuned rows), ``epsilon`` the relative epsilon used.

    **Skips and failures are rows too.** An aligner that needs a shared space (registered
    with ``shared_rep=True`` like linear OT and ``knn``, or taking a ``fused_rep`` like ``fgw``)
    on a learner without one (``pca``, ``raw``), or a label-constrained aligner without
    ``groupby``, or a learner whose optional dependencies are missing (``diagvi`` without
    scvi-tools >= 1.4.3, ``torch_geometric`` and ``geomloss``; see
    :meth:`Learner.unavailable_reason`), gives ``status="skipped"`` with the reason in
    ``error``; an exception in a learner or an aligner gives ``status="error"`` with the
    exception text, and the grid goes on.

    **Reproducibility.** Python, numpy, torch and scvi-tools are seeded with the seed before
    every learner: equal seeds give equal tables (timings aside) on the same machine and number
    of threads.

    Parameters
    ----------
    mdata
        MuData with disjoint cells per modality (axis 0) and the truth in ``obs[truth_key]``
        (e.g. :func:`groove_sc.datasets.simulate` with ``paired=True``).
    learners
        Names in :data:`groove_sc.benchmark.LEARNERS`.
    aligners
        Names in :data:`groove_sc.tl.ALIGNERS`.
    seeds
        One replicate per seed (learners and aligners; the data stay the same).
    n_jobs
        Seeds run in parallel processes (joblib; the two modalities travel as a temporary
        ``.h5mu``); 1 runs in this process. Processes may use another number of threads, which
        can change float results in the last digits.
    progress
        Show one line per learner and aligner: ``INFO`` records of the ``groove_sc.benchmark``
        logger, written to standard output unless logging is configured (see
        :mod:`groove_sc.benchmark._progress`).
    %(run_options)s

    Returns
    -------
    DataFrame with columns ``learner``, ``aligner``, ``seed``, ``tuning``, ``epsilon``, ``metric``,
    ``value``, ``fit_seconds``, ``align_seconds``, ``status`` (``"ok"``, ``"skipped"``,
    ``"error"``) and ``error`` (reason or exception text, empty when ok).

    Examples
    --------
    >>> res = gs.benchmark.run(mdata, learners=["pca", "labels"], aligners=["leot", "egw"],
    ...                        seeds=[0])
    >>> fos = res.query("metric == 'foscttm_barycentric'")
    >>> fos.pivot_table(index="learner", columns="aligner", values="value").shape
    (2, 2)
    >>> res.query("status == 'skipped'")[["learner", "aligner"]].values.tolist()
    [['pca', 'leot']]

    """
    if not isinstance(mdata, MuData):
        raise TypeError(f"benchmark.run needs a MuData, got {type(mdata).__name__}.")
    options = RunOptions.from_arguments(locals())
    learners, aligners, seeds, options = _check_request(mdata, learners, aligners, seeds, options)
    with show_progress(progress):
        if n_jobs == 1 or len(seeds) == 1:
            parts = [run_seed(mdata, options, s, learners, aligners) for s in seeds]
        else:
            parts = run_seeds_in_processes(
                mdata, options, seeds, learners, aligners, n_jobs, progress
            )
    return as_table(row for part in parts for row in part)


def _check_request(
    mdata: MuData,
    learners: Sequence[str],
    aligners: Sequence[str],
    seeds: Sequence[int],
    options: RunOptions,
) -> tuple[list[str], list[str], list[int], RunOptions]:
    """Validated names and seeds, and the options with the modalities resolved."""
    from ..tl import ALIGNERS

    learners = check_names(learners, LEARNERS, "learner")
    aligners = check_names(aligners, ALIGNERS, "aligner")
    source, target = _resolve_modalities(mdata, options.source, options.target)
    for m in (source, target):
        for what in ("truth_key", "groupby", "label_key"):
            col = getattr(options, what)
            if col is not None:
                obs_column(mdata, m, col, what, "pass the benchmark the right column.")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("Give at least one seed.")
    _check_kwargs(options.learner_kwargs, learners, "learner")
    _check_kwargs(options.aligner_kwargs, aligners, "aligner")
    truth_pairs(mdata, source, target, options.truth_key)  # fail early without any true pair
    return learners, aligners, seeds, dataclasses.replace(options, source=source, target=target)


def _resolve_modalities(mdata: MuData, source: str | None, target: str | None) -> tuple[str, str]:
    mods = list(mdata.mod)
    if source is None:
        source = mods[0]
    if target is None:
        others = [m for m in mods if m != source]
        if not others:
            raise ValueError(f"The benchmark needs two modalities, mdata has {mods}.")
        target = others[0]
    check_modalities(mdata, [source, target], "groove_sc.benchmark.run")
    if source == target:
        raise ValueError(f"source and target are both '{source}'; pass two different modalities.")
    return source, target


def _check_kwargs(kwargs: Mapping[str, Any], names: Sequence[str], what: str) -> None:
    extra = sorted(set(kwargs) - set(names))
    if extra:
        raise KeyError(
            f"{what}_kwargs names {extra}, which are not among the requested {what}s {list(names)}."
        )
