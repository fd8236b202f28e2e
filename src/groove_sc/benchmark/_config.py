"""``run_config``: a benchmark described by a YAML file (``groove-sc benchmark --config``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._sweep import run_sweep, run_units

#: Keys a config may hold, with their meaning (shown when a key is unknown).
CONFIG_KEYS = {
    "learners": "list of learner names (groove_sc.benchmark.LEARNERS)",
    "aligners": "list of aligner names (groove_sc.tl.ALIGNERS)",
    "seeds": "list of seeds (default [0, 1, 2])",
    "simulation": "simulate(paired=True) sweep: shared_fractions + other simulate arguments",
    "dataset": "alternative to simulation: {path: file.h5mu, clr: {mod: layer}, pca: {...}}",
    "learner_kwargs": "per learner keyword arguments",
    "variants": "learner variants {name: {learner: registered name, **kwargs}}",
    "aligner_kwargs": "per aligner keyword arguments of tl.align",
    "tuning": "default | truth_free | oracle, or a list of them",
    "source": "source modality",
    "target": "target modality",
    "groupby": "label column (default perturbation)",
    "truth_key": "truth column (default cell_id)",
    "label_key": "secondary label for label-transfer metrics",
    "epsilon_factors": "multiples of the default epsilon tried by the tuners",
    "cv_folds": "folds of the truth-free criterion",
    "tuning_tol": "tie tolerance of the truth-free criterion",
    "oracle_metric": "metric of the oracle choice",
    "target_rep": "target representation for foscttm_barycentric",
    "tune_aligners": "aligners that truth_free/oracle tune (default: all with an epsilon)",
    "tuning_criterion": "barycentric | mass (truth-free score)",
    "threads": "torch threads per process (default: leave as is)",
    "n_jobs": "(dataset, seed) units run in parallel processes (default 1)",
    "figures": "{dir: folder, metrics: [names]}: write benchmark_{grid,sweep}_<metric>.png",
}
_RUN_KEYS = (
    "tune_aligners",
    "tuning_criterion",
    "aligner_kwargs",
    "learner_kwargs",
    "variants",
    "tuning",
    "source",
    "target",
    "groupby",
    "truth_key",
    "label_key",
    "epsilon_factors",
    "cv_folds",
    "tuning_tol",
    "oracle_metric",
    "target_rep",
)


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a benchmark YAML file.

    Examples
    --------
    >>> cfg = load_config("benchmarks/configs/simulation_grid.yaml")  # doctest: +SKIP

    """
    import yaml

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Benchmark config '{path}' does not exist.")
    cfg = yaml.safe_load(path.read_text()) or {}
    if not isinstance(cfg, dict):
        raise ValueError(f"Benchmark config '{path}' must be a mapping of keys to values.")
    unknown = sorted(set(cfg) - set(CONFIG_KEYS))
    if unknown:
        valid = "\n".join(f"  {k}: {v}" for k, v in CONFIG_KEYS.items())
        raise KeyError(f"Unknown key(s) {unknown} in '{path}'. Valid keys:\n{valid}")
    for key in ("learners", "aligners"):
        if not cfg.get(key):
            raise ValueError(f"Benchmark config '{path}' needs a non-empty '{key}' list.")
    if ("simulation" in cfg) == ("dataset" in cfg):
        raise ValueError(f"Benchmark config '{path}' needs exactly one of 'simulation', 'dataset'.")
    return cfg


def _cell_clr(counts: Any) -> np.ndarray:
    """``log1p(counts)`` minus each cell's mean (the CLR of the dev data's scoring convention)."""
    x = np.log1p(counts.toarray() if sp.issparse(counts) else np.asarray(counts, dtype=float))
    return (x - x.mean(axis=1, keepdims=True)).astype(np.float32)


def prepare_dataset(mdata: Any, spec: dict[str, Any]) -> Any:
    """Apply a config's ``dataset`` preprocessing to a MuData, in place.

    ``clr: {modality: layer}`` writes ``layers[layer]`` = ``log1p(counts)`` minus each cell's
    mean, from ``layers["counts"]`` (or ``.X``). ``pca: {modality: {layer, n_comps, key}}``
    writes ``obsm[key]``, a PCA of that layer (a learner-independent target representation
    for ``target_rep``). Nothing else is changed.

    Examples
    --------
    >>> prepare_dataset(mdata, {"clr": {"adt": "clr"},
    ...     "pca": {"adt": {"layer": "clr", "n_comps": 30, "key": "X_clr_pca"}}})  # doctest: +SKIP

    """
    from sklearn.decomposition import PCA

    for mod, layer in (spec.get("clr") or {}).items():
        adata = mdata.mod[mod]
        counts = adata.layers["counts"] if "counts" in adata.layers else adata.X
        adata.layers[str(layer)] = _cell_clr(counts)
    for mod, opts in (spec.get("pca") or {}).items():
        adata = mdata.mod[mod]
        layer = opts.get("layer")
        x = adata.layers[layer] if layer else adata.X
        x = x.toarray() if sp.issparse(x) else np.asarray(x)
        n_comps = int(opts.get("n_comps", 30))
        adata.obsm[str(opts.get("key", "X_pca"))] = PCA(n_comps, random_state=0).fit_transform(x)
    return mdata


def write_figures(
    results: pd.DataFrame, folder: str | Path, metric: str, tuning: str | None = None
) -> list[Path]:
    """Grid (one panel per shared fraction, stacked) and sweep figures of a results table, as PNG.

    Files: ``benchmark_grid_<metric>.png`` and, with several shared fractions,
    ``benchmark_sweep_<metric>.png`` in ``folder``.

    Examples
    --------
    >>> res = read_results("results.csv")  # doctest: +SKIP
    >>> write_figures(res, "docs/benchmark", "foscttm_barycentric")  # doctest: +SKIP

    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .. import pl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ok = results[results["status"] == "ok"]
    fractions = sorted(pd.to_numeric(ok["shared_fraction"], errors="coerce").dropna().unique())
    panels = fractions or [None]
    n_l = ok["learner"].nunique()
    n_a = ok["aligner"].nunique()
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(1.5 + 0.9 * n_a, (1.4 + 0.55 * n_l) * len(panels)), squeeze=False
    )
    for ax, frac in zip(axes[:, 0], panels):
        pl.benchmark(
            results, metric, "grid", ax=ax, show=False, shared_fraction=frac, tuning=tuning
        )
    fig.tight_layout()
    paths = [folder / f"benchmark_grid_{metric}.png"]
    fig.savefig(paths[0], dpi=110, bbox_inches="tight")
    plt.close(fig)
    if len(fractions) > 1:
        fig = pl.benchmark(results, metric, "sweep", return_fig=True, tuning=tuning)
        paths.append(folder / f"benchmark_sweep_{metric}.png")
        fig.savefig(paths[1], dpi=110, bbox_inches="tight")
        plt.close(fig)
    return paths


def run_config(
    config_path: str | Path, out_csv: str | Path, dataset: str | Path | None = None
) -> pd.DataFrame:
    """Run the benchmark a YAML file describes; results appended to ``out_csv`` (resumable).

    The file names the learners, aligners and seeds, and either a ``simulation`` sweep (its
    ``shared_fractions``, an optional ``vary`` of further settings to sweep, see
    :func:`~groove_sc.benchmark.run_sweep`, plus any other argument of
    :func:`groove_sc.datasets.simulate`; ``paired=True`` is implied) or a ``dataset``
    (``{path: file.h5mu}`` with the truth column; a relative path is looked up from the
    working directory, then from the config's folder; ``clr`` and ``pca`` entries prepare it,
    see :func:`prepare_dataset`). Optional keys: ``learner_kwargs``, ``variants`` (named
    learner settings, see :func:`~groove_sc.benchmark.run_units`), ``aligner_kwargs``,
    ``tuning``, ``source``, ``target``, ``groupby``, ``truth_key``, ``label_key``,
    ``epsilon_factors``, ``cv_folds``, ``tuning_tol``, ``oracle_metric``, ``target_rep``,
    ``tune_aligners``, ``tuning_criterion``, ``threads``, ``n_jobs`` and ``figures``
    (``{dir, metrics, tuning}``: also write the grid and sweep plots of each metric).
    Progress is printed; a failure in one combination is a row of the table, not the end of
    the run.

    Example file (``benchmarks/configs/simulation_grid.yaml`` holds the documented grid)::

        learners: [pca, propensity, groove]
        aligners: [leot, egw, knn]
        seeds: [0, 1, 2]
        simulation:
          shared_fractions: [0.2, 0.5, 0.8]
          n_perturbations: 10
          cells_per_perturbation: 50
        learner_kwargs:
          groove: {max_epochs: 30}

    Parameters
    ----------
    config_path
        The YAML file.
    out_csv
        Results CSV; rows already there are kept and not recomputed.
    dataset
        Path of the dataset file, replacing the config's ``dataset.path`` (data files are not
        part of the package: configs name a default, the command line gives the real place).

    Returns
    -------
    The whole results table after the run.

    Examples
    --------
    >>> from groove_sc.benchmark import run_config
    >>> res = run_config("benchmarks/configs/simulation_grid.yaml", "results.csv")  # doctest: +SKIP

    """
    cfg = load_config(config_path)
    kwargs = {k: cfg[k] for k in _RUN_KEYS if k in cfg}
    kwargs["n_jobs"] = int(cfg.get("n_jobs", 1))
    kwargs["threads"] = cfg.get("threads")
    seeds = [int(s) for s in cfg.get("seeds", (0, 1, 2))]
    t0 = time.perf_counter()
    print(
        f"[groove-sc benchmark] {len(cfg['learners'])} learners x {len(cfg['aligners'])} "
        f"aligners, seeds {seeds}, results -> {out_csv}",
        flush=True,
    )
    if "simulation" in cfg:
        sim = dict(cfg["simulation"] or {})
        fractions = sim.pop("shared_fractions", [sim.pop("shared_fraction", 0.5)])
        kwargs["vary"] = sim.pop("vary", None)
        results = run_sweep(
            out_csv,
            cfg["learners"],
            cfg["aligners"],
            shared_fractions=[float(f) for f in fractions],
            seeds=seeds,
            simulation=sim,
            **kwargs,
        )
    else:
        import mudata

        spec = cfg["dataset"] if isinstance(cfg["dataset"], dict) else {"path": cfg["dataset"]}
        path = Path(dataset if dataset is not None else spec["path"])
        if not path.is_absolute() and not path.exists() and dataset is None:
            path = Path(config_path).parent / path  # relative to the config file
        if not path.exists():
            raise FileNotFoundError(
                f"Dataset '{path}' of benchmark config '{config_path}' does not exist; pass its "
                "place with --dataset PATH (groove-sc benchmark) or dataset= (run_config)."
            )
        cache: dict[str, Any] = {}

        def load(dataset: str, fraction: float | None, seed: int):
            if "mdata" not in cache:
                cache["mdata"] = prepare_dataset(mudata.read_h5mu(path), spec)
            return cache["mdata"]

        units = [(path.stem, None, s) for s in seeds]
        results = run_units(out_csv, units, load, cfg["learners"], cfg["aligners"], **kwargs)
    fig_cfg = cfg.get("figures")
    if fig_cfg:
        fig_cfg = {"dir": fig_cfg} if isinstance(fig_cfg, str) else dict(fig_cfg)
        metrics = fig_cfg.get("metrics", fig_cfg.get("metric", "foscttm_barycentric"))
        for metric in [metrics] if isinstance(metrics, str) else metrics:
            for p in write_figures(results, fig_cfg["dir"], metric, fig_cfg.get("tuning")):
                print(f"[groove-sc benchmark] wrote {p}", flush=True)
    n_err = int((results["status"] == "error").sum())
    n_skip = int((results["status"] == "skipped").sum())
    print(
        f"[groove-sc benchmark] done in {time.perf_counter() - t0:.0f} s: {len(results)} rows "
        f"({n_skip} skipped, {n_err} errors) in {out_csv}",
        flush=True,
    )
    return results
