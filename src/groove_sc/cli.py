"""Command line: ``groove-sc quickstart`` and ``groove-sc benchmark``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _log(msg: str) -> None:
    print(f"[groove-sc] {msg}", flush=True)


def quickstart(
    out: str | Path = "groove_quickstart",
    n_perturbations: int = 20,
    cells_per_perturbation: int = 100,
    shared_fraction: float = 0.5,
    max_epochs: int = 40,
    method: str = "leot",
    seed: int = 0,
    benchmark: bool = True,
    progress: bool = True,
) -> dict:
    """Simulate -> train -> embed -> align -> impute -> evaluate -> plots, all written to ``out``.

    Parameters
    ----------
    out
        Output folder (created): ``quickstart.h5mu``, ``model/``, ``metrics.json``, figures.
    n_perturbations, cells_per_perturbation, shared_fraction
        Simulation size and difficulty (see :func:`groove_sc.datasets.simulate`).
    max_epochs
        GROOVE training epochs.
    method
        Aligner for :func:`groove_sc.tl.align`.
    seed
        Seed of simulation and training.
    benchmark
        Also run a small learner x aligner benchmark and plot it.
    progress
        Show the training progress bar.

    Returns
    -------
    dict of the metrics written to ``metrics.json``.

    Examples
    --------
    >>> from groove_sc.cli import quickstart
    >>> quickstart("qs", max_epochs=5, benchmark=False)  # doctest: +SKIP

    """
    import matplotlib

    matplotlib.use("Agg")
    import scvi

    import groove_sc as gs

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scvi.settings.seed = seed
    t0 = time.perf_counter()
    _log(f"simulating {n_perturbations} perturbations x {cells_per_perturbation} cells")
    mdata = gs.datasets.simulate(
        n_perturbations=n_perturbations,
        cells_per_perturbation=cells_per_perturbation,
        shared_fraction=shared_fraction,
        paired=True,
        seed=seed,
    )
    mods = list(mdata.mod)
    src, tgt = mods[0], mods[1]
    likelihoods = dict(mdata.uns["simulation"]["modalities"])
    layers = {
        m: "counts" for m in mods if "counts" in mdata[m].layers and likelihoods[m] != "normal"
    }
    gs.model.GROOVE.setup_mudata(
        mdata,
        perturbation_key="perturbation",
        modalities=mods,
        layers=layers,
        likelihoods=likelihoods,
    )
    model = gs.model.GROOVE(mdata, n_latent=16)
    _log(f"training GROOVE for {max_epochs} epochs on {', '.join(mods)}")
    model.train(max_epochs=max_epochs, enable_progress_bar=progress)
    model.save(out / "model", overwrite=True)
    gs.tl.embed(mdata, model, key_added="X_groove")
    _log(f"aligning {src} -> {tgt} with '{method}'")
    gs.tl.align(
        mdata,
        source=src,
        target=tgt,
        use_rep="X_groove",
        method=method,
        groupby="perturbation",
        key_added="groove_coupling",
    )
    gs.tl.impute(
        mdata,
        source=src,
        target=tgt,
        coupling_key="groove_coupling",
        model=model,
        key_added=f"{tgt}_imputed",
    )
    metrics = {
        "foscttm_latent": float(
            gs.metrics.foscttm(mdata[src].obsm["X_groove"], _partner_rep(mdata, src, tgt))
        ),
        "matching": _plain(gs.metrics.evaluate_matching(mdata, coupling_key="groove_coupling")),
    }
    truth = _partner_features(mdata, src, tgt)
    imp = mdata.mod[f"{tgt}_imputed"]
    metrics["imputation_ot"] = _plain(gs.metrics.evaluate_imputation(imp.layers["ot"], truth))
    metrics["imputation_decoder"] = _plain(
        gs.metrics.evaluate_imputation(imp.layers["decoder"], truth)
    )
    figs = []
    fig = gs.pl.matching(mdata, key="groove_coupling", groupby="perturbation", return_fig=True)
    fig.savefig(out / "matching_heatmap.png", dpi=120, bbox_inches="tight")
    figs.append(out / "matching_heatmap.png")
    if benchmark:
        _log("small benchmark: pca, groove_no_groupclip, groove x leot, knn, egwl; 1 seed")
        results = gs.benchmark.run(
            mdata,
            learners=["pca", "groove_no_groupclip", "groove"],
            aligners=["leot", "knn", "egwl"],
            truth_key="cell_id",
            seeds=[seed],
            learner_kwargs={
                "groove": {"max_epochs": max_epochs},
                "groove_no_groupclip": {"max_epochs": max_epochs},
            },
        )
        results.to_csv(out / "benchmark.csv", index=False)
        fig = gs.pl.benchmark(results, metric="foscttm_barycentric", return_fig=True)
        fig.savefig(out / "benchmark.png", dpi=120, bbox_inches="tight")
        figs.append(out / "benchmark.png")
    h5 = out / "quickstart.h5mu"
    mdata.write(h5)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    _log(f"latent FOSCTTM (lower is better): {metrics['foscttm_latent']:.4f}")
    _log(f"wrote {h5}, {out / 'model'}, {out / 'metrics.json'}")
    for f in figs:
        _log(f"wrote {f}")
    _log(f"done in {time.perf_counter() - t0:.1f} s")
    return metrics


def _partner_rep(mdata, src: str, tgt: str):
    """Target latents reordered so that row i is the partner of source cell i (truth)."""
    idx = _partner_index(mdata, src, tgt)
    return mdata[tgt].obsm["X_groove"][idx]


def _partner_features(mdata, src: str, tgt: str):
    import numpy as np
    import scipy.sparse as sp

    x = mdata[tgt].X
    x = x.toarray() if sp.issparse(x) else np.asarray(x)
    return x[_partner_index(mdata, src, tgt)]


def _partner_index(mdata, src: str, tgt: str):
    import pandas as pd

    tgt_ids = pd.Index(mdata[tgt].obs["cell_id"].astype(str))
    idx = tgt_ids.get_indexer(mdata[src].obs["cell_id"].astype(str))
    if (idx < 0).any():
        raise ValueError("quickstart needs paired simulated data (every cell in both views).")
    return idx


def _plain(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            out[k] = str(v)
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``groove-sc`` console script.

    Examples
    --------
    >>> main(["quickstart", "--out", "qs", "--epochs", "5"])  # doctest: +SKIP

    """
    parser = argparse.ArgumentParser(prog="groove-sc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quickstart", help="simulate -> train -> align -> impute -> evaluate")
    q.add_argument("--out", default="groove_quickstart", help="output folder")
    q.add_argument("--perturbations", type=int, default=20)
    q.add_argument("--cells", type=int, default=100, help="cells per perturbation")
    q.add_argument("--shared-fraction", type=float, default=0.5)
    q.add_argument("--epochs", type=int, default=40)
    q.add_argument("--method", default="leot", help="aligner (see groove_sc.tl.ALIGNERS)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--no-benchmark", action="store_true", help="skip the small benchmark")
    q.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    b = sub.add_parser("benchmark", help="learner x aligner grid from a YAML config")
    b.add_argument("--config", required=True, help="YAML file (see docs)")
    b.add_argument("--out", required=True, help="results CSV (appended, resumable)")
    b.add_argument("--dataset", default=None, help="data file replacing the config's dataset path")
    args = parser.parse_args(argv)
    if args.command == "quickstart":
        quickstart(
            out=args.out,
            n_perturbations=args.perturbations,
            cells_per_perturbation=args.cells,
            shared_fraction=args.shared_fraction,
            max_epochs=args.epochs,
            method=args.method,
            seed=args.seed,
            benchmark=not args.no_benchmark,
            progress=not args.no_progress,
        )
        return 0
    from .benchmark import run_config

    run_config(args.config, args.out, dataset=args.dataset)
    return 0


if __name__ == "__main__":
    sys.exit(main())
