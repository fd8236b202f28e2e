"""The space ``tl.align`` compares cells in: the representation, or its group posterior.

A GROOVE latent written by :func:`groove_sc.tl.embed` carries the model's label column,
temperature and similarity in ``uns[use_rep]``. With an aligner that compares the cells of the
two modalities in one shared space (``shared_rep=True``: the built-in ``leot``, ``eot``,
``uot`` and ``knn``), ``tl.align`` then compares the cells in the latent's group-posterior
coordinates
(:func:`groove_sc.tl.group_posterior`), where they matched better on the real development set,
on simulations with unlabeled cells and with three modalities; ``space="rep"`` compares them in
the latent itself. Nothing is written to the MuData but the coupling and its record.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
from mudata import MuData

from ._aligners._problem import AlignProblem, UseRep, rep_key
from ._aligners._registry import Aligner
from ._posterior import posterior_coordinates

Space = Literal["auto", "rep", "posterior"]
#: The values of ``tl.align(space=...)``.
SPACES: tuple[str, ...] = ("auto", "rep", "posterior")


def check_space(space: Any) -> None:
    """Refuse a ``space`` that is not one of :data:`SPACES`.

    Examples
    --------
    >>> check_space("auto")

    """
    if not isinstance(space, str) or space not in SPACES:
        raise ValueError(
            f"space must be one of {list(SPACES)}, got {space!r}: 'rep' compares cells in "
            "use_rep, 'posterior' in its group posterior, 'auto' picks the posterior for a "
            "GROOVE latent (tl.embed) with an aligner that compares cells in one shared space."
        )


_EMBED_KEYS = {"temperature", "similarity", "groupby", "n_latent"}


def is_groove_latent(mdata: MuData, use_rep: UseRep) -> bool:
    """Whether ``use_rep`` is a latent :func:`groove_sc.tl.embed` wrote and recorded.

    The record in ``uns[use_rep]`` must hold the model's ``groupby``, ``temperature``,
    ``similarity`` and ``n_latent``, and ``n_latent`` must match the width of
    ``obsm[use_rep]`` in every modality that has it (a latent overwritten since is not one).

    Examples
    --------
    >>> is_groove_latent(mdata, "X_true_shared")
    False

    """
    if not isinstance(use_rep, str):
        return False
    record = mdata.uns.get(use_rep)
    if not isinstance(record, dict) or not _EMBED_KEYS <= set(record):
        return False
    widths = {a.obsm[use_rep].shape[1] for a in mdata.mod.values() if use_rep in a.obsm}
    return widths == {int(record["n_latent"])}


def resolve_space(mdata: MuData, use_rep: UseRep, aligner: Aligner, space: str) -> tuple[str, str]:
    """The space to use (``"rep"`` or ``"posterior"``) and why.

    Examples
    --------
    >>> from groove_sc.tl import ALIGNERS
    >>> resolve_space(mdata, "X_true_shared", ALIGNERS["leot"], "auto")[0]
    'rep'

    """
    check_space(space)
    if space == "rep":
        return "rep", "asked (space='rep')"
    use_rep = _one_key(use_rep)
    if not isinstance(use_rep, str):
        if space == "posterior":
            raise ValueError(
                f"space='posterior' needs one latent shared by both modalities, got "
                f"use_rep={use_rep!r}; pass a single obsm key (e.g. 'X_groove')."
            )
        return "rep", "per-modality use_rep"
    if space == "posterior":
        return "posterior", "asked (space='posterior')"
    if not aligner.shared_rep:
        return "rep", f"method '{aligner.name}' compares each modality with itself"
    if not is_groove_latent(mdata, use_rep):
        return "rep", f"uns['{use_rep}'] is not a GROOVE latent recorded by tl.embed"
    return "posterior", "GROOVE latent with a shared-space aligner (space='auto')"


def _one_key(use_rep: UseRep) -> UseRep:
    """A per-modality dict naming one key for every modality, as that key."""
    if isinstance(use_rep, dict) and len(set(use_rep.values())) == 1:
        return str(next(iter(use_rep.values())))
    return use_rep


def use_space(problem: AlignProblem, aligner: Aligner, space: str) -> dict[str, Any]:
    """Resolve ``space`` and give ``problem`` its cells' coordinates there; returns the record.

    In the posterior space the source and target rows of ``problem.use_rep`` are replaced (in
    the problem only) by their :func:`groove_sc.tl.group_posterior` coordinates, with that
    function's defaults (the model's labels, temperature and similarity, prototypes from every
    embedded modality), so the coupling equals the one aligned on ``tl.group_posterior``'s
    output. A representation without :func:`groove_sc.tl.embed`'s record (``space="posterior"``)
    takes the alignment's ``groupby`` and the default temperature (0.1) and similarity
    (cosine). Under ``space="auto"``, a GROOVE latent whose group posterior cannot be formed
    (its label column is missing or holds fewer than two groups) is used as it is, with a
    warning, and the record says why.

    Examples
    --------
    >>> from groove_sc.tl import ALIGNERS
    >>> from groove_sc.tl._aligners._problem import build_problem
    >>> problem, _ = build_problem(mdata, "rna", "prot", "leot", "X_true_shared",
    ...                            "perturbation", None, "cpu", None, "float32")
    >>> use_space(problem, ALIGNERS["leot"], "posterior")["mode"]
    'posterior'

    """
    mode, reason = resolve_space(problem.mdata, problem.use_rep, aligner, space)
    if mode == "rep":
        return {"mode": "rep", "reason": reason}
    mods = (problem.source, problem.target)
    key = str(_one_key(problem.use_rep))
    record = problem.mdata.uns.get(key)
    recorded = isinstance(record, dict) and "groupby" in record
    try:
        rows, params = posterior_coordinates(
            problem.mdata,
            key,
            groupby=None if recorded or problem.groupby is None else problem.groupby,
            map_modalities=mods,
        )
    except (KeyError, ValueError) as err:
        if space == "posterior":
            raise
        why = str(err.args[0]) if err.args else str(err)
        warnings.warn(
            f"tl.align compares the GROOVE latent '{key}' as it is (space='rep'): its group "
            f"posterior cannot be formed ({why}). Fix the label column recorded in "
            f"uns['{key}']['groupby'], or pass space='rep' to silence this.",
            UserWarning,
            stacklevel=3,
        )
        return {"mode": "rep", "reason": f"no group posterior: {why}"}
    for mod in mods:
        # the float32 rows tl.group_posterior stores, read back as float64 like any obsm
        problem.provide_rep(
            mod, rep_key(problem.use_rep, mod), np.asarray(rows[mod], dtype=np.float64)
        )
    return {
        "mode": "posterior",
        "reason": reason,
        **{k: params[k] for k in ("groupby", "temperature", "similarity", "n_components")},
        "modalities": list(params["modalities"]),
    }
