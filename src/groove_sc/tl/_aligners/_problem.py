"""What an aligner is given: cells, group codes, representations, epsilon and device."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from mudata import MuData

from ..._mudata import obs_column
from ..._representation import get_rep
from ._backend import ArrayOps, resolve_backend
from ._groups import GroupLayout

UseRep = str | dict[str, str]


def rep_key(use_rep: UseRep, mod: str) -> str:
    """The representation key of modality ``mod`` (``use_rep`` may be a per-modality dict).

    Examples
    --------
    >>> rep_key({"rna": "X_pca", "prot": "X"}, "prot")
    'X'

    """
    if isinstance(use_rep, str):
        return use_rep
    if isinstance(use_rep, dict):
        if mod not in use_rep:
            raise KeyError(
                f"use_rep is a dict without an entry for modality '{mod}' (keys: "
                f"{list(use_rep)}); give a key for every modality, e.g. "
                f"use_rep={{'{mod}': 'X_pca', ...}}."
            )
        return str(use_rep[mod])
    raise TypeError(
        f"use_rep must be a str or a dict {{modality: key}}, got {type(use_rep).__name__}."
    )


def read_rep(mdata: MuData, mod: str, key: str) -> np.ndarray:
    """``mdata[mod].obsm[key]`` (or ``.X`` for ``key="X"``) as a dense float64 array.

    Examples
    --------
    >>> read_rep(mdata, "rna", "X").shape, read_rep(mdata, "rna", "X_true").dtype
    ((67, 40), dtype('float64'))

    """
    return get_rep(mdata, mod, key, finite=False)


@dataclass
class AlignProblem:
    """The prepared input of one alignment (built by :func:`groove_sc.tl.align`).

    Aligners read cells, groups and representations from here and never from ``mdata.obs``
    directly (in particular never the truth column ``obs["cell_id"]``).

    Attributes
    ----------
    mdata
        The MuData (read only).
    source, target
        Modality names.
    method
        The registered method name.
    use_rep
        Representation key, or a dict ``{modality: key}``.
    groupby
        Label column, or ``None`` when the problem is over all cells.
    source_codes, target_codes
        Per cell of each modality, the index of its group in ``group_names``; ``-1`` for cells
        left out (unlabeled, or group absent from the other modality).
    group_names
        Group names by code.
    epsilon
        The user's epsilon (relative to the method's cost scale), ``None`` for the default.
    ops
        Backend, device and dtype for the solvers.
    mean_cost
        The mean same-group cost that ``leot``'s epsilon is relative to; ``None`` (the
        default): computed from the solved blocks. The ``epsilon="auto"`` search sets it so that
        its merged blocks are solved at the epsilon the real groups would get.

    Examples
    --------
    >>> problem, dropped = build_problem(mdata, "rna", "prot", "leot", "X_true_shared",
    ...                                  "perturbation", None, "cpu", None, "float32")
    >>> problem.n_source, problem.n_target, problem.labeled, problem.layout().n_groups
    (67, 67, True, 5)
    >>> xs, xt = problem.rep(shared=True)
    >>> xs.shape == (problem.n_source, xt.shape[1])
    True

    """

    mdata: MuData
    source: str
    target: str
    method: str
    use_rep: UseRep
    groupby: str | None
    source_codes: np.ndarray
    target_codes: np.ndarray
    group_names: np.ndarray
    epsilon: float | None
    ops: ArrayOps
    mean_cost: float | None = None
    _reps: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def n_source(self) -> int:
        """Cells of the source modality."""
        return len(self.source_codes)

    @property
    def n_target(self) -> int:
        """Cells of the target modality."""
        return len(self.target_codes)

    @property
    def labeled(self) -> bool:
        """Whether the problem is restricted to same-group pairs."""
        return self.groupby is not None

    def layout(self) -> GroupLayout:
        """Blocks of kept cells, one per group present in both modalities (one if unlabeled)."""
        return GroupLayout.from_codes(self.source_codes, self.target_codes, self.group_names)

    def provide_rep(self, mod: str, key: str, x: np.ndarray) -> None:
        """Use ``x`` as modality ``mod``'s representation ``key`` in this problem only.

        The MuData is not touched; :meth:`rep` validates ``x`` like a stored representation.
        :func:`groove_sc.tl.align` gives a GROOVE latent's group-posterior coordinates this way.

        Examples
        --------
        >>> problem, _ = build_problem(mdata, "rna", "prot", "leot", "X_true_shared",
        ...                            "perturbation", None, "cpu", None, "float32")
        >>> problem.provide_rep("rna", "X_true_shared", np.zeros((67, 2)))
        >>> problem.rep(shared=False)[0].shape
        (67, 2)

        """
        x = np.asarray(x, dtype=np.float64)
        n = self.n_source if mod == self.source else self.n_target
        if mod not in (self.source, self.target) or x.ndim != 2 or x.shape[0] != n:
            raise ValueError(
                f"provide_rep needs a (cells, dims) array for '{self.source}' or "
                f"'{self.target}', got modality '{mod}' and shape {x.shape}."
            )
        codes = self.source_codes if mod == self.source else self.target_codes
        self._reps[(mod, key)] = _checked_finite(x, codes, mod, key)

    def rep(
        self, use_rep: UseRep | None = None, shared: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Source and target representations (all cells, modality order), validated.

        Parameters
        ----------
        use_rep
            Key or per-modality dict; defaults to the problem's ``use_rep``.
        shared
            Require the same dimension in both modalities (a shared space, for linear OT).

        """
        use_rep = self.use_rep if use_rep is None else use_rep
        out = []
        for mod, codes in ((self.source, self.source_codes), (self.target, self.target_codes)):
            key = rep_key(use_rep, mod)
            if (mod, key) not in self._reps:
                x = read_rep(self.mdata, mod, key)
                self._reps[(mod, key)] = _checked_finite(x, codes, mod, key)
            out.append(self._reps[(mod, key)])
        xs, xt = out
        if shared:
            ks, kt = rep_key(use_rep, self.source), rep_key(use_rep, self.target)
            if xs.shape[1] != xt.shape[1]:
                raise ValueError(
                    f"Method '{self.method}' needs a shared representation, but "
                    f"'{ks}' has {xs.shape[1]} dimensions in '{self.source}' and '{kt}' has "
                    f"{xt.shape[1]} in '{self.target}'. Use a joint embedding (e.g. "
                    "use_rep='X_groove' from groove_sc.tl.embed) or a GW/COOT method."
                )
            if ks == "X" and kt == "X":
                vs, vt = (
                    self.mdata.mod[self.source].var_names,
                    self.mdata.mod[self.target].var_names,
                )
                if not vs.equals(vt):
                    raise ValueError(
                        f"use_rep='X' for method '{self.method}' compares features one to one, but "
                        f"'{self.source}' and '{self.target}' have different var_names; use a "
                        "shared embedding or a GW/COOT method."
                    )
        return xs, xt


def _checked_finite(x: np.ndarray, codes: np.ndarray, mod: str, key: str) -> np.ndarray:
    """``x``, after checking that the cells to align (``codes >= 0``) have finite rows."""
    bad = ~np.isfinite(x[codes >= 0]).all(axis=1)
    if bad.any():
        where = "obsm" if key != "X" else "X"
        raise ValueError(
            f"mdata['{mod}'].{where}"
            + (f"['{key}']" if key != "X" else "")
            + f" has NaN or inf in {int(bad.sum())} of the {int((codes >= 0).sum())} "
            "cells to align; remove those cells or recompute the representation."
        )
    return x


def _labels_of(mdata: MuData, mod: str, groupby: str) -> pd.Series:
    hint = (
        "add the labels to every modality's .obs, or pass groupby=None to a method that can "
        "run without labels."
    )
    return obs_column(mdata, mod, groupby, "groupby", hint)


def _categories(labels: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Category names (as str) and per-cell codes (-1 for missing) of a label column."""
    cat = labels if isinstance(labels.dtype, pd.CategoricalDtype) else labels.astype("category")
    names = np.asarray(cat.cat.categories.astype(str), dtype=object)
    return names, np.asarray(cat.cat.codes, dtype=np.int64)


def group_codes(
    mdata: MuData, source: str, target: str, groupby: str, warn: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """Integer group codes per cell for both modalities, and the number of dropped cells.

    Unlabeled cells (NaN) and cells whose group has no cell in the other modality get ``-1``;
    with ``warn``, a ``UserWarning`` says how many.

    Examples
    --------
    >>> s, t, names, dropped = group_codes(mdata, "rna", "prot", "perturbation")
    >>> names.tolist(), s[:3].tolist(), dropped["rna_unlabeled"]
    (['control', 'pert0', 'pert1', 'pert2', 'pert3'], [4, 1, 2], 0)

    """
    names_s, codes_s = _categories(_labels_of(mdata, source, groupby))
    names_t, codes_t = _categories(_labels_of(mdata, target, groupby))
    shared = sorted(
        set(names_s[np.unique(codes_s[codes_s >= 0])])
        & set(names_t[np.unique(codes_t[codes_t >= 0])])
    )
    if not shared:
        raise ValueError(
            f"No value of obs['{groupby}'] occurs in both '{source}' and '{target}' (e.g. "
            f"'{source}': {sorted(set(names_s))[:3]}, '{target}': "
            f"{sorted(set(names_t))[:3]}); label-constrained methods need shared groups."
        )
    lookup = {name: i for i, name in enumerate(shared)}

    def recode(names: np.ndarray, codes: np.ndarray) -> np.ndarray:
        table = np.array([lookup.get(n, -1) for n in names] + [-1], dtype=np.int64)
        return table[codes]  # code -1 (NaN) picks the trailing -1

    s_codes, t_codes = recode(names_s, codes_s), recode(names_t, codes_t)
    unlabeled = {source: int((codes_s < 0).sum()), target: int((codes_t < 0).sum())}
    dropped = {}
    for mod, codes in ((source, s_codes), (target, t_codes)):
        n_unlabeled = unlabeled[mod]
        n_unshared = int((codes < 0).sum()) - n_unlabeled
        dropped[f"{mod}_unlabeled"] = n_unlabeled
        dropped[f"{mod}_group_absent"] = n_unshared
    if warn and any(dropped.values()):
        parts = [
            f"'{m}': {dropped[f'{m}_unlabeled']} unlabeled, {dropped[f'{m}_group_absent']} in "
            "groups absent from the other modality"
            for m in (source, target)
        ]
        warnings.warn(
            f"Label-constrained alignment leaves out cells ({'; '.join(parts)}); their coupling "
            "rows/columns are zero. Pass unmatched='couple' to couple them with any cell.",
            UserWarning,
            stacklevel=4,
        )
    return s_codes, t_codes, np.asarray(shared, dtype=str), dropped


def build_problem(
    mdata: MuData,
    source: str,
    target: str,
    method: str,
    use_rep: UseRep,
    groupby: str | None,
    epsilon: float | None,
    device: str,
    backend: str | None,
    dtype: str,
    warn_dropped: bool = True,
) -> tuple[AlignProblem, dict[str, int]]:
    """Assemble an :class:`AlignProblem` (labels resolved, unusable cells marked).

    ``warn_dropped``: warn about cells outside every same-group block (when they stay
    uncoupled).

    Examples
    --------
    >>> problem, dropped = build_problem(mdata, "rna", "prot", "leot", "X_true_shared",
    ...                                  "perturbation", None, "cpu", None, "float32")
    >>> problem.group_names.tolist(), problem.ops.name
    (['control', 'pert0', 'pert1', 'pert2', 'pert3'], 'numpy')

    """
    ops = resolve_backend(device, backend, dtype)
    if groupby is None:
        ns, nt = mdata.mod[source].n_obs, mdata.mod[target].n_obs
        s_codes, t_codes = np.zeros(ns, dtype=np.int64), np.zeros(nt, dtype=np.int64)
        names, dropped = np.array(["all"]), {}
    else:
        s_codes, t_codes, names, dropped = group_codes(
            mdata, source, target, groupby, warn=warn_dropped
        )
    problem = AlignProblem(
        mdata=mdata,
        source=source,
        target=target,
        method=method,
        use_rep=use_rep,
        groupby=groupby,
        source_codes=s_codes,
        target_codes=t_codes,
        group_names=names,
        epsilon=epsilon,
        ops=ops,
    )
    return problem, dropped


def relative_epsilon(problem: AlignProblem, fallback: float) -> float:
    """The relative epsilon of a problem: its own, else its method's registered default.

    The default is the ``default_epsilon`` of ``problem.method`` in the aligner registry, the
    value ``epsilon="auto"`` scales its candidates from, so the two cannot drift apart;
    ``fallback`` (the solver's own default) serves an aligner registered without one, e.g. a
    user's wrapper around a built-in solver.

    Examples
    --------
    >>> problem, _ = build_problem(mdata, "rna", "prot", "leot", "X_true_shared",
    ...                            "perturbation", None, "cpu", None, "float32")
    >>> relative_epsilon(problem, 0.05) == gs.tl.ALIGNERS["leot"].default_epsilon
    True

    """
    from ._registry import ALIGNERS

    eps = problem.epsilon
    if eps is None:
        spec = ALIGNERS.get(problem.method)
        eps = fallback if spec is None or spec.default_epsilon is None else spec.default_epsilon
    if not np.isfinite(eps) or eps <= 0:
        raise ValueError(f"epsilon must be a positive number, got {eps!r}.")
    return float(eps)


def as_h5_value(value: Any) -> Any:
    """Coerce diagnostics to h5mu-writable values (numbers, str, arrays, nested dicts).

    Examples
    --------
    >>> as_h5_value({"n": np.int64(3), "ok": np.bool_(True), "name": None})
    {'n': 3, 'ok': True, 'name': ''}

    """
    if isinstance(value, dict):
        return {str(k): as_h5_value(v) for k, v in value.items()}
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        value = np.asarray(value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "OU":
            return value.astype(str)
        return value
    raise TypeError(f"Cannot store {type(value).__name__} in .uns (h5mu).")
