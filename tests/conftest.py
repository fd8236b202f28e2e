"""Shared fixtures: a tiny weakly paired MuData built here (independent of the simulator)."""

import contextlib
import warnings

import anndata as ad
import matplotlib
import mudata as md
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

#: Third-party deprecations raised inside a dependency's own code, which groove_sc cannot reach:
#: (message regex, where it comes from). Every other warning is an error in ``strict_warnings``.
THIRD_PARTY_WARNINGS = [
    (
        r"The 'future\.infer_string' option is deprecated",
        "pandas >= 3.1 Pandas4Warning (a DeprecationWarning): anndata 0.13 reads the option "
        "in anndata/compat whenever an AnnData is made",
    ),
    (
        r"The inplace keyword in DataFrame\.drop is deprecated",
        "pandas >= 3.1 Pandas4Warning (a DeprecationWarning): mudata 0.4's MuData.update() "
        "calls DataFrame.drop(inplace=True)",
    ),
]


@contextlib.contextmanager
def strict_warnings():
    """Every warning is an error, except the third-party ones in ``THIRD_PARTY_WARNINGS``."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for message, _origin in THIRD_PARTY_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        yield


def make_toy(n_groups=6, k=30, n_genes=40, n_prot=12, seed=0, d=6):
    """Two views (counts and continuous) of the same latent cells; truth in obs['cell_id']."""
    rng = np.random.default_rng(seed)
    n = n_groups * k
    grp = np.repeat(np.arange(n_groups), k)
    z = rng.normal(0, 1.5, (n_groups, d))[grp] + rng.normal(0, 1, (n, d))
    counts = rng.poisson(np.exp(np.tanh(z @ rng.normal(0, 0.5, (d, n_genes))) + 1.0))
    counts = counts.astype(np.float32)
    prot = np.tanh(z @ rng.normal(0, 1, (d, n_prot))) + rng.normal(0, 0.3, (n, n_prot))
    labels = pd.Categorical([f"p{i}" for i in grp])
    cid = [f"c{i}" for i in range(n)]

    def obs(prefix):
        return pd.DataFrame(
            {"perturbation": labels, "cell_id": cid}, index=[f"{prefix}:{c}" for c in cid]
        )

    rna = ad.AnnData(np.log1p(counts), obs=obs("rna"))
    rna.var_names = [f"g{i}" for i in range(n_genes)]
    rna.layers["counts"] = counts
    pr = ad.AnnData(prot.astype(np.float32), obs=obs("prot"))
    pr.var_names = [f"adt{i}" for i in range(n_prot)]
    return md.MuData({"rna": rna, "prot": pr})


@pytest.fixture
def toy():
    return make_toy()
