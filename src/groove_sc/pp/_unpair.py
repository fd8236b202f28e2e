"""Turn co-assayed multimodal data into a weakly paired MuData (disjoint cells per modality)."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
from mudata import MuData

from .._constants import DEFAULT_TRUTH_KEY
from .._mudata import check_modalities


def _pairing_ids(mdata: MuData, modalities: list[str], truth_key: str) -> tuple[dict, str]:
    """Per modality, the id that identifies a cell across modalities."""
    by_column = all(truth_key in mdata.mod[m].obs for m in modalities)
    ids = {}
    for m in modalities:
        obs = mdata.mod[m].obs
        if by_column:
            col = obs[truth_key]
            if col.isna().any():
                raise ValueError(
                    f"obs['{truth_key}'] of modality '{m}' has {int(col.isna().sum())} missing "
                    "values; every co-assayed cell needs its id."
                )
            values = pd.Index(col.astype(str))
        else:
            values = pd.Index(obs.index.astype(str))
        if not values.is_unique:
            what = f"obs['{truth_key}']" if by_column else "obs_names"
            raise ValueError(
                f"{what} of modality '{m}' is not unique (e.g. "
                f"'{values[values.duplicated()][0]}'); one id must name one cell."
            )
        ids[m] = values
    return ids, ("column" if by_column else "obs_names")


def _strata(mdata: MuData, first: str, pos: np.ndarray, groupby: str | None) -> np.ndarray:
    """Group code of the cells at positions ``pos`` of modality ``first`` (stratified split)."""
    if groupby is None:
        return np.zeros(len(pos), dtype=np.int64)
    adata = mdata.mod[first]
    if groupby in adata.obs:
        col = adata.obs[groupby]
    elif groupby in mdata.obs:
        col = mdata.obs[groupby].reindex(adata.obs_names)
    else:
        raise KeyError(
            f"groupby column '{groupby}' is in neither mdata['{first}'].obs nor mdata.obs; pass "
            "an existing column, or None for an unstratified split."
        )
    return pd.factorize(col.astype(object).to_numpy()[pos], use_na_sentinel=False)[0]


def unpair(
    mdata: MuData,
    modalities: Sequence[str] | None = None,
    truth_key: str = DEFAULT_TRUTH_KEY,
    split: Literal["same", "disjoint"] = "same",
    seed: int = 0,
    *,
    groupby: str | None = None,
    shuffle: bool = True,
) -> MuData:
    """Make co-assayed data (e.g. CITE-seq) weakly paired: one set of cells per modality.

    Cells are identified across modalities by ``obs[truth_key]`` when every modality has that
    column, otherwise by their obs_names (the usual layout of co-assayed data, where the
    modalities share obs_names). Only cells measured in every selected modality are used
    (a warning says how many were dropped). The returned MuData has, per modality:

    - obs_names prefixed with the modality name (``"rna:AAACG..."``; names that already carry
      the prefix keep it), so that no two modalities share a cell;
    - ``obs[truth_key]``: the shared id, kept **for evaluation only** (no learner or aligner may
      read it);
    - the modality's other obs columns, plus the global ``mdata.obs`` columns the modality
      lacks (except modality-prefixed ones such as ``"rna:n_counts"``).

    ``mdata`` is not modified; ``.uns`` is copied, the joint ``.obsm``/``.obsp`` are dropped
    (the cells change), and ``uns["unpair"]`` records the call.

    Parameters
    ----------
    mdata
        Co-assayed MuData.
    modalities
        Modalities to keep (at least two); default all.
    truth_key
        Column for the shared cell id (read when present in every modality, written always).
    split
        ``"same"``: every shared cell appears in every modality, so each cell has a true partner
        (for truth-based metrics). ``"disjoint"``: the shared cells are divided into as many
        equal parts as there are modalities, each modality keeps its own part, so no cell has a
        partner (realistic training input, like separate experiments).
    seed
        Seed of the split and of the row shuffling.
    groupby
        Optional column (of the first modality's ``.obs``, else of ``mdata.obs``) to stratify the
        disjoint split by, so that each group (e.g. perturbation; missing labels form one
        stratum) is divided evenly.
    shuffle
        Put each modality's rows in an independent random order, so that row position carries
        no pairing information; ``False`` keeps each modality's original order.

    Returns
    -------
    A new weakly paired MuData.

    Examples
    --------
    >>> import groove_sc as gs
    >>> paired = gs.datasets.simulate(n_perturbations=4, cells_per_perturbation=10, paired=True)
    >>> halves = gs.pp.unpair(paired, split="disjoint", groupby="perturbation_true")
    >>> halves["rna"].n_obs + halves["prot"].n_obs == paired["rna"].n_obs
    True

    """
    if not isinstance(mdata, MuData):
        raise TypeError(f"unpair needs a MuData object, got {type(mdata).__name__}.")
    modalities = list(mdata.mod) if modalities is None else list(modalities)
    check_modalities(mdata, modalities, "unpair")
    if len(set(modalities)) < 2:
        raise ValueError(f"unpair needs at least two different modalities, got {modalities}.")
    if split not in ("same", "disjoint"):
        raise ValueError(f"split must be 'same' or 'disjoint', got {split!r}.")

    ids, paired_by = _pairing_ids(mdata, modalities, truth_key)
    shared = _shared_cells(ids, modalities, truth_key, paired_by)

    rng = np.random.default_rng(seed)
    if split == "same":
        parts = {m: shared for m in modalities}
    else:
        strata = _strata(mdata, modalities[0], ids[modalities[0]].get_indexer(shared), groupby)
        order = rng.permutation(len(shared))
        order = order[np.argsort(strata[order], kind="stable")]  # shuffled within each stratum
        which = np.empty(len(shared), dtype=np.int64)
        which[order] = (np.arange(len(shared)) + rng.integers(len(modalities))) % len(modalities)
        parts = {m: shared[which == i] for i, m in enumerate(modalities)}

    global_cols = [
        c for c in mdata.obs.columns if not any(str(c).startswith(f"{m}:") for m in mdata.mod)
    ]
    mods = {
        m: _view(mdata, m, ids[m], parts[m], global_cols, truth_key, rng if shuffle else None)
        for m in modalities
    }

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pull_on_update.*", category=FutureWarning)
        out = MuData(mods)
        out.update()
    out.uns.update(copy.deepcopy(dict(mdata.uns)))
    out.uns["unpair"] = {
        "modalities": modalities,
        "truth_key": truth_key,
        "split": split,
        "seed": int(seed),
        "groupby": "" if groupby is None else groupby,
        "shuffle": bool(shuffle),
        "paired_by": paired_by,
        "n_shared": int(len(shared)),
        "n_cells": {m: int(mods[m].n_obs) for m in modalities},
    }
    return out


def _shared_cells(
    ids: dict[str, pd.Index], modalities: list[str], truth_key: str, paired_by: str
) -> pd.Index:
    """Ids of the cells measured in every modality (a warning says how many were dropped)."""
    shared = ids[modalities[0]]
    for m in modalities[1:]:
        shared = shared[shared.isin(ids[m])]
    if len(shared) == 0:
        how = f"obs['{truth_key}']" if paired_by == "column" else "obs_names"
        raise ValueError(
            f"No cell is measured in all of {modalities} (matched by {how}); unpair needs "
            f"co-assayed data, with the same obs_names or the same obs['{truth_key}'] in every "
            "modality."
        )
    dropped = {m: int(len(ids[m]) - len(shared)) for m in modalities}
    if any(dropped.values()):
        warnings.warn(
            f"unpair keeps the {len(shared)} cells measured in every modality; dropped per "
            f"modality: {dropped}. Subset the modalities to their shared cells first to "
            "silence this.",
            UserWarning,
            stacklevel=3,
        )
    return shared


def _view(
    mdata: MuData,
    m: str,
    ids: pd.Index,
    part: pd.Index,
    global_cols: list,
    truth_key: str,
    rng: np.random.Generator | None,
) -> ad.AnnData:
    """Modality ``m``'s cells of ``part``: prefixed names, the truth column, global columns.

    With ``rng``, the rows are put in a random order.
    """
    pos = np.sort(ids.get_indexer(part))  # the modality's own order
    cells = ids[pos]
    if rng is not None:
        perm = rng.permutation(len(pos))
        pos, cells = pos[perm], cells[perm]
    adata = mdata.mod[m][pos].copy()
    extra = [c for c in global_cols if c not in adata.obs]
    if extra:
        glob = mdata.obs.reindex(adata.obs_names)
        for c in extra:
            adata.obs[c] = glob[c]
    names = adata.obs_names.astype(str)
    adata.obs[truth_key] = np.asarray(cells, dtype=object)
    prefix = f"{m}:"
    adata.obs_names = [n if n.startswith(prefix) else prefix + n for n in names]
    return adata
