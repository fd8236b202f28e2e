"""Imputation metrics: correlation per cell and per feature, and mean squared error."""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata

#: Entries per block when walking over rows or columns (float64: 64 MiB).
_BLOCK_ENTRIES = 2**23


def _dense_block(a, rows: slice | None = None, cols: slice | None = None) -> np.ndarray:
    block = a
    if rows is not None:
        block = block[rows]
    if cols is not None:
        block = block[:, cols]
    if sp.issparse(block):
        block = block.toarray()
    return np.asarray(block, dtype=np.float64)


def _rowwise_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of matching rows; NaN where either row is constant."""
    const = (np.ptp(a, axis=1) == 0) | (np.ptp(b, axis=1) == 0)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    num = np.einsum("ij,ij->i", a, b)
    den = np.sqrt(np.einsum("ij,ij->i", a, a) * np.einsum("ij,ij->i", b, b))
    out = np.full(a.shape[0], np.nan)
    ok = ~const & (den > 0)
    out[ok] = np.clip(num[ok] / den[ok], -1.0, 1.0)
    return out


def _correlations(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pearson = _rowwise_corr(a, b)
    spearman = _rowwise_corr(rankdata(a, axis=1), rankdata(b, axis=1))
    return pearson, spearman


def _mean_defined(v: np.ndarray) -> float:
    ok = ~np.isnan(v)
    return float(v[ok].mean()) if ok.any() else float("nan")


def evaluate_imputation(
    pred,
    truth,
    control=None,
    *,
    control_mode: Literal["subtract", "divide"] = "subtract",
) -> dict[str, float]:
    """Compare imputed values with the measured ones.

    Pearson and Spearman correlation per cell (across features, row by row) and per feature
    (across cells, column by column), averaged; and the mean squared error over all entries.
    Correlations of a constant row or column are undefined: they are left out of the averages
    and counted in ``n_cells_undefined`` / ``n_features_undefined`` (an average is NaN only when
    every correlation is undefined). Spearman uses average ranks for ties. Computed block-wise,
    so memory stays bounded for many cells.

    Parameters
    ----------
    pred, truth
        ``(n_cells, n_features)`` arrays (dense or scipy sparse), row ``i`` of both the same cell
        (e.g. the imputed values of source cells and the measured values of their partners,
        aligned with :func:`groove_sc.metrics.truth_pairs`). No NaN or infinite values.
    control
        Optional control profile: a ``(n_features,)`` mean or a ``(n_control, n_features)``
        array whose column means are used. Both ``pred`` and ``truth`` are then expressed
        relative to it before scoring, so per-cell correlations measure the perturbation
        *response* (a constant control profile otherwise inflates them).
    control_mode
        ``"subtract"`` (default; right for log-scale or centred data such as log1p counts or
        CLR protein) or ``"divide"`` (fold change; needs a strictly positive control mean).
        Per-feature correlations do not change under either (a per-feature shift or positive
        scale); the per-cell correlations and, for ``"divide"``, the MSE do.

    Returns
    -------
    dict with ``pearson_cell``, ``spearman_cell``, ``pearson_feature``, ``spearman_feature``,
    ``mse``, ``n_cells``, ``n_features``, ``n_cells_undefined``, ``n_features_undefined``.

    Examples
    --------
    >>> import numpy as np
    >>> truth = np.array([[1.0, 2.0, 3.0], [2.0, 0.0, 1.0]])
    >>> res = evaluate_imputation(truth * 2, truth)
    >>> res["pearson_cell"], res["mse"]
    (1.0, 3.1666666666666665)

    """
    if control_mode not in ("subtract", "divide"):
        raise ValueError(f"control_mode must be 'subtract' or 'divide', got {control_mode!r}.")
    shapes = (getattr(pred, "shape", None), getattr(truth, "shape", None))
    if not sp.issparse(pred):
        pred = np.asarray(pred)
    if not sp.issparse(truth):
        truth = np.asarray(truth)
    if pred.ndim != 2 or pred.shape != truth.shape:
        raise ValueError(
            f"pred and truth must be 2-d arrays of the same shape (cells x features), got "
            f"{shapes[0]} and {shapes[1]}; align rows with groove_sc.metrics.truth_pairs."
        )
    n, p = pred.shape
    if n == 0 or p == 0:
        raise ValueError(f"pred and truth are empty (shape {pred.shape}).")
    if sp.issparse(pred):
        pred = sp.csr_matrix(pred)
    if sp.issparse(truth):
        truth = sp.csr_matrix(truth)

    ref = None if control is None else _control_profile(control, p, control_mode)

    def prepare(a: np.ndarray, cols: slice | None = None) -> np.ndarray:
        if ref is None:
            return a
        r = ref if cols is None else ref[cols]
        return a - r if control_mode == "subtract" else a / r

    sq_err, p_cell, s_cell = _per_cell(pred, truth, prepare)

    p_feat, s_feat = np.empty(p), np.empty(p)
    pred_c = pred.tocsc() if sp.issparse(pred) else pred
    truth_c = truth.tocsc() if sp.issparse(truth) else truth
    step = max(1, _BLOCK_ENTRIES // n)
    for start in range(0, p, step):
        cols = slice(start, min(p, start + step))
        a = prepare(_dense_block(pred_c, cols=cols), cols).T
        b = prepare(_dense_block(truth_c, cols=cols), cols).T
        p_feat[cols], s_feat[cols] = _correlations(a, b)

    return {
        "pearson_cell": _mean_defined(p_cell),
        "spearman_cell": _mean_defined(s_cell),
        "pearson_feature": _mean_defined(p_feat),
        "spearman_feature": _mean_defined(s_feat),
        "mse": sq_err / (n * p),
        "n_cells": n,
        "n_features": p,
        "n_cells_undefined": int(np.isnan(p_cell).sum()),
        "n_features_undefined": int(np.isnan(p_feat).sum()),
    }


def _control_profile(control, p: int, control_mode: str) -> np.ndarray:
    """The control's mean profile ``(p,)``, checked."""
    ref = np.asarray(control.toarray() if sp.issparse(control) else control, np.float64)
    if ref.ndim == 2:
        ref = ref.mean(axis=0)
    if ref.shape != (p,):
        raise ValueError(
            f"control must have {p} features (a mean profile or control cells x features), "
            f"got shape {np.shape(control)}."
        )
    if not np.isfinite(ref).all():
        raise ValueError(
            f"control contains NaN or infinite values ({int((~np.isfinite(ref)).sum())} of "
            f"{p} features); remove or impute them, or pass control cells without them."
        )
    if control_mode == "divide" and (ref <= 0).any():
        raise ValueError(
            f"control_mode='divide' needs a strictly positive control mean, but "
            f"{int((ref <= 0).sum())} features have a mean <= 0; use "
            "control_mode='subtract' (log-scale data) or add a pseudocount."
        )
    return ref


def _per_cell(pred, truth, prepare) -> tuple[float, np.ndarray, np.ndarray]:
    """Squared error summed over all entries, and the per-cell correlations (row blocks)."""
    n, p = pred.shape
    sq_err = 0.0
    p_cell, s_cell = np.empty(n), np.empty(n)
    step = max(1, _BLOCK_ENTRIES // p)
    for start in range(0, n, step):
        rows = slice(start, min(n, start + step))
        a, b = _dense_block(pred, rows=rows), _dense_block(truth, rows=rows)
        for name, block in (("pred", a), ("truth", b)):
            if not np.isfinite(block).all():
                bad = start + int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
                raise ValueError(
                    f"'{name}' contains NaN or infinite values (first in row {bad}); impute or "
                    "drop those cells before scoring."
                )
        a, b = prepare(a), prepare(b)
        sq_err += float(((a - b) ** 2).sum())
        p_cell[rows], s_cell[rows] = _correlations(a, b)
    return sq_err, p_cell, s_cell
