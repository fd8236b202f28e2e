"""Tools: embed a trained model, align modalities with optimal transport, impute."""

from ._align import align
from ._aligners import ALIGNERS, Aligner, AlignProblem, AlignResult, register_aligner
from ._average import average_couplings
from ._embed import embed
from ._impute import impute

__all__ = [
    "ALIGNERS",
    "AlignProblem",
    "AlignResult",
    "Aligner",
    "align",
    "average_couplings",
    "embed",
    "impute",
    "register_aligner",
]
