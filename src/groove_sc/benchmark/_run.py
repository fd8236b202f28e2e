"""``benchmark.run``: every learner x every aligner x every seed, scored in one tidy table."""

from __future__ import annotations

import random
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from mudata import MuData

from .._mudata import check_modalities, extract_block
from ..metrics import truth_pairs
from ._columns import COLUMNS, DECODER, LATENT, NO_TUNING, lower_is_better
from ._groove import quiet_training
from ._registry import LEARNERS, Learner, check_names
from ._scores import (
    barycentric_prediction,
    decoder_prediction,
    imputation_scores,
    latent_scores,
    matching_scores,
)
from ._tuning import (
    CV_COLUMN,
    DEFAULT_EPSILON_FACTORS,
    candidate_epsilons,
    choose_oracle,
    choose_truth_free,
    heldout_group_score,
)
from ._views import blind_view, dense, light_view

Tuning = Literal["default", "truth_free", "oracle"]
TUNINGS: tuple[str, ...] = ("default", "truth_free", "oracle")
_KEY = "_groove_benchmark"


def seed_everything(seed: int) -> None:
    """Seed Python, numpy, torch and scvi-tools (Lightning) with one value.

    Examples
    --------
    >>> seed_everything(0)

    """
    import scvi
    import torch

    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - third-party code may draw from the global state
    torch.manual_seed(seed)
    with quiet_training():
        scvi.settings.seed = seed


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


@dataclass
class _Context:
    """Everything one seed's runs share."""

    mdata: MuData | None
    source: str
    target: str
    groupby: str | None
    truth_key: str
    label_key: str | None
    target_rep: str | None
    seed: int
    tuning: list[str]
    epsilon_factors: Sequence[float]
    cv_folds: int
    tuning_tol: float
    tuning_criterion: str
    tune_aligners: set[str] | None
    oracle_metric: str
    learner_kwargs: Mapping[str, Mapping[str, Any]]
    aligner_kwargs: Mapping[str, Mapping[str, Any]]
    log: Callable[[str], None]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, learner: str, aligner: str, **values: Any) -> None:
        row = dict.fromkeys(COLUMNS, np.nan)
        row.update(
            learner=learner, aligner=aligner, seed=self.seed, metric="", status="ok", error=""
        )
        row.update(values)
        self.rows.append(row)

    def add_scores(self, learner: str, aligner: str, scores: Mapping[str, float], **values):
        for metric, value in scores.items():
            self.add(learner, aligner, metric=metric, value=float(value), **values)


def _check_learner_output(blind: MuData, key: str, spec: Learner) -> None:
    dims = set()
    for m, adata in blind.mod.items():
        if key not in adata.obsm:
            raise ValueError(f"learner '{spec.name}' wrote no obsm['{key}'] in modality '{m}'.")
        z = np.asarray(adata.obsm[key])
        if z.ndim != 2 or z.shape[0] != adata.n_obs or not np.isfinite(z).all():
            raise ValueError(
                f"learner '{spec.name}' wrote obsm['{key}'] of shape {z.shape} in '{m}' with "
                f"{adata.n_obs} cells (2-d, one finite row per cell expected)."
            )
        dims.add(z.shape[1])
    if spec.shared_space and len(dims) != 1:
        raise ValueError(
            f"learner '{spec.name}' declares a shared space but wrote dimensions {sorted(dims)}."
        )


def _set_cv_labels(blind: MuData, mods: Sequence[str], groupby: str, mapping) -> None:
    for m in mods:
        obs = blind.mod[m].obs
        if mapping is None:
            obs.drop(columns=CV_COLUMN, inplace=True, errors="ignore")
        else:
            merged = obs[groupby].astype("object").map(mapping)
            obs[CV_COLUMN] = pd.Categorical(merged)


class _Cell:
    """One learner x aligner on one seed: aligns at requested epsilons, caches the scores."""

    def __init__(self, ctx: _Context, blind: MuData, scoring: MuData, key: str, aligner: str):
        from ..tl import ALIGNERS

        self.ctx, self.blind, self.scoring, self.key = ctx, blind, scoring, key
        self.aligner = aligner
        self.spec = ALIGNERS[aligner]
        kwargs = dict(ctx.aligner_kwargs.get(aligner, {}))
        self.fixed_epsilon = kwargs.pop("epsilon", None)
        self.groupby = kwargs.pop("groupby", ctx.groupby)
        if self.spec.labels == "ignored":
            self.groupby = None
        self.kwargs = kwargs
        self.cache: dict[float | None, tuple[dict[str, float], float, float]] = {}
        self.spent = 0.0  # seconds of alignments since the last reset

    def _align(self, epsilon: float | None, groupby: str | None, key: str) -> float:
        from ..tl import align

        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            align(
                self.blind,
                self.ctx.source,
                self.ctx.target,
                use_rep=self.key,
                method=self.aligner,
                groupby=groupby,
                epsilon=epsilon,
                key_added=key,
                **self.kwargs,
            )
        seconds = time.perf_counter() - t0
        self.spent += seconds
        return seconds

    def full(self, epsilon: float | None) -> tuple[dict[str, float], float, float]:
        """Scores, seconds and relative epsilon of the alignment at ``epsilon`` (all cells)."""
        if epsilon in self.cache:
            return self.cache[epsilon]
        ctx, key = self.ctx, _KEY
        seconds = self._align(epsilon, self.groupby, key)
        meta = self.blind.uns[key]
        eps_rel = float(meta.get("parameters", {}).get("epsilon_relative", np.nan))
        converged = float(bool(meta.get("convergence", {}).get("converged", True)))
        self.scoring.obsp[key] = self.blind.obsp[key]
        self.scoring.uns[key] = meta
        try:
            scores = matching_scores(
                self.scoring, key, ctx.truth_key, ctx.label_key, ctx.target_rep
            )
            x_target = dense(self.scoring.mod[ctx.target].X)
            src, tgt = truth_pairs(self.scoring, ctx.source, ctx.target, ctx.truth_key)
            pred = barycentric_prediction(self.scoring, key, ctx.source, ctx.target, x_target)
            scores.update(imputation_scores(pred[src], x_target[tgt]))
            scores["converged"] = converged
        finally:
            for view in (self.blind, self.scoring):
                del view.obsp[key]
                del view.uns[key]
        out = (scores, seconds, eps_rel)
        self.cache[epsilon] = out
        if np.isfinite(eps_rel):
            self.cache.setdefault(eps_rel, out)
        return out

    def cv_score(self, epsilon: float) -> float:
        """Truth-free held-out-group score of one candidate epsilon."""
        ctx, mods = self.ctx, (self.ctx.source, self.ctx.target)
        key = _KEY + "_cv"

        def align_at(groupby: str | None):
            self._align(epsilon, groupby if self.groupby is not None else None, key)
            try:
                return extract_block(self.blind, key, ctx.source, ctx.target)
            finally:
                del self.blind.obsp[key]
                del self.blind.uns[key]

        labels = {m: self.blind.mod[m].obs[ctx.groupby] for m in mods}
        return heldout_group_score(
            align_at,
            labels[ctx.source],
            labels[ctx.target],
            lambda mapping: _set_cv_labels(self.blind, mods, ctx.groupby, mapping),
            labeled=self.groupby is not None,
            n_folds=ctx.cv_folds,
            seed=ctx.seed,
            criterion=ctx.tuning_criterion,
            y_target=dense(self.blind.mod[ctx.target].X),
        )

    def tuned(self, tuning: str) -> tuple[dict[str, float], float, float]:
        """Scores, seconds and relative epsilon of one tuning mode.

        The seconds of a tuned row are the cost of the whole procedure: the held-out-group
        alignments plus the final one (truth-free), or every candidate's alignment (oracle).
        Aligners without an epsilon, or not in ``tune_aligners``, keep their default row.
        """
        untuned = self.ctx.tune_aligners is not None and self.aligner not in self.ctx.tune_aligners
        if tuning == "default" or untuned:
            return self.full(self.fixed_epsilon)
        default = self.full(None)[2]
        if not np.isfinite(default):
            return self.full(None)
        candidates = candidate_epsilons(default, self.ctx.epsilon_factors)
        if tuning == "truth_free":
            if self.ctx.groupby is None:
                raise ValueError("truth-free tuning needs labels (groupby).")
            self.spent, scores = 0.0, []
            for c in candidates:
                try:
                    scores.append(self.cv_score(c))
                except Exception:  # noqa: BLE001 - a failing candidate is just not chosen
                    scores.append(np.nan)
            cost = self.spent
            chosen = choose_truth_free(candidates, scores, self.ctx.tuning_tol)
        else:
            values, cost = [], 0.0
            for c in candidates:
                try:
                    res, seconds, _ = self.full(c)
                    values.append(res.get(self.ctx.oracle_metric, np.nan))
                    cost += seconds
                except Exception:  # noqa: BLE001
                    values.append(np.nan)
            chosen = choose_oracle(candidates, values, lower_is_better(self.ctx.oracle_metric))
        if not np.isfinite(chosen):
            raise RuntimeError(f"no candidate epsilon of {candidates} could be scored.")
        scores_, seconds, eps_rel = self.full(chosen)
        return scores_, (cost + seconds if tuning == "truth_free" else cost), eps_rel


def needs_shared_space(aligner: str) -> bool:
    """Whether an aligner needs a shared space: linear OT, or a fused cost (``fused_rep``).

    Examples
    --------
    >>> needs_shared_space("leot"), needs_shared_space("egw")  # doctest: +SKIP
    (True, False)

    """
    from ..tl import ALIGNERS

    spec = ALIGNERS[aligner]
    return bool(spec.shared_rep) or "fused_rep" in spec.keyword_names()


def _skip_reason(learner: Learner, aligner: str, groupby: str | None) -> str | None:
    from ..tl import ALIGNERS

    spec = ALIGNERS[aligner]
    if needs_shared_space(aligner) and not learner.shared_space:
        return (
            f"aligner '{aligner}' needs a shared space; learner '{learner.name}' gives one "
            "space per modality"
        )
    if spec.labels == "required" and groupby is None:
        return f"aligner '{aligner}' needs labels (groupby)"
    return None


def _run_aligners(
    ctx: _Context, spec: Learner, blind: MuData, scoring: MuData, key: str, aligners, fit_s
):
    for aligner in aligners:
        reason = _skip_reason(spec, aligner, ctx.groupby)
        if reason is not None:
            for tuning in ctx.tuning:
                ctx.add(spec.name, aligner, tuning=tuning, status="skipped", error=reason)
            continue
        cell = _Cell(ctx, blind, scoring, key, aligner)
        for tuning in ctx.tuning:
            try:
                scores, seconds, eps_rel = cell.tuned(tuning)
            except Exception as exc:  # noqa: BLE001 - recorded, the grid goes on
                ctx.add(
                    spec.name,
                    aligner,
                    tuning=tuning,
                    fit_seconds=fit_s,
                    status="error",
                    error=_error_text(exc),
                )
                ctx.log(f"  {aligner} ({tuning}): ERROR {_error_text(exc)}")
                continue
            ctx.add_scores(
                spec.name,
                aligner,
                scores,
                tuning=tuning,
                epsilon=eps_rel,
                fit_seconds=fit_s,
                align_seconds=seconds,
            )
            ctx.log(
                f"  {aligner} ({tuning}, eps={eps_rel:.3g}): {seconds:.2f} s, FOSCTTM "
                f"{scores.get('foscttm_barycentric', np.nan):.4f}"
            )


def _scoring_obs(ctx: _Context) -> list[str]:
    return [k for k in (ctx.groupby, ctx.truth_key, ctx.label_key) if k]


def _scoring_obsm(ctx: _Context) -> list[str]:
    rep = ctx.target_rep
    return [rep] if isinstance(rep, str) and rep != "X" else []


def _run_learner(ctx: _Context, name: str, aligners: Sequence[str]) -> None:
    spec = LEARNERS[name]
    unavailable = spec.unavailable_reason()
    if unavailable is not None:
        ctx.log(f"{name}: skipped ({unavailable})")
        for aligner in aligners:
            for tuning in ctx.tuning:
                ctx.add(name, aligner, tuning=tuning, status="skipped", error=unavailable)
        return
    mods = [ctx.source, ctx.target]
    blind = blind_view(ctx.mdata, mods, ctx.groupby)
    scoring = light_view(ctx.mdata, mods, _scoring_obs(ctx), _scoring_obsm(ctx))
    key = f"X_{name}"
    seed_everything(ctx.seed)
    t0 = time.perf_counter()
    try:
        info = spec(
            blind, key, groupby=ctx.groupby, seed=ctx.seed, **ctx.learner_kwargs.get(name, {})
        )
        _check_learner_output(blind, key, spec)
    except Exception as exc:  # noqa: BLE001 - recorded, the other learners go on
        text = _error_text(exc)
        ctx.log(f"{name}: ERROR {text}")
        for aligner in aligners:
            for tuning in ctx.tuning:
                ctx.add(name, aligner, tuning=tuning, status="error", error=f"learner: {text}")
        return
    fit_s = time.perf_counter() - t0
    ctx.log(f"{name}: fit {fit_s:.1f} s")
    src, tgt = truth_pairs(scoring, ctx.source, ctx.target, ctx.truth_key)
    common = {"tuning": NO_TUNING, "fit_seconds": fit_s}
    if spec.shared_space:
        z_s = np.asarray(blind.mod[ctx.source].obsm[key])[src]
        z_t = np.asarray(blind.mod[ctx.target].obsm[key])[tgt]
        ctx.add_scores(name, LATENT, latent_scores(z_s, z_t), **common)
    try:
        pred = decoder_prediction(info, ctx.source, ctx.target)
        if pred is not None:
            truth = dense(scoring.mod[ctx.target].X)[tgt]
            ctx.add_scores(name, DECODER, imputation_scores(pred[src], truth), **common)
    except Exception as exc:  # noqa: BLE001
        ctx.add(name, DECODER, status="error", error=_error_text(exc), **common)
    info.pop("model", None)
    _run_aligners(ctx, spec, blind, scoring, key, aligners, fit_s)


def _run_seed(ctx: _Context, learners: Sequence[str], aligners: Sequence[str]) -> list[dict]:
    ctx.log(f"seed {ctx.seed}")
    for name in learners:
        _run_learner(ctx, name, aligners)
    return ctx.rows


def _run_seed_from_file(path: str, ctx: _Context, learners, aligners) -> list[dict]:
    import mudata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ctx.mdata = mudata.read_h5mu(path)
    return _run_seed(ctx, learners, aligners)


def _run_seeds_in_processes(contexts: list[_Context], learners, aligners, n_jobs: int):
    """Seeds in joblib processes; the data travel as an ``.h5mu`` of the needed columns only."""
    import tempfile
    from pathlib import Path

    from joblib import Parallel, delayed

    ctx0 = contexts[0]
    view = light_view(
        ctx0.mdata, [ctx0.source, ctx0.target], _scoring_obs(ctx0), _scoring_obsm(ctx0)
    )
    with tempfile.TemporaryDirectory(prefix="groove_bench_") as tmp:
        path = str(Path(tmp) / "data.h5mu")
        view.write(path)
        for ctx in contexts:
            ctx.mdata = None
        return Parallel(n_jobs=n_jobs)(
            delayed(_run_seed_from_file)(path, ctx, learners, aligners) for ctx in contexts
        )


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


def _check_kwargs(kwargs: Mapping | None, names: Sequence[str], what: str) -> dict:
    kwargs = dict(kwargs or {})
    extra = sorted(set(kwargs) - set(names))
    if extra:
        raise KeyError(
            f"{what}_kwargs names {extra}, which are not among the requested {what}s {list(names)}."
        )
    return kwargs


def run(
    mdata: MuData,
    learners: Sequence[str],
    aligners: Sequence[str],
    truth_key: str = "cell_id",
    label_key: str | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    learner_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    aligner_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    n_jobs: int = 1,
    source: str | None = None,
    target: str | None = None,
    groupby: str | None = "perturbation",
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
    truth_key
        Shared cell id of the two views of one cell (scoring only).
    label_key
        Optional secondary label for the label-transfer metrics (scoring only).
    seeds
        One replicate per seed (learners and aligners; the data stay the same).
    learner_kwargs
        Per learner, keyword arguments of its function, e.g.
        ``{"groove": {"max_epochs": 50, "n_latent": 16}}``.
    aligner_kwargs
        Per aligner, keyword arguments of :func:`groove_sc.tl.align` (``epsilon``, ``k``,
        ``alpha``, ``groupby=None`` to run an ``"optional"`` aligner unlabeled...).
    n_jobs
        Seeds run in parallel processes (joblib; the two modalities travel as a temporary
        ``.h5mu``); 1 runs in this process. Processes may use another number of threads, which
        can change float results in the last digits.
    source, target
        Modalities (default: the first two of ``mdata.mod``); couplings are source x target
        and imputation predicts the target's features for source cells.
    groupby
        The label (perturbation) column that learners and label-constrained aligners use.
    tuning
        How the aligners' epsilon is chosen, one mode or several (each gives its own rows,
        marked in the ``tuning`` column): ``"default"`` (the aligner's default, or
        ``aligner_kwargs[a]["epsilon"]``), ``"truth_free"`` (held-out-group cross-validation on
        the labels, see :mod:`groove_sc.benchmark._tuning`) or ``"oracle"`` (the candidate with
        the best ``oracle_metric`` against the truth: an upper bound, not a method). Aligners
        without an epsilon keep their default under every mode (``epsilon`` is NaN).
    epsilon_factors
        Candidates of the tuners, as multiples of the aligner's default epsilon.
    cv_folds
        Folds of merged group pairs in the truth-free criterion.
    tuning_tol
        Truth-free scores within this of the best count as tied (the largest epsilon wins).
    tuning_criterion
        Score of the truth-free choice: ``"barycentric"`` (projections of held-out groups
        land nearer their own group) or ``"mass"`` (coupling mass stays within the held-out
        group); see :mod:`groove_sc.benchmark._tuning`.
    tune_aligners
        Aligners that the ``"truth_free"`` and ``"oracle"`` modes tune (default: all with an
        epsilon); the others keep their default epsilon under every mode.
    oracle_metric
        Metric the oracle optimises (direction from its name).
    target_rep
        Target representation projected by ``foscttm_barycentric`` (default: the target's
        ``.X``, the same for every learner).
    progress
        Print one line per learner and aligner.

    Returns
    -------
    DataFrame with columns ``learner``, ``aligner``, ``seed``, ``tuning``, ``epsilon``, ``metric``,
    ``value``, ``fit_seconds``, ``align_seconds``, ``status`` (``"ok"``, ``"skipped"``,
    ``"error"``) and ``error`` (reason or exception text, empty when ok).

    Examples
    --------
    >>> import groove_sc as gs
    >>> mdata = gs.datasets.simulate(n_perturbations=8, cells_per_perturbation=40, paired=True)
    >>> res = gs.benchmark.run(
    ...     mdata, learners=["pca", "groove"], aligners=["leot", "egw"], seeds=[0],
    ...     learner_kwargs={"groove": {"max_epochs": 20}})  # doctest: +SKIP
    >>> res.query("metric == 'foscttm_barycentric'").pivot_table(
    ...     index="learner", columns="aligner", values="value")  # doctest: +SKIP

    """
    from ..tl import ALIGNERS

    if not isinstance(mdata, MuData):
        raise TypeError(f"benchmark.run needs a MuData, got {type(mdata).__name__}.")
    learners = check_names(learners, LEARNERS, "learner")
    aligners = check_names(aligners, ALIGNERS, "aligner")
    source, target = _resolve_modalities(mdata, source, target)
    modes = [tuning] if isinstance(tuning, str) else list(dict.fromkeys(tuning))
    bad = [t for t in modes if t not in TUNINGS]
    if bad or not modes:
        raise ValueError(f"tuning must be among {list(TUNINGS)}, got {modes}.")
    for m in (source, target):
        for col, what in ((truth_key, "truth_key"), (groupby, "groupby"), (label_key, "label_key")):
            if col is not None and col not in mdata.mod[m].obs:
                raise KeyError(
                    f"{what}='{col}' is not a column of mdata['{m}'].obs (columns: "
                    f"{list(mdata.mod[m].obs.columns)})."
                )
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("Give at least one seed.")
    lkw = _check_kwargs(learner_kwargs, learners, "learner")
    akw = _check_kwargs(aligner_kwargs, aligners, "aligner")
    truth_pairs(mdata, source, target, truth_key)  # fail early without any true pair

    def log(msg: str) -> None:
        if progress:
            print(f"[groove-sc benchmark] {msg}", flush=True)

    contexts = [
        _Context(
            mdata=mdata,
            source=source,
            target=target,
            groupby=groupby,
            truth_key=truth_key,
            label_key=label_key,
            target_rep=target_rep,
            seed=s,
            tuning=modes,
            epsilon_factors=tuple(epsilon_factors),
            cv_folds=int(cv_folds),
            tuning_tol=float(tuning_tol),
            tuning_criterion=tuning_criterion,
            tune_aligners=None if tune_aligners is None else set(tune_aligners),
            oracle_metric=oracle_metric,
            learner_kwargs=lkw,
            aligner_kwargs=akw,
            log=log,
        )
        for s in seeds
    ]
    if n_jobs == 1 or len(seeds) == 1:
        parts = [_run_seed(ctx, learners, aligners) for ctx in contexts]
    else:
        parts = _run_seeds_in_processes(contexts, learners, aligners, n_jobs)
    rows = [row for part in parts for row in part]
    out = pd.DataFrame(rows, columns=COLUMNS)
    out["seed"] = out["seed"].astype(int)
    for col in ("epsilon", "value", "fit_seconds", "align_seconds"):
        out[col] = out[col].astype(float)
    return out
