"""GROOVE seconds per epoch relative to scvi-tools' SCVI on the same RNA cells.

Both models see the same RNA cells (count likelihood "nb") with the same batch size; GROOVE also
trains its second (protein-like) modality, the GroupCLIP term and backtranslation. Prints the
seconds per epoch of each and their ratio, measured in one run.

    python benchmarks/model_speed.py --cells 10000 --genes 2000 --epochs 3
"""

from __future__ import annotations

import argparse
import time
import warnings

import scvi
import torch

import groove_sc as gs
from groove_sc.model import GROOVE

warnings.filterwarnings("ignore")


def _epoch_seconds(model, epochs: int, **kw) -> float:
    t = time.perf_counter()
    model.train(max_epochs=epochs, enable_progress_bar=False, train_size=1.0, **kw)
    return (time.perf_counter() - t) / epochs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cells", type=int, default=10000, help="cells per modality")
    p.add_argument("--groups", type=int, default=50)
    p.add_argument("--genes", type=int, default=2000)
    p.add_argument("--proteins", type=int, default=50)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=2, help="best of N runs per model")
    a = p.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    mdata = gs.datasets.simulate(
        n_perturbations=a.groups,
        cells_per_perturbation=a.cells // a.groups,
        n_features={"rna": a.genes, "prot": a.proteins},
        seed=0,
    )
    rna = mdata["rna"].copy()
    scvi.model.SCVI.setup_anndata(rna, layer="counts")
    setup = dict(
        perturbation_key="perturbation",
        modalities=["rna", "prot"],
        layers={"rna": "counts"},
        likelihoods={"rna": "nb", "prot": "normal"},
    )
    GROOVE.setup_mudata(mdata, **setup)
    t_scvi, t_bt, t_nobt = [], [], []
    for _ in range(a.repeats):  # interleaved, best of N: robust to background load
        ref = scvi.model.SCVI(rna, n_latent=32, n_hidden=128, n_layers=1)
        t_scvi.append(_epoch_seconds(ref, a.epochs, batch_size=a.batch_size))
        for bt, acc in ((True, t_bt), (False, t_nobt)):
            model = GROOVE(mdata, n_latent=32, n_hidden=128, backtranslation=bt)
            acc.append(_epoch_seconds(model, a.epochs, batch_size=a.batch_size))
    t_scvi = min(t_scvi)
    rows = [(True, min(t_bt)), (False, min(t_nobt))]

    print(
        f"cells/modality={mdata['rna'].n_obs} genes={a.genes} proteins={a.proteins} "
        f"batch={a.batch_size} threads={torch.get_num_threads()}"
    )
    print(f"SCVI (RNA only)                      {t_scvi:8.3f} s/epoch")
    for bt, t in rows:
        name = f"GROOVE (rna+prot, backtranslation={bt})"
        print(f"{name:37s}{t:8.3f} s/epoch   ratio {t / t_scvi:5.2f}")
    print(
        f"target: ratio <= 2.0 with backtranslation on -> "
        f"{'met' if rows[0][1] / t_scvi <= 2.0 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
