"""Peak RSS and time of ``gs.datasets.simulate`` at screen scale (each size in a fresh process).

Usage::

    nice python benchmarks/simulate_memory.py --sizes 111111 200000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def child(n_cells: int, perturbations: int, genes: int, proteins: int) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    import groove_sc as gs

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    start = time.perf_counter()
    mdata = gs.datasets.simulate(
        n_perturbations=perturbations,
        cells_per_perturbation=round(0.9 * n_cells / perturbations),
        control_fraction=0.1,
        n_features={"rna": genes, "prot": proteins},
        seed=0,
    )
    secs = time.perf_counter() - start
    rna = mdata["rna"]
    nnz = getattr(rna.layers["counts"], "nnz", rna.layers["counts"].size)
    print(
        json.dumps(
            {
                "n_cells": int(rna.n_obs),
                "seconds": secs,
                "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                "imports_gb": base,
                "counts_type": type(rna.layers["counts"]).__name__,
                "density": nnz / (rna.n_obs * rna.n_vars),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[111_111, 200_000])
    parser.add_argument("--perturbations", type=int, default=750)
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--proteins", type=int, default=24)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.perturbations, args.genes, args.proteins)
        return
    print("| cells / modality | wall s | peak RSS GB (imports) | counts | density |")
    print("|---|---|---|---|---|")
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--child", str(n), "--perturbations"]
        cmd += [str(args.perturbations), "--genes", str(args.genes)]
        cmd += ["--proteins", str(args.proteins)]
        out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True).stdout
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if not lines:
            print(f"| {n:,} | failed | | | |")
            continue
        r = json.loads(lines[-1])
        print(
            f"| {r['n_cells']:,} | {r['seconds']:.1f} | {r['peak_gb']:.2f} "
            f"({r['imports_gb']:.2f}) | {r['counts_type']} | {r['density']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
