"""Summaries of a results table: mean and spread per combination, and the winners."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ._table import NO_TUNING, lower_is_better


def summarize(
    results: pd.DataFrame,
    metric: str,
    tuning: str = "default",
    by: Sequence[str] = ("shared_fraction",),
) -> pd.DataFrame:
    """Mean, standard deviation and number of seeds of ``metric`` per learner x aligner.

    Parameters
    ----------
    results
        Table from :func:`groove_sc.benchmark.run` or ``run_sweep``.
    metric
        Metric to summarise.
    tuning
        Epsilon choice to keep (learner-only rows, tuning ``"n/a"``, are always kept).
    by
        Further grouping columns present in ``results`` (e.g. ``shared_fraction``); absent
        ones are ignored.

    Returns
    -------
    DataFrame with the ``by`` columns, ``learner``, ``aligner``, ``mean``, ``std``, ``n``,
    sorted best first within each ``by`` group.

    Examples
    --------
    >>> res = pd.DataFrame({"learner": ["a", "a", "b", "b"], "aligner": "egw", "seed": [0, 1] * 2,
    ...                     "tuning": "default", "metric": "trace", "status": "ok",
    ...                     "value": [0.2, 0.4, 0.1, 0.1]})
    >>> gs.benchmark.summarize(res, "trace", by=())
      learner aligner  mean       std  n
    0       a     egw   0.3  0.141421  2
    1       b     egw   0.1  0.000000  2

    """
    keys = [c for c in by if c in results.columns]
    ok = results[(results["status"] == "ok") & (results["metric"] == metric)]
    ok = ok[ok["tuning"].isin([tuning, NO_TUNING])]
    if ok.empty:
        raise ValueError(f"No successful rows of metric '{metric}' with tuning '{tuning}'.")
    out = (
        ok.groupby([*keys, "learner", "aligner"])["value"]
        .agg(mean="mean", std="std", n="count")
        .reset_index()
    )
    ascending = lower_is_better(metric)
    return out.sort_values([*keys, "mean"], ascending=[True] * len(keys) + [ascending])


def winners(
    results: pd.DataFrame,
    metric: str,
    tuning: str = "default",
    by: Sequence[str] = ("shared_fraction",),
    learners: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The best learner x aligner (by mean over seeds) in each ``by`` group, with the runner-up.

    Parameters
    ----------
    results, metric, tuning, by
        As in :func:`summarize`.
    learners
        Restrict the competition to these learners.

    Returns
    -------
    One row per group: ``best``, ``best_mean``, ``best_std``, ``second``, ``second_mean``
    (``None``/NaN when there is no runner-up).

    Examples
    --------
    >>> res = pd.DataFrame({"learner": ["a", "a", "b", "b"], "aligner": "egw", "seed": [0, 1] * 2,
    ...                     "tuning": "default", "metric": "trace", "status": "ok",
    ...                     "value": [0.2, 0.4, 0.1, 0.1]})
    >>> gs.benchmark.winners(res, "trace", by=())[["best", "best_mean", "second"]]
          best  best_mean   second
    0  a + egw        0.3  b + egw

    """
    summary = summarize(results, metric, tuning, by)
    if learners is not None:
        summary = summary[summary["learner"].isin(list(learners))]
    keys = [c for c in by if c in summary.columns]
    rows = []
    groups = summary.groupby(keys, sort=True) if keys else [((), summary)]
    for key, sub in groups:
        top = sub.head(2).reset_index(drop=True)
        row = dict(zip(keys, np.atleast_1d(key)))
        row["best"] = f"{top.loc[0, 'learner']} + {top.loc[0, 'aligner']}"
        row["best_mean"], row["best_std"] = top.loc[0, "mean"], top.loc[0, "std"]
        row["second"], row["second_mean"] = None, np.nan
        if len(top) > 1:
            row["second"] = f"{top.loc[1, 'learner']} + {top.loc[1, 'aligner']}"
            row["second_mean"] = top.loc[1, "mean"]
        rows.append(row)
    return pd.DataFrame(rows)
