"""Aligners behind :func:`groove_sc.tl.align`: the registry and the registered methods.

Importing the method modules registers them in :data:`ALIGNERS`.
"""

from . import _coot, _gw, _knn, _linear  # noqa: F401  (registration)
from ._problem import AlignProblem
from ._registry import ALIGNERS, Aligner, AlignResult, register_aligner

__all__ = ["ALIGNERS", "AlignProblem", "AlignResult", "Aligner", "register_aligner"]
