"""Tools: embed a trained model, align modalities with optimal transport, impute."""

from ._align import align
from ._aligners import ALIGNERS, Aligner, AlignProblem, AlignResult, register_aligner
from ._average import average_couplings
from ._embed import embed
from ._impute import impute
from ._posterior import group_posterior

__all__ = [
    "ALIGNERS",
    "AlignProblem",
    "AlignResult",
    "Aligner",
    "align",
    "average_couplings",
    "embed",
    "group_posterior",
    "impute",
    "register_aligner",
]
