"""Light copies of a MuData: the truth-free view learners and aligners see, and the scoring view.

Learners and aligners are given a *blind* view holding each modality's data (``.X``, layers,
features) and only the label column, so that they cannot read the truth column or any
simulation oracle (``obs["cell_id"]``, ``obs["perturbation_true"]``, ``obsm["X_true"]``...) even
by mistake. Metrics are computed on a second view that carries the truth.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import anndata as ad
import numpy as np
from mudata import MuData

from .._mudata import check_disjoint_obs_names, check_modalities


def light_view(
    mdata: MuData,
    modalities: Sequence[str],
    obs_keys: Sequence[str],
    obsm_keys: Sequence[str] = (),
) -> MuData:
    """A new MuData with the given modalities, their data, and only ``obs_keys`` in ``.obs``.

    ``.X``, ``.layers`` and ``.var`` are shared with ``mdata`` where AnnData allows it (not
    copied); ``.obsp``, ``.uns``, every other ``.obs`` column and every ``.obsm`` entry but
    ``obsm_keys`` are left out. Keys absent from a modality are simply not there.

    Parameters
    ----------
    mdata
        The full MuData (not modified).
    modalities
        Modalities to keep, in this order.
    obs_keys
        ``.obs`` columns to keep.
    obsm_keys
        Per-modality ``.obsm`` entries to keep.

    Returns
    -------
    The view; its cells are in the same order as in ``mdata``'s modalities.

    Examples
    --------
    >>> blind = light_view(mdata, ["rna", "prot"], ["perturbation"])
    >>> "cell_id" in blind["rna"].obs
    False

    """
    check_modalities(mdata, modalities, "the benchmark")
    check_disjoint_obs_names(mdata, modalities)
    mods = {}
    for m in modalities:
        a = mdata.mod[m]
        keep = [k for k in dict.fromkeys(obs_keys) if k in a.obs]
        view = ad.AnnData(
            X=a.X,
            obs=a.obs[keep].copy(),
            var=a.var[[]].copy(),
            layers={k: a.layers[k] for k in a.layers},
            obsm={k: a.obsm[k] for k in obsm_keys if k in a.obsm},
        )
        mods[m] = view
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pull_on_update.*", category=FutureWarning)
        out = MuData(mods)
        out.update()
    return out


def blind_view(mdata: MuData, modalities: Sequence[str], groupby: str | None) -> MuData:
    """The truth-free view: data plus the ``groupby`` labels, nothing else.

    Examples
    --------
    >>> blind = blind_view(mdata, ["rna", "prot"], "perturbation")
    >>> list(blind["prot"].obs.columns), list(blind["prot"].obsm)
    (['perturbation'], [])

    """
    return light_view(mdata, modalities, [groupby] if groupby else [])


def dense(x) -> np.ndarray:
    """A dense float64 copy of a matrix (sparse or not).

    Examples
    --------
    >>> dense(mdata["rna"].X).dtype
    dtype('float64')

    """
    if hasattr(x, "toarray"):
        x = x.toarray()
    return np.asarray(x, dtype=np.float64)
