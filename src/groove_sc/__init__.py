"""groove_sc: GROOVE for weakly paired multimodal single-cell perturbation data.

Examples
--------
>>> import groove_sc as gs
>>> mdata = gs.datasets.simulate(n_perturbations=10, cells_per_perturbation=50, seed=0)

"""

from importlib.metadata import PackageNotFoundError, version

from . import benchmark, data, datasets, metrics, model, module, pl, pp, tl

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
