"""Helpers for MuData objects whose modalities hold *disjoint* cells (axis 0).

Every function that reads or writes a union-of-cells object (``mdata.obsp``, ``mdata.obsm``)
goes through these helpers, so that the mapping between a modality's local cell order and the
global order of ``mdata.obs_names`` is computed in exactly one place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import mudata
import numpy as np
import pandas as pd
import scipy.sparse as sp
from mudata import MuData


@contextlib.contextmanager
def no_pull_on_update() -> Iterator[None]:
    """Within the block, ``MuData.update()`` does not pull modality columns (mudata 0.4's rule).

    mudata 0.3 warns (``FutureWarning``) at every ``update()``, and at every ``write``, that
    0.4 will stop pulling ``obs``/``var`` columns from the modalities unless the
    ``pull_on_update`` option is set. groove_sc never relies on pulled columns, so its own
    calls adopt the new rule explicitly, for the duration of the call only: the user's global
    mudata options are restored on exit. With mudata >= 0.4 (no such option) this does nothing.

    Examples
    --------
    >>> with no_pull_on_update():
    ...     mdata.update()

    """
    set_options = getattr(mudata, "set_options", None)
    try:
        options = set_options(pull_on_update=False) if set_options is not None else None
    except ValueError:  # a mudata without the option
        options = None
    if options is None:
        yield
        return
    with options:
        yield


def row_normalised(coupling: sp.spmatrix) -> tuple[sp.csr_matrix, np.ndarray]:
    """The coupling with each row divided by its mass, and a mask of the rows without mass.

    Rows without mass stay zero; each caller decides what such a cell predicts (NaN for
    ``tl.impute``, chance for the metrics, the target mean for the benchmark's imputation).

    Examples
    --------
    >>> Q, empty = row_normalised(sp.csr_matrix(np.array([[0.2, 0.2], [0.0, 0.0]])))
    >>> Q.toarray().tolist(), empty.tolist()
    ([[0.5, 0.5], [0.0, 0.0]], [False, True])

    """
    P = sp.csr_matrix(coupling)
    mass = np.asarray(P.sum(axis=1)).ravel()
    empty = ~(mass > 0)
    inv = np.divide(1.0, mass, out=np.zeros_like(mass), where=~empty)
    return sp.csr_matrix(sp.diags(inv) @ P), empty


#: Columns named, at most, in a missing-column error.
_MAX_COLUMNS_SHOWN = 20


def obs_column(mdata: MuData, mod: str, key: str, argument: str, hint: str) -> pd.Series:
    """``mdata[mod].obs[key]``, or a ``KeyError`` naming the argument, the columns and the fix.

    The one check, for every argument that names an ``obs`` column (``groupby``,
    ``perturbation_key``, ``batch_key``, ``truth_key``, ...).

    Parameters
    ----------
    mdata
        The MuData.
    mod
        The modality whose ``.obs`` must hold the column.
    key
        The column.
    argument
        The argument that named it, as the user wrote it.
    hint
        What to do, appended to the message.

    Examples
    --------
    >>> obs_column(mdata, "rna", "perturbation", "groupby", "").dtype.name
    'category'

    """
    obs = mdata.mod[mod].obs
    if key not in obs:
        cols = [str(c) for c in obs.columns]
        shown = cols[:_MAX_COLUMNS_SHOWN] + (["..."] if len(cols) > _MAX_COLUMNS_SHOWN else [])
        raise KeyError(
            f"{argument}='{key}' is not a column of mdata['{mod}'].obs (columns: {shown}); {hint}"
        )
    return obs[key]


def check_modalities(mdata: MuData, modalities: Sequence[str], what: str = "this call") -> None:
    """Raise a clear error when a modality is absent from ``mdata.mod``.

    Examples
    --------
    >>> check_modalities(mdata, ["rna", "prot"])
    >>> check_modalities(mdata, ["rna", "atac"])
    Traceback (most recent call last):
    KeyError: ...

    """
    if not isinstance(mdata, MuData):
        raise TypeError(f"{what} needs a MuData object, got {type(mdata).__name__}.")
    for m in modalities:
        if m not in mdata.mod:
            raise KeyError(
                f"Modality '{m}' is not in mdata.mod (available: {list(mdata.mod)}); "
                f"pass one of those names to {what}."
            )


def check_disjoint_obs_names(mdata: MuData, modalities: Sequence[str]) -> None:
    """Raise when two modalities share obs_names (MuData would merge them into one cell).

    Examples
    --------
    >>> check_disjoint_obs_names(mdata, ["rna", "prot"])

    """
    seen: dict[str, str] = {}
    for m in modalities:
        names = mdata.mod[m].obs_names
        if not names.is_unique:
            dup = names[names.duplicated()][0]
            raise ValueError(
                f"obs_names of modality '{m}' are not unique (e.g. '{dup}'); "
                f"call mdata['{m}'].obs_names_make_unique() first."
            )
        for other, other_names in seen.items():
            shared = names.intersection(other_names)
            if len(shared):
                raise ValueError(
                    f"Modalities '{other}' and '{m}' share {len(shared)} obs_names "
                    f"(e.g. '{shared[0]}'): MuData would merge them into one cell. Weakly paired "
                    "cells must have distinct names. Cells of separate experiments (barcodes "
                    f"that repeat by chance): prefix them, mdata['{m}'].obs_names = '{m}:' + "
                    f"mdata['{m}'].obs_names, then mdata.update(). Co-assayed cells (one cell "
                    "seen by both modalities): mdata = groove_sc.pp.unpair(mdata) splits them and "
                    "keeps the pairing as a hidden truth."
                )
        seen[m] = names


def modality_positions(mdata: MuData, mod: str) -> np.ndarray:
    """Positions in ``mdata.obs_names`` of the cells of modality ``mod``, in the modality's order.

    Examples
    --------
    >>> pos = modality_positions(mdata, "rna")
    >>> bool((mdata.obs_names[pos] == mdata["rna"].obs_names).all())
    True

    """
    check_modalities(mdata, [mod])
    obsmap = np.asarray(mdata.obsmap[mod])
    glob = np.flatnonzero(obsmap)
    if len(glob) != mdata.mod[mod].n_obs:
        # obsmap is stale (the user changed a modality without mdata.update()): fall back to names
        idx = mdata.obs_names.get_indexer(mdata.mod[mod].obs_names)
        if (idx < 0).any():
            raise ValueError(
                f"Cells of modality '{mod}' are missing from mdata.obs_names; call mdata.update()."
            )
        return idx.astype(np.int64)
    pos = np.empty(len(glob), dtype=np.int64)
    pos[obsmap[glob].astype(np.int64) - 1] = glob
    return pos


def embed_block(
    mdata: MuData, block: sp.spmatrix | np.ndarray, source: str, target: str
) -> sp.csr_matrix:
    """Place a ``(n_source, n_target)`` block into a sparse ``(n_obs, n_obs)`` union matrix.

    Never densifies: the block is converted to COO and its indices are remapped.

    Examples
    --------
    >>> full = embed_block(mdata, np.eye(mdata["rna"].n_obs, mdata["prot"].n_obs), "rna", "prot")
    >>> full.shape == (mdata.n_obs, mdata.n_obs), full.nnz
    (True, 67)

    """
    rows = modality_positions(mdata, source)
    cols = modality_positions(mdata, target)
    block = sp.coo_matrix(block)
    if block.shape != (len(rows), len(cols)):
        raise ValueError(
            f"Block shape {block.shape} does not match modalities '{source}' x '{target}' "
            f"({len(rows)} x {len(cols)} cells)."
        )
    n = mdata.n_obs
    full = sp.csr_matrix((block.data, (rows[block.row], cols[block.col])), shape=(n, n))
    full.sum_duplicates()
    return full


def check_coupling_key(mdata: MuData, key: str) -> None:
    """Refuse a coupling key missing from ``mdata.obsp``, listing the stored ones.

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", use_rep="X_true_shared", key_added="groove_coupling")
    >>> check_coupling_key(mdata, "groove_coupling")

    """
    if key not in mdata.obsp:
        raise KeyError(
            f"'{key}' is not in mdata.obsp (available: {list(mdata.obsp.keys())}); "
            "run groove_sc.tl.align(..., key_added=...) first, or pass a stored key."
        )


def extract_block(mdata: MuData, key: str, source: str, target: str) -> sp.csr_matrix:
    """Read the ``(n_source, n_target)`` block of ``mdata.obsp[key]`` (sparse CSR).

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", use_rep="X_true_shared", key_added="groove_coupling")
    >>> extract_block(mdata, "groove_coupling", "rna", "prot").shape
    (67, 67)

    """
    check_coupling_key(mdata, key)
    full = sp.csr_matrix(mdata.obsp[key])
    rows = modality_positions(mdata, source)
    cols = modality_positions(mdata, target)
    return full[rows][:, cols].tocsr()


def coupling_modalities(mdata: MuData, key: str) -> tuple[str, str]:
    """Source and target modality of a stored coupling, from ``mdata.uns[key]``.

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", use_rep="X_true_shared", key_added="groove_coupling")
    >>> coupling_modalities(mdata, "groove_coupling")
    ('rna', 'prot')

    """
    meta = mdata.uns.get(key)
    if meta is None or "source" not in meta or "target" not in meta:
        known = [k for k, v in mdata.uns.items() if isinstance(v, dict) and "source" in v]
        raise KeyError(
            f"mdata.uns['{key}'] with 'source' and 'target' is missing (couplings recorded: "
            f"{known}); the coupling must come from groove_sc.tl.align, pass one of those keys."
        )
    return str(meta["source"]), str(meta["target"])


def set_union_obsm(mdata: MuData, key: str, per_mod: dict[str, np.ndarray]) -> None:
    """Write a joint ``mdata.obsm[key]`` over the union of cells from per-modality blocks.

    Cells of modalities not in ``per_mod`` get NaN rows.

    Examples
    --------
    >>> set_union_obsm(mdata, "X_ones", {"rna": np.ones((mdata["rna"].n_obs, 2))})
    >>> int(np.isnan(mdata.obsm["X_ones"][:, 0]).sum()) == mdata["prot"].n_obs
    True

    """
    dims = {v.shape[1] for v in per_mod.values()}
    if len(dims) != 1:
        raise ValueError(f"Per-modality blocks have different widths {dims}.")
    out = np.full((mdata.n_obs, dims.pop()), np.nan, dtype=np.float32)
    for m, v in per_mod.items():
        out[modality_positions(mdata, m)] = v
    mdata.obsm[key] = out
