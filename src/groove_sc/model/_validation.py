"""Input checks for ``GROOVE.setup_mudata``: clear errors naming the key and the modality."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from .._constants import COUNTS_LAYER
from .._counts import guess_likelihood, is_counts, stored_values
from .._mudata import obs_column
from ..module import LIKELIHOODS, get_likelihood


def get_matrix(adata: AnnData, layer: str | None, mod: str):
    """The data matrix of a modality (``.X`` or a layer), with a clear error if absent."""
    if layer is None:
        if adata.X is None:
            raise ValueError(f"Modality '{mod}' has no .X; pass layers={{'{mod}': <layer>}}.")
        return adata.X
    if layer not in adata.layers:
        raise KeyError(
            f"Layer '{layer}' not found in modality '{mod}' (available: {list(adata.layers)}); "
            f"fix layers['{mod}']."
        )
    return adata.layers[layer]


#: Values checked at once: the checks' temporaries stay small whatever the data size.
_CHECK_CHUNK = 1 << 22


def _all_chunks(v: np.ndarray, test) -> bool:
    """``test(chunk).all()`` over flat chunks of ``v`` (no full-size temporaries)."""
    flat = v.reshape(-1)
    return all(
        bool(test(flat[i : i + _CHECK_CHUNK]).all()) for i in range(0, flat.size, _CHECK_CHUNK)
    )


def check_matrix(x, mod: str, where: str, likelihood: str) -> None:
    """NaN/inf -> error; negative under a count likelihood -> error; non-integer -> warning."""
    v = stored_values(x, limit=None)
    if not _all_chunks(v, np.isfinite):
        raise ValueError(
            f"Modality '{mod}' ({where}) contains NaN or infinite values; remove or impute them "
            "before setup_mudata."
        )
    if LIKELIHOODS[likelihood].is_count:
        if not _all_chunks(v, lambda c: c >= 0):
            raise ValueError(
                f"Modality '{mod}' ({where}) has negative values but likelihood '{likelihood}' "
                "needs raw counts; point layers[...] at the counts or use likelihood 'normal'."
            )
        if not _all_chunks(v, lambda c: np.isclose(c, np.round(c))):
            warnings.warn(
                f"Modality '{mod}' ({where}) has non-integer values under count likelihood "
                f"'{likelihood}'; is it normalised? Use the raw counts layer if you have one.",
                UserWarning,
                stacklevel=3,
            )
    elif LIKELIHOODS[likelihood].kind == "binary" and not _all_chunks(
        v, lambda c: (c == 0) | (c == 1)
    ):
        raise ValueError(
            f"Modality '{mod}' ({where}) must be binary (0/1) for likelihood '{likelihood}'; "
            "binarise it first."
        )


def resolve_likelihoods(
    mdata, modalities: Sequence[str], layers: dict, likelihoods: dict | None
) -> dict[str, str]:
    """Fill in missing likelihoods (guessed from the data) and validate names."""
    likelihoods = dict(likelihoods or {})
    unknown = set(likelihoods) - set(modalities)
    if unknown:
        raise KeyError(f"likelihoods names modalities {sorted(unknown)} not in {list(modalities)}.")
    out = {}
    for m in modalities:
        name = likelihoods.get(m)
        if name is None:
            name = guess_likelihood(get_matrix(mdata.mod[m], layers.get(m), m))
            _warn_if_counts_are_left_out(mdata.mod[m], m, name, layers.get(m))
        get_likelihood(name, modality=m)
        out[m] = name
    return out


def _warn_if_counts_are_left_out(adata, mod: str, guessed: str, layer: str | None) -> None:
    """Warn when ``.X`` is modelled as continuous while ``layers["counts"]`` holds raw counts.

    The common slip: ``setup_mudata`` without ``layers=`` on log-normalised ``.X`` (what
    :func:`groove_sc.pp.prepare` and :func:`groove_sc.datasets.simulate` leave there).
    """
    counts = adata.layers.get(COUNTS_LAYER) if layer is None else None
    if guessed != "normal" or counts is None or not is_counts(counts):
        return
    # CLR protein (pp.prepare, the loaders) has negative values: 'normal' on .X is right there
    if not _all_chunks(stored_values(adata.X, limit=None), lambda c: c >= 0):
        return
    warnings.warn(
        f"Modality '{mod}' is modelled as 'normal' on .X although layers['{COUNTS_LAYER}'] "
        f"holds raw counts. Pass layers={{'{mod}': '{COUNTS_LAYER}'}} to model the counts "
        f"(likelihood 'nb'), or likelihoods={{'{mod}': 'normal'}} to keep .X and silence this.",
        UserWarning,
        stacklevel=4,
    )


def shared_categories(
    mdata, modalities: Sequence[str], key: str, unlabeled_category: str | None
) -> np.ndarray:
    """Union of group categories over modalities, checked: labeled cells and a shared group."""
    per_mod = {}
    for m in modalities:
        col = obs_column(mdata, m, key, "perturbation_key", "add it or pass the right key.")
        lab = col[col.notna()].astype(str)
        if unlabeled_category is not None:
            lab = lab[lab != str(unlabeled_category)]
        if len(lab) == 0:
            raise ValueError(
                f"Modality '{m}' has no labeled cells in obs['{key}']: GroupCLIP needs the "
                "perturbation of at least some cells in every modality."
            )
        if isinstance(col.dtype, pd.CategoricalDtype):
            cats = [str(c) for c in col.cat.categories if str(c) in set(lab.unique())]
        else:
            cats = sorted(lab.unique())
        per_mod[m] = cats
    union: list[str] = []
    seen: set[str] = set()
    for cats in per_mod.values():
        for c in cats:
            if c not in seen:
                seen.add(c)
                union.append(c)
    shared = set.intersection(*(set(c) for c in per_mod.values()))
    if not shared:
        raise ValueError(
            f"No value of obs['{key}'] is shared by all modalities {list(modalities)}: weakly "
            "paired training needs perturbations measured in every modality."
        )
    return np.asarray(union, dtype=str)
