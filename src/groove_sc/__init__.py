"""groove_sc: GROOVE for weakly paired multimodal single-cell perturbation data.

Examples
--------
>>> import groove_sc as gs
>>> mdata = gs.datasets.simulate(n_perturbations=10, cells_per_perturbation=50, seed=0)  # doctest: +SKIP
"""

from importlib.metadata import PackageNotFoundError, version

from . import datasets, metrics, module, pp  # noqa: I001  (light modules first)
from . import data, model, tl, pl, benchmark

try:
    __version__ = version("groove_sc")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "benchmark",
    "data",
    "datasets",
    "metrics",
    "model",
    "module",
    "pl",
    "pp",
    "tl",
]
