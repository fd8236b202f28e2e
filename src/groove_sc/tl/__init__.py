"""Tools: embed a trained model, align modalities with optimal transport, impute."""

from ._aligners import ALIGNERS, AlignProblem, AlignResult, Aligner, register_aligner
from ._align import align
from ._embed import embed

__all__ = [
    "ALIGNERS",
    "AlignProblem",
    "AlignResult",
    "Aligner",
    "align",
    "embed",
    "register_aligner",
]
