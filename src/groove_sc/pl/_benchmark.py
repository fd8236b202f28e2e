"""``pl.benchmark``: the learner x aligner grid and the metric against ``shared_fraction``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..benchmark._table import NO_TUNING, lower_is_better
from ._utils import finish, get_axes


def _select(
    results: pd.DataFrame, metric: str, tuning: str | None, shared_fraction: float | None
) -> tuple[pd.DataFrame, str]:
    """OK rows of ``metric`` for one tuning mode (plus learner-only rows) and fraction."""
    for col in ("learner", "aligner", "metric", "value", "status"):
        if col not in results:
            raise KeyError(f"results lack the column '{col}'; pass a table from benchmark.run.")
    df = results[(results["status"] == "ok") & (results["metric"] == metric)]
    if df.empty:
        metrics = sorted(results.loc[results["status"] == "ok", "metric"].dropna().unique())
        raise ValueError(f"No successful rows of metric '{metric}'; available metrics: {metrics}.")
    if "tuning" in df:
        modes = [t for t in df["tuning"].unique() if t != NO_TUNING]
        if tuning is None:
            tuning = "default" if "default" in modes or not modes else sorted(modes)[0]
        elif tuning not in modes:
            raise ValueError(f"tuning='{tuning}' has no rows of '{metric}'; present: {modes}.")
        df = df[df["tuning"].isin([tuning, NO_TUNING])]
    if shared_fraction is not None:
        if "shared_fraction" not in df:
            raise KeyError("shared_fraction= needs a 'shared_fraction' column (sweep results).")
        frac = pd.to_numeric(df["shared_fraction"], errors="coerce")
        df = df[np.isclose(frac, float(shared_fraction))]
        if df.empty:
            raise ValueError(f"No rows of '{metric}' at shared_fraction={shared_fraction}.")
    return df, tuning or "default"


def _direction(metric: str) -> str:
    return "lower is better" if lower_is_better(metric) else "higher is better"


def _grid(results, metric, ax, tuning, shared_fraction, cmap, annotate, spread):
    from matplotlib.patches import Rectangle

    df, tuning = _select(results, metric, tuning, shared_fraction)
    learners = list(dict.fromkeys(results["learner"]))
    aligners = list(dict.fromkeys(df["aligner"]))
    others = [a for a in dict.fromkeys(results["aligner"]) if a not in aligners]
    aligners += [a for a in others if a not in ("", "latent", "decoder")]
    stats = df.groupby(["learner", "aligner"])["value"].agg(["mean", "std", "count"])
    mean = stats["mean"].unstack().reindex(index=learners, columns=aligners)
    sd = stats[spread if spread != "sem" else "std"].unstack().reindex_like(mean)
    if spread == "sem":
        sd = sd / np.sqrt(stats["count"].unstack().reindex_like(mean))
    status = results.drop_duplicates(["learner", "aligner", "status"])
    status = status[status["status"] != "ok"].groupby(["learner", "aligner"])["status"].first()
    low = lower_is_better(metric)
    fig, ax = get_axes(ax, (1.2 + 0.9 * len(aligners), 1.0 + 0.55 * len(learners)))
    cm = cmap or ("viridis_r" if low else "viridis")
    im = ax.imshow(mean.to_numpy(dtype=float), cmap=cm, aspect="auto", interpolation="nearest")
    ax.set_xticks(np.arange(len(aligners)), aligners, rotation=45, ha="right")
    ax.set_yticks(np.arange(len(learners)), learners)
    values = mean.to_numpy(dtype=float)
    if annotate:
        finite = values[np.isfinite(values)]
        mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
        for i, learner in enumerate(learners):
            for j, aligner in enumerate(aligners):
                v = values[i, j]
                if np.isfinite(v):
                    s = sd.iloc[i, j]
                    text = f"{v:.3f}" + (f"\n±{s:.3f}" if np.isfinite(s) else "")
                    dark = (v > mid) if low else (v < mid)
                    ax.text(
                        j,
                        i,
                        text,
                        ha="center",
                        va="center",
                        fontsize="x-small",
                        color="white" if dark else "black",
                    )
                else:
                    mark = status.get((learner, aligner), "")
                    ax.text(
                        j,
                        i,
                        {"skipped": "skip", "error": "error"}.get(mark, "–"),
                        ha="center",
                        va="center",
                        fontsize="x-small",
                        color="0.4",
                    )
    if np.isfinite(values).any():
        flat = np.nanargmin(values) if low else np.nanargmax(values)
        i, j = np.unravel_index(flat, values.shape)
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    where = "" if shared_fraction is None else f", shared_fraction={shared_fraction:g}"
    n_seeds = int(df["seed"].nunique()) if "seed" in df else 1
    seeds = f"{n_seeds} seed{'s' if n_seeds != 1 else ''}"
    ax.set_title(
        f"{metric} ({_direction(metric)}{where})\nmean ± {spread} over {seeds}, epsilon: {tuning}",
        fontsize="small",
    )
    ax.set_xlabel("aligner")
    ax.set_ylabel("learner")
    fig.colorbar(im, ax=ax, label=metric)
    return fig, ax


def _sweep(results, metric, ax, tuning, aligner, spread, dodge):
    df, tuning = _select(results, metric, tuning, None)
    if "shared_fraction" not in df or df["shared_fraction"].isna().all():
        raise ValueError("kind='sweep' needs a 'shared_fraction' column (run_sweep results).")
    df = df.assign(shared_fraction=pd.to_numeric(df["shared_fraction"], errors="coerce"))
    low = lower_is_better(metric)
    fig, ax = get_axes(ax, (6.5, 4.5))
    learners = list(dict.fromkeys(df["learner"]))
    for i, learner in enumerate(learners):
        sub = df[df["learner"] == learner]
        if aligner is None:
            overall = sub.groupby("aligner")["value"].mean()
            best = overall.idxmin() if low else overall.idxmax()
        else:
            best = aligner
        sub = sub[sub["aligner"] == best]
        if sub.empty:
            continue
        g = sub.groupby("shared_fraction")["value"]
        x, m = g.mean().index.to_numpy(), g.mean().to_numpy()
        e = g.std().to_numpy() if spread == "std" else (g.std() / np.sqrt(g.count())).to_numpy()
        shift = (i - (len(learners) - 1) / 2) * dodge
        ax.errorbar(
            x + shift, m, yerr=np.nan_to_num(e), marker="o", capsize=3, label=f"{learner} + {best}"
        )
    ax.set_xlabel("shared_fraction (share of the perturbation effect common to both modalities)")
    ax.set_ylabel(metric)
    how = "each learner with its best aligner overall" if aligner is None else f"aligner {aligner}"
    ax.set_title(f"{metric} ({_direction(metric)}); {how}; epsilon: {tuning}", fontsize="small")
    ax.legend(fontsize="small", frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig, ax


def benchmark(
    results: pd.DataFrame,
    metric: str = "foscttm_barycentric",
    kind: Literal["grid", "sweep"] = "grid",
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    save: bool | str | Path | None = None,
    *,
    tuning: str | None = None,
    shared_fraction: float | None = None,
    aligner: str | None = None,
    spread: Literal["std", "sem"] = "std",
    cmap: str | None = None,
    annotate: bool = True,
    dodge: float = 0.008,
) -> Figure | Axes | None:
    """Plot a benchmark table from :func:`groove_sc.benchmark.run` or ``run_sweep``.

    - ``kind="grid"``: learners (rows) x aligners (columns), coloured by the mean of ``metric``
      over seeds (and over shared fractions unless ``shared_fraction`` picks one), annotated
      with mean ± spread; skipped and failed combinations are marked ``skip`` / ``error``; the
      best cell is outlined in red. The colour map is reversed for lower-is-better metrics, so
      better is always the same colour.
    - ``kind="sweep"``: ``metric`` against ``shared_fraction``, one line per learner, with error
      bars over seeds; by default each learner is drawn with the aligner that is best for it
      on average over all fractions (named in the legend), or with ``aligner`` for all.

    Parameters
    ----------
    results
        The tidy table (columns ``learner``, ``aligner``, ``seed``, ``tuning``, ``metric``,
        ``value``, ``status``; ``shared_fraction`` for sweeps).
    metric
        Metric to show (e.g. ``"foscttm_barycentric"``, ``"trace"``,
        ``"imputation_pearson_feature"``).
    kind
        ``"grid"`` or ``"sweep"``.
    ax, show, return_fig, save
        scanpy conventions (see :func:`groove_sc.pl.matching`); files are named
        ``benchmark_{kind}{save}``.
    tuning
        Which epsilon choice to show (``"default"``, ``"truth_free"``, ``"oracle"``); default
        ``"default"`` when present. Learner-only rows (``latent``, ``decoder``) are always kept.
    shared_fraction
        Grid of one shared fraction only.
    aligner
        Sweep: one aligner for every learner instead of each learner's best.
    spread
        ``"std"`` (default) or ``"sem"`` over seeds.
    cmap
        Grid colour map (default viridis, reversed for lower-is-better metrics).
    annotate
        Write the values in the grid's cells.
    dodge
        Sweep: horizontal offset between learners (in ``shared_fraction`` units) so that their
        error bars do not overlap; 0 draws them at the exact fractions.

    Returns
    -------
    The figure if ``return_fig``, the axes if ``show=False``, else ``None``.

    Examples
    --------
    >>> res = gs.benchmark.run(mdata, ["pca", "labels"], ["leot", "egw"], seeds=[0])
    >>> ax = gs.pl.benchmark(res, metric="foscttm_barycentric", show=False)
    >>> [t.get_text() for t in ax.get_xticklabels()]
    ['egw', 'leot']

    With ``run_sweep`` results, ``kind="sweep"`` draws the metric against ``shared_fraction``:

    >>> gs.pl.benchmark(sweep, metric="trace", kind="sweep", show=False)  # doctest: +SKIP

    """
    if not isinstance(results, pd.DataFrame):
        raise TypeError(f"results must be a pandas DataFrame, got {type(results).__name__}.")
    if spread not in ("std", "sem"):
        raise ValueError(f"spread must be 'std' or 'sem', got {spread!r}.")
    if kind == "grid":
        fig, ax = _grid(results, metric, ax, tuning, shared_fraction, cmap, annotate, spread)
    elif kind == "sweep":
        fig, ax = _sweep(results, metric, ax, tuning, aligner, spread, dodge)
    else:
        raise ValueError(f"kind must be 'grid' or 'sweep', got {kind!r}.")
    return finish(fig, ax, f"benchmark_{kind}", show=show, return_fig=return_fig, save=save)


def write_figures(
    results: pd.DataFrame, folder: str | Path, metric: str, *, tuning: str | None = None
) -> list[Path]:
    """Grid (one panel per shared fraction, stacked) and sweep figures of a results table, as PNG.

    Files: ``benchmark_grid_<metric>.png`` and, with several shared fractions,
    ``benchmark_sweep_<metric>.png`` in ``folder`` (created). ``groove-sc benchmark`` writes
    them for a config's ``figures`` entry.

    Parameters
    ----------
    results
        Table from :func:`groove_sc.benchmark.run`, ``run_sweep`` or ``run_config``.
    folder
        Where the files go.
    metric, tuning
        As in :func:`benchmark`.

    Returns
    -------
    The paths written.

    Examples
    --------
    >>> import tempfile
    >>> res = gs.benchmark.run(mdata, ["labels"], ["leot", "egw"], seeds=[0])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     [p.name for p in write_figures(res, tmp, "trace")]
    ['benchmark_grid_trace.png']

    """
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ok = results[results["status"] == "ok"]
    frac = ok["shared_fraction"] if "shared_fraction" in ok else pd.Series(dtype=float)
    fractions = sorted(pd.to_numeric(frac, errors="coerce").dropna().unique())
    panels = fractions or [None]
    n_l = ok["learner"].nunique()
    n_a = ok["aligner"].nunique()
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(1.5 + 0.9 * n_a, (1.4 + 0.55 * n_l) * len(panels)), squeeze=False
    )
    for ax, frac in zip(axes[:, 0], panels):
        benchmark(results, metric, "grid", ax=ax, show=False, shared_fraction=frac, tuning=tuning)
    fig.tight_layout()
    paths = [folder / f"benchmark_grid_{metric}.png"]
    fig.savefig(paths[0], dpi=110, bbox_inches="tight")
    plt.close(fig)
    if len(fractions) > 1:
        fig = benchmark(results, metric, "sweep", return_fig=True, tuning=tuning)
        paths.append(folder / f"benchmark_sweep_{metric}.png")
        fig.savefig(paths[1], dpi=110, bbox_inches="tight")
        plt.close(fig)
    return paths
