"""Columns of the benchmark table and the direction of each metric."""

from __future__ import annotations

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


def lower_is_better(metric: str) -> bool:
    """Whether smaller values of ``metric`` are better (FOSCTTM, MSE, seconds).

    Examples
    --------
    >>> lower_is_better("foscttm_barycentric"), lower_is_better("trace")
    (True, False)

    """
    return any(tag in metric for tag in _LOWER_IS_BETTER)
