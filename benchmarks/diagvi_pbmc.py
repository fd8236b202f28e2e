"""DIAGVI next to the label-only reference on the PBMC CITE-seq development set.

Usage (Python >= 3.12 with DIAGVI; the data file is not part of the package)::

    python benchmarks/diagvi_pbmc.py ../shared/data/pbmc_cite_dev.h5mu --seeds 0 1

Scoring convention of the issues: ADT CLR = log1p(counts) minus each cell's mean; target space =
PCA (30 components, random_state 0) of the CLR; RNA modelled from counts (nb), ADT from the
CLR (normal); one-way barycentric FOSCTTM RNA -> ADT over the co-assayed cells.
"""

import argparse
import time
import warnings

import mudata
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.decomposition import PCA

import groove_sc as gs
from groove_sc.benchmark import LEARNERS, fit_diagvi
from groove_sc.benchmark._views import blind_view

GROUPBY, TRUTH, TARGET_REP = "celltype", "cell_id", "X_clr_pca"


def load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mdata = mudata.read_h5mu(path)
    adt = mdata["adt"]
    counts = adt.layers["counts"]
    logc = np.log1p(counts.toarray() if sp.issparse(counts) else np.asarray(counts))
    adt.layers["clr"] = (logc - logc.mean(axis=1, keepdims=True)).astype(np.float32)
    adt.obsm[TARGET_REP] = PCA(n_components=30, random_state=0).fit_transform(adt.layers["clr"])
    return mdata


def score(mdata, key, method):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gs.tl.align(mdata, "rna", "adt", use_rep=key, method=method, groupby=GROUPBY,
                    key_added="coupling")  # fmt: skip
        res = gs.metrics.evaluate_matching(
            mdata, coupling_key="coupling", truth_key=TRUTH, target_rep=TARGET_REP, groupby=GROUPBY
        )
    return float(res["foscttm_barycentric"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1])
    parser.add_argument("--n-latent", type=int, nargs="+", default=[50, 16])
    parser.add_argument("--methods", nargs="+", default=["leot", "egwl"])
    args = parser.parse_args()
    mdata = load(args.path)
    rows = []
    LEARNERS["labels"](mdata, "X_labels", groupby=GROUPBY, seed=0)
    for method in args.methods:
        rows.append(("labels", "-", "-", "-", method, score(mdata, "X_labels", method), 0.0, 0))
    for seed in args.seeds:
        for n_latent in args.n_latent:
            gs.benchmark.seed_everything(seed)
            blind = blind_view(mdata, ["rna", "adt"], GROUPBY)  # data and labels only
            t0 = time.perf_counter()
            info = fit_diagvi(
                blind, "X_diagvi", groupby=GROUPBY, seed=seed, n_latent=n_latent,
                layers={"rna": "counts", "adt": "clr"}, likelihoods={"rna": "nb", "adt": "normal"},
            )  # fmt: skip
            fit_s = time.perf_counter() - t0
            # the same model: posterior means (default) and DIAGVI's own sampled latent
            z_sample = info["diagvi"].get_latent_representation()
            for latent in ("mean", "sample"):
                for m in ("rna", "adt"):
                    z = blind[m].obsm["X_diagvi"] if latent == "mean" else z_sample[m]
                    mdata[m].obsm["X_diagvi"] = np.asarray(z)
                for method in args.methods:
                    value = score(mdata, "X_diagvi", method)
                    rows.append(
                        ("diagvi", seed, n_latent, latent, method, value, fit_s, info["epochs"])
                    )
                    print(rows[-1], flush=True)
    if args.seeds:
        links = info["feature_links"]
        print(f"guidance graph: {len(links)} links, {links['rna'].nunique()} genes")
        print(", ".join(f"{a}-{b}" for a, b in links.to_numpy()))
    cols = ["learner", "seed", "n_latent", "latent", "aligner", "foscttm", "fit_s", "epochs"]
    table = pd.DataFrame(rows, columns=cols)
    print(table.to_string(index=False, float_format="%.4f"))


if __name__ == "__main__":
    main()
