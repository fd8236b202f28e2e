"""Scale benchmark of ``tl.align`` (leot, egwl) against POT's Sinkhorn looped over the groups.

Every measurement runs in its own subprocess so that its peak RSS is its own. Data: a 32-d
latent for two modalities with disjoint cells, ``n`` cells each, in ``--groups`` groups of equal
size. A cell's state is its group's effect (N(0, I)) plus one of 8 cell states shared by all
groups (N(0, 1.5^2 I), like cell types or cycle phases) plus noise (N(0, 0.5^2 I)); source and
target cells are independent draws.

Every solver uses the same absolute epsilon, ``--epsilon`` (default 5e-3) times the largest
same-group squared distance, and the same stopping rule: the L1 error of the marginals
relative to each group's mass below ``--tol`` (default 1e-4). POT checks the L2 error of the
column marginal (rows are exact after its update), so it gets ``stopThr = tol / sqrt(m_g)``,
which bounds its L1 error by ``tol``; ``--pot-stop l2`` passes ``stopThr = tol`` instead (POT's
own criterion, looser). The measured L1 errors are reported for every run.

Usage::

    nice python benchmarks/align_scale.py                       # 10k, 50k, 100k
    python benchmarks/align_scale.py --sizes 2000 --groups 10   # quick check
    python benchmarks/align_scale.py --device cuda              # batched on the GPU
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np

N_STATES, STATE_SD, NOISE_SD = 8, 1.5, 0.5
HEADER = (
    "| cells | method | wall s | iterations | marginal err | conv | peak RSS GB "
    "| vs faster POT loop |"
)


def latent(
    n: int, groups: int, dim: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source and target latents ``(n, dim)`` and the group of every cell (same for both)."""
    rng = np.random.default_rng(seed)
    grp = np.repeat(np.arange(groups), n // groups)
    grp = np.concatenate([grp, rng.integers(0, groups, n - len(grp))])
    effect = rng.normal(size=(groups, dim))
    states = rng.normal(size=(N_STATES, dim)) * STATE_SD

    def draw() -> np.ndarray:
        z = (
            effect[grp]
            + states[rng.integers(0, N_STATES, n)]
            + NOISE_SD * rng.normal(size=(n, dim))
        )
        return z.astype(np.float32)

    return draw(), draw(), grp


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def build_mudata(xs: np.ndarray, xt: np.ndarray, grp: np.ndarray) -> Any:
    import anndata as ad
    import mudata as md
    import pandas as pd
    import scipy.sparse as sp

    labels = pd.Categorical([f"g{g}" for g in grp])

    def mod(prefix: str, z: np.ndarray) -> Any:
        obs = pd.DataFrame(
            {"perturbation": labels}, index=[f"{prefix}:c{i}" for i in range(len(z))]
        )
        adata = ad.AnnData(sp.csr_matrix((len(z), 1), dtype=np.float32), obs=obs)
        adata.obsm["X_groove"] = z
        return adata

    return md.MuData({"rna": mod("rna", xs), "prot": mod("prot", xt)})


def run_groove(cfg: dict[str, Any]) -> dict[str, Any]:
    import groove_sc as gs

    xs, xt, grp = latent(cfg["n"], cfg["groups"], cfg["dim"])
    mdata = build_mudata(xs, xt, grp)
    rss0 = peak_rss_gb()
    kwargs: dict[str, Any] = (
        {"tol": cfg["tol"]} if cfg["what"] == "leot" else {"inner_tol": cfg["tol"]}
    )
    start = time.perf_counter()
    gs.tl.align(
        mdata, "rna", "prot", method=cfg["what"], epsilon=cfg["epsilon"], device=cfg["device"],
        **kwargs,
    )  # fmt: skip
    wall = time.perf_counter() - start
    meta = mdata.uns["groove_coupling"]
    conv = meta["convergence"]
    out = {
        "wall_s": wall,
        "peak_rss_gb": peak_rss_gb(),
        "rss_before_align_gb": rss0,
        "marginal_error": float(conv["marginal_error"]),
        "converged": bool(conv["converged"]),
        "nnz": int(mdata.obsp["groove_coupling"].nnz),
        "epsilon_abs": float(meta["parameters"]["epsilon"]),
    }
    its = np.asarray(conv["groups"]["n_iter" if cfg["what"] == "leot" else "inner_n_iter"])
    if cfg["what"] == "leot":
        out.update(iterations_mean=float(its.mean()), iterations_max=int(its.max()))
    else:
        out.update(outer_iterations=int(conv["n_iter"]), inner_iterations_last=int(its.max()))
    return out


def _pot_costs(cfg: dict[str, Any]):
    import ot

    xs, xt, grp = latent(cfg["n"], cfg["groups"], cfg["dim"])
    xs, xt = xs.astype(np.float64), xt.astype(np.float64)
    blocks = [(xs[grp == g], xt[grp == g]) for g in range(cfg["groups"])]
    cmax = max(float(ot.dist(x, y).max()) for x, y in blocks)
    return blocks, cfg["epsilon"] * cmax


def run_pot_loop(cfg: dict[str, Any]) -> dict[str, Any]:
    import ot

    blocks, eps = _pot_costs(cfg)
    rss0 = peak_rss_gb()
    its, errs = [], []
    start = time.perf_counter()
    for x, y in blocks:
        M = ot.dist(x, y)
        a, b = ot.unif(len(x)), ot.unif(len(y))
        thr = cfg["tol"] / np.sqrt(len(y)) if cfg["pot_stop"] == "l1" else cfg["tol"]
        P, log = ot.sinkhorn(
            a, b, M, eps, method=cfg["pot_method"], stopThr=thr, numItermax=100_000, log=True
        )
        its.append(log["niter"])
        errs.append(np.abs(P.sum(1) - a).sum() + np.abs(P.sum(0) - b).sum())
    wall = time.perf_counter() - start
    return {
        "wall_s": wall,
        "peak_rss_gb": peak_rss_gb(),
        "rss_before_align_gb": rss0,
        "iterations_mean": float(np.mean(its)),
        "iterations_max": int(np.max(its)),
        "marginal_error": float(np.max(errs)),
        "converged": bool(np.max(errs) < cfg["tol"]),
        "epsilon_abs": eps,
    }


def run_pot_dense(cfg: dict[str, Any]) -> dict[str, Any]:
    import ot

    xs, xt, _ = latent(cfg["n"], cfg["groups"], cfg["dim"])
    M = ot.dist(xs.astype(np.float64), xt.astype(np.float64))
    eps = cfg["epsilon"] * float(M.max())
    a, b = ot.unif(len(xs)), ot.unif(len(xt))
    rss0 = peak_rss_gb()
    start = time.perf_counter()
    thr = cfg["tol"] / np.sqrt(len(xt)) if cfg["pot_stop"] == "l1" else cfg["tol"]
    P, log = ot.sinkhorn(a, b, M, eps, stopThr=thr, numItermax=cfg["dense_max_iter"], log=True)
    wall = time.perf_counter() - start
    err = float(np.abs(P.sum(1) - a).sum() + np.abs(P.sum(0) - b).sum())
    return {
        "wall_s": wall,
        "peak_rss_gb": peak_rss_gb(),
        "rss_before_align_gb": rss0,
        "iterations_mean": float(log["niter"]),
        "iterations_max": int(log["niter"]),
        "marginal_error": err,
        "converged": err < cfg["tol"],
        "epsilon_abs": eps,
    }


WORKERS = {
    "leot": run_groove,
    "egwl": run_groove,
    "pot_sinkhorn": run_pot_loop,
    "pot_sinkhorn_log": run_pot_loop,
    "pot_dense": run_pot_dense,
}


def measure(cfg: dict[str, Any], timeout: float, threads: int | None) -> dict[str, Any]:
    """Run one configuration in a fresh interpreter; return its JSON record."""
    cmd = [sys.executable, __file__, "--worker", json.dumps(cfg)]
    env = dict(os.environ)
    if threads:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    try:
        res = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env
        )
    except subprocess.TimeoutExpired:
        return {**cfg, "error": f"timeout after {timeout:.0f} s"}
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        return {**cfg, "error": " | ".join(tail) or f"exit {res.returncode}"}
    return {**cfg, **json.loads(res.stdout.strip().splitlines()[-1])}


def dense_fits(n: int, budget_gb: float) -> bool:
    """POT's dense Sinkhorn holds about four n x n float64 matrices (M, K, K / a, the plan)."""
    return 4 * n * n * 8 / 2**30 <= budget_gb


def fmt_row(r: dict[str, Any], ref: float | None) -> str:
    if "error" in r:
        return f"| {r['n']:>7,} | {r['what']:<17} | failed: {r['error']} |"
    its = (
        f"{r['outer_iterations']} outer, {r['inner_iterations_last']} inner (last)"
        if "outer_iterations" in r
        else f"{r['iterations_mean']:.0f} mean / {r['iterations_max']} max"
    )
    ratio = f"{ref / r['wall_s']:.1f}x" if ref and r["what"] in ("leot", "egwl") else ""
    return (
        f"| {r['n']:>7,} | {r['what']:<17} | {r['wall_s']:>9.2f} | {its:<28} | "
        f"{r['marginal_error']:.1e} | {'yes' if r['converged'] else 'no':<3} | "
        f"{r['peak_rss_gb']:>5.2f} | {ratio:>6} |"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    p.add_argument("--groups", type=int, default=500)
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--epsilon", type=float, default=5e-3)
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--methods", nargs="+", default=["leot", "egwl"], choices=["leot", "egwl"])
    loops = ["sinkhorn", "sinkhorn_log"]
    p.add_argument("--pot", nargs="*", default=loops, choices=loops, help="POT loops to run")
    p.add_argument("--pot-stop", choices=["l1", "l2"], default="l1")
    p.add_argument("--dense-budget-gb", type=float, default=8.0)
    p.add_argument("--dense-max-iter", type=int, default=100_000)
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per measurement")
    p.add_argument("--blas-threads", type=int, default=1,
                   help="BLAS threads of every run but the dense one (POT's per-group loop is\n"
                   "about 2x faster with 1 thread than with 2 here; groove_sc uses 1 for\n"
                   "small blocks anyway); 0 leaves the environment alone")  # fmt: skip
    p.add_argument(
        "--dense-threads",
        type=int,
        default=0,
        help="BLAS threads of the dense POT run (0: environment default)",
    )
    p.add_argument("--out", help="write all records as JSON here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        cfg = json.loads(args.worker)
        print(json.dumps(WORKERS[cfg["what"]](cfg)))
        return

    base = {
        "groups": args.groups, "dim": args.dim, "epsilon": args.epsilon, "tol": args.tol,
        "device": args.device, "pot_stop": args.pot_stop, "dense_max_iter": args.dense_max_iter,
    }  # fmt: skip
    print(
        f"# align_scale: {args.groups} groups, {args.dim}-d latent, epsilon {args.epsilon} x max "
        f"same-group cost, marginal L1 error < {args.tol}, device {args.device}, "
        f"{os.cpu_count()} CPUs, BLAS threads {args.blas_threads or 'default'} "
        f"(dense: {args.dense_threads or 'default'})",
        flush=True,
    )
    records = []
    dense_n = max((n for n in args.sizes if dense_fits(n, args.dense_budget_gb)), default=None)
    for n in args.sizes:
        runs = [{"what": f"pot_{m}", "pot_method": m} for m in args.pot]
        runs += [{"what": m} for m in args.methods]
        if n == dense_n:
            runs.append({"what": "pot_dense"})
        rows = []
        for run in runs:
            threads = args.dense_threads if run["what"] == "pot_dense" else args.blas_threads
            rec = measure({**base, **run, "n": n}, args.timeout, threads or None)
            rec["blas_threads"] = threads or "default"
            records.append(rec)
            rows.append(rec)
            print("  ", json.dumps(rec), flush=True)
        loops = [
            r["wall_s"] for r in rows if r["what"].startswith("pot_sinkhorn") and "error" not in r
        ]
        ref = min(loops) if loops else None
        print(f"\n{HEADER}")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(fmt_row(r, ref))
        print(flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(records, fh, indent=1)


if __name__ == "__main__":
    main()
