"""One seed of a benchmark: every learner embeds the truth-free view, every aligner couples it.

Each learner sees the truth-free view only (:func:`~groove_sc.benchmark._views.blind_view`);
its embedding is scored alone (latent FOSCTTM, decoder imputation), then aligned by every
aligner under every tuning mode and scored on the view that carries the truth. A skip or a
failure is a row, never the end of the seed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from mudata import MuData

from ..metrics import truth_pairs
from ._alignment import Alignment
from ._options import RunOptions
from ._progress import logger
from ._registry import LEARNERS, Learner
from ._scores import decoder_prediction, imputation_scores, latent_scores
from ._seeding import seed_everything
from ._skips import skip_reason
from ._table import DECODER, LATENT, NO_TUNING, Rows, error_text
from ._tuning import tuned_scores
from ._views import blind_view, dense, light_view


def scoring_view(mdata: MuData, options: RunOptions) -> MuData:
    """The source and target with the columns scoring reads (labels, truth, target rep).

    Examples
    --------
    >>> view = scoring_view(mdata, RunOptions(source="rna", target="prot"))
    >>> list(view["rna"].obs.columns)
    ['perturbation', 'cell_id']

    """
    obs = [k for k in (options.groupby, options.truth_key, options.label_key) if k]
    rep = options.target_rep
    obsm = [rep] if isinstance(rep, str) and rep != "X" else []
    return light_view(mdata, [options.source, options.target], obs, obsm)


def run_seed(
    mdata: MuData,
    options: RunOptions,
    seed: int,
    learners: Sequence[str],
    aligners: Sequence[str],
) -> list[dict[str, Any]]:
    """The rows of one seed: every learner, then every aligner on its embedding.

    ``options`` has its ``source`` and ``target`` set (see :func:`groove_sc.benchmark.run`,
    which validates everything first).

    Examples
    --------
    >>> rows = run_seed(mdata, RunOptions(source="rna", target="prot"), 0, ["labels"], ["leot"])
    >>> sorted({row["aligner"] for row in rows})
    ['latent', 'leot']

    """
    logger.info("seed %s", seed)
    rows = Rows(seed)
    for name in learners:
        _run_learner(mdata, options, rows, LEARNERS[name], aligners)
    return rows.rows


def _run_learner(
    mdata: MuData, opts: RunOptions, rows: Rows, spec: Learner, aligners: Sequence[str]
) -> None:
    name = spec.name
    unavailable = spec.unavailable_reason()
    if unavailable is not None:
        logger.info("%s: skipped (%s)", name, unavailable)
        rows.add_each(name, aligners, opts.tuning, status="skipped", error=unavailable)
        return
    blind = blind_view(mdata, [opts.source, opts.target], opts.groupby)
    scoring = scoring_view(mdata, opts)
    key = f"X_{name}"
    seed_everything(rows.seed)
    t0 = time.perf_counter()
    try:
        kwargs = opts.learner_kwargs.get(name, {})
        info = spec(blind, key, groupby=opts.groupby, seed=rows.seed, **kwargs)
        _check_learner_output(blind, key, spec)
    except Exception as exc:  # noqa: BLE001 - recorded, the other learners go on
        text = error_text(exc)
        logger.info("%s: ERROR %s", name, text)
        rows.add_each(name, aligners, opts.tuning, status="error", error=f"learner: {text}")
        return
    fit_s = time.perf_counter() - t0
    logger.info("%s: fit %.1f s", name, fit_s)
    _score_learner(opts, rows, spec, info, blind, scoring, key, fit_s)
    info.pop("model", None)
    for aligner in aligners:
        reason = skip_reason(spec, aligner, opts.groupby)
        if reason is not None:
            rows.add_each(name, [aligner], opts.tuning, status="skipped", error=reason)
            continue
        _run_aligner(opts, rows, name, Alignment(opts, blind, scoring, key, aligner), fit_s)


def _check_learner_output(blind: MuData, key: str, spec: Learner) -> None:
    dims = set()
    for m, adata in blind.mod.items():
        if key not in adata.obsm:
            raise ValueError(f"learner '{spec.name}' wrote no obsm['{key}'] in modality '{m}'.")
        z = np.asarray(adata.obsm[key])
        if z.ndim != 2 or z.shape[0] != adata.n_obs or not np.isfinite(z).all():
            raise ValueError(
                f"learner '{spec.name}' wrote obsm['{key}'] of shape {z.shape} in '{m}' with "
                f"{adata.n_obs} cells (2-d, one finite row per cell expected)."
            )
        dims.add(z.shape[1])
    if spec.shared_space and len(dims) != 1:
        raise ValueError(
            f"learner '{spec.name}' declares a shared space but wrote dimensions {sorted(dims)}."
        )


def _score_learner(
    opts: RunOptions,
    rows: Rows,
    spec: Learner,
    info: dict[str, Any],
    blind: MuData,
    scoring: MuData,
    key: str,
    fit_s: float,
) -> None:
    """The learner-only rows: latent FOSCTTM (shared spaces) and decoder imputation."""
    name = spec.name
    src, tgt = truth_pairs(scoring, opts.source, opts.target, opts.truth_key)
    common = {"tuning": NO_TUNING, "fit_seconds": fit_s}
    if spec.shared_space:
        z_s = np.asarray(blind.mod[opts.source].obsm[key])[src]
        z_t = np.asarray(blind.mod[opts.target].obsm[key])[tgt]
        rows.add_scores(name, LATENT, latent_scores(z_s, z_t), **common)
    try:
        pred = decoder_prediction(info, opts.source, opts.target)
        if pred is not None:
            truth = dense(scoring.mod[opts.target].X)[tgt]
            rows.add_scores(name, DECODER, imputation_scores(pred[src], truth), **common)
    except Exception as exc:  # noqa: BLE001 - recorded, the aligners go on
        rows.add(name, DECODER, status="error", error=error_text(exc), **common)


def _run_aligner(opts: RunOptions, rows: Rows, name: str, cell: Alignment, fit_s: float) -> None:
    """The rows of one aligner on the learner's embedding, one tuning mode after the other."""
    aligner = cell.aligner
    for tuning in opts.tuning:
        try:
            scores, seconds, eps_rel = tuned_scores(cell, tuning, rows.seed)
        except Exception as exc:  # noqa: BLE001 - recorded, the grid goes on
            text = error_text(exc)
            rows.add(name, aligner, tuning=tuning, fit_seconds=fit_s, status="error", error=text)
            logger.info("  %s (%s): ERROR %s", aligner, tuning, text)
            continue
        rows.add_scores(
            name,
            aligner,
            scores,
            tuning=tuning,
            epsilon=eps_rel,
            fit_seconds=fit_s,
            align_seconds=seconds,
        )
        logger.info(
            "  %s (%s, eps=%.3g): %.2f s, FOSCTTM %.4f",
            aligner,
            tuning,
            eps_rel,
            seconds,
            scores.get("foscttm_barycentric", np.nan),
        )
