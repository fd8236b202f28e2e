"""End-to-end pipeline at 50k-200k cells per modality: time and peak RSS of every step.

For each size (cells per modality), in a fresh process: ``simulate`` (750 perturbations, 10%
control cells, 2000 genes, 24 proteins), ``GROOVE.setup_mudata``, one GROOVE training epoch,
one epoch of scvi-tools' SCVI on the same RNA counts (the reference, same batch size, same
process), ``tl.embed``, ``tl.align`` with ``leot`` on the latent (``space="rep"``), ``tl.align``
with ``leot`` and its defaults (the latent's group-posterior coordinates, computed inside) and
with ``egwl`` (on the latent, its default), ``tl.impute`` (the default ``leot`` coupling) and
the h5mu write. Every
step reports its wall time and the process's peak RSS during the step (sampled every 20 ms and
checked against the kernel's high-water mark), so a step's figure includes the data already in
memory.

Targets (issue 10, 2 CPU cores): peak RSS at most 6 GB at 200k for every step; embed +
leot (defaults) + impute at most one GROOVE training epoch; GROOVE / SCVI epoch ratio
at most 2.0. The table and the ratios come from one run.

Usage::

    nice python benchmarks/end_to_end.py --sizes 50000 100000
    nice python benchmarks/end_to_end.py --sizes 200000 --out e2e_200k.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

STEPS = [
    ("simulate", "simulate"),
    ("setup", "setup_mudata"),
    ("groove_epoch", "GROOVE: 1 training epoch"),
    ("scvi_epoch", "SCVI: 1 training epoch (reference)"),
    ("embed", "tl.embed"),
    ("leot", "tl.align leot (latent, space='rep')"),
    ("leot_posterior", "tl.align leot (defaults: group posterior inside)"),
    ("egwl", "tl.align egwl"),
    ("impute", "tl.impute (default leot coupling)"),
    ("write", "h5mu write"),
]


def _rss_gb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def _hwm_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class StepMeter:
    """Wall time and peak RSS of consecutive steps of one process."""

    def __init__(self) -> None:
        self.results: dict[str, dict[str, float]] = {}
        self._peak = 0.0
        self._stop = False
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while not self._stop:
            self._peak = max(self._peak, _rss_gb())
            time.sleep(0.02)

    def run(self, name: str, func: Callable[[], Any]) -> Any:
        hwm_before = _hwm_gb()
        self._peak = _rss_gb()
        start = time.perf_counter()
        out = func()
        secs = time.perf_counter() - start
        hwm_after = _hwm_gb()
        peak = max(self._peak, _rss_gb())
        if hwm_after > hwm_before:  # the process's high-water mark rose during this step
            peak = max(peak, hwm_after)
        self.results[name] = {"seconds": secs, "peak_gb": peak}
        print(f"# {name}: {secs:.1f} s, peak {peak:.2f} GB", file=sys.stderr, flush=True)
        return out


def child(n_cells: int, args: argparse.Namespace) -> dict[str, Any]:
    import warnings

    warnings.filterwarnings("ignore")
    import scvi
    import torch

    import groove_sc as gs

    torch.set_num_threads(args.threads)
    scvi.settings.num_threads = args.threads
    scvi.settings.seed = 0
    base = _rss_gb()
    meter = StepMeter()
    cpp = round(0.9 * n_cells / args.perturbations)
    mdata = meter.run(
        "simulate",
        lambda: gs.datasets.simulate(
            n_perturbations=args.perturbations,
            cells_per_perturbation=cpp,
            control_fraction=0.1,
            n_features={"rna": args.genes, "prot": args.proteins},
            seed=0,
        ),  # fmt: skip
    )
    meter.run(
        "setup",
        lambda: gs.model.GROOVE.setup_mudata(
            mdata,
            perturbation_key="perturbation",
            modalities=["rna", "prot"],
            layers={"rna": "counts"},
            likelihoods={"rna": "nb", "prot": "normal"},
        ),  # fmt: skip
    )
    train_kw = dict(
        max_epochs=1, train_size=1.0, batch_size=args.batch_size, accelerator="cpu",
        enable_progress_bar=False,
    )  # fmt: skip
    model = gs.model.GROOVE(mdata, n_latent=32, n_hidden=128)
    meter.run("groove_epoch", lambda: model.train(**train_kw))
    rna = mdata.mod["rna"]
    scvi.model.SCVI.setup_anndata(rna, layer="counts")
    reference = scvi.model.SCVI(rna, n_latent=32, n_hidden=128, n_layers=1)
    meter.run("scvi_epoch", lambda: reference.train(**train_kw))
    reference = None  # free the reference model
    meter.run("embed", lambda: gs.tl.embed(mdata, model, key_added="X_groove"))
    meter.run(
        "leot",
        lambda: gs.tl.align(mdata, "rna", "prot", use_rep="X_groove", method="leot",
                            space="rep", key_added="leot"),
    )  # fmt: skip
    info = {"leot": _coupling_info(mdata, "leot")}
    # the default path keeps one leot coupling: drop the latent one before going on
    del mdata.obsp["leot"], mdata.uns["leot"]
    meter.run(
        "leot_posterior",
        lambda: gs.tl.align(mdata, "rna", "prot", use_rep="X_groove", method="leot",
                            key_added="leot_posterior"),
    )  # fmt: skip
    meter.run(
        "egwl",
        lambda: gs.tl.align(mdata, "rna", "prot", use_rep="X_groove", method="egwl",
                            key_added="egwl"),
    )  # fmt: skip
    meter.run("impute", lambda: gs.tl.impute(mdata, "rna", "prot", coupling_key="leot_posterior"))
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        meter.run("write", lambda: mdata.write(os.path.join(tmp, "e2e.h5mu")))
    info.update({key: _coupling_info(mdata, key) for key in ("leot_posterior", "egwl")})
    return {
        "n_cells": int(mdata["rna"].n_obs),
        "n_control": int((mdata["rna"].obs["perturbation"] == "control").sum()),
        "base_gb": base,
        "steps": meter.results,
        "couplings": info,
        "threads": args.threads,
    }


def _coupling_info(mdata, key: str) -> dict[str, Any]:
    return {
        "entries": int(mdata.obsp[key].nnz),
        "dropped_mass": float(mdata.uns[key]["convergence"].get("dropped_mass", 0.0)),
        "converged": bool(mdata.uns[key]["convergence"]["converged"]),
    }


def _table(results: list[dict[str, Any]]) -> str:
    head = "| step | " + " | ".join(f"{r['n_cells']:,} cells: s / peak GB" for r in results)
    lines = [head + " |", "|---" * (len(results) + 1) + "|"]
    for key, label in STEPS:
        cells = []
        for r in results:
            s = r["steps"].get(key)
            cells.append("" if s is None else f"{s['seconds']:.1f} s / {s['peak_gb']:.2f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    ratio_rows = []
    for r in results:
        st = r["steps"]
        epoch = st["groove_epoch"]["seconds"]
        ratio_rows.append(
            (
                epoch / st["scvi_epoch"]["seconds"],
                sum(st[k]["seconds"] for k in ("embed", "leot_posterior", "impute")) / epoch,
                max(s["peak_gb"] for s in st.values()),
            )
        )
    lines.append(
        "| **GROOVE / SCVI epoch** (target <= 2.0) | "
        + " | ".join(f"**{a:.2f}**" for a, _, _ in ratio_rows)
        + " |"
    )
    lines.append(
        "| **(embed + leot + impute) / GROOVE epoch** (target <= 1.0) | "
        + " | ".join(f"**{b:.2f}**" for _, b, _ in ratio_rows)
        + " |"
    )
    lines.append(
        "| **largest step peak RSS, GB** (target <= 6 at 200k) | "
        + " | ".join(f"**{c:.2f}**" for _, _, c in ratio_rows)
        + " |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 100_000, 200_000])
    parser.add_argument("--perturbations", type=int, default=750)
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--proteins", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="torch / scvi threads")
    parser.add_argument("--tmpdir", default=None, help="where the h5mu file is written")
    parser.add_argument("--out", default=None, help="also write the results as JSON")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args)))
        return
    results = []
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--child", str(n)]
        for key in ("perturbations", "genes", "proteins", "batch_size", "threads", "tmpdir"):
            value = getattr(args, key)
            if value is not None:
                cmd += [f"--{key.replace('_', '-')}", str(value)]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode or not lines:
            print(f"size {n}: the child process failed (exit {proc.returncode})", file=sys.stderr)
            continue
        results.append(json.loads(lines[-1]))
    if not results:
        sys.exit(1)
    import platform

    print(
        f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"torch threads {args.threads}; {args.perturbations} perturbations, 10% control, "
        f"{args.genes} genes, {args.proteins} proteins, batch {args.batch_size}"
    )
    for r in results:
        parts = [
            f"{key} {c['entries']:,} entries (moved mass {c['dropped_mass']:.3f}, converged "
            f"{c['converged']})"
            for key, c in r["couplings"].items()
        ]
        print(
            f"{r['n_cells']:,} cells ({r['n_control']:,} control): imports {r['base_gb']:.2f} GB; "
            + ", ".join(parts)
        )
    print()
    print(_table(results))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
