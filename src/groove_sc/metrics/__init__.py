"""Metrics for matching (FOSCTTM, coupling accuracy) and imputation."""

from ._foscttm import foscttm, foscttm_per_cell
from ._imputation import evaluate_imputation
from ._matching import evaluate_matching, latent_foscttm
from ._truth import truth_pairs

__all__ = [
    "evaluate_imputation",
    "evaluate_matching",
    "foscttm",
    "foscttm_per_cell",
    "latent_foscttm",
    "truth_pairs",
]
