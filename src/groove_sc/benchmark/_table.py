"""The results table: its columns, the direction of each metric, and the rows of one seed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: Columns of the tidy result table, in order (sweeps add the simulation parameters first).
COLUMNS = [
    "learner",
    "aligner",
    "seed",
    "tuning",
    "epsilon",
    "metric",
    "value",
    "fit_seconds",
    "align_seconds",
    "status",
    "error",
]

#: ``aligner`` value of rows scoring the learner alone: its shared latent ...
LATENT = "latent"
#: ... and its decoders' imputation (GROOVE variants).
DECODER = "decoder"
#: ``tuning`` value of rows that involve no aligner hyper-parameter.
NO_TUNING = "n/a"

_LOWER_IS_BETTER = ("foscttm", "mse", "seconds", "frac_unmatched")
_FLOAT_COLUMNS = ("epsilon", "value", "fit_seconds", "align_seconds")


def lower_is_better(metric: str) -> bool:
    """Whether smaller values of ``metric`` are better (FOSCTTM, MSE, seconds).

    Examples
    --------
    >>> lower_is_better("foscttm_barycentric"), lower_is_better("trace")
    (True, False)

    """
    return any(tag in metric for tag in _LOWER_IS_BETTER)


def error_text(exc: BaseException) -> str:
    """The ``error`` column's text of an exception.

    Examples
    --------
    >>> error_text(ValueError("no labels"))
    'ValueError: no labels'

    """
    return f"{type(exc).__name__}: {exc}".strip()


class Rows:
    """The rows of one seed, one dict per row with every column of :data:`COLUMNS`.

    Examples
    --------
    >>> rows = Rows(seed=0)
    >>> rows.add_scores("pca", "egw", {"trace": 0.5}, tuning="default")
    >>> rows.add_each("pca", ["leot"], ["default"], status="skipped", error="no shared space")
    >>> as_table(rows.rows)[["aligner", "metric", "value", "status"]]
      aligner metric  value   status
    0     egw  trace    0.5       ok
    1    leot           NaN  skipped

    """

    def __init__(self, seed: int):
        self.seed = seed
        self.rows: list[dict[str, Any]] = []

    def add(self, learner: str, aligner: str, **values: Any) -> None:
        """One row; columns not given are NaN (numbers) or as for a successful row."""
        row = dict.fromkeys(COLUMNS, np.nan)
        row.update(
            learner=learner, aligner=aligner, seed=self.seed, metric="", status="ok", error=""
        )
        row.update(values)
        self.rows.append(row)

    def add_scores(
        self, learner: str, aligner: str, scores: Mapping[str, float], **values: Any
    ) -> None:
        """One row per metric of ``scores``."""
        for metric, value in scores.items():
            self.add(learner, aligner, metric=metric, value=float(value), **values)

    def add_each(
        self, learner: str, aligners: Iterable[str], tunings: Sequence[str], **values: Any
    ) -> None:
        """One row per aligner and tuning mode (a skip or a failure of them all)."""
        for aligner in aligners:
            for tuning in tunings:
                self.add(learner, aligner, tuning=tuning, **values)


def as_table(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The result table of some rows, with the columns in order and their dtypes set.

    Examples
    --------
    >>> list(as_table([]).columns) == COLUMNS
    True

    """
    out = pd.DataFrame(list(rows), columns=COLUMNS)
    out["seed"] = out["seed"].astype(int)
    for col in _FLOAT_COLUMNS:
        out[col] = out[col].astype(float)
    return out
