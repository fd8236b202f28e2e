"""The GROOVE model (scvi-tools model class)."""

from ._groove import GROOVE

__all__ = ["GROOVE"]
