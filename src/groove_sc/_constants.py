"""Shared definitions: default keys, registry-key formatters, likelihood kinds, solver defaults.

Every default key string and every table used by more than one subpackage is written here once.
"""

from __future__ import annotations

from functools import partial

#: Default label column (the perturbation each cell received).
DEFAULT_GROUPBY = "perturbation"
#: Default ``obsm`` key of GROOVE's latent (``tl.embed``'s ``key_added``).
DEFAULT_REP = "X_groove"
#: Default ``obsp``/``uns`` key of a coupling (``tl.align``'s ``key_added``).
DEFAULT_COUPLING_KEY = "groove_coupling"
#: Default truth column (shared by the two views of one cell; evaluation only).
DEFAULT_TRUTH_KEY = "cell_id"
#: Layer that holds raw counts by convention.
COUNTS_LAYER = "counts"

#: Likelihood name -> kind of data it models (``"count"``, ``"continuous"``, ``"binary"``).
LIKELIHOOD_KINDS: dict[str, str] = {
    "nb": "count",
    "zinb": "count",
    "poisson": "count",
    "normal": "continuous",
    "bernoulli": "binary",
}
#: Likelihoods of count data.
COUNT_LIKELIHOODS: tuple[str, ...] = tuple(k for k, v in LIKELIHOOD_KINDS.items() if v == "count")

#: Counts per cell after library-size normalisation (scanpy's usual value; the simulator's
#: log-normalised ``.X`` and the benchmark's count scale use it).
TARGET_SUM = 1e4

#: Coupling entries at or below this value are dropped after a solve.
DEFAULT_PRUNE = 1e-12


def registry_key(field: str, mod: str) -> str:
    """Registry key of a modality's ``field`` (``"X"``, ``"labels"`` or ``"batch"``).

    Examples
    --------
    >>> registry_key("labels", "rna"), x_key("rna"), batch_key("prot")
    ('labels_rna', 'X_rna', 'batch_prot')

    """
    return f"{field}_{mod}"


#: Registry key of a modality's data, labels and batch covariate.
x_key = partial(registry_key, "X")
labels_key = partial(registry_key, "labels")
batch_key = partial(registry_key, "batch")

#: Default aligner of :func:`groove_sc.tl.align` (a name in ``groove_sc.tl.ALIGNERS``).
DEFAULT_METHOD = "leot"
