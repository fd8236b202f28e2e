"""Tables and figures of docs/robustness.md from the committed robustness CSVs.

    python benchmarks/robustness_report.py            # reads docs/robustness/*.csv

Writes ``docs/robustness/<sweep>_table.md`` (mean +- sd over seeds, included by the docs page)
and ``docs/robustness/<sweep>.png``, and prints the label-noise retention figure of issue 13:
``(trace_groove - trace_labels)`` at a noise level divided by the same difference on clean
labels, per seed, at each shared fraction and aligner.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1] / "docs" / "robustness"
METRICS = ["trace", "foscttm_barycentric"]
LEARNERS = ["groove", "supcon", "propensity", "labels"]


def load(name: str) -> pd.DataFrame:
    """Scored rows (trace, FOSCTTM) of one sweep, with the varied setting parsed from the name."""
    df = pd.read_csv(ROOT / f"{name}.csv", keep_default_na=False, na_values=["", "nan"])
    df = df[(df["status"] == "ok") & df["metric"].isin(METRICS)].copy()
    df["value"] = df["value"].astype(float)
    df["setting"] = df["dataset"].map(lambda d: (re.findall(r"\[(.*)\]", d) or [""])[0])
    return df


def summary(df: pd.DataFrame, index: list[str]) -> pd.DataFrame:
    """``mean +- sd`` over seeds, learners as columns."""
    g = df.groupby([*index, "learner"])["value"]
    cell = g.mean().map("{:.3f}".format) + " ± " + g.std(ddof=1).fillna(0).map("{:.3f}".format)
    out = cell.unstack("learner")
    return out[[c for c in [*LEARNERS, *sorted(set(out.columns) - set(LEARNERS))] if c in out]]


def markdown(tab: pd.DataFrame) -> str:
    """A DataFrame as a GitHub-flavoured markdown table (no extra dependency)."""
    cols = [str(c) for c in tab.columns]
    rows = [[str(v) for v in row] for row in tab.itertuples(index=False)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def write_table(name: str, df: pd.DataFrame, index: list[str], transpose: bool = False) -> None:
    """One markdown table per metric into ``<name>_table.md`` (learners as rows: ``transpose``)."""
    parts = []
    n_seeds = df["seed"].nunique()
    for metric in METRICS:
        tab = summary(df[df["metric"] == metric], index)
        tab = (tab.T.rename_axis("learner") if transpose else tab).reset_index()
        better = "higher" if metric == "trace" else "lower"
        parts.append(f"**{metric}** ({better} is better; mean ± sd over {n_seeds} seeds)\n")
        parts.append(markdown(tab) + "\n")
    (ROOT / f"{name}_table.md").write_text("\n".join(parts))


def plot_lines(name: str, df: pd.DataFrame, x: str, panels: list[str], xlabel: str) -> None:
    """Mean (error bar: sd over seeds) of each metric against the varied setting."""
    keys = sorted(df.groupby(panels).groups)
    size = (3.2 * len(keys), 5.5)
    fig, axes = plt.subplots(len(METRICS), len(keys), figsize=size, squeeze=False)
    for j, key in enumerate(keys):
        key = key if isinstance(key, tuple) else (key,)
        sub = df[(df[panels] == pd.Series(key, index=panels)).all(axis=1)]
        for i, metric in enumerate(METRICS):
            ax = axes[i, j]
            for learner, d in sub[sub["metric"] == metric].groupby("learner"):
                s = d.groupby(x)["value"].agg(["mean", "std"])
                ax.errorbar(s.index, s["mean"], s["std"], label=learner, marker="o", capsize=2)
            ax.set_title(", ".join(f"{p}={v}" for p, v in zip(panels, key)), fontsize=8)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(metric)
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(ROOT / f"{name}.png", dpi=110)
    plt.close(fig)


#: Defaults of the parameters the sensitivity sweep varies (variant names groove_<name><value>).
DEFAULTS = {"tau": 0.1, "beta": 10.0, "alpha": 1.0}


def plot_sensitivity(df: pd.DataFrame) -> None:
    """Trace and FOSCTTM against each parameter (the others at their defaults)."""
    groove = df[df["learner"].str.startswith("groove")]
    fig, axes = plt.subplots(len(METRICS), len(DEFAULTS), figsize=(10, 5.5), squeeze=False)
    for j, (param, default) in enumerate(DEFAULTS.items()):
        found = groove["learner"].str.extract(rf"^groove_{param}([0-9.]+)$")[0]
        value = pd.to_numeric(found, errors="coerce")
        value[groove["learner"] == "groove"] = default
        sub = groove.assign(value_of=value).dropna(subset=["value_of"])
        for i, metric in enumerate(METRICS):
            ax = axes[i, j]
            for aligner, d in sub[sub["metric"] == metric].groupby("aligner"):
                s = d.groupby("value_of")["value"].agg(["mean", "std"])
                ax.errorbar(s.index, s["mean"], s["std"], label=aligner, marker="o", capsize=2)
            ax.axvline(default, color="0.7", lw=1, ls="--")
            ax.set_xscale("symlog" if param == "alpha" else "log")
            ticks = sorted(sub["value_of"].unique())
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.minorticks_off()
            ax.set_xlabel(f"{param} (dashed: default)")
            ax.set_ylabel(metric)
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(ROOT / "sensitivity.png", dpi=110)
    plt.close(fig)


def retention(df: pd.DataFrame) -> pd.DataFrame:
    """(trace_groove - trace_labels) noisy / clean, per seed; mean and sd over seeds."""
    t = df[df["metric"] == "trace"].pivot_table(
        index=["shared_fraction", "aligner", "seed", "label_noise"],
        columns="learner",
        values="value",
    )
    adv = (t["groove"] - t["labels"]).unstack("label_noise")
    ratio = adv.div(adv[0.0], axis=0)
    g = ratio.groupby(["shared_fraction", "aligner"])
    return pd.concat({"mean": g.mean(), "sd": g.std(ddof=1)}, axis=1).round(3)


def main() -> int:
    """Write every table and figure whose CSV exists."""
    if (ROOT / "label_noise.csv").exists():
        df = load("label_noise")
        df["label_noise"] = df["setting"].str.split("=").str[1].astype(float)
        write_table("label_noise", df, ["shared_fraction", "aligner", "label_noise"])
        panels = ["shared_fraction", "aligner"]
        plot_lines("label_noise", df, "label_noise", panels, "label_noise")
        print("GROOVE's trace advantage over labels kept under label noise (noisy / clean):")
        print(retention(df).to_string())
    if (ROOT / "imbalance.csv").exists():
        df = load("imbalance")
        df["imbalance"] = df["setting"].str.split("=").str[1].astype(float)
        write_table("imbalance", df, ["shared_fraction", "aligner", "imbalance"])
        plot_lines("imbalance", df, "imbalance", ["shared_fraction", "aligner"], "imbalance")
    if (ROOT / "rare_labels.csv").exists():
        df = load("rare_labels")
        df["design"] = (
            df["setting"]
            .str.replace(",cells_per_perturbation=", " x ")
            .str.replace("n_perturbations=", "")
        )
        write_table("rare_labels", df, ["shared_fraction", "aligner", "design"])
    if (ROOT / "sensitivity.csv").exists():
        df = load("sensitivity")
        write_table("sensitivity", df, ["aligner"], transpose=True)
        plot_sensitivity(df)
    return 0


if __name__ == "__main__":
    sys.exit(main())
