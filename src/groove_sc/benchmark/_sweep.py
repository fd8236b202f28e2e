"""Resumable sweeps: benchmark results appended to one CSV, unit by unit."""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mudata import MuData

from ._options import OPTION_NAMES
from ._progress import logger, show_progress
from ._registry import LEARNERS, check_names
from ._run import run
from ._table import COLUMNS

#: Columns a sweep puts before :data:`COLUMNS`.
SWEEP_COLUMNS = ["dataset", "shared_fraction"]
_ROUND = 6


def read_results(path: str | Path) -> pd.DataFrame:
    """Read a results CSV written by a sweep (empty table with the columns if absent).

    Examples
    --------
    >>> read_results("no_such_file.csv").columns[:4].tolist()
    ['dataset', 'shared_fraction', 'learner', 'aligner']

    """
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=SWEEP_COLUMNS + COLUMNS)
    df = pd.read_csv(path, keep_default_na=False, na_values=["", "nan", "NaN"])
    for col in ("error", "dataset", "metric", "status", "tuning", "aligner", "learner"):
        if col in df:
            df[col] = df[col].fillna("").astype(str)
    return df


def _done(df: pd.DataFrame) -> set[tuple[str, float, int, str]]:
    if df.empty:
        return set()
    frac = pd.to_numeric(df["shared_fraction"], errors="coerce").round(_ROUND)
    return set(
        zip(
            df["dataset"].astype(str),
            frac.fillna(-1.0),
            df["seed"].astype(int),
            df["learner"].astype(str),
        )
    )


def _append(path: Path, df: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = not path.exists() or path.stat().st_size == 0
    df[SWEEP_COLUMNS + COLUMNS].to_csv(path, mode="a", header=header, index=False)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What every unit of a sweep shares."""

    load: Callable[[str, float | None, int], MuData]
    aligners: Sequence[str]
    learner_kwargs: Mapping[str, Mapping[str, Any]]
    variants: Mapping[str, Mapping[str, Any]]
    start: float
    progress: bool
    threads: int | None
    run_kwargs: Mapping[str, Any]


def _run_unit(
    plan: _Plan,
    unit: tuple[str, float | None, int],
    todo: Sequence[str],
    where: str,
    append_to: Path | None,
) -> pd.DataFrame:
    """All pending learners of one unit; appends each learner's rows when ``append_to``."""
    if plan.threads:
        import torch

        torch.set_num_threads(int(plan.threads))
    dataset, fraction, seed = unit
    mdata = plan.load(dataset, fraction, int(seed))
    parts = []
    with show_progress(plan.progress):
        for j, learner in enumerate(todo, 1):
            elapsed = time.time() - plan.start
            logger.info(
                "%s learner %s (%d/%d), %.0f s elapsed", where, learner, j, len(todo), elapsed
            )
            base, kw = _resolve_learner(learner, plan.learner_kwargs, plan.variants)
            res = run(
                mdata,
                [base],
                plan.aligners,
                seeds=[int(seed)],
                learner_kwargs={base: kw} if kw else None,
                progress=plan.progress,
                **plan.run_kwargs,
            )
            res["learner"] = learner
            res.insert(0, "shared_fraction", np.nan if fraction is None else float(fraction))
            res.insert(0, "dataset", dataset)
            if append_to is not None:
                _append(append_to, res)
            parts.append(res)
    return pd.concat(parts, ignore_index=True)


def _resolve_learner(
    name: str,
    learner_kwargs: Mapping[str, Mapping[str, Any]],
    variants: Mapping[str, Mapping[str, Any]],
) -> tuple[str, dict[str, Any]]:
    """Registered learner and keyword arguments of a learner or variant name."""
    if name not in variants:
        return name, dict(learner_kwargs.get(name, {}))
    spec = dict(variants[name])
    base = spec.pop("learner")
    return base, {**learner_kwargs.get(base, {}), **learner_kwargs.get(name, {}), **spec}


def check_variants(
    variants: Mapping[str, Mapping[str, Any]] | None,
) -> dict[str, dict[str, Any]]:
    """Validate learner variants: ``{name: {"learner": registered name, **kwargs}}``.

    A variant is a registered learner run under its own name with other keyword arguments
    (``groove_tau0.05: {learner: groove, temperature: 0.05}``), so that one sweep compares
    settings of one learner.

    Examples
    --------
    >>> check_variants({"groove_b1": {"learner": "groove", "beta": 1.0}})["groove_b1"]["beta"]
    1.0

    """
    out = {}
    for name, spec in (variants or {}).items():
        if not isinstance(spec, Mapping) or "learner" not in spec:
            raise ValueError(
                f"Learner variant '{name}' must be a mapping with a 'learner' entry naming a "
                f"registered learner, e.g. {{learner: groove, beta: 1.0}}; got {spec!r}."
            )
        if name in LEARNERS:
            raise ValueError(
                f"Learner variant '{name}' has the name of a registered learner; rename it."
            )
        check_names([spec["learner"]], LEARNERS, "learner")
        out[str(name)] = dict(spec)
    return out


def _pending(
    units: Sequence[tuple[str, float | None, int]],
    learners: Sequence[str],
    done: pd.DataFrame,
    out_csv: Path,
) -> list[tuple[tuple[str, float | None, int], list[str], str]]:
    """Units with learners not yet in the results: ``(unit, learners to run, progress label)``."""
    done_keys = _done(done)
    jobs = []
    for i, (dataset, fraction, seed) in enumerate(units, 1):
        frac_key = -1.0 if fraction is None else round(float(fraction), _ROUND)
        todo = [name for name in learners if (dataset, frac_key, int(seed), name) not in done_keys]
        where = f"[{i}/{len(units)}] {dataset}" + (
            "" if fraction is None else f" shared_fraction={fraction:g}"
        )
        where += f" seed={seed}"
        if not todo:
            logger.info("%s: already in %s, skipped", where, out_csv)
            continue
        jobs.append(((dataset, fraction, int(seed)), todo, where))
    return jobs


def _check_run_kwargs(run_kwargs: Mapping[str, Any]) -> None:
    unknown = sorted(set(run_kwargs) - set(OPTION_NAMES))
    if unknown:
        raise TypeError(
            f"{unknown} are not options of groove_sc.benchmark.run; the options passed on "
            f"are {list(OPTION_NAMES)}."
        )


def run_units(
    out_csv: str | Path,
    units: Sequence[tuple[str, float | None, int]],
    load: Callable[[str, float | None, int], MuData],
    learners: Sequence[str],
    aligners: Sequence[str],
    *,
    learner_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    variants: Mapping[str, Mapping[str, Any]] | None = None,
    n_jobs: int = 1,
    threads: int | None = None,
    progress: bool = True,
    **run_kwargs: Any,
) -> pd.DataFrame:
    """Run :func:`run` for each (dataset, shared_fraction, seed) unit and learner, appending.

    A (dataset, shared_fraction, seed, learner) already in ``out_csv`` (whatever its status) is
    skipped, so an interrupted sweep resumes where it stopped; a unit whose learners are all done
    is not even loaded. Delete rows (or the file) to recompute them.

    Parameters
    ----------
    out_csv
        Results file (created, or appended to).
    units
        ``(dataset name, shared_fraction or None, seed)``.
    load
        ``load(dataset, shared_fraction, seed) -> MuData``.
    learners, aligners, learner_kwargs
        As in :func:`run`; ``learners`` may also name ``variants``.
    variants
        Learner variants, ``{name: {"learner": registered name, **kwargs}}`` (see
        :func:`check_variants`): rows carry the variant's name.
    n_jobs
        Units run in parallel processes (joblib); with 1, rows are appended after every
        learner, otherwise after every unit, as units finish.
    threads
        Torch threads per process (default: leave as is); with ``n_jobs`` processes, ``threads``
        of 1 avoids oversubscribing the cores.
    progress
        Show progress lines (see :func:`run`).
    **run_kwargs
        Options of :class:`RunOptions` (``tuning``, ``groupby``...), passed to :func:`run`
        (not ``seeds``: each unit runs its own seed).

    Returns
    -------
    The whole results file after the sweep.

    Examples
    --------
    >>> import tempfile
    >>> def load(dataset, fraction, seed):
    ...     return mdata
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     res = run_units(f"{tmp}/res.csv", [("sim", None, 0)], load, ["labels"], ["egw"],
    ...                     progress=False)
    >>> res[["dataset", "learner", "aligner"]].drop_duplicates().values.tolist()
    [['sim', 'labels', 'latent'], ['sim', 'labels', 'egw']]

    """
    variants = check_variants(variants)
    learners = check_names(learners, {**LEARNERS, **variants}, "learner")
    _check_run_kwargs(run_kwargs)
    out_csv = Path(out_csv)
    plan = _Plan(
        load,
        aligners,
        dict(learner_kwargs or {}),
        variants,
        time.time(),
        progress,
        threads,
        run_kwargs,
    )
    with show_progress(progress):
        jobs = _pending(units, learners, read_results(out_csv), out_csv)
    if n_jobs == 1 or len(jobs) <= 1:
        for unit, todo, where in jobs:
            _run_unit(plan, unit, todo, where, out_csv)
    else:
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
        for res in parallel(
            delayed(_run_unit)(plan, unit, todo, where, None) for unit, todo, where in jobs
        ):
            _append(out_csv, res)
    return read_results(out_csv)


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def simulation_settings(
    vary: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]] | None,
) -> dict[str, dict[str, Any]]:
    """Dataset name -> extra :func:`~groove_sc.datasets.simulate` arguments of a sweep's ``vary``.

    Examples
    --------
    >>> list(simulation_settings({"label_noise": [0.0, 0.2]}))
    ['simulate[label_noise=0]', 'simulate[label_noise=0.2]']
    >>> simulation_settings(None)
    {'simulate': {}}

    """
    if not vary:
        return {"simulate": {}}
    if isinstance(vary, Mapping):
        keys = list(vary)
        for key in keys:
            if isinstance(vary[key], str) or not isinstance(vary[key], Sequence):
                raise ValueError(
                    f"vary['{key}'] must be a list of values to sweep; got {vary[key]!r}."
                )
        combos = [dict(zip(keys, values)) for values in itertools.product(*vary.values())]
    else:
        combos = [dict(c) for c in vary]
    out = {}
    for combo in combos:
        label = ",".join(f"{k}={_fmt(v)}" for k, v in combo.items())
        out[f"simulate[{label}]"] = combo
    return out


def run_sweep(
    out_csv: str | Path,
    learners: Sequence[str],
    aligners: Sequence[str],
    shared_fractions: Sequence[float] = (0.2, 0.5, 0.8),
    seeds: Sequence[int] = (0, 1, 2),
    simulation: Mapping[str, Any] | None = None,
    *,
    vary: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]] | None = None,
    progress: bool = True,
    **run_kwargs: Any,
) -> pd.DataFrame:
    """Benchmark over simulations ``shared_fraction`` x seeds, appended to one resumable CSV.

    Each (shared_fraction, seed) simulates ``gs.datasets.simulate(shared_fraction=f, seed=s,
    paired=True, **simulation)`` (so fractions share every random draw at a seed, see
    :func:`groove_sc.datasets.simulate_sweep`) and runs :func:`run` with ``seeds=[s]``: the seed
    drives both the data and the learners. Rows carry ``dataset="simulate"`` and
    ``shared_fraction``.

    Parameters
    ----------
    out_csv
        Results file; rows already there are not recomputed (see :func:`run_units`).
    learners, aligners
        As in :func:`run`.
    shared_fractions, seeds
        The grid.
    simulation
        Other arguments of :func:`groove_sc.datasets.simulate` (``n_perturbations``,
        ``cells_per_perturbation``, ``n_features``...).
    vary
        Further simulation settings to sweep, each on top of ``simulation``: a mapping of
        argument to values (every combination, ``{"label_noise": [0, 0.2]}``) or a list of
        settings (``[{"n_perturbations": 200, "cells_per_perturbation": 10}, ...]``). Rows carry
        ``dataset="simulate[label_noise=0.2]"``; without ``vary``, ``dataset="simulate"``.
    progress, **run_kwargs
        As in :func:`run_units` (``variants``, ``n_jobs``, ``threads``, ``learner_kwargs``,
        ``aligner_kwargs``, ``tuning`` and the other options of :class:`RunOptions`).

    Returns
    -------
    The whole results file after the sweep, as :func:`read_results` reads it.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     res = gs.benchmark.run_sweep(
    ...         f"{tmp}/sweep.csv", ["labels"], ["egw"], shared_fractions=[0.2, 0.8], seeds=[0],
    ...         simulation={"n_perturbations": 3, "cells_per_perturbation": 10}, progress=False)
    >>> sorted(set(res["shared_fraction"]))
    [0.2, 0.8]

    """
    from ..datasets import simulate

    sim = dict(simulation or {})
    settings = simulation_settings(vary)
    for bad in ("shared_fraction", "seed", "paired"):
        if bad in sim or any(bad in extra for extra in settings.values()):
            raise ValueError(f"simulation must not set '{bad}': the sweep sets it.")

    def load(dataset: str, fraction: float | None, seed: int) -> MuData:
        kwargs = {**sim, **settings[dataset]}
        return simulate(shared_fraction=fraction, seed=seed, paired=True, **kwargs)

    units = [(name, float(f), int(s)) for name in settings for s in seeds for f in shared_fractions]
    return run_units(out_csv, units, load, learners, aligners, progress=progress, **run_kwargs)
