"""Command line: ``groove-sc quickstart`` and ``groove-sc benchmark``."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from ._constants import DEFAULT_METHOD
from ._quickstart import quickstart, store_sparse  # noqa: F401 (public: groove_sc.cli.store_sparse)


def run_benchmark(config: str | Path, out: str | Path, dataset: str | Path | None = None):
    """``groove-sc benchmark``: run a YAML benchmark, then write the plots it asks for.

    :func:`groove_sc.benchmark.run_config` runs the benchmark; the plots of the config's
    ``figures`` entry (see :func:`groove_sc.benchmark._config.figure_requests`) are written
    after it. Progress lines go to standard output for the whole command.

    Parameters
    ----------
    config, out, dataset
        As in :func:`groove_sc.benchmark.run_config`.

    Returns
    -------
    The whole results table.

    Examples
    --------
    >>> run_benchmark("benchmarks/configs/simulation_grid.yaml", "results.csv")  # doctest: +SKIP

    """
    from .benchmark import run_config
    from .benchmark._config import figure_requests, load_config
    from .benchmark._progress import logger
    from .pl import write_figures

    with _progress_on_stdout():
        results = run_config(config, out, dataset=dataset)
        for folder, metric, tuning in figure_requests(load_config(config)):
            for path in write_figures(results, folder, metric, tuning=tuning):
                logger.info("wrote %s", path)
    return results


@contextlib.contextmanager
def _progress_on_stdout() -> Iterator[None]:
    """The benchmark's progress lines (``INFO`` and above) on standard output, in the block."""
    from .benchmark._progress import logger, stdout_handler

    handler, level = stdout_handler(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``groove-sc`` console script.

    Examples
    --------
    >>> main(["quickstart", "--out", "qs", "--epochs", "5"])  # doctest: +SKIP

    """
    parser = argparse.ArgumentParser(prog="groove-sc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser(
        "quickstart",
        help="simulate -> train -> align -> impute -> evaluate",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    q.add_argument("--out", default="groove_quickstart", help="output folder")
    q.add_argument("--perturbations", type=int, default=20, help="perturbed groups")
    q.add_argument("--cells", type=int, default=100, help="cells per perturbation")
    q.add_argument(
        "--shared-fraction", type=float, default=0.5, help="effect shared by the modalities"
    )
    q.add_argument("--epochs", type=int, default=40, help="training epochs")
    q.add_argument("--method", default=DEFAULT_METHOD, help="aligner (see groove_sc.tl.ALIGNERS)")
    q.add_argument("--seed", type=int, default=0, help="simulation and training seed")
    q.add_argument("--no-benchmark", action="store_true", help="skip the small benchmark")
    q.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    b = sub.add_parser("benchmark", help="learner x aligner grid from a YAML config")
    b.add_argument("--config", required=True, help="YAML file (see docs)")
    b.add_argument("--out", required=True, help="results CSV (appended, resumable)")
    b.add_argument("--dataset", default=None, help="data file replacing the config's dataset path")
    args = parser.parse_args(argv)
    if args.command == "quickstart":
        quickstart(
            out=args.out,
            n_perturbations=args.perturbations,
            cells_per_perturbation=args.cells,
            shared_fraction=args.shared_fraction,
            max_epochs=args.epochs,
            method=args.method,
            seed=args.seed,
            benchmark=not args.no_benchmark,
            progress=not args.no_progress,
        )
        return 0
    import matplotlib

    matplotlib.use("Agg")
    run_benchmark(args.config, args.out, dataset=args.dataset)
    return 0


if __name__ == "__main__":
    sys.exit(main())
