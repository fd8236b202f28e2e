"""GROOVE + ``leot`` of this checkout against an older version, on the same simulated data.

The documented grid's ``trace`` has moved between versions, and so has the simulator, so a
figure of an old version's page cannot be compared with today's. This script simulates the
grid's setting once with *this* checkout (``simulate(n_perturbations=10,
cells_per_perturbation=40, n_features={"rna": 300}, paired=True)``), writes it to ``.h5mu``,
and fits GROOVE (``max_epochs=100, n_latent=16``, the grid's setting) + ``tl.align(method="leot")``
with each version's own defaults, in one subprocess per version, on every seed. It prints the
``trace`` and barycentric FOSCTTM per seed, the means and a paired t-test.

Usage::

    git worktree add /tmp/groove_v01 866d3af        # v0.1, the version of the 0.306 figure
    python benchmarks/version_compare.py --old-src /tmp/groove_v01/src --seeds 0 1 2 3 4 5 6 7 8
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from scipy import stats

#: Run in each version's interpreter: fit, align with that version's defaults, score.
FIT = """
import json, logging, sys, warnings
warnings.simplefilter("ignore"); logging.disable(logging.WARNING)
import mudata, scvi, torch
torch.set_num_threads(1); scvi.settings.num_threads = 1
import groove_sc as gs
out = {}
for path in sys.argv[2:]:
    m = mudata.read_h5mu(path)
    seed = int(m.uns["simulation"]["seed"])
    scvi.settings.seed = seed  # the weights' initialisation too, not only the training
    gs.benchmark.LEARNERS["groove"].func(m, "X_g", groupby="perturbation", seed=seed,
                                         max_epochs=100, n_latent=16)
    gs.tl.align(m, "rna", "prot", use_rep="X_g", method="leot", groupby="perturbation",
                key_added="c")
    r = gs.metrics.evaluate_matching(m, "c")
    out[seed] = [float(r["trace"]), float(r["foscttm_barycentric"])]
json.dump(out, open(sys.argv[1], "w"))
"""


def fit(src: str | None, files: list[str], tmp: Path, name: str) -> dict[int, list[float]]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    out = tmp / f"{name}.json"
    subprocess.run([sys.executable, "-c", FIT, str(out), *files], env=env, check=True)
    return {int(k): v for k, v in json.loads(out.read_text()).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old-src", required=True, help="the old version's src/ folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--shared-fraction", type=float, default=0.8)
    args = parser.parse_args()
    import groove_sc as gs

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = []
        for seed in args.seeds:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = gs.datasets.simulate(
                    n_perturbations=10, cells_per_perturbation=40, n_features={"rna": 300},
                    shared_fraction=args.shared_fraction, paired=True, seed=seed,
                )  # fmt: skip
                files.append(str(tmp / f"sim_{seed}.h5mu"))
                m.write(files[-1])
        old = fit(args.old_src, files, tmp, "old")
        new = fit(None, files, tmp, "new")
    print(f"shared_fraction {args.shared_fraction}; trace / foscttm_barycentric")
    print("| seed | old version | this checkout |\n|---|---|---|")
    for seed in args.seeds:
        o, n = old[seed], new[seed]
        print(f"| {seed} | {o[0]:.4f} / {o[1]:.4f} | {n[0]:.4f} / {n[1]:.4f} |")
    for i, metric in enumerate(("trace", "foscttm_barycentric")):
        o = np.array([old[s][i] for s in args.seeds])
        n = np.array([new[s][i] for s in args.seeds])
        p = stats.ttest_rel(n, o).pvalue if len(o) > 1 else float("nan")
        print(f"{metric}: old {o.mean():.4f}, this checkout {n.mean():.4f}, paired p = {p:.3f}")


if __name__ == "__main__":
    main()
