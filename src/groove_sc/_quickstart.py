"""``groove-sc quickstart``: simulate, train, align, impute, evaluate and report, in one folder."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ._constants import (
    COUNTS_LAYER,
    DEFAULT_COUPLING_KEY,
    DEFAULT_GROUPBY,
    DEFAULT_METHOD,
    DEFAULT_REP,
    DEFAULT_TRUTH_KEY,
    LIKELIHOOD_KINDS,
)


def _log(msg: str) -> None:
    print(f"[groove-sc] {msg}", flush=True)


def quickstart(
    out: str | Path = "groove_quickstart",
    n_perturbations: int = 20,
    cells_per_perturbation: int = 100,
    shared_fraction: float = 0.5,
    max_epochs: int = 40,
    method: str = DEFAULT_METHOD,
    seed: int = 0,
    benchmark: bool = True,
    progress: bool = True,
) -> dict:
    """Simulate -> train -> embed -> align -> impute -> evaluate -> plots, all written to ``out``.

    The run ends with a table: matching (barycentric FOSCTTM, trace, top-1 accuracy) and
    imputation (Pearson per feature) of GROOVE + ``method``, next to the label-only reference
    (the ``labels`` learner of :mod:`groove_sc.benchmark`, one-hot labels, with the same
    aligner), then the path and size of every file written.

    Parameters
    ----------
    out
        Output folder (created): ``quickstart.h5mu`` (gzip-compressed; mostly-zero matrices
        such as sparse counts stored as CSR, see :func:`store_sparse`), ``model/``,
        ``metrics.json``, ``matching.png``, and with ``benchmark`` ``benchmark.csv`` and
        ``benchmark.png``.
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
    dict of the metrics written to ``metrics.json`` (GROOVE's, and the label-only
    reference's under ``"labels_reference"``).

    Examples
    --------
    >>> from groove_sc.cli import quickstart
    >>> quickstart("qs", max_epochs=5, benchmark=False)  # doctest: +SKIP

    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import scvi

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scvi.settings.seed = seed
    t0 = time.perf_counter()
    mdata, model = _simulate_and_train(
        n_perturbations, cells_per_perturbation, shared_fraction, max_epochs, seed, progress
    )
    model.save(out / "model", overwrite=True)
    src, tgt = list(mdata.mod)[:2]
    metrics = _align_and_evaluate(mdata, model, src, tgt, method, seed)
    files = _write_plots(mdata, out, benchmark, max_epochs, seed)
    plt.close("all")
    files.update(_write_data(mdata, out, metrics))
    _log(f"done in {time.perf_counter() - t0:.1f} s")
    print(_summary(metrics, src, tgt, method, mdata[src].n_obs, out, files), flush=True)
    return metrics


def _simulate_and_train(
    n_perturbations: int,
    cells_per_perturbation: int,
    shared_fraction: float,
    max_epochs: int,
    seed: int,
    progress: bool,
):
    """The paired simulation and a GROOVE trained on it (not yet embedded)."""
    import groove_sc as gs

    _log(f"simulating {n_perturbations} perturbations x {cells_per_perturbation} cells")
    mdata = gs.datasets.simulate(
        n_perturbations=n_perturbations,
        cells_per_perturbation=cells_per_perturbation,
        shared_fraction=shared_fraction,
        paired=True,
        seed=seed,
    )
    mods = list(mdata.mod)
    likelihoods = dict(mdata.uns["simulation"]["modalities"])
    layers = {
        m: COUNTS_LAYER
        for m in mods
        if COUNTS_LAYER in mdata[m].layers and LIKELIHOOD_KINDS[likelihoods[m]] != "continuous"
    }
    gs.model.GROOVE.setup_mudata(
        mdata,
        perturbation_key=DEFAULT_GROUPBY,
        modalities=mods,
        layers=layers,
        likelihoods=likelihoods,
    )
    model = gs.model.GROOVE(mdata, n_latent=16)
    _log(f"training GROOVE for {max_epochs} epochs on {', '.join(mods)}")
    model.train(max_epochs=max_epochs, enable_progress_bar=progress)
    return mdata, model


def _align_and_evaluate(mdata, model, src: str, tgt: str, method: str, seed: int) -> dict:
    """Embed, align and impute with GROOVE and with the label-only reference; their metrics."""
    import groove_sc as gs

    gs.tl.embed(mdata, model, key_added=DEFAULT_REP)
    _log(f"aligning {src} -> {tgt} with '{method}' (defaults: GROOVE's group-posterior space)")

    def align_and_impute(rep: str, coupling_key: str, imputed_key: str, **impute_kw) -> None:
        pair = {"source": src, "target": tgt}
        align = {"use_rep": rep, "method": method, "groupby": DEFAULT_GROUPBY}
        gs.tl.align(mdata, **pair, **align, key_added=coupling_key)
        gs.tl.impute(mdata, **pair, coupling_key=coupling_key, key_added=imputed_key, **impute_kw)

    align_and_impute(DEFAULT_REP, DEFAULT_COUPLING_KEY, f"{tgt}_imputed", model=model)
    _log(f"label-only reference: the 'labels' learner (one-hot labels) with '{method}'")
    gs.benchmark.LEARNERS["labels"](mdata, "X_labels", groupby=DEFAULT_GROUPBY, seed=seed)
    align_and_impute("X_labels", "labels_coupling", f"{tgt}_imputed_labels")
    truth = _partner_features(mdata, src, tgt)
    imp, imp_labels = mdata.mod[f"{tgt}_imputed"], mdata.mod[f"{tgt}_imputed_labels"]
    match = gs.metrics.evaluate_matching
    return {
        "foscttm_latent": float(
            gs.metrics.foscttm(mdata[src].obsm[DEFAULT_REP], _partner_rep(mdata, src, tgt))
        ),
        "matching": _plain(match(mdata, coupling_key=DEFAULT_COUPLING_KEY)),
        "imputation_ot": _plain(gs.metrics.evaluate_imputation(imp.layers["ot"], truth)),
        "imputation_decoder": _plain(gs.metrics.evaluate_imputation(imp.layers["decoder"], truth)),
        "labels_reference": {
            "matching": _plain(match(mdata, coupling_key="labels_coupling")),
            "imputation_ot": _plain(gs.metrics.evaluate_imputation(imp_labels.layers["ot"], truth)),
        },
    }


def _write_plots(mdata, out: Path, benchmark: bool, max_epochs: int, seed: int) -> dict:
    """``matching.png`` and, with ``benchmark``, the small benchmark's table and grid."""
    import groove_sc as gs

    files = {}
    fig = gs.pl.matching(mdata, key=DEFAULT_COUPLING_KEY, groupby=DEFAULT_GROUPBY, return_fig=True)
    fig.savefig(out / "matching.png", dpi=120, bbox_inches="tight")
    files["matching.png"] = "pl.matching: how far GROOVE's coupling goes beyond the labels"
    if not benchmark:
        return files
    _log("small benchmark: pca, groove_no_groupclip, groove, groove_posterior x leot, knn, egwl")
    results = gs.benchmark.run(
        mdata,
        learners=["pca", "groove_no_groupclip", "groove", "groove_posterior"],
        aligners=["leot", "knn", "egwl"],
        truth_key=DEFAULT_TRUTH_KEY,
        seeds=[seed],
        learner_kwargs={
            "groove": {"max_epochs": max_epochs},
            "groove_posterior": {"max_epochs": max_epochs},
            "groove_no_groupclip": {"max_epochs": max_epochs},
        },
    )
    results.to_csv(out / "benchmark.csv", index=False)
    files["benchmark.csv"] = "the small benchmark, one row per learner x aligner x metric"
    fig = gs.pl.benchmark(results, metric="foscttm_barycentric", return_fig=True)
    fig.savefig(out / "benchmark.png", dpi=120, bbox_inches="tight")
    files["benchmark.png"] = "pl.benchmark: barycentric FOSCTTM per learner x aligner"
    return files


def _write_data(mdata, out: Path, metrics: dict) -> dict:
    """``quickstart.h5mu`` (sparse where it pays), the model's entry and ``metrics.json``."""
    from ._mudata import no_pull_on_update

    files = {}
    sparse = store_sparse(mdata)
    with no_pull_on_update():
        mdata.write(out / "quickstart.h5mu", compression="gzip")
    stored = f"; sparse: {', '.join(sparse)}" if sparse else ""
    files["quickstart.h5mu"] = (
        f"the MuData (gzip{stored}): data, latents, couplings, imputed modalities"
    )
    files["model"] = "the trained GROOVE (gs.model.GROOVE.load(path, mdata))"
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    files["metrics.json"] = "every metric above and more"
    return files


def store_sparse(mdata, max_density: float = 0.5) -> list[str]:
    """Store mostly-zero dense matrices (``.X``, layers) of every modality as sparse CSR.

    CSR takes 8 bytes per non-zero float32 entry (value and column index) against 4 bytes per
    entry for a dense array, so it is smaller on disk and in memory only below half density;
    denser matrices are left dense (gzip compression shrinks those better).

    Parameters
    ----------
    mdata
        MuData, changed in place.
    max_density
        Matrices with at most this share of non-zero entries are converted.

    Returns
    -------
    The converted matrices, as ``"modality.X"`` / ``"modality.layers[name]"``.

    Examples
    --------
    >>> mdata["prot"].layers["hits"] = np.eye(mdata["prot"].n_obs, 10, dtype=np.float32)
    >>> store_sparse(mdata)
    ['prot.layers[hits]']

    """
    import numpy as np
    import scipy.sparse as sp

    def convert(x):
        if x is None or sp.issparse(x) or not isinstance(x, np.ndarray) or x.size == 0:
            return None
        if np.count_nonzero(x) / x.size > max_density:
            return None
        return sp.csr_matrix(x)

    done = []
    for m, adata in mdata.mod.items():
        new = convert(adata.X)
        if new is not None:
            adata.X = new
            done.append(f"{m}.X")
        for name in [k for k in adata.layers if k is not None]:  # anndata >= 0.13: None is X
            new = convert(adata.layers[name])
            if new is not None:
                adata.layers[name] = new
                done.append(f"{m}.layers[{name}]")
    return done


def _summary(metrics: dict, src: str, tgt: str, method: str, n: int, out: Path, files) -> str:
    """The closing table (GROOVE next to the label-only reference) and where each file is."""
    groove, labels = metrics["matching"], metrics["labels_reference"]["matching"]
    rows = [
        (f"GROOVE + {method}", groove, metrics["imputation_ot"]),
        (f"labels only + {method}", labels, metrics["labels_reference"]["imputation_ot"]),
    ]
    head = f"{'':<22}{'FOSCTTM':>9}{'trace':>9}{'top-1':>9}{'Pearson':>10}"
    lines = [
        "",
        f"Matching {src} -> {tgt} cells ({n} per modality) and imputing {tgt} for {src} cells:",
        head,
        "-" * len(head),
    ]
    for name, match, imp in rows:
        lines.append(
            f"{name:<22}{match['foscttm_barycentric']:>9.3f}{match['trace']:>9.3f}"
            f"{match['top1_accuracy']:>9.3f}{imp['pearson_feature']:>10.3f}"
        )
    dec = metrics["imputation_decoder"]["pearson_feature"]
    lines.append(f"{'GROOVE decoder':<22}{'':>9}{'':>9}{'':>9}{dec:>10.3f}")
    rand = 1 / max(groove["n_target"], 1)
    lines.append(f"{'chance':<22}{0.5:>9.3f}{rand:>9.4f}{rand:>9.4f}{0.0:>10.3f}")
    lines += [
        f"GROOVE is aligned in the group-posterior space of {DEFAULT_REP} (tl.align's default).",
        "FOSCTTM: barycentric FOSCTTM, lower is better (0 perfect); trace: share of a cell's mass",
        "on its true partner; top-1: how often the true partner gets the most mass; Pearson:",
        "imputed vs measured values, per feature. The gap between GROOVE and 'labels only' is",
        "what the data add to the perturbation labels (matching.png shows it cell by cell).",
        "",
        f"Files in {out.resolve()}:",
    ]
    for name, what in files.items():
        path = out / name
        size = _size(path)
        lines.append(f"  {name:<17}{size:>9}  {what}")
    return "\n".join(lines)


def _size(path: Path) -> str:
    if path.is_dir():
        total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    elif path.exists():
        total = path.stat().st_size
    else:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if total < 1024 or unit == "GB":
            return f"{total:.0f} {unit}" if unit == "B" else f"{total:.1f} {unit}"
        total /= 1024
    return f"{total:.1f} GB"


def _partner_rep(mdata, src: str, tgt: str):
    """Target latents reordered so that row i is the partner of source cell i (truth)."""
    idx = _partner_index(mdata, src, tgt)
    return mdata[tgt].obsm[DEFAULT_REP][idx]


def _partner_features(mdata, src: str, tgt: str):
    import numpy as np
    import scipy.sparse as sp

    x = mdata[tgt].X
    x = x.toarray() if sp.issparse(x) else np.asarray(x)
    return x[_partner_index(mdata, src, tgt)]


def _partner_index(mdata, src: str, tgt: str):
    import pandas as pd

    tgt_ids = pd.Index(mdata[tgt].obs[DEFAULT_TRUTH_KEY].astype(str))
    idx = tgt_ids.get_indexer(mdata[src].obs[DEFAULT_TRUTH_KEY].astype(str))
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
