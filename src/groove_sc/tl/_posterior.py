"""``tl.group_posterior``: the cells of every modality in the space of their group posterior.

GroupCLIP pulls each cell towards the cells of its group in the other modalities and away from
the other groups, so a softmax over a cell's similarities to the group prototypes,
``p(k | z) = softmax_k(s(z, mu_k) / tau)`` (the prototype form of GroupCLIP's group softmax,
the one pseudo-labelling uses), names its group. The vector of log-probabilities
``log p(. | z)`` keeps the latent's group-discriminative directions, which both modalities
share by construction, and drops the directions that no group uses, where most of the
modality-specific variation lies. Optimal transport in this space matches cells by how they
resemble every group, inside their own group too.

The log-probability vectors have one entry per group (800 for a large screen), but they lie in
an affine subspace of dimension at most ``n_latent + 1``: the similarity is linear in a feature
map of ``z`` (the normalised latent for ``"cosine"``, the latent for ``"neg_sqeuclidean"``) and
the log-normaliser adds a multiple of the all-ones vector. The cells are stored in an
orthonormal basis of that subspace, so Euclidean distances between stored rows equal those
between the full log-probability vectors (up to float32 rounding), at the latent's width.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from mudata import MuData

from .._constants import DEFAULT_GROUPBY, DEFAULT_REP
from .._labels import label_codes
from .._mudata import obs_column, set_union_obsm
from .._representation import get_rep
from ..module._clip import (
    DEFAULT_TEMPERATURE,
    SIMILARITIES,
    prototype_directions,
    similarity_matrix,
)
from ._aligners._problem import as_h5_value

#: Cells per chunk of the (cells x groups) log-probabilities; memory is chunk x groups.
DEFAULT_CHUNK = 8192
#: Singular values below this fraction of the largest one end the basis.
_RANK_TOL = 1e-9
#: Largest relative residual of a row outside the basis (float64 round-off is ~1e-13).
_RESIDUAL_TOL = 1e-6


def group_posterior(
    mdata: MuData,
    use_rep: str = DEFAULT_REP,
    *,
    groupby: str | None = None,
    temperature: float | None = None,
    similarity: str | None = None,
    modalities: Sequence[str] | None = None,
    key_added: str | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    copy: bool = False,
) -> MuData | None:
    """Map every cell to the log-probabilities of the groups given its latent (GroupCLIP's view).

    The group prototypes are the latent means of each group's labeled cells, averaged over
    the modalities that have the group (GroupCLIP aligns the modalities' prototypes). A cell
    ``i`` of any modality, labeled or not, gets ``log softmax_k(s(z_i, mu_k) / temperature)``
    over the groups ``k``, stored in an orthonormal basis of the subspace these vectors span
    (at most ``n_latent + 1`` columns): distances between stored rows equal those between the
    full vectors, up to float32 rounding. :func:`groove_sc.tl.align` compares the cells of a
    GROOVE latent in these coordinates by default (linear aligners, ``space="auto"``) without
    storing them; aligning on ``key_added`` gives the same coupling.

    On the PBMC development set and on simulations with unlabeled cells, ``leot`` in this
    space matched cells better than in the latent on every seed tried; on the documented
    simulation grid the result is mixed (see the "Real co-assayed data" and "Benchmark"
    pages).

    Parameters
    ----------
    mdata
        MuData with ``obsm[use_rep]`` in every modality used.
    use_rep
        The latent, an ``obsm`` key written by :func:`groove_sc.tl.embed` (or any shared space
        whose groups are separated by a similarity).
    groupby
        Label column in every modality (missing values: unlabeled cells, which get a row but
        do not make prototypes). Default: the model's ``perturbation_key`` recorded by
        :func:`groove_sc.tl.embed` in ``uns[use_rep]``, else ``"perturbation"``.
    temperature
        Softmax temperature (> 0). Default: the model's GroupCLIP temperature recorded by
        :func:`groove_sc.tl.embed`, else ``0.1`` (GROOVE's default).
    similarity
        ``"cosine"`` or ``"neg_sqeuclidean"``. Default: the model's, else ``"cosine"``.
    modalities
        Modalities to map (default: those recorded by :func:`groove_sc.tl.embed`, else every
        modality with ``obsm[use_rep]``).
    key_added
        Output key (default ``f"{use_rep}_posterior"``; must differ from ``use_rep``).
    chunk_size
        Cells per chunk; memory grows with ``chunk_size x groups``.
    copy
        Return a new MuData instead of writing into ``mdata``.

    Returns
    -------
    ``None`` (or the new MuData with ``copy=True``). Writes ``mdata[m].obsm[key_added]`` for
    every modality, the joint ``mdata.obsm[key_added]`` (NaN rows for other modalities) and
    ``mdata.uns[key_added]``: ``use_rep``, ``groupby``, ``temperature``, ``similarity``,
    ``modalities``, ``categories`` (the groups, in prototype order), ``prototypes``
    ``(groups, n_latent)``, ``origin`` ``(groups,)`` and ``basis`` ``(groups, n_components)``
    (a stored row is ``(log p(. | z) - origin) @ basis``) and ``n_components``.

    Examples
    --------
    >>> gs.tl.group_posterior(mdata, "X_true_shared", groupby="perturbation", key_added="X_post")
    >>> gs.tl.align(mdata, "rna", "prot", use_rep="X_post", groupby="perturbation")
    >>> mdata["rna"].obsm["X_post"].shape[1] <= mdata["rna"].obsm["X_true_shared"].shape[1] + 1
    True

    """
    key_added = key_added or f"{use_rep}_posterior"
    if key_added == use_rep:
        raise ValueError(
            f"key_added must differ from use_rep ('{use_rep}'): the latent and its record in "
            f"uns['{use_rep}'] would be overwritten. Pass another key_added."
        )
    stored, params = posterior_coordinates(
        mdata,
        use_rep,
        groupby=groupby,
        temperature=temperature,
        similarity=similarity,
        modalities=modalities,
        chunk_size=chunk_size,
    )
    out = mdata.copy() if copy else mdata
    for m, c in stored.items():
        out.mod[m].obsm[key_added] = c
    set_union_obsm(out, key_added, stored)
    out.uns[key_added] = as_h5_value(params)
    return out if copy else None


def posterior_coordinates(
    mdata: MuData,
    use_rep: str = DEFAULT_REP,
    *,
    groupby: str | None = None,
    temperature: float | None = None,
    similarity: str | None = None,
    modalities: Sequence[str] | None = None,
    map_modalities: Sequence[str] | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The stored rows of :func:`group_posterior`, computed without writing anything.

    Prototypes come from ``modalities`` (defaults as in :func:`group_posterior`); the rows are
    computed for ``map_modalities`` (default: the same modalities). Returns the float32 rows
    per mapped modality and the parameters :func:`group_posterior` records in ``uns``.

    Examples
    --------
    >>> rows, params = posterior_coordinates(mdata, "X_true_shared", groupby="perturbation",
    ...                                      map_modalities=["rna"])
    >>> list(rows), rows["rna"].shape[0] == mdata["rna"].n_obs, params["groupby"]
    (['rna'], True, 'perturbation')

    """
    record = _embed_record(mdata, use_rep)
    groupby = groupby or str(record.get("groupby") or DEFAULT_GROUPBY)
    temperature = _temperature(record.get("temperature") if temperature is None else temperature)
    similarity = similarity or str(record.get("similarity") or "cosine")
    if similarity not in SIMILARITIES:
        raise ValueError(
            f"similarity must be one of {list(SIMILARITIES)}, got {similarity!r} (use the "
            "model's similarity, the one tl.embed records)."
        )
    if isinstance(chunk_size, bool) or not (
        isinstance(chunk_size, int | np.integer) and chunk_size > 0
    ):
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
    mods = _modalities(mdata, use_rep, modalities, record)

    latents = {m: get_rep(mdata, m, use_rep) for m in mods}
    widths = {z.shape[1] for z in latents.values()}
    if len(widths) != 1:
        raise ValueError(
            f"obsm['{use_rep}'] has different widths across modalities "
            f"({ {m: z.shape[1] for m, z in latents.items()} }); the modalities must share "
            "one latent space."
        )
    categories, prototypes = _prototypes(mdata, mods, latents, groupby)
    basis, origin = _basis(prototypes, temperature, similarity)
    mapped = mods if map_modalities is None else _modalities(mdata, use_rep, map_modalities, {})
    for m in mapped:
        if m not in latents:
            latents[m] = get_rep(mdata, m, use_rep)
            if latents[m].shape[1] != prototypes.shape[1]:
                raise ValueError(
                    f"obsm['{use_rep}'] of '{m}' has {latents[m].shape[1]} columns, the "
                    f"prototypes {prototypes.shape[1]}; the modalities must share one space."
                )
    rows = {
        m: _coordinates(latents[m], prototypes, basis, origin, temperature, similarity, chunk_size)
        for m in mapped
    }
    params = {
        "use_rep": use_rep,
        "groupby": groupby,
        "temperature": temperature,
        "similarity": similarity,
        "modalities": list(mods),
        "categories": list(categories),
        "prototypes": prototypes.astype(np.float32),
        "origin": origin.astype(np.float32),
        "basis": basis.astype(np.float32),
        "n_components": int(basis.shape[1]),
    }
    return rows, params


def _embed_record(mdata: MuData, use_rep: str) -> dict[str, Any]:
    record = mdata.uns.get(use_rep)
    return dict(record) if isinstance(record, dict) else {}


def _temperature(value: Any) -> float:
    if value is None:
        return DEFAULT_TEMPERATURE
    try:
        t = float(value)
    except (TypeError, ValueError):
        t = float("nan")
    if not (np.isfinite(t) and t > 0):
        raise ValueError(f"temperature must be a positive number, got {value!r}.")
    return t


def _modalities(
    mdata: MuData, use_rep: str, modalities: Sequence[str] | None, record: dict[str, Any]
) -> list[str]:
    if modalities is None:
        recorded = [str(m) for m in np.atleast_1d(record.get("modalities", []))]
        modalities = recorded or [m for m, a in mdata.mod.items() if use_rep in a.obsm]
        if not modalities:
            raise KeyError(
                f"No modality has obsm['{use_rep}'] (modalities: {list(mdata.mod)}); run "
                "groove_sc.tl.embed(mdata, model, key_added=...) first or pass use_rep=."
            )
    mods = [modalities] if isinstance(modalities, str) else list(dict.fromkeys(modalities))
    if not mods:
        raise ValueError("modalities is empty; pass the modalities to map, or None for all.")
    unknown = [m for m in mods if m not in mdata.mod]
    if unknown:
        raise KeyError(f"modalities {unknown} are not in the MuData ({list(mdata.mod)}).")
    return mods


def _prototypes(
    mdata: MuData, mods: list[str], latents: dict[str, np.ndarray], groupby: str
) -> tuple[pd.Index, np.ndarray]:
    """Groups with labeled cells, and their joint prototypes (mean of per-modality means)."""
    labels = {}
    for m in mods:
        labels[m] = obs_column(mdata, m, groupby, "groupby", "pass the label column as groupby=.")
    names = pd.Index(
        sorted({str(v) for s in labels.values() for v in s.dropna().unique()}), dtype=object
    )
    if len(names) < 2:
        raise ValueError(
            f"obs['{groupby}'] has {len(names)} labeled group(s) across {mods}; the group "
            "posterior needs at least two."
        )
    d = next(iter(latents.values())).shape[1]
    sums = np.zeros((len(mods), len(names), d))
    counts = np.zeros((len(mods), len(names)))
    for i, m in enumerate(mods):
        codes = label_codes(labels[m], names)
        ok = codes >= 0
        np.add.at(sums[i], codes[ok], latents[m][ok])
        counts[i] = np.bincount(codes[ok], minlength=len(names))
    means = sums / np.maximum(counts, 1)[:, :, None]
    present = counts > 0
    prototypes = (means * present[:, :, None]).sum(0) / present.sum(0)[:, None]
    return names, prototypes


def _log_posterior(
    z: np.ndarray, prototypes: np.ndarray, temperature: float, similarity: str
) -> np.ndarray:
    """``(cells, groups)`` log-probabilities, with GroupCLIP's own similarity."""
    logits = similarity_matrix(
        torch.from_numpy(np.ascontiguousarray(z, dtype=np.float64)),
        torch.from_numpy(np.ascontiguousarray(prototypes, dtype=np.float64)),
        similarity,
    )
    return torch.log_softmax(logits / temperature, dim=1).numpy()


def _basis(
    prototypes: np.ndarray, temperature: float, similarity: str
) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal ``(groups, r)`` basis of the log-probability vectors' differences, and an origin.

    The similarities are ``f(z) @ W.T + c(z)`` (:func:`groove_sc.module.prototype_directions`)
    and the log-normaliser subtracts a multiple of the all-ones vector, so the differences lie
    in the span of ``[W, 1]``: its ``r <= n_latent + 1`` leading left singular vectors are the
    basis. The origin is the log-probability vector of the prototypes' mean.
    """
    w = prototype_directions(torch.from_numpy(prototypes), similarity).numpy()
    span = np.concatenate([w, np.ones((w.shape[0], 1))], axis=1)
    u, s, _ = np.linalg.svd(span, full_matrices=False)
    rank = int((s > s[0] * _RANK_TOL).sum())
    origin = _log_posterior(prototypes.mean(0, keepdims=True), prototypes, temperature, similarity)
    return u[:, :rank], origin[0]


def _coordinates(
    z: np.ndarray,
    prototypes: np.ndarray,
    basis: np.ndarray,
    origin: np.ndarray,
    temperature: float,
    similarity: str,
    chunk_size: int,
) -> np.ndarray:
    """Rows ``(log p(. | z_i) - origin) @ basis`` in chunks; checks nothing leaves the basis."""
    out = np.empty((z.shape[0], basis.shape[1]), dtype=np.float32)
    for start in range(0, z.shape[0], chunk_size):
        lp = _log_posterior(z[start : start + chunk_size], prototypes, temperature, similarity)
        lp -= origin
        coords = lp @ basis
        residual = np.linalg.norm(lp - coords @ basis.T, axis=1)
        worst = float(np.max(residual / np.maximum(np.linalg.norm(lp, axis=1), 1e-300)))
        if worst > _RESIDUAL_TOL and float(residual.max()) > _RESIDUAL_TOL:
            raise RuntimeError(
                "The group log-probabilities left the subspace of their basis (relative "
                f"residual {worst:.2e} with similarity {similarity!r}): a bug; please report "
                "it with the similarity and temperature used."
            )
        out[start : start + chunk_size] = coords
    return out
