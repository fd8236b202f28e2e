"""GROOVE with its defaults on the PBMC CITE-seq development set, next to the label-only coupling.

Usage (the data file is not part of the package)::

    python benchmarks/pbmc_defaults.py ../shared/data/pbmc_cite_dev.h5mu --seeds 0 1 2

Scoring convention of the issues: ADT modelled from its CLR (log1p(counts) minus each cell's
mean) with the normal likelihood, RNA from counts with nb; one-way barycentric FOSCTTM
RNA -> ADT over the co-assayed cells in the PCA (30 components) of the ADT CLR. Settings:
``defaults`` (every model and tl.align default), ``issue`` (n_latent 16, 200 epochs, the
setting of issue 9's figures) and ``issue_no_within`` (the same without the within-group term,
i.e. the paper's objective). Every fit is aligned in two spaces: the latent (``X_groove``,
``space="rep"``) and its group posterior (``space="posterior"``: ``tl.group_posterior``'s
coordinates, the model's temperature and similarity; what ``tl.align`` uses by default on a
GROOVE latent for ``leot`` and ``knn``, the GW methods keep the latent by default). With
several seeds, a last row per setting and space scores the average of the seeds' couplings
(``tl.average_couplings``). The truth is used for scoring only.
"""

import argparse
import time
import warnings

import mudata
import numpy as np
import scvi
import torch
from sklearn.decomposition import PCA

import groove_sc as gs
from groove_sc.benchmark._groove import quiet_training

SETTINGS = {
    "defaults": {},
    "issue": {"n_latent": 16, "max_epochs": 200},
    "issue_no_within": {"n_latent": 16, "max_epochs": 200, "within_group": None},
}
METHODS = ("leot", "egw", "egwl", "knn")
SPACES = {"latent": "rep", "posterior": "posterior"}


def load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mdata = mudata.read_h5mu(path)
    adt = mdata["adt"]
    x = np.log1p(adt.layers["counts"].toarray())
    adt.layers["clr"] = (x - x.mean(1, keepdims=True)).astype(np.float32)
    adt.obsm["X_clr_pca"] = PCA(30, random_state=0).fit_transform(adt.layers["clr"])
    return mdata


def score(mdata, key):
    res = gs.metrics.evaluate_matching(
        mdata, coupling_key=key, truth_key="cell_id", target_rep="X_clr_pca", groupby="celltype"
    )
    return res["foscttm_barycentric"], res["trace"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    scvi.settings.num_threads = 1
    mdata = load(args.path)
    gs.benchmark.LEARNERS["labels"](mdata, "X_labels", groupby="celltype", seed=0)
    gs.tl.align(mdata, "rna", "adt", use_rep="X_labels", groupby="celltype", key_added="lab")
    ref = score(mdata, "lab")
    print(f"label-only (labels + leot): foscttm_barycentric {ref[0]:.4f}, trace {ref[1]:.4f}")
    print("| setting | seed | space | train s | " + " | ".join(METHODS) + " |")
    print("|---|---|---|---|" + "---|" * len(METHODS))
    for name in args.settings:
        kw = dict(SETTINGS[name])
        max_epochs = kw.pop("max_epochs", None)
        for seed in args.seeds:
            gs.model.GROOVE.setup_mudata(
                mdata, perturbation_key="celltype", modalities=["rna", "adt"],
                layers={"rna": "counts", "adt": "clr"}, likelihoods={"rna": "nb", "adt": "normal"},
            )  # fmt: skip
            scvi.settings.seed = seed
            t0 = time.perf_counter()
            with quiet_training():
                model = gs.model.GROOVE(mdata, **kw)
                model.train(max_epochs=max_epochs, seed=seed, enable_progress_bar=False)
            seconds = time.perf_counter() - t0
            gs.tl.embed(mdata, model, key_added="X_groove")
            for space, option in SPACES.items():
                cells = []
                for method in METHODS:
                    key = f"{name}_{space}_{method}_{seed}"
                    gs.tl.align(
                        mdata, "rna", "adt", use_rep="X_groove", method=method,
                        groupby="celltype", space=option, key_added=key,
                    )  # fmt: skip
                    fos, trace = score(mdata, key)
                    cells.append(f"{fos:.4f} / {trace:.4f}")
                row = f"| {name} | {seed} | {space} | {seconds:.0f} | " + " | ".join(cells) + " |"
                print(row, flush=True)
        for space in SPACES if len(args.seeds) > 1 else ():  # all seeds' fits together
            cells = []
            for method in METHODS:
                keys = [f"{name}_{space}_{method}_{seed}" for seed in args.seeds]
                gs.tl.average_couplings(mdata, keys, key_added="avg")
                fos, trace = score(mdata, "avg")
                cells.append(f"{fos:.4f} / {trace:.4f}")
            row = f"| {name} | average of {len(args.seeds)} | {space} | | " + " | ".join(cells)
            print(row + " |", flush=True)


if __name__ == "__main__":
    main()
