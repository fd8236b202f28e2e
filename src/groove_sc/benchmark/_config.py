"""``run_config``: a benchmark described by a YAML file (``groove-sc benchmark --config``)."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._constants import COUNTS_LAYER
from .._docs import doc_params
from ._options import OPTION_NAMES, option_summary
from ._progress import logger, show_progress
from ._sweep import run_sweep, run_units

#: Keys of a config that are not options of :func:`run`, with their meaning.
_SETUP_KEYS = {
    "learners": "list of learner names (groove_sc.benchmark.LEARNERS)",
    "aligners": "list of aligner names (groove_sc.tl.ALIGNERS)",
    "seeds": "list of seeds (default [0, 1, 2])",
    "simulation": "simulate(paired=True) sweep: shared_fractions, vary + other simulate arguments",
    "dataset": "alternative to simulation: {path: file.h5mu, clr: {mod: layer}, pca: {...}}",
    "variants": "learner variants {name: {learner: registered name, **kwargs}}",
    "threads": "torch threads per process (default: leave as is)",
    "n_jobs": "(dataset, seed) units run in parallel processes (default 1)",
    "figures": "{dir: folder, metrics: [names], tuning: mode}: plots groove-sc benchmark writes",
}
#: Keys a config may hold, with their meaning (shown when a key is unknown): the setup keys
#: above and every option of :class:`RunOptions`, under its own name.
CONFIG_KEYS = {**_SETUP_KEYS, **{name: option_summary(name) for name in OPTION_NAMES}}


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a benchmark YAML file.

    Examples
    --------
    >>> import pathlib, tempfile, yaml
    >>> cfg = {"learners": ["pca"], "aligners": ["egw"], "simulation": {"n_perturbations": 4}}
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "grid.yaml"
    >>> _ = path.write_text(yaml.safe_dump(cfg))
    >>> sorted(load_config(path))
    ['aligners', 'learners', 'simulation']

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
    >>> spec = {"clr": {"rna": "clr"},
    ...         "pca": {"rna": {"layer": "clr", "n_comps": 5, "key": "X_clr"}}}
    >>> prepare_dataset(mdata, spec)["rna"].obsm["X_clr"].shape[1]
    5

    """
    from sklearn.decomposition import PCA

    for mod, layer in (spec.get("clr") or {}).items():
        adata = mdata.mod[mod]
        counts = adata.layers[COUNTS_LAYER] if COUNTS_LAYER in adata.layers else adata.X
        adata.layers[str(layer)] = _cell_clr(counts)
    for mod, opts in (spec.get("pca") or {}).items():
        adata = mdata.mod[mod]
        layer = opts.get("layer")
        x = adata.layers[layer] if layer else adata.X
        x = x.toarray() if sp.issparse(x) else np.asarray(x)
        n_comps = int(opts.get("n_comps", 30))
        adata.obsm[str(opts.get("key", "X_pca"))] = PCA(n_comps, random_state=0).fit_transform(x)
    return mdata


@doc_params(option_names=textwrap.fill(", ".join(f"``{n}``" for n in OPTION_NAMES), 88))
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
    see :func:`prepare_dataset`). Optional keys: ``variants`` (named learner settings, see
    :func:`~groove_sc.benchmark.run_units`), ``threads``, ``n_jobs``, ``figures``
    (``{dir, metrics, tuning}``: the grid and sweep plots of each metric, which
    ``groove-sc benchmark`` writes after the run; see :func:`figure_requests`) and every
    option of :class:`~groove_sc.benchmark.RunOptions` under its own name:

    %(option_names)s

    Progress is shown (see :func:`~groove_sc.benchmark.run`); a failure in one combination
    is a row of the table, not the end of the run.

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
    kwargs = {k: cfg[k] for k in (*OPTION_NAMES, "variants") if k in cfg}
    kwargs["n_jobs"] = int(cfg.get("n_jobs", 1))
    kwargs["threads"] = cfg.get("threads")
    seeds = [int(s) for s in cfg.get("seeds", (0, 1, 2))]
    t0 = time.perf_counter()
    with show_progress():
        logger.info(
            "%d learners x %d aligners, seeds %s, results -> %s",
            len(cfg["learners"]),
            len(cfg["aligners"]),
            seeds,
            out_csv,
        )
        if "simulation" in cfg:
            results = _run_simulation(cfg, out_csv, seeds, kwargs)
        else:
            results = _run_dataset(cfg, config_path, dataset, out_csv, seeds, kwargs)
        n_err = int((results["status"] == "error").sum())
        n_skip = int((results["status"] == "skipped").sum())
        logger.info(
            "done in %.0f s: %d rows (%d skipped, %d errors) in %s",
            time.perf_counter() - t0,
            len(results),
            n_skip,
            n_err,
            out_csv,
        )
    return results


def _run_simulation(
    cfg: Mapping[str, Any], out_csv: str | Path, seeds: list[int], kwargs: dict[str, Any]
) -> pd.DataFrame:
    sim = dict(cfg["simulation"] or {})
    fractions = sim.pop("shared_fractions", [sim.pop("shared_fraction", 0.5)])
    vary = sim.pop("vary", None)
    return run_sweep(
        out_csv,
        cfg["learners"],
        cfg["aligners"],
        shared_fractions=[float(f) for f in fractions],
        seeds=seeds,
        simulation=sim,
        vary=vary,
        **kwargs,
    )


def _run_dataset(
    cfg: Mapping[str, Any],
    config_path: str | Path,
    dataset: str | Path | None,
    out_csv: str | Path,
    seeds: list[int],
    kwargs: dict[str, Any],
) -> pd.DataFrame:
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
    return run_units(out_csv, units, load, cfg["learners"], cfg["aligners"], **kwargs)


def figure_requests(cfg: Mapping[str, Any]) -> list[tuple[Path, str, str | None]]:
    """The plots a config's ``figures`` entry asks for: ``(folder, metric, tuning)`` each.

    ``figures`` is a folder, or ``{dir, metrics (or metric), tuning}``; the default metric is
    ``foscttm_barycentric``. ``groove-sc benchmark`` writes them after the run (with
    :func:`groove_sc.pl.write_figures`).

    Examples
    --------
    >>> figure_requests({"figures": {"dir": "fig", "metrics": ["trace", "foscttm_barycentric"]}})
    [(PosixPath('fig'), 'trace', None), (PosixPath('fig'), 'foscttm_barycentric', None)]
    >>> figure_requests({"figures": "fig"})
    [(PosixPath('fig'), 'foscttm_barycentric', None)]
    >>> figure_requests({})
    []

    """
    spec = cfg.get("figures")
    if not spec:
        return []
    spec = {"dir": spec} if isinstance(spec, str) else dict(spec)
    metrics = spec.get("metrics", spec.get("metric", "foscttm_barycentric"))
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    return [(Path(spec["dir"]), metric, spec.get("tuning")) for metric in metrics]
