"""Average several stored couplings of the same two modalities into one."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from mudata import MuData

from .._constants import DEFAULT_COUPLING_KEY
from .._mudata import check_coupling_key, coupling_modalities, embed_block, extract_block
from ._aligners._problem import as_h5_value


def average_couplings(
    mdata: MuData,
    keys: Sequence[str],
    *,
    weights: Sequence[float] | None = None,
    key_added: str = DEFAULT_COUPLING_KEY,
    copy: bool = False,
) -> MuData | None:
    """Average couplings stored by :func:`groove_sc.tl.align` into one coupling.

    A coupling's barycentric prediction of a cell (:func:`groove_sc.tl.impute`) inherits the
    randomness of the model fit behind it. Averaging the couplings of several fits, for
    example GROOVE trained with different seeds, averages their predictions: on the PBMC
    development set six default fits aligned in their group-posterior space gave a barycentric
    FOSCTTM of 0.092, against 0.094-0.106 for each alone (see the "Real co-assayed data"
    page). The average of couplings
    with total mass 1 has total mass 1, and its source marginal is the weighted average of
    theirs.

    Parameters
    ----------
    mdata
        MuData holding the couplings in ``obsp`` and their records in ``uns``.
    keys
        Coupling keys (at least one), all from the same ``source`` to the same ``target``.
    weights
        One non-negative weight per key (normalised to sum 1); default equal weights.
    key_added
        ``obsp``/``uns`` key of the average.
    copy
        Return a new MuData instead of writing into ``mdata``.

    Returns
    -------
    ``None`` (or the new MuData with ``copy=True``). Writes ``obsp[key_added]`` and
    ``uns[key_added]``: ``source``, ``target``, ``method="average"``, ``averaged`` (the keys),
    ``weights``, ``methods`` (each coupling's method), and ``groupby`` and ``use_rep`` (the
    couplings' common one, else ``""``).

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", use_rep="X_true_shared", key_added="a")
    >>> gs.tl.align(mdata, "rna", "prot", use_rep="X_true", method="egwl", key_added="b")
    >>> gs.tl.average_couplings(mdata, ["a", "b"], key_added="ab")
    >>> round(float(mdata.obsp["ab"].sum()), 6), [str(k) for k in mdata.uns["ab"]["averaged"]]
    (1.0, ['a', 'b'])

    """
    keys = [keys] if isinstance(keys, str) else list(keys)
    if not keys:
        raise ValueError("keys must name at least one coupling stored by groove_sc.tl.align.")
    for key in keys:
        check_coupling_key(mdata, key)
    pairs = {key: coupling_modalities(mdata, key) for key in keys}
    source, target = pairs[keys[0]]
    for key, pair in pairs.items():
        if pair != (source, target):
            raise ValueError(
                f"Coupling '{key}' goes {pair[0]} -> {pair[1]}, but '{keys[0]}' goes {source} -> "
                f"{target}; only couplings of the same source and target can be averaged."
            )
    w = _weights(weights, len(keys))
    total = sp.csr_matrix(extract_block(mdata, keys[0], source, target).shape, dtype=np.float64)
    for key, wk in zip(keys, w):
        total = total + wk * extract_block(mdata, key, source, target).astype(np.float64)
    out = mdata.copy() if copy else mdata
    out.obsp[key_added] = embed_block(out, total.tocsr(), source, target)
    groupbys = {str(mdata.uns[key].get("groupby") or "") for key in keys}
    reps = {str(mdata.uns[key].get("use_rep")) for key in keys}
    shared_rep = all(isinstance(mdata.uns[key].get("use_rep"), str) for key in keys)
    out.uns[key_added] = as_h5_value(
        {
            "source": source,
            "target": target,
            "method": "average",
            "averaged": list(keys),
            "weights": np.asarray(w),
            "methods": [str(mdata.uns[key].get("method", "")) for key in keys],
            "groupby": groupbys.pop() if len(groupbys) == 1 else "",
            "use_rep": reps.pop() if shared_rep and len(reps) == 1 else "",
        }
    )
    return out if copy else None


def _weights(weights: Sequence[float] | None, n: int) -> np.ndarray:
    if weights is None:
        return np.full(n, 1.0 / n)
    w = np.asarray(weights, dtype=float).ravel()
    if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(
            f"weights must be {n} non-negative numbers with a positive sum (one per key), got "
            f"{list(np.atleast_1d(weights))!r}."
        )
    return w / w.sum()
