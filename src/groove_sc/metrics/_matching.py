"""Matching metrics for couplings stored by ``tl.align`` and for shared embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from mudata import MuData

from .._constants import DEFAULT_GROUPBY, DEFAULT_TRUTH_KEY
from .._mudata import (
    check_coupling_key,
    check_modalities,
    coupling_modalities,
    extract_block,
    obs_column,
    row_normalised,
)
from .._representation import get_rep
from ._foscttm import Ties, closer_fraction, foscttm
from ._truth import truth_pairs

#: Two label masses of one row closer than this count as tied in label transfer.
_LABEL_TIE_ATOL = 1e-12


def latent_foscttm(
    mdata: MuData,
    use_rep: str,
    source: str,
    target: str,
    truth_key: str = DEFAULT_TRUTH_KEY,
    *,
    ties: Ties = "half",
    chunk_size: int | None = None,
) -> float:
    """FOSCTTM of a shared embedding, over the truly paired cells of two modalities.

    Cells are paired through ``obs[truth_key]``; cells without a partner are left out, so the
    denominator is ``n_pairs - 1``. See :func:`groove_sc.metrics.foscttm`.

    Parameters
    ----------
    mdata
        MuData with disjoint cells per modality.
    use_rep
        Key of the embedding in ``mdata[m].obsm`` (or in the joint ``mdata.obsm``), e.g.
        ``"X_groove"``; both modalities must share its dimensions.
    source, target
        The two modalities.
    truth_key
        Shared cell id column in each modality's ``.obs``.
    ties, chunk_size
        As in :func:`groove_sc.metrics.foscttm`.

    Returns
    -------
    The mean FOSCTTM over both directions (0 perfect, about 0.5 chance).

    Examples
    --------
    >>> gs.metrics.latent_foscttm(mdata, "X_true_shared", "rna", "prot")
    0.0

    """
    check_modalities(mdata, [source, target], "latent_foscttm")
    src, tgt = truth_pairs(mdata, source, target, truth_key)
    x = get_rep(mdata, source, use_rep)[src]
    y = get_rep(mdata, target, use_rep)[tgt]
    return foscttm(x, y, ties=ties, chunk_size=chunk_size)


def _expected_topk(rows: sp.csr_matrix, m_true: np.ndarray, n_t: int, k: int) -> np.ndarray:
    """Probability that the partner is among a row's k largest entries (ties broken at random)."""
    row_of = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
    m_rep = m_true[row_of]
    greater = np.bincount(row_of, weights=rows.data > m_rep, minlength=rows.shape[0])
    equal = np.bincount(row_of, weights=rows.data == m_rep, minlength=rows.shape[0])
    # a partner with zero mass ties with every target that holds no mass
    equal = np.where(m_true > 0, equal, n_t - greater)
    hit = (k - greater) / np.maximum(equal, 1)
    return np.clip(hit, 0.0, 1.0)


def _labels(mdata: MuData, mod: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    hint = "pass a column present in both the source and the target modality."
    col = obs_column(mdata, mod, key, "label_key", hint)
    return col.astype(str).to_numpy(), ~pd.isna(col).to_numpy()


def _group_baseline(
    mdata: MuData,
    source: str,
    target: str,
    groupby: str | None,
    src_idx: np.ndarray,
    tgt_idx: np.ndarray,
) -> np.ndarray:
    """Mass on the partner of a coupling uniform within the source cell's group."""
    n_t = mdata.mod[target].n_obs
    if groupby is None:
        return np.full(len(src_idx), 1.0 / n_t)
    ls, ls_ok = _labels(mdata, source, groupby)
    lt, lt_ok = _labels(mdata, target, groupby)
    sizes = pd.Series(lt[lt_ok]).value_counts()
    s_lab, t_lab = ls[src_idx], lt[tgt_idx]
    same = ls_ok[src_idx] & lt_ok[tgt_idx] & (s_lab == t_lab)
    size = sizes.reindex(s_lab).fillna(0).to_numpy()
    base = np.where(same, 1.0 / np.maximum(size, 1), 0.0)
    return np.where(ls_ok[src_idx], base, 1.0 / n_t)


def _label_metrics(
    mdata: MuData, source: str, target: str, key: str, P: sp.csr_matrix, Pn: sp.csr_matrix
) -> dict[str, float]:
    ls, ls_ok = _labels(mdata, source, key)
    lt, lt_ok = _labels(mdata, target, key)
    cats = pd.Index(np.unique(lt[lt_ok]))
    if len(cats) == 0 or not ls_ok.any():
        raise ValueError(
            f"Label column '{key}' has no values in modality "
            f"'{target if len(cats) == 0 else source}'; label metrics need labels on both sides."
        )
    t_code = np.where(lt_ok, cats.get_indexer(lt), -1)
    cols = np.flatnonzero(t_code >= 0)
    onehot = sp.csr_matrix((np.ones(len(cols)), (cols, t_code[cols])), shape=(len(lt), len(cats)))
    rows = np.flatnonzero(ls_ok)
    s_code = cats.get_indexer(ls[rows])  # -1: label absent from the target
    known = s_code >= 0
    s_freq = pd.Series(ls[rows]).value_counts(normalize=True)
    t_freq = pd.Series(lt[lt_ok]).value_counts(normalize=True)
    chance = float((s_freq * t_freq.reindex(s_freq.index).fillna(0)).sum())
    perfect = float(known.mean())

    # label transfer: each source cell takes the label holding most of its (row-normalised) mass
    score = np.asarray((Pn[rows] @ onehot).todense())
    best = score.max(axis=1, keepdims=True)
    tied = score >= best - _LABEL_TIE_ATOL
    credit = np.zeros(len(rows))
    credit[known] = tied[np.flatnonzero(known), s_code[known]] / tied[known].sum(axis=1)
    acc = float(credit.mean())

    # diagonal fraction: share of the coupling's mass (labelled block) joining equal labels
    mass = np.asarray((P[rows] @ onehot).todense())
    total = mass.sum()
    if total > 0:
        diag = float(mass[np.flatnonzero(known), s_code[known]].sum() / total)
        r = pd.Series(mass.sum(axis=1)).groupby(ls[rows]).sum() / total
        c = pd.Series(mass.sum(axis=0) / total, index=cats)
        diag_rand = float((r * c.reindex(r.index).fillna(0)).sum())
        diag_perf = float(r.reindex(cats).fillna(0).sum())
    else:
        diag = diag_rand = diag_perf = float("nan")

    def scaled(x: float, lo: float, hi: float) -> float:
        return (x - lo) / (hi - lo) if hi > lo else float("nan")

    return {
        "label_transfer_accuracy": acc,
        "label_transfer_accuracy_random": chance,
        "label_transfer_accuracy_scaled": scaled(acc, chance, perfect),
        "label_diagonal_fraction": diag,
        "label_diagonal_fraction_random": diag_rand,
        "label_diagonal_fraction_scaled": scaled(diag, diag_rand, diag_perf),
    }


def _resolve_groupby(mdata: MuData, meta: Any, source: str, target: str, groupby: str | None):
    if groupby is not None:
        for m in (source, target):
            obs_column(
                mdata, m, groupby, "groupby", "pass a column present in both modalities, or None."
            )
        return groupby
    candidates = []
    if isinstance(meta, dict) and isinstance(meta.get("groupby"), str) and meta["groupby"]:
        candidates.append(meta["groupby"])
    candidates.append(DEFAULT_GROUPBY)
    for key in candidates:
        if all(key in mdata.mod[m].obs for m in (source, target)):
            return key
    return None


def evaluate_matching(
    mdata: MuData,
    coupling_key: str,
    truth_key: str = DEFAULT_TRUTH_KEY,
    label_key: str | None = None,
    target_rep: str | np.ndarray | None = None,
    k: Sequence[int] = (1, 5, 10),
    *,
    groupby: str | None = None,
    chunk_size: int | None = None,
) -> dict[str, float]:
    """Score a coupling stored by :func:`groove_sc.tl.align` against the true pairing.

    Let ``P`` be the ``source x target`` block of ``mdata.obsp[coupling_key]`` and ``Q`` its
    row-normalised version (each source cell's mass as a distribution over target cells).
    Only source cells with a true partner (same ``obs[truth_key]`` in the target) are scored.

    - ``foscttm_barycentric``: each source cell's prediction is the barycentric projection
      ``Q @ Y`` of the target representation ``Y``; its score is the fraction of the other
      ``n_target - 1`` target cells closer to the prediction than its true partner (ties count
      one half). One direction only, by design: in the reverse direction (for each target cell,
      which predictions are closer) all source cells of a group share one prediction under a
      label-only uniform coupling, they tie, and such a coupling would look deceptively good.
      About 0.5 is chance (exactly 0.5 when all rows are equal); a label-only uniform coupling
      predicts the group centroid for every cell of a group and scores below 0.5 by as much as
      the groups separate in ``Y`` (0.13 on a default simulation), which is the reference a
      learner must beat.
    - ``trace``: mean of ``Q[i, partner(i)]``, the share of a source cell's mass on its partner
      (1 perfect), with ``trace_random`` (``1 / n_target``, a coupling uniform over all target
      cells) and ``trace_random_group`` (a coupling uniform within the source cell's
      ``groupby`` group: ``1 / n_target(group)`` when the partner carries that label, else 0;
      unlabeled source cells: ``1 / n_target``) beside it.
    - ``top{k}_accuracy``: probability that the partner is among the ``k`` target cells with
      the most mass in the cell's row, ties broken uniformly at random (so a uniform row
      scores ``k / n`` rather than 0 or 1).
    - With ``label_key`` (a secondary label such as dose or cell type, in both modalities):
      ``label_transfer_accuracy`` (each labelled source cell takes the target label holding
      most of its mass; ``t`` tied labels share the credit ``1/t``), and
      ``label_diagonal_fraction`` (share of ``P``'s mass between labelled cells that joins
      equal labels); each with ``*_random`` (labels drawn independently from the source and
      target label frequencies, resp. the coupling's marginals per label) and ``*_scaled``
      ``= (value - random) / (perfect - random)``, where perfect is the share of source cells
      (resp. mass) whose label occurs in the target. Scaled values are NaN only when perfect
      equals random (e.g. a single label).

    **Source cells whose row of P is all zero** (e.g. mass dropped by unbalanced OT) have no
    prediction: they count as chance, FOSCTTM 0.5, trace 0, top-k ``k / n_target``, and a
    label transfer credit ``1 / n_labels``; their share is reported as ``frac_unmatched``.

    Parameters
    ----------
    mdata
        MuData holding the coupling (``mdata.obsp[coupling_key]``, with source and target in
        ``mdata.uns[coupling_key]``).
    coupling_key
        Key of the coupling.
    truth_key
        Shared cell id column in both modalities' ``.obs``.
    label_key
        Optional secondary label column for label transfer and the diagonal fraction.
    target_rep
        Representation of the target cells that is projected: ``None`` or ``"X"`` for the
        target's ``.X`` (densified; pass a PCA key for high-dimensional modalities), a key of
        ``mdata[target].obsm`` or ``mdata.obsm``, or an array with one row per target cell.
        Prefer a learner-independent representation so that learners are compared fairly.
    k
        Neighbourhood sizes for the top-k accuracies.
    groupby
        Group column for ``trace_random_group``; by default the ``groupby`` recorded in
        ``mdata.uns[coupling_key]``, else ``"perturbation"`` when present in both modalities,
        else none (one group: the baseline equals ``trace_random``).
    chunk_size
        Rows per chunk of the FOSCTTM distance computation.

    Returns
    -------
    dict of floats: the metrics above and ``n_pairs``, ``n_source``, ``n_target``,
    ``frac_unmatched``.

    Examples
    --------
    >>> gs.tl.align(mdata, source="rna", target="prot", use_rep="X_true_shared", method="leot",
    ...             groupby="perturbation", key_added="groove_coupling")
    >>> res = gs.metrics.evaluate_matching(mdata, coupling_key="groove_coupling")
    >>> 0 <= res["foscttm_barycentric"] < 0.1, res["trace"] > res["trace_random_group"]
    (True, True)

    """
    if not isinstance(mdata, MuData):
        raise TypeError(f"evaluate_matching needs a MuData object, got {type(mdata).__name__}.")
    check_coupling_key(mdata, coupling_key)
    source, target = coupling_modalities(mdata, coupling_key)
    check_modalities(mdata, [source, target], "evaluate_matching")
    P = extract_block(mdata, coupling_key, source, target).astype(np.float64)
    if P.nnz and (not np.isfinite(P.data).all() or (P.data < 0).any()):
        raise ValueError(
            f"Coupling '{coupling_key}' has negative, NaN or infinite entries; a coupling must "
            "be a non-negative transport plan."
        )
    n_s, n_t = P.shape
    src_idx, tgt_idx = truth_pairs(mdata, source, target, truth_key)
    ks = [int(v) for v in np.atleast_1d(k)]
    if any(v < 1 for v in ks):
        raise ValueError(f"k must hold positive integers, got {list(k)}.")

    Pn, empty = row_normalised(P)
    has_mass = ~empty
    Pn.sort_indices()
    rows = Pn[src_idx]
    no_mass = ~has_mass[src_idx]

    Y = get_rep(mdata, target, target_rep, argument="target_rep")
    pred = np.asarray(rows @ Y)
    bary = closer_fraction(pred, Y, tgt_idx, ties="half", chunk_size=chunk_size)
    bary[no_mass] = 0.5

    m_true = np.asarray(rows[np.arange(len(src_idx)), tgt_idx]).ravel()
    gkey = _resolve_groupby(mdata, mdata.uns.get(coupling_key), source, target, groupby)
    out: dict[str, float] = {
        "foscttm_barycentric": float(bary.mean()),
        "trace": float(m_true.mean()),
        "trace_random": 1.0 / n_t,
        "trace_random_group": float(
            _group_baseline(mdata, source, target, gkey, src_idx, tgt_idx).mean()
        ),
    }
    for v in ks:
        out[f"top{v}_accuracy"] = float(_expected_topk(rows, m_true, n_t, v).mean())
    if label_key is not None:
        out.update(_label_metrics(mdata, source, target, label_key, P, Pn))
    out.update(
        {
            "n_pairs": len(src_idx),
            "n_source": n_s,
            "n_target": n_t,
            "frac_unmatched": float(no_mass.mean()),
        }
    )
    return out
