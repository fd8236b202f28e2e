"""Truth-based scores of one benchmark cell: latent, coupling, barycentric and decoder imputation.

Every function here is called after the learner and the aligner have finished, on arrays or
on the scoring view that carries the truth column.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mudata import MuData

from .. import metrics
from .._constants import TARGET_SUM
from .._mudata import extract_block, row_normalised

#: Keys of ``evaluate_imputation`` that are scores (the rest are counts of cells/features).
_IMPUTATION_KEYS = ("pearson_cell", "spearman_cell", "pearson_feature", "spearman_feature", "mse")


def latent_scores(z_source: np.ndarray, z_target: np.ndarray) -> dict[str, float]:
    """FOSCTTM of a shared latent over true partners (row ``i`` of both is one cell).

    Examples
    --------
    >>> z = np.random.default_rng(0).normal(size=(20, 3))
    >>> latent_scores(z, z)
    {'foscttm_latent': 0.0}

    """
    return {"foscttm_latent": float(metrics.foscttm(z_source, z_target))}


def imputation_scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """``evaluate_imputation`` restricted to its scores, keys prefixed ``imputation_``.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(20, 3))
    >>> imputation_scores(x, x)["imputation_pearson_feature"]
    1.0

    """
    res = metrics.evaluate_imputation(pred, truth)
    return {f"imputation_{k}": float(res[k]) for k in _IMPUTATION_KEYS}


def matching_scores(
    view: MuData,
    key: str,
    truth_key: str,
    label_key: str | None,
    target_rep: str | None,
) -> dict[str, float]:
    """Coupling metrics of :func:`groove_sc.metrics.evaluate_matching` (counts left out)."""
    res = metrics.evaluate_matching(
        view, coupling_key=key, truth_key=truth_key, label_key=label_key, target_rep=target_rep
    )
    return {k: float(v) for k, v in res.items() if not k.startswith("n_")}


def barycentric_prediction(
    view: MuData, key: str, source: str, target: str, x_target: np.ndarray
) -> np.ndarray:
    """Barycentric projection ``Q @ X_target`` of every source cell (``Q``: row-normalised).

    Source cells without mass get the target mean (a chance-level prediction).

    """
    Q, empty = row_normalised(extract_block(view, key, source, target).astype(np.float64))
    pred = np.asarray(Q @ x_target)
    pred[empty] = x_target.mean(axis=0)
    return pred


def to_x_scale(pred: np.ndarray, likelihood: str) -> np.ndarray:
    """Decoder means on the scale of ``.X``: ``log1p`` of counts normalised to 10,000 per cell.

    Non-count likelihoods are returned unchanged.

    Examples
    --------
    >>> to_x_scale(np.array([[1.0, 3.0]]), "nb").round(3)
    array([[7.824, 8.923]])

    """
    from ..module import LIKELIHOODS

    pred = np.asarray(pred, dtype=np.float64)
    head = LIKELIHOODS.get(likelihood)
    if head is None or not head.is_count:
        return pred
    total = pred.sum(axis=1, keepdims=True)
    return np.log1p(np.divide(pred * TARGET_SUM, total, out=np.zeros_like(pred), where=total > 0))


def decoder_prediction(info: dict[str, Any], source: str, target: str) -> np.ndarray | None:
    """Decoder imputation of the target's ``.X`` for every source cell, if the learner has one.

    Examples
    --------
    >>> decoder_prediction({"n_comps": 5}, "rna", "prot") is None  # a learner without a model
    True

    """
    model = info.get("model")
    if model is None or not hasattr(model, "get_imputed_values"):
        return None
    pred = model.get_imputed_values(source=source, target=target)
    return to_x_scale(pred, info.get("likelihoods", {}).get(target, "normal"))
