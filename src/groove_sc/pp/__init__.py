"""groove_sc.pp."""

from ._prepare import prepare  # per-modality preprocessing recipe

__all__ = ["prepare"]
