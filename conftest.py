"""Doctest namespace for the package's examples (``make test`` runs them with the suite).

Every example may use ``gs`` (groove_sc), ``np``, ``pd`` and ``mdata``: a small paired
simulation (4 perturbations + control, 15 cells each, 40 genes, 10 proteins), made fresh
for each docstring so that no example sees another's changes.
"""

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _doctest_namespace(request, doctest_namespace):
    if not isinstance(request.node, pytest.DoctestItem):
        yield
        return
    import groove_sc as gs

    doctest_namespace.update(
        gs=gs,
        np=np,
        pd=pd,
        mdata=gs.datasets.simulate(
            n_perturbations=4,
            cells_per_perturbation=15,
            n_features={"rna": 40, "prot": 10},
            paired=True,
            seed=0,
        ),
    )
    yield
