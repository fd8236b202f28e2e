"""groove_sc.pp."""

from ._prepare import prepare  # per-modality preprocessing recipe
from ._unpair import unpair  # co-assayed -> weakly paired

__all__ = ["prepare", "unpair"]
