"""Seeds of one benchmark run in parallel processes (joblib).

The data travel as a temporary ``.h5mu`` holding the two modalities and the columns the run
reads, never as a pickled MuData.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mudata import MuData

from ._options import RunOptions
from ._progress import show_progress
from ._seed import run_seed, scoring_view


def run_seeds_in_processes(
    mdata: MuData,
    options: RunOptions,
    seeds: Sequence[int],
    learners: Sequence[str],
    aligners: Sequence[str],
    n_jobs: int,
    progress: bool,
) -> list[list[dict[str, Any]]]:
    """:func:`~groove_sc.benchmark._seed.run_seed` of every seed, ``n_jobs`` at a time.

    ``tests/test_benchmark.py`` checks that the rows equal those of one process.
    """
    from joblib import Parallel, delayed

    with tempfile.TemporaryDirectory(prefix="groove_bench_") as tmp:
        path = str(Path(tmp) / "data.h5mu")
        scoring_view(mdata, options).write(path)
        return Parallel(n_jobs=n_jobs)(
            delayed(_run_seed_from_file)(path, options, s, learners, aligners, progress)
            for s in seeds
        )


def _run_seed_from_file(
    path: str,
    options: RunOptions,
    seed: int,
    learners: Sequence[str],
    aligners: Sequence[str],
    progress: bool,
) -> list[dict[str, Any]]:
    import mudata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        mdata = mudata.read_h5mu(path)
    with show_progress(progress):
        return run_seed(mdata, options, seed, learners, aligners)
