"""GPU checks in one script: CUDA training, 2-GPU DDP, batched GPU Sinkhorn vs the CPU engine.

Run on a machine with a CUDA GPU; without one it prints a message and exits with status 0.

1. **Training on CUDA.** GROOVE is trained on a paired simulation on the CPU and on the GPU
   (same seed and settings). Checks: the CPU-trained model gives the same latent on the GPU
   (``to_device``, max abs difference), and the GPU-trained latent is as good as the
   CPU-trained one (latent FOSCTTM within ``--foscttm-slack``; bitwise equality is not expected:
   kernels differ).
2. **2-GPU DDP** (only with at least 2 GPUs): ``train(accelerator="gpu", devices=2,
   strategy="ddp_find_unused_parameters_true")`` in a separate process (Lightning relaunches the
   script per rank); checks that training completes and the latent has the right shape.
3. **Batched GPU Sinkhorn at scale.** ``tl.align(method="leot")`` (and ``egwl``) on an
   embedding of ``--cells`` cells per modality (750 groups plus a 10% control group) with
   ``device="cuda"`` and with the CPU engine (streamed control group). Checks: both converge,
   and their couplings agree (relative L1 difference of the rows, barycentric projections).

Prints one line per check, then a summary table of timings; exits with status 1 if a check
failed.

Usage::

    python benchmarks/gpu_check.py                     # all checks, 200k cells
    python benchmarks/gpu_check.py --cells 50000 --skip-ddp
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")

RESULTS: list[tuple[str, bool, str]] = []


def report(name: str, ok: bool, detail: str) -> None:
    RESULTS.append((name, ok, detail))
    print(f"[{'PASS' if ok else 'FAIL'}] {name}: {detail}", flush=True)


def _simulation(n_perturbations: int, cells: int, paired: bool = True):
    import groove_sc as gs

    mdata = gs.datasets.simulate(
        n_perturbations=n_perturbations, cells_per_perturbation=cells, paired=paired,
        n_features={"rna": 1000, "prot": 24}, seed=0,
    )  # fmt: skip
    gs.model.GROOVE.setup_mudata(
        mdata, perturbation_key="perturbation", modalities=["rna", "prot"],
        layers={"rna": "counts"}, likelihoods={"rna": "nb", "prot": "normal"},
    )  # fmt: skip
    return mdata


def check_training(args: argparse.Namespace) -> dict[str, float]:
    import scvi

    import groove_sc as gs

    mdata = _simulation(args.train_groups, args.train_cells)
    times, latents = {}, {}
    for device in ("cpu", "cuda"):
        scvi.settings.seed = 0
        model = gs.model.GROOVE(mdata, n_latent=16)
        start = time.perf_counter()
        model.train(
            max_epochs=args.epochs, accelerator="gpu" if device == "cuda" else "cpu",
            devices=1, seed=0, enable_progress_bar=False,
        )  # fmt: skip
        times[f"train_{device}_s"] = time.perf_counter() - start
        latents[device] = model.get_latent_representation()
        if device == "cpu":
            cpu_model = model
    # the same weights give the same latent on either device
    z_cpu = cpu_model.get_latent_representation(modality="rna")
    cpu_model.to_device("cuda")
    z_gpu_same = cpu_model.get_latent_representation(modality="rna")
    diff = float(np.abs(z_cpu - z_gpu_same).max())
    report("same weights, CPU vs CUDA latent", diff < 1e-3, f"max abs difference {diff:.2e}")
    scores = {}
    for device, z in latents.items():
        for m in ("rna", "prot"):
            mdata[m].obsm[f"X_{device}"] = z[m]
        scores[device] = gs.metrics.latent_foscttm(mdata, f"X_{device}", "rna", "prot")
    gap = scores["cuda"] - scores["cpu"]
    report(
        "CUDA-trained latent as good as CPU-trained",
        gap <= args.foscttm_slack,
        f"latent FOSCTTM cpu {scores['cpu']:.4f}, cuda {scores['cuda']:.4f} "
        f"(allowed gap {args.foscttm_slack})",
    )
    times["train_speedup"] = times["train_cpu_s"] / times["train_cuda_s"]
    return times


def ddp_child(args: argparse.Namespace) -> None:
    """Runs under Lightning's DDP launcher (this script is started once per rank)."""
    import groove_sc as gs

    mdata = _simulation(args.train_groups, args.train_cells)
    model = gs.model.GROOVE(mdata, n_latent=16)
    start = time.perf_counter()
    model.train(
        max_epochs=args.epochs, accelerator="gpu", devices=2,
        strategy="ddp_find_unused_parameters_true", enable_progress_bar=False,
    )  # fmt: skip
    secs = time.perf_counter() - start
    import torch.distributed as dist

    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    if rank == 0:
        z = model.get_latent_representation(modality="rna")
        print(json.dumps({"seconds": secs, "shape": list(z.shape), "n": mdata["rna"].n_obs}))


def check_ddp(args: argparse.Namespace) -> dict[str, float]:
    import torch

    if torch.cuda.device_count() < 2:
        print(f"[SKIP] 2-GPU DDP: {torch.cuda.device_count()} GPU(s) visible", flush=True)
        return {}
    cmd = [sys.executable, __file__, "--ddp-child", "--epochs", str(args.epochs)]
    cmd += ["--train-groups", str(args.train_groups), "--train-cells", str(args.train_cells)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        report("2-GPU DDP training", False, f"exit {proc.returncode}: {' | '.join(tail)}")
        return {}
    out = json.loads(lines[-1])
    ok = out["shape"] == [out["n"], 16]
    report("2-GPU DDP training", ok, f"{out['seconds']:.1f} s, latent shape {out['shape']}")
    return {"ddp_train_s": out["seconds"]}


def check_sinkhorn(args: argparse.Namespace) -> dict[str, float]:
    import torch

    import groove_sc as gs
    from groove_sc._mudata import extract_block

    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from coupling_memory import build

    control = round(args.cells * 0.1)
    per_group = round((args.cells - control) / 750)
    mdata = build(750, per_group, control, 32)
    n = mdata["rna"].n_obs
    times: dict[str, float] = {}
    y = np.asarray(mdata["prot"].obsm["X_emb"], dtype=np.float64)
    for method in args.methods:
        blocks = {}
        for device in ("cpu", "cuda"):
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
                torch.cuda.synchronize()
            start = time.perf_counter()
            gs.tl.align(
                mdata, "rna", "prot", use_rep="X_emb", method=method, device=device,
                key_added=f"{method}_{device}",
            )  # fmt: skip
            if device == "cuda":
                torch.cuda.synchronize()
                times[f"{method}_gpu_peak_gb"] = torch.cuda.max_memory_allocated() / 2**30
            times[f"{method}_{device}_s"] = time.perf_counter() - start
            conv = mdata.uns[f"{method}_{device}"]["convergence"]
            report(
                f"{method} on {device} converges ({n:,} cells)",
                bool(conv["converged"]),
                f"{times[f'{method}_{device}_s']:.1f} s, marginal error "
                f"{conv.get('marginal_error', float('nan')):.1e}, streamed groups "
                f"{conv.get('n_streamed_groups', 0)}",
            )
            blocks[device] = extract_block(mdata, f"{method}_{device}", "rna", "prot").tocsr()
        P, Q = blocks["cpu"], blocks["cuda"]
        rows = np.asarray(abs(P - Q).sum(axis=1)).ravel() / np.asarray(P.sum(axis=1)).ravel()
        yp, _ = gs.tl._impute.barycentric_projection(P, y)
        yq, _ = gs.tl._impute.barycentric_projection(Q, y)
        rel = float(np.linalg.norm(yp - yq) / np.linalg.norm(yp - yp.mean(0)))
        ok = float(np.median(rows)) < args.row_tol and rel < args.projection_tol
        report(
            f"{method}: CUDA coupling matches the CPU engine",
            ok,
            f"row L1 difference median {np.median(rows):.2e}, max {rows.max():.2e}; "
            f"barycentric projections differ by {rel:.2e} (relative)",
        )
        times[f"{method}_speedup"] = times[f"{method}_cpu_s"] / times[f"{method}_cuda_s"]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=200_000, help="cells per modality (OT)")
    parser.add_argument("--methods", nargs="+", default=["leot", "egwl"])
    parser.add_argument("--train-groups", type=int, default=40)
    parser.add_argument("--train-cells", type=int, default=100, help="cells per group")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--foscttm-slack", type=float, default=0.02)
    parser.add_argument("--row-tol", type=float, default=0.05)
    parser.add_argument("--projection-tol", type=float, default=0.05)
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--skip-ddp", action="store_true")
    parser.add_argument("--skip-sinkhorn", action="store_true")
    parser.add_argument("--ddp-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ddp_child:
        ddp_child(args)
        return
    import torch

    if not torch.cuda.is_available():
        print(
            "gpu_check: torch sees no CUDA GPU on this machine, so there is nothing to check; "
            "run this script on a machine with a GPU (no check was run)."
        )
        sys.exit(0)
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    print(f"GPUs: {names}; torch {torch.__version__}", flush=True)
    figures: dict[str, float] = {}
    for skip, check in (
        (args.skip_training, check_training),
        (args.skip_ddp, check_ddp),
        (args.skip_sinkhorn, check_sinkhorn),
    ):
        if skip:
            continue
        try:
            figures.update(check(args))
        except Exception as err:  # report and go on with the next check
            report(check.__name__, False, f"{type(err).__name__}: {err}")
    print()
    print("| figure | value |")
    print("|---|---|")
    for key, value in figures.items():
        print(f"| {key} | {value:.3f} |")
    failed = [name for name, ok, _ in RESULTS if not ok]
    print(f"\n{len(RESULTS) - len(failed)} of {len(RESULTS)} checks passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
