"""Reading the evaluation truth and representations out of a MuData."""

from __future__ import annotations

import numpy as np
import pandas as pd
from mudata import MuData

from .._constants import DEFAULT_TRUTH_KEY
from .._mudata import check_modalities, obs_column


def _ids(mdata: MuData, mod: str, truth_key: str) -> tuple[np.ndarray, np.ndarray]:
    """String ids of a modality's cells and a mask of those with an id."""
    col = obs_column(
        mdata,
        mod,
        truth_key,
        "truth_key",
        "metrics need the shared cell id of co-assayed or simulated cells "
        "(groove_sc.datasets.simulate and groove_sc.pp.unpair write obs['cell_id']).",
    )
    ids = col.astype(str).to_numpy()
    # missing ids: NaN, or an empty string (how h5 files store a missing string)
    present = ~pd.isna(col).to_numpy() & (ids != "")
    return ids, present


def truth_pairs(
    mdata: MuData, source: str, target: str, truth_key: str = DEFAULT_TRUTH_KEY
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the true partners between two modalities.

    Source cells whose ``obs[truth_key]`` is missing (NaN or an empty string) or found in no
    target cell have no partner and are left out.

    Parameters
    ----------
    mdata
        MuData with disjoint cells per modality.
    source, target
        Modality names.
    truth_key
        Column of each modality's ``.obs`` holding the shared cell id (unique within the
        target modality).

    Returns
    -------
    ``(source_idx, target_idx)``: integer positions (in each modality's own cell order) such
    that ``mdata[source][source_idx[k]]`` and ``mdata[target][target_idx[k]]`` are one cell.

    Examples
    --------
    >>> src, tgt = gs.metrics.truth_pairs(mdata, "rna", "prot")
    >>> x, y = mdata["rna"].obsm["X_true_shared"][src], mdata["prot"].obsm["X_true_shared"][tgt]
    >>> bool(np.allclose(x, y))
    True

    """
    check_modalities(mdata, [source, target], "truth_pairs")
    if source == target:
        raise ValueError(f"source and target are both '{source}'; pass two different modalities.")
    s_ids, s_ok = _ids(mdata, source, truth_key)
    t_ids, t_ok = _ids(mdata, target, truth_key)
    t_pos = np.flatnonzero(t_ok)
    t_index = pd.Index(t_ids[t_pos])
    if not t_index.is_unique:
        dup = t_index[t_index.duplicated()][0]
        raise ValueError(
            f"obs['{truth_key}'] of modality '{target}' is not unique (e.g. '{dup}'): a source "
            "cell would have several true partners."
        )
    hit = t_index.get_indexer(pd.Index(s_ids))
    hit[~s_ok] = -1
    source_idx = np.flatnonzero(hit >= 0)
    if len(source_idx) == 0:
        raise ValueError(
            f"No cell of '{source}' shares obs['{truth_key}'] with a cell of '{target}': there is "
            "no truth to evaluate against. Truth-based metrics need paired views "
            "(simulate(paired=True) or pp.unpair(split='same'))."
        )
    return source_idx.astype(np.int64), t_pos[hit[source_idx]].astype(np.int64)
