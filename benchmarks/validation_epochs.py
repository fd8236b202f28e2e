"""Truth-free check of GROOVE's training length: held-out loss over 400 epochs.

GROOVE trains on 90% of each modality's cells; every 10 epochs the same loss is computed on the
other 10% (``validation_size=0.1``). If the held-out loss still falls at the default number of
epochs, longer training is not overfitting by this criterion; a minimum well before it would
argue for fewer epochs or early stopping. The truth is not read.

Usage (the PBMC file is not part of the package)::

    python benchmarks/validation_epochs.py --pbmc ../shared/data/pbmc_cite_dev.h5mu --seeds 0 1

Prints, per data set and seed, the held-out loss and its parts every 50 epochs, and the epoch
of the smallest held-out loss after the KL warm-up (the first quarter of the epochs).
"""

import argparse
import importlib.util
import warnings
from pathlib import Path

import numpy as np
import scvi
import torch

import groove_sc as gs
from groove_sc.benchmark._groove import quiet_training

EPOCHS = 400
#: Held-out loss (total) and its parts, as logged by GROOVE's training plan.
SHOWN = (
    "validation_loss",
    "reconstruction_loss_validation",
    "backtranslation_validation",
    "contrastive_validation",
    "within_group_validation",
)


def pbmc(path):
    spec = importlib.util.spec_from_file_location(
        "pbmc_defaults", Path(__file__).with_name("pbmc_defaults.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    mdata = module.load(path)
    setup = {
        "perturbation_key": "celltype",
        "modalities": ["rna", "adt"],
        "layers": {"rna": "counts", "adt": "clr"},
        "likelihoods": {"rna": "nb", "adt": "normal"},
    }
    return mdata, setup


def simulation(shared_fraction, seed):
    mdata = gs.datasets.simulate(
        n_perturbations=15,
        cells_per_perturbation=60,
        shared_fraction=shared_fraction,
        unlabeled_fraction=0.2,
        seed=seed,
    )
    return mdata, {"layers": {"rna": "counts"}}


def curve(mdata, setup, seed, epochs):
    gs.model.GROOVE.setup_mudata(mdata, **setup)
    scvi.settings.seed = seed
    with quiet_training(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = gs.model.GROOVE(mdata)
        model.train(
            max_epochs=epochs,
            seed=seed,
            train_size=0.9,
            validation_size=0.1,
            check_val_every_n_epoch=10,
            enable_progress_bar=False,
        )
    return {k: model.history[k] for k in SHOWN if k in model.history}


def report(name, seed, hist, n_epochs):
    loss = hist["validation_loss"].iloc[:, 0]
    epochs = np.asarray(loss.index) + 1
    after = epochs > n_epochs // 4
    best = int(epochs[after][np.argmin(loss.to_numpy()[after])])
    show = list(range(n_epochs // 4, n_epochs + 1, max(1, n_epochs // 8)))
    cells = []
    for key, h in hist.items():
        s = h.iloc[:, 0]
        idx = np.asarray(s.index) + 1
        vals = [float(s.to_numpy()[np.argmin(np.abs(idx - e))]) for e in show]
        cells.append(f"{key.replace('_validation', '')}: " + " ".join(f"{v:.3g}" for v in vals))
    print(f"| {name} | {seed} | {best} | " + " ; ".join(cells) + " |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pbmc", help="path of pbmc_cite_dev.h5mu (skipped when absent)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--shared-fractions", type=float, nargs="+", default=[0.3, 0.8])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    scvi.settings.num_threads = 1
    n = args.epochs
    shown = range(n // 4, n + 1, max(1, n // 8))
    print("held-out loss at epochs " + ", ".join(map(str, shown)))
    print("| data | seed | best epoch | held-out losses |")
    print("|---|---|---|---|")
    for seed in args.seeds:
        if args.pbmc:
            mdata, setup = pbmc(args.pbmc)
            report("pbmc", seed, curve(mdata, setup, seed, n), n)
        for sf in args.shared_fractions:
            mdata, setup = simulation(sf, 40 + seed)
            report(f"simulate sf {sf}", 40 + seed, curve(mdata, setup, seed, n), n)


if __name__ == "__main__":
    main()
