"""One rule for reading a cell representation out of a MuData (aligners, metrics, plots)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from mudata import MuData

from ._mudata import modality_positions

#: What a representation may be: ``None``/``"X"`` (features), an ``obsm`` key, or an array.
Rep = str | np.ndarray | None


def _lookup(mdata: MuData, mod: str, rep: Rep, argument: str):
    adata = mdata.mod[mod]
    if rep is None or (isinstance(rep, str) and rep == "X"):
        if adata.X is None:
            raise ValueError(f"mdata['{mod}'].X is empty; pass {argument}= an obsm key instead.")
        return adata.X
    if not isinstance(rep, str):
        return rep
    if rep in adata.obsm:
        return adata.obsm[rep]
    if rep in mdata.obsm:
        return np.asarray(mdata.obsm[rep])[modality_positions(mdata, mod)]
    raise KeyError(
        f"Representation {argument} '{rep}' is in neither mdata['{mod}'].obsm (available: "
        f"{list(adata.obsm)}) nor the joint mdata.obsm (available: {list(mdata.obsm)}). Run "
        "groove_sc.tl.embed(mdata, model, key_added=...) or sc.pp.pca on the modality, pass "
        f"{argument}='X' to use its features, or pass an array."
    )


def get_rep(
    mdata: MuData, mod: str, rep: Rep, *, argument: str = "use_rep", finite: bool = True
) -> np.ndarray:
    """The representation ``rep`` of the cells of modality ``mod``, as a dense float64 array.

    One rule everywhere: ``None`` or ``"X"`` is the modality's features (``.X``); a string is
    looked up in ``mdata[mod].obsm``, then in the joint ``mdata.obsm`` (the rows of the
    modality's cells); anything else is taken as an array with one row per cell.

    Parameters
    ----------
    mdata
        The MuData.
    mod
        Modality name.
    rep
        ``None``/``"X"``, an ``obsm`` key, or an array ``(n_cells, d)``.
    argument
        Name of the caller's argument, for error messages.
    finite
        Raise on NaN or infinite values (callers that check a subset of cells pass ``False``).

    Returns
    -------
    ``(mdata[mod].n_obs, d)`` float64 array.

    Raises
    ------
    KeyError
        Naming the key and the keys available in both places.
    ValueError
        For an empty ``.X``, a shape other than one row per cell, or non-finite values.

    Examples
    --------
    >>> get_rep(mdata, "prot", "X_true_shared").shape
    (67, 10)
    >>> get_rep(mdata, "prot", None).shape
    (67, 10)

    """
    x = _lookup(mdata, mod, rep, argument)
    if isinstance(x, pd.DataFrame):
        x = x.to_numpy()
    if sp.issparse(x):
        x = x.toarray()
    x = np.asarray(x, dtype=np.float64)
    n_obs = mdata.mod[mod].n_obs
    name = f"'{rep}'" if isinstance(rep, str) else f"{argument}"
    if x.ndim != 2 or x.shape[0] != n_obs:
        raise ValueError(
            f"Representation {name} of modality '{mod}' has shape {x.shape}; expected "
            f"({n_obs}, d), one row per cell (2-D)."
        )
    if finite and not np.isfinite(x).all():
        raise ValueError(
            f"Representation {name} of modality '{mod}' contains NaN or infinite values (e.g. "
            "cells of another modality in a joint obsm); pass a per-modality representation."
        )
    return x
