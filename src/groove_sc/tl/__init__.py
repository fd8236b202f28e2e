"""Tools: embed a trained model, align modalities with optimal transport, impute."""

from ._embed import embed

__all__ = ["embed"]
