"""Peak memory, time and stored entries of ``tl.align`` on a screen with a large control group.

The layout of ``simulate(n_perturbations=500, cells_per_perturbation=200)`` (the setting of
issue 10): 500 groups of 200 cells plus an 11,111-cell control group, about 111k cells per
modality, disjoint cells. Only the alignment is measured, on an embedding (no model): each
cell's state is its group's effect (N(0, I), zero for the control) plus a baseline N(0, I) in
10 dimensions, mapped to ``--dim`` dimensions by a random linear map plus noise, independently
per modality (like a learned latent).

Every measurement runs in a fresh subprocess; its peak RSS (``ru_maxrss``) includes the
interpreter, the imports (about 0.6 GB) and the MuData with the embedding. A watchdog kills a
run whose RSS passes ``--kill-gb``.

Usage::

    nice python benchmarks/coupling_memory.py                          # leot, egwl; defaults
    nice python benchmarks/coupling_memory.py --methods egwl --dense   # one solve without
                                                                       # streaming or sparsity
    PYTHONPATH=/tmp/before/src python benchmarks/coupling_memory.py    # another checkout
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time

import numpy as np


def build(n_pert: int, cells: int, control: int, dim: int, seed: int = 0):
    import anndata as ad
    import mudata as md
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    sizes = np.array([control] + [cells] * n_pert)
    names = ["control"] + [f"pert{i:03d}" for i in range(n_pert)]
    effect = rng.normal(size=(len(sizes), 10))
    effect[0] = 0.0
    grp = np.repeat(np.arange(len(sizes)), sizes)

    def mod(prefix: str) -> ad.AnnData:
        z = effect[grp] + rng.normal(size=(len(grp), 10))
        emb = z @ rng.normal(size=(10, dim)) / np.sqrt(10) + 0.1 * rng.normal(size=(len(grp), dim))
        obs = pd.DataFrame(
            {"perturbation": pd.Categorical.from_codes(grp, names)},
            index=[f"{prefix}:c{i}" for i in range(len(grp))],
        )
        adata = ad.AnnData(sp.csr_matrix((len(grp), 1), dtype=np.float32), obs=obs)
        adata.var_names = [f"{prefix}_f0"]
        adata.obsm["X_emb"] = emb.astype(np.float32)
        return adata

    return md.MuData({"rna": mod("rna"), "prot": mod("prot")})


def child(args: argparse.Namespace) -> None:
    import warnings

    import groove_sc as gs

    warnings.simplefilter("ignore")
    mdata = build(args.perturbations, args.cells, args.control, args.dim)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    kwargs = {}
    if args.dense:
        kwargs = {"keep_mass": 1.0, "max_per_row": None, "stream_above": 2**40}
    start = time.perf_counter()
    gs.tl.align(mdata, "rna", "prot", use_rep="X_emb", method=args.method, **kwargs)
    secs = time.perf_counter() - start
    meta = mdata.uns["groove_coupling"]
    conv = meta["convergence"]
    print(
        json.dumps(
            {
                "method": args.method,
                "seconds": secs,
                "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                "peak_before_align_gb": base,
                "entries": int(mdata.obsp["groove_coupling"].nnz),
                "dropped_mass": float(conv.get("dropped_mass", 0.0)),
                "converged": bool(conv["converged"]),
                "marginal_error": float(conv.get("marginal_error", np.nan)),
                "streamed_groups": int(conv.get("n_streamed_groups", 0)),
                "n_cells": int(mdata["rna"].n_obs),
            }
        )
    )


def run(cmd: list[str], kill_gb: float) -> dict | None:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    killed = []

    def watch() -> None:
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status") as fh:
                    rss = next(int(x.split()[1]) for x in fh if x.startswith("VmRSS"))
            except (OSError, StopIteration):
                break
            if rss / 2**20 > kill_gb:
                killed.append(rss / 2**20)
                proc.kill()
                break
            time.sleep(0.2)

    threading.Thread(target=watch, daemon=True).start()
    out, _ = proc.communicate()
    if killed:
        print(f"killed at {killed[0]:.1f} GB RSS (--kill-gb {kill_gb})", file=sys.stderr)
        return None
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", nargs="+", default=["leot", "egwl"])
    parser.add_argument("--perturbations", type=int, default=500)
    parser.add_argument("--cells", type=int, default=200)
    parser.add_argument("--control", type=int, default=11_111)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--dense", action="store_true", help="no streaming, keep every entry")
    parser.add_argument("--kill-gb", type=float, default=16.0)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.method = args.child
        child(args)
        return
    print(
        "| method | mode | cells / modality | wall s | peak RSS GB | entries stored "
        "| dropped mass | converged |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for method in args.methods:
        cmd = [sys.executable, __file__, "--child", method]
        for key in ("perturbations", "cells", "control", "dim"):
            cmd += [f"--{key}", str(getattr(args, key))]
        if args.dense:
            cmd.append("--dense")
        res = run(cmd, args.kill_gb)
        mode = "dense, keep all" if args.dense else "default"
        if res is None:
            print(f"| {method} | {mode} | | failed | | | | |")
            continue
        print(
            f"| {method} | {mode} | {res['n_cells']:,} | {res['seconds']:.1f} "
            f"| {res['peak_gb']:.2f} | {res['entries']:,} | {res['dropped_mass']:.4f} "
            f"| {res['converged']} |",
            flush=True,
        )
    if os.environ.get("PYTHONPATH"):
        print(f"<!-- PYTHONPATH={os.environ['PYTHONPATH']} -->")


if __name__ == "__main__":
    main()
