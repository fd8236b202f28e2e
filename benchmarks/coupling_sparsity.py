"""How much of a coupling does barycentric imputation need? Full vs sparsified couplings.

Evidence for the default sparsity of stored couplings (``keep_mass``, ``max_per_row`` of the
OT aligners). A paired simulation (so every RNA cell has a true protein partner) is aligned
with ``leot`` and ``egwl`` keeping every entry; the full coupling is then sparsified per row
with :func:`groove_sc.tl._aligners._sparsify.sparsify_rows` (the same code the aligners run) at
several settings, and each version is scored:

- entries stored (mean and largest per row), and the mass moved by sparsification;
- barycentric FOSCTTM and the trace (mass on the true partner), from
  :func:`groove_sc.metrics.evaluate_matching`;
- barycentric imputation of the protein features: per-feature Pearson correlation with the
  partner's measured values, and the relative difference to the full coupling's imputation
  (``|Y_sparse - Y_full|_F / |Y_full - mean|_F``).

The representation is the simulation's oracle shared state plus independent Gaussian noise per
modality (``--noise``), so matching is imperfect like a learned latent. A large control group
(``--control-cells``) tests the regime where rows spread over thousands of candidates.

Usage::

    nice python benchmarks/coupling_sparsity.py                      # defaults below
    python benchmarks/coupling_sparsity.py --perturbations 20 --control-cells 500   # quick
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse as sp

import groove_sc as gs
from groove_sc._mudata import embed_block, extract_block
from groove_sc.tl._aligners._sparsify import sparsify_rows

SETTINGS = [
    (1.0, None),
    (0.999, None),
    (0.99, None),
    (0.95, None),
    (1.0, 100),
    (1.0, 50),
    (0.99, 100),
    (0.99, 50),
    (0.99, 20),
    (0.9, 100),
]


def sparsify_csr(
    P: sp.csr_matrix, keep_mass: float, cap: int | None
) -> tuple[sp.csr_matrix, float]:
    """Row-wise sparsification of a CSR coupling (rows processed in dense chunks)."""
    rows, cols, vals, dropped = [], [], [], 0.0
    for start in range(0, P.shape[0], 512):
        block = P[start : start + 512].toarray()
        r, c, v, d = sparsify_rows(block, keep_mass, cap)
        rows.append(r + start)
        cols.append(c)
        vals.append(v)
        dropped += d
    out = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=P.shape
    )
    return out, dropped / P.sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--perturbations", type=int, default=100)
    parser.add_argument("--cells", type=int, default=100, help="cells per perturbation")
    parser.add_argument("--control-cells", type=int, default=3000)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--methods", nargs="+", default=["leot", "egwl"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    n_pert = args.perturbations * args.cells
    frac = args.control_cells / (n_pert + args.control_cells)
    mdata = gs.datasets.simulate(
        n_perturbations=args.perturbations, cells_per_perturbation=args.cells, paired=True,
        control_fraction=frac, n_features={"rna": 50, "prot": 24}, seed=args.seed,
    )  # fmt: skip
    sizes = mdata.uns["simulation"]["group_sizes"]
    print(
        f"{mdata['rna'].n_obs} cells per modality, {len(sizes)} groups, largest {max(sizes)} "
        f"cells; representation: oracle shared state + noise"
    )
    print()
    print(
        "| method | noise | keep_mass | max_per_row | entries / row (mean, max) | moved mass "
        "| FOSCTTM bary | trace | prot Pearson / feature | diff to full |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(args.seed)
    truth_src, truth_tgt = gs.metrics.truth_pairs(mdata, "rna", "prot", "cell_id")
    y_true = np.asarray(mdata["prot"].X)[truth_tgt]
    for noise in args.noise:
        for mod in ("rna", "prot"):
            z = mdata[mod].obsm["X_true_shared"]
            mdata[mod].obsm["X_noisy"] = (z + noise * rng.normal(size=z.shape)).astype(np.float32)
        for method in args.methods:
            t0 = time.perf_counter()
            gs.tl.align(
                mdata, "rna", "prot", use_rep="X_noisy", method=method, key_added="full",
                keep_mass=1.0, max_per_row=None,
            )  # fmt: skip
            secs = time.perf_counter() - t0
            full = extract_block(mdata, "full", "rna", "prot")
            y_full = None
            for keep_mass, cap in SETTINGS:
                P, moved = sparsify_csr(full, keep_mass, cap)
                mdata.obsp["sparse"] = embed_block(mdata, P, "rna", "prot")
                mdata.uns["sparse"] = dict(mdata.uns["full"])
                match = gs.metrics.evaluate_matching(mdata, "sparse", target_rep="X")
                y, _ = gs.tl._impute.barycentric_projection(P, np.asarray(mdata["prot"].X))
                if y_full is None:
                    y_full = y
                diff = np.linalg.norm(y - y_full) / np.linalg.norm(y_full - y_full.mean(0))
                imp = gs.metrics.evaluate_imputation(y[truth_src], y_true)
                per_row = np.diff(P.indptr)
                print(
                    f"| {method} | {noise} | {keep_mass} | {cap or 'none'} "
                    f"| {per_row.mean():.1f}, {per_row.max()} | {moved:.4f} "
                    f"| {match['foscttm_barycentric']:.4f} | {match['trace']:.4f} "
                    f"| {imp['pearson_feature']:.4f} | {diff:.4f} |"
                )
            print(f"<!-- {method} noise {noise}: full solve {secs:.1f} s -->")


if __name__ == "__main__":
    main()
