"""``run_config``: a benchmark described by a YAML file (``groove-sc benchmark --config``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from ._sweep import run_sweep, run_units

#: Keys a config may hold, with their meaning (shown when a key is unknown).
CONFIG_KEYS = {
    "learners": "list of learner names (groove_sc.benchmark.LEARNERS)",
    "aligners": "list of aligner names (groove_sc.tl.ALIGNERS)",
    "seeds": "list of seeds (default [0, 1, 2])",
    "simulation": "simulate(paired=True) sweep: shared_fractions + other simulate arguments",
    "dataset": "alternative to simulation: {path: file.h5mu}",
    "learner_kwargs": "per learner keyword arguments",
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


def run_config(config_path: str | Path, out_csv: str | Path) -> pd.DataFrame:
    """Run the benchmark a YAML file describes; results appended to ``out_csv`` (resumable).

    The file names the learners, aligners and seeds, and either a ``simulation`` sweep (its
    ``shared_fractions`` plus any other argument of :func:`groove_sc.datasets.simulate`;
    ``paired=True`` is implied) or a ``dataset`` (``{path: file.h5mu}`` with the truth column;
    a relative path is looked up from the working directory, then from the config's folder).
    Optional keys: ``learner_kwargs``, ``aligner_kwargs``, ``tuning``, ``source``, ``target``,
    ``groupby``, ``truth_key``, ``label_key``, ``epsilon_factors``, ``cv_folds``, ``tuning_tol``,
    ``oracle_metric``, ``target_rep``, ``tune_aligners``, ``tuning_criterion``, ``threads``,
    ``n_jobs`` and ``figures`` (``{dir, metrics, tuning}``: also write the grid and sweep
    plots of each metric). Progress is printed; a failure in one combination is a row of the
    table, not the end of the run.

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

        spec = cfg["dataset"]
        path = Path(spec["path"] if isinstance(spec, dict) else spec)
        if not path.is_absolute() and not path.exists():
            path = Path(config_path).parent / path  # relative to the config file
        cache: dict[str, Any] = {}

        def load(dataset: str, fraction: float | None, seed: int):
            if "mdata" not in cache:
                cache["mdata"] = mudata.read_h5mu(path)
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
