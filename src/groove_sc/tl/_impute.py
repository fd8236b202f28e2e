"""``tl.impute``: barycentric projection of target features through a stored coupling."""

from __future__ import annotations

import warnings
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from mudata import MuData

from .._constants import DEFAULT_COUPLING_KEY
from .._mudata import check_modalities, extract_block, no_pull_on_update, row_normalised


def _coupling_block(mdata: MuData, key: str, source: str, target: str) -> sp.csr_matrix:
    """The ``(n_source, n_target)`` block, transposing a coupling stored the other way round."""
    meta = mdata.uns.get(key, {})
    stored = (str(meta.get("source", source)), str(meta.get("target", target)))
    if stored == (source, target):
        return extract_block(mdata, key, source, target)
    if stored == (target, source):
        return extract_block(mdata, key, target, source).T.tocsr()
    raise ValueError(
        f"mdata.uns['{key}'] couples '{stored[0]}' -> '{stored[1]}', not '{source}' and "
        f"'{target}'; run groove_sc.tl.align(mdata, '{source}', '{target}', key_added=...) first."
    )


def barycentric_projection(coupling: sp.spmatrix, values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Row-normalised ``coupling @ values``; the coupling stays sparse.

    Returns the projection and a boolean mask of rows without mass (their values are NaN).

    Examples
    --------
    >>> P = sp.csr_matrix(np.array([[0.5, 0.0], [0.0, 0.0]]))
    >>> y, empty = barycentric_projection(P, np.array([[1.0], [3.0]]))
    >>> y[0], empty
    (array([1.]), array([False,  True]))

    """
    weights, empty = row_normalised(coupling)
    out = weights @ values
    out = out.toarray() if sp.issparse(out) else np.asarray(out)
    dtype = np.float32 if values.dtype == np.float32 else np.float64
    out = out.astype(dtype, copy=False)
    out[empty] = np.nan
    return out, empty


def impute(
    mdata: MuData,
    source: str,
    target: str,
    *,
    coupling_key: str = DEFAULT_COUPLING_KEY,
    layer: str | None = None,
    model: Any = None,
    key_added: str | None = None,
    var_suffix: str | None = None,
) -> None:
    """Impute the target modality's features for every source cell.

    The stored coupling (from :func:`groove_sc.tl.align`) is row-normalised and applied to the
    target features: ``x_hat_i = sum_j P_ij y_j / sum_j P_ij`` (barycentric projection, a sparse
    times dense product; the coupling is never densified). The result is a new modality
    ``mdata.mod[key_added]`` whose cells are the source cells (same ``obs_names`` and ``obs``,
    so MuData treats them as the same cells) and whose features are the target's ``var``, named
    ``f"{target_var_name}:{key_added}"`` (``var_suffix``) so that they do not collide with the
    target modality's own ``var_names`` in the MuData (the target's names are kept in
    ``.var["target_var_name"]``):

    - ``.X`` and ``.layers["ot"]``: the barycentric projection;
    - ``.layers["decoder"]``: ``model.get_imputed_values(source=source, target=target)`` when a
      model is given (the GROOVE decoder translation);
    - ``.uns["imputation"]``: source, target, coupling key, layer, number of unmatched cells,
      the ``var_suffix``.

    Source cells with no mass in the coupling (e.g. left out of a label-constrained alignment)
    get NaN rows, with a warning that counts them: there is no transported profile for them.

    Parameters
    ----------
    mdata
        MuData holding the coupling in ``obsp[coupling_key]``.
    source
        Modality whose cells receive imputed profiles.
    target
        Modality whose features are imputed.
    coupling_key
        Key of the coupling in ``mdata.obsp`` / ``mdata.uns``. A coupling stored from target to
        source is transposed.
    layer
        Layer of the target modality to project (default ``.X``).
    model
        Optional trained model with ``get_imputed_values(source=..., target=...)``.
    key_added
        Name of the new modality (default ``f"{target}_imputed"``); replaced if it exists.
    var_suffix
        Appended to the target's ``var_names`` to name the imputed features; default
        ``f":{key_added}"`` (``"CD4"`` -> ``"CD4:prot_imputed"``). ``""`` keeps the target's
        names; MuData then warns that ``var_names`` are not unique across modalities.

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", use_rep="X_true_shared", key_added="groove_coupling")
    >>> gs.tl.impute(mdata, "rna", "prot", coupling_key="groove_coupling")
    >>> mdata["prot_imputed"].shape == (mdata["rna"].n_obs, mdata["prot"].n_vars)
    True
    >>> mdata["prot_imputed"].var_names[0], mdata["prot"].var_names[0]
    ('prot_protein0:prot_imputed', 'prot_protein0')

    """
    check_modalities(mdata, [source, target], "groove_sc.tl.impute")
    key_added = f"{target}_imputed" if key_added is None else key_added
    if key_added in (source, target):
        raise ValueError(
            f"key_added='{key_added}' would replace an input modality; pick another name."
        )
    src, tgt = mdata.mod[source], mdata.mod[target]
    if layer is None:
        values = tgt.X
        if values is None:
            raise ValueError(
                f"mdata['{target}'].X is empty; pass layer= one of {list(tgt.layers)}."
            )
    elif layer in tgt.layers:
        values = tgt.layers[layer]
    else:
        raise KeyError(
            f"layer '{layer}' is not in mdata['{target}'].layers (available: "
            f"{list(tgt.layers)}); pass layer=None to use .X."
        )
    coupling = _coupling_block(mdata, coupling_key, source, target)
    projected, empty = barycentric_projection(coupling, values)
    if empty.any():
        record = mdata.uns.get(coupling_key, {}).get("unmatched", {})
        reason = record.get("reason") if isinstance(record, dict) else None
        advice = (
            f"tl.align could not couple them: {reason}."
            if reason
            else "Align with unmatched='couple' (tl.align's default) to couple them too."
        )
        warnings.warn(
            f"{int(empty.sum())} of {src.n_obs} '{source}' cells have no mass in "
            f"obsp['{coupling_key}'] (e.g. unlabeled or in groups absent from '{target}'); "
            f"their imputed rows are NaN. {advice}",
            UserWarning,
            stacklevel=2,
        )
    var = tgt.var.copy()
    var["target_var_name"] = np.asarray(tgt.var_names, dtype=str)
    suffix = f":{key_added}" if var_suffix is None else str(var_suffix)
    var.index = pd.Index([f"{name}{suffix}" for name in tgt.var_names])
    imputed = ad.AnnData(X=projected, obs=src.obs.copy(), var=var)
    imputed.layers["ot"] = projected.copy()
    if model is not None:
        decoded = np.asarray(model.get_imputed_values(source=source, target=target))
        if decoded.shape != projected.shape:
            raise ValueError(
                f"model.get_imputed_values(source='{source}', target='{target}') returned shape "
                f"{decoded.shape}, expected {projected.shape} ('{source}' cells x '{target}' "
                "features); was the model set up on this MuData?"
            )
        imputed.layers["decoder"] = decoded
    imputed.uns["imputation"] = {
        "source": source,
        "target": target,
        "coupling_key": coupling_key,
        "layer": "X" if layer is None else layer,
        "n_unmatched": int(empty.sum()),
        "decoder": model is not None,
        "var_suffix": suffix,
    }
    mdata.mod[key_added] = imputed
    with no_pull_on_update():
        mdata.update()
