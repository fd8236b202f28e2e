"""``tl.align``: couple the cells of two modalities with a registered aligner."""

from __future__ import annotations

import time
import warnings
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from mudata import MuData

from .._constants import DEFAULT_COUPLING_KEY, DEFAULT_GROUPBY, DEFAULT_METHOD, DEFAULT_REP
from .._mudata import check_disjoint_obs_names, check_modalities, embed_block, obs_column
from ._aligners import ALIGNERS
from ._aligners._auto_epsilon import FALLBACK_EPSILON, auto_epsilon
from ._aligners._problem import AlignProblem, UseRep, as_h5_value, build_problem, rep_key
from ._aligners._registry import Aligner, AlignResult, check_total_mass, methods_with_labels
from ._aligners._unmatched import DEFAULT_UNMATCHED_K, couple_unmatched
from ._space import Space, check_space, use_space

#: Unlabeled dense methods (``eot``, ``egw_all``, ``coot``, ``fgw`` without groupby) refuse
#: problems with more source x target pairs than this (5000 x 5000) unless ``max_pairs`` is raised.
DEFAULT_MAX_PAIRS = 25_000_000


def align(
    mdata: MuData,
    source: str,
    target: str,
    use_rep: UseRep = DEFAULT_REP,
    method: str = DEFAULT_METHOD,
    groupby: str | None = DEFAULT_GROUPBY,
    epsilon: float | Literal["auto"] | None = "auto",
    key_added: str = DEFAULT_COUPLING_KEY,
    device: str = "cpu",
    *,
    space: Space = "auto",
    unmatched: Literal["couple", "drop"] = "couple",
    unmatched_k: int = DEFAULT_UNMATCHED_K,
    backend: str | None = None,
    dtype: str = "float32",
    max_pairs: int | None = DEFAULT_MAX_PAIRS,
    copy: bool = False,
    **method_kwargs: Any,
) -> MuData | None:
    """Couple the cells of ``source`` with those of ``target`` by optimal transport.

    The method is looked up in :data:`groove_sc.tl.ALIGNERS` (``eot``, ``leot``, ``egw``,
    ``egw_all``, ``egwl``, ``fgw``, ``uot``, ``coot``, ``cootl``, ``knn``; see
    :func:`groove_sc.tl.register_aligner` to add one).

    Writes ``mdata.obsp[key_added]``: a sparse CSR matrix over the union of cells, nonzero only in
    the source-rows x target-columns block, of total mass 1; and ``mdata.uns[key_added]`` with the
    source, target, method, use_rep, groupby, parameters (absolute and relative epsilon, ...),
    convergence diagnostics (per group where per group) and the runtime in seconds. Nothing else
    of ``mdata`` is modified.

    **Labels.** Label-constrained methods only couple cells with the same ``obs[groupby]``
    value. Unlabeled source cells (NaN) and source cells whose group has no cell in the other
    modality are outside every block: by default (``unmatched="couple"``) each is coupled with
    its ``unmatched_k`` nearest target cells (any cell) in the shared representation, so that
    every source cell has the same mass ``1 / n_source``; ``unmatched="drop"`` leaves them out
    with a warning that counts them (their rows are zero). When the modalities share no
    representation (GW/COOT with per-modality ``use_rep``) they are left out, and
    ``uns[key_added]["unmatched"]`` says why. Target cells outside every block receive mass only
    as neighbours of such source cells. Groups with a single cell are kept. Each group carries
    a mass proportional to its number of source cells
    (``group_weights="source"``, so every kept source cell has equal mass) for the balanced
    per-group methods; ``uot`` instead gives every kept cell equal mass on both sides and lets
    its marginal penalty absorb group-size differences.

    **Space.** A GROOVE latent written by :func:`groove_sc.tl.embed` (``uns[use_rep]`` records
    the model's labels, temperature, similarity and ``n_latent``) is compared by the aligners
    that compare cells in one shared space (``shared_rep=True``: ``leot``, ``eot``, ``uot``,
    ``knn``) in its group-posterior coordinates, :func:`groove_sc.tl.group_posterior` with its
    defaults, computed on the fly and not stored: the same coupling as aligning on that
    function's output. There GROOVE's cells matched better than in the latent on the real
    development set (every seed), on simulations with unlabeled cells and with three
    modalities; on the documented simulation grid the result is mixed (see "Real co-assayed
    data"). The prototypes use the label column the model was trained with, also for
    ``groupby=None`` runs of ``eot`` and ``knn`` (``space="rep"`` for a label-free run), and
    also for the merged blocks of ``epsilon="auto"`` (as the latent, trained with those
    labels, does). ``space="rep"`` uses the latent itself; GW and COOT methods, and any other
    representation, use ``use_rep`` as it is under ``"auto"``; ``space="posterior"`` maps any
    shared representation (then with ``groupby``, temperature 0.1 and cosine similarity unless
    ``uns[use_rep]`` records others). If a GROOVE latent's posterior cannot be formed (its
    recorded label column is missing) ``"auto"`` warns and uses the latent. The space used and
    why are ``uns[key_added]["space"]``.

    **Epsilon** is relative to the cost scale. ``leot``: the mean same-group cost (the squared
    Euclidean cost of the coupling uniform within each group, pooled over groups by their mass),
    default ``0.05``. ``eot``/``uot``: the largest squared Euclidean cost on the solved support,
    default ``5e-3`` (Perturb-OT's default). ``egw``/``egw_all``/``egwl``/``fgw``: the
    linearised Gromov-Wasserstein cost at the initial (product) coupling, whose geometries are
    squared distances divided by their mean, default ``5e-3``. ``coot``/``cootl``: the initial
    sample cost, default ``1e-2`` (their feature plan has its own ``epsilon_feature``, default
    ``5e-2``). Small values give sharp matchings. The absolute and relative values are recorded
    in ``uns[key_added]["parameters"]``.

    **epsilon="auto"** (the default) checks the method default without the truth, by
    held-out-group cross-validation (:mod:`groove_sc.tl._aligners._auto_epsilon`): random pairs
    of groups are merged, the aligner is run on the merged blocks at ``1``, ``4`` and ``16``
    times the method default (in that order, stopping at the first that beats the label-only
    coupling), and each coupling is scored by the share of its mass that joins
    cells of the same hidden group, against the label-only coupling (uniform within each merged
    block) and chance. The default is kept while it beats the label-only coupling; otherwise
    the smallest larger candidate that does is used, and when none does, a smooth epsilon
    (16 times the largest candidate, at least ``1.0``: close to the label-only coupling). The
    choice never moves to a sharper epsilon.
    The candidates, their scores, the label-only score and the choice are stored in
    ``uns[key_added]["epsilon_auto"]`` (candidates not needed have NaN scores). The
    cross-validation runs on subsampled blocks, sized so that solving every candidate would
    cost about twice the final alignment; when the default is kept only it is solved. Methods
    without an epsilon (``knn``) and alignments without labels use the method default.

    **Solvers.** Per-group entropic problems are solved together by a batched, log-stabilised
    Sinkhorn over padded groups (one tensor program; on CPU as many groups as fit the caches,
    refilled as groups converge; on a GPU the whole batch), with epsilon scaling and adaptive
    over-relaxation; convergence is the L1 marginal error relative to each group's mass
    (``tol``, default ``1e-4``), recorded per group. ``egwl`` is POT's projected-gradient
    entropic GW on the full geometries with the plan restricted to same-group pairs: the GW
    gradient is computed from rank-``(d + 2)`` factors of the squared-distance matrices, so no
    ``n x n`` or ``n x m`` matrix is formed. The tests check each method against POT run
    directly on each block.

    **Size limits.** Labeled methods never build an ``n_source x n_target`` matrix; only the
    same-group blocks. Unlabeled dense methods (``eot``, ``egw_all``, ``coot``, and ``fgw`` with
    ``groupby=None``) refuse problems with more than ``max_pairs`` cell pairs (default 25 million,
    about 5000 x 5000) unless you pass a larger ``max_pairs`` (or ``None``).

    **Storage.** Couplings store ``O(n)`` entries: each row keeps its largest entries up to
    ``keep_mass`` (default ``0.99``) of its mass and at most ``max_per_row`` (default ``256``),
    rescaled so that the row keeps its mass; the moved mass is
    ``uns[key_added]["convergence"]["dropped_mass"]`` (``keep_mass=1.0, max_per_row=None``
    keeps the whole plan). Groups with more than ``stream_above`` cell pairs (default 4096 x
    4096 on CPU) are solved from their factorised cost streamed in row chunks, never as a
    dense block, to the same ``tol``.

    Parameters
    ----------
    mdata
        MuData with disjoint, prefixed cells per modality (axis 0).
    source, target
        Modality names; rows of the coupling are source cells, columns target cells.
    use_rep
        ``obsm`` key present in each modality (e.g. ``"X_groove"`` from :func:`groove_sc.tl.embed`)
        or ``"X"`` for the features. GW and COOT methods compare each modality with itself and
        accept different keys per modality: ``{"rna": "X_pca", "prot": "X"}``.
    method
        Registered aligner name.
    space
        Where cells are compared (see **Space**): ``"auto"`` (default), ``"rep"`` (``use_rep``
        as it is) or ``"posterior"`` (its group-posterior coordinates).
    groupby
        Categorical ``obs`` column in both modalities (the perturbation). Ignored by unlabeled
        methods; ``None`` runs ``knn`` and ``fgw`` over all cells.
    epsilon
        Entropic regularisation relative to the cost scale (see above): a number, ``"auto"``
        (truth-free choice, default) or ``None`` (the method default).
    key_added
        Key in ``mdata.obsp`` and ``mdata.uns``.
    device
        ``"cpu"`` or a torch device such as ``"cuda"`` (then the solvers run on torch, batched).
    unmatched
        ``"couple"`` (default) or ``"drop"``: what label-constrained methods do with source
        cells outside every same-group block (see **Labels**).
    unmatched_k
        Target neighbours of each such cell.
    backend
        ``"numpy"`` or ``"torch"``; ``None`` picks numpy on CPU, torch elsewhere.
    dtype
        ``"float32"`` (default; kernels are log-stabilised) or ``"float64"``.
    max_pairs
        Size limit of unlabeled dense methods (``None``: no limit).
    copy
        Work on and return a copy of ``mdata`` instead of writing in place.
    **method_kwargs
        Passed to the aligner (e.g. ``tol``, ``max_iter``, ``alpha`` for ``fgw``, ``k`` for
        ``knn``, ``reg_m`` for ``uot``); see each aligner's documentation.

    Returns
    -------
    ``None``, or the modified copy when ``copy=True``.

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", use_rep="X_true_shared", method="leot")
    >>> coupling = mdata.obsp["groove_coupling"]
    >>> coupling.shape, round(float(coupling.sum()), 6)
    ((134, 134), 1.0)
    >>> mdata.uns["groove_coupling"]["parameters"]["epsilon_relative"] > 0
    True

    """
    start = time.perf_counter()
    aligner = _check_arguments(mdata, source, target, method, epsilon, unmatched, key_added)
    check_space(space)
    _check_method_kwargs(aligner, method_kwargs)
    groupby, use_rep = _resolve_groupby_and_rep(aligner, groupby, use_rep, source, target)
    _check_groupby_against_the_model(mdata, groupby, use_rep, (source, target))
    fixed_epsilon = None if epsilon == "auto" else epsilon
    problem, dropped = build_problem(
        mdata,
        source,
        target,
        method,
        use_rep,
        groupby,
        fixed_epsilon,
        device,
        backend,
        dtype,
        warn_dropped=unmatched == "drop",
    )
    _check_size(problem, aligner, max_pairs)
    space_info = use_space(problem, aligner, space)
    _, y_target = problem.rep(shared=aligner.shared_rep)  # fail early on keys / NaN / dims
    auto_info = None
    if epsilon == "auto":
        problem.epsilon, auto_info = auto_epsilon(problem, aligner, method_kwargs, y_target)
        result = _solve_auto(problem, aligner, method_kwargs, auto_info)
    else:
        result = aligner(problem, **method_kwargs)
    coupling = check_total_mass(result.coupling.tocsr(), method)
    coupling, unmatched_info = _complete_unmatched(problem, coupling, unmatched, unmatched_k)
    out = mdata.copy() if copy else mdata
    out.obsp[key_added] = embed_block(out, coupling, source, target)
    record = {
        "source": source,
        "target": target,
        "method": method,
        "use_rep": use_rep if isinstance(use_rep, str) else dict(use_rep),
        "space": space_info,
        "groupby": groupby,
        "parameters": result.parameters,
        "convergence": as_h5_value(result.convergence),
        "dropped": dropped,
        "unmatched": unmatched_info,
        "epsilon_auto": auto_info if auto_info is not None else {"mode": "off"},
    }
    out.uns[key_added] = as_h5_value(record | _usage(problem, coupling, start))
    _warn_unconverged(record["convergence"], method, key_added)
    return out if copy else None


def _check_arguments(
    mdata: MuData,
    source: str,
    target: str,
    method: str,
    epsilon: float | str | None,
    unmatched: str,
    key_added: str,
) -> Aligner:
    """Validate the arguments of :func:`align` that need no data; return the aligner."""
    if method not in ALIGNERS:
        raise ValueError(
            f"Unknown method {method!r}. Valid methods: {sorted(ALIGNERS)}; register a new one "
            "with groove_sc.tl.register_aligner."
        )
    check_modalities(mdata, [source, target], "groove_sc.tl.align")
    if source == target:
        raise ValueError(f"source and target are both '{source}'; pass two different modalities.")
    check_disjoint_obs_names(mdata, [source, target])
    if isinstance(epsilon, str):
        if epsilon != "auto":
            raise ValueError(f"epsilon must be a positive number, 'auto' or None, got {epsilon!r}.")
    elif epsilon is not None and not (np.isfinite(epsilon) and epsilon > 0):
        raise ValueError(
            f"epsilon must be a positive number (relative to the cost scale), got {epsilon!r}; "
            "pass 'auto' for the truth-free choice or None for the method default."
        )
    if unmatched not in ("couple", "drop"):
        raise ValueError(f"unmatched must be 'couple' or 'drop', got {unmatched!r}.")
    if not isinstance(key_added, str) or not key_added:
        raise ValueError(f"key_added must be a non-empty string, got {key_added!r}.")
    return ALIGNERS[method]


def _check_method_kwargs(aligner: Aligner, method_kwargs: dict[str, Any]) -> None:
    """Refuse keyword arguments the aligner does not take."""
    if aligner.accepts_any_keyword():
        return
    unknown = sorted(set(method_kwargs) - set(aligner.keyword_names()))
    if unknown:
        raise TypeError(
            f"Method '{aligner.name}' got unexpected keyword argument(s) {unknown}; it accepts "
            f"{aligner.keyword_names()}."
        )


def _resolve_groupby_and_rep(
    aligner: Aligner, groupby: str | None, use_rep: UseRep, source: str, target: str
) -> tuple[str | None, UseRep]:
    """``groupby`` as the aligner uses it, and ``use_rep`` as one key for shared-space methods."""
    groupby = aligner.groupby_for(groupby)
    if aligner.shared_rep and not isinstance(use_rep, str):
        keys = {rep_key(use_rep, m) for m in (source, target)}
        if len(keys) != 1:
            raise ValueError(
                f"Method '{aligner.name}' needs one shared representation, got "
                f"use_rep={use_rep!r}; pass a single obsm key present in both modalities."
            )
        use_rep = keys.pop()
    return groupby, use_rep


def _check_groupby_against_the_model(
    mdata: MuData, groupby: str | None, use_rep: UseRep, mods: tuple[str, str]
) -> None:
    """A missing ``groupby`` column while the latent's model used another: name that one."""
    record = mdata.uns.get(use_rep) if isinstance(use_rep, str) else None
    trained = record.get("groupby") if isinstance(record, dict) else None
    if groupby is None or not isinstance(trained, str) or trained == groupby:
        return
    if all(groupby in mdata.mod[m].obs for m in mods):
        return
    if all(trained in mdata.mod[m].obs for m in mods):
        obs_column(
            mdata,
            next(m for m in mods if groupby not in mdata.mod[m].obs),
            groupby,
            "groupby",
            f"the model behind '{use_rep}' was trained with the labels obs['{trained}'] "
            f"(uns['{use_rep}']['groupby']): pass groupby='{trained}'.",
        )


def _check_size(problem: AlignProblem, aligner: Aligner, max_pairs: int | None) -> None:
    """Refuse unlabeled dense problems above ``max_pairs`` cell pairs."""
    if not aligner.dense or problem.labeled or max_pairs is None:
        return
    pairs = problem.n_source * problem.n_target
    if pairs > max_pairs:
        raise ValueError(
            f"Method '{aligner.name}' solves one dense problem over all {problem.n_source} x "
            f"{problem.n_target} = {pairs:,} cell pairs, above max_pairs={max_pairs:,}. Use a "
            f"label-constrained method ({', '.join(methods_with_labels('required'))}), "
            "subsample, or pass a larger max_pairs (or max_pairs=None) if the memory is "
            "available."
        )


def _complete_unmatched(
    problem: AlignProblem, coupling: sp.csr_matrix, unmatched: str, k: int
) -> tuple[sp.csr_matrix, dict[str, Any]]:
    """Couple (or leave out, with a warning when asked to couple) the cells outside every block.

    Also checks the coupling's shape.
    """
    info: dict[str, Any] = {"mode": "none left out"}
    if problem.labeled and (problem.source_codes < 0).any():
        if unmatched == "couple":
            coupling, info = couple_unmatched(problem, coupling, k)
            if info["mode"] == "drop":
                warnings.warn(
                    f"{int((problem.source_codes < 0).sum())} source cells are outside every "
                    f"same-group block and stay uncoupled: {info['reason']}. Pass a "
                    "use_rep shared by both modalities to couple them.",
                    UserWarning,
                    stacklevel=3,
                )
        else:
            info = {"mode": "drop"}
    if coupling.shape != (problem.n_source, problem.n_target):
        raise ValueError(
            f"Aligner '{problem.method}' returned a coupling of shape {coupling.shape}, expected "
            f"{(problem.n_source, problem.n_target)}."
        )
    return coupling, info


def _usage(problem: AlignProblem, coupling: sp.csr_matrix, start: float) -> dict[str, Any]:
    """Cells used, device, backend, dtype and runtime of an alignment (for ``uns``)."""
    return {
        "n_source_used": int(np.diff(coupling.indptr).astype(bool).sum()),
        "n_target_used": int(np.bincount(coupling.indices, minlength=1).astype(bool).sum()),
        "device": problem.ops.device,
        "backend": problem.ops.name,
        "dtype": problem.ops.dtype,
        "runtime": time.perf_counter() - start,
    }


def _warn_unconverged(convergence: dict[str, Any], method: str, key_added: str) -> None:
    if not convergence.get("converged", True):
        warnings.warn(
            f"tl.align(method='{method}') did not converge "
            f"({_convergence_summary(convergence)}); increase max_iter or epsilon. Diagnostics "
            f"are in mdata.uns['{key_added}']['convergence'].",
            UserWarning,
            stacklevel=3,
        )


def _solve_auto(
    problem: AlignProblem, aligner: Aligner, method_kwargs: dict[str, Any], info: dict[str, Any]
) -> AlignResult:
    """Solve at the auto epsilon; if the full problem diverges there, at the next larger one.

    The choice is made on subsampled blocks, and a small epsilon that was stable there can
    overflow on the full problem (float32 GW): each retry is recorded in ``info``.
    """
    if problem.epsilon is None:
        return aligner(problem, **method_kwargs)
    chosen = float(problem.epsilon)
    larger = [float(c) for c in info.get("candidates", []) if c > chosen]
    retries = []
    for eps in [chosen, *larger, max(FALLBACK_EPSILON, chosen)]:
        problem.epsilon = eps
        try:
            result = aligner(problem, **method_kwargs)
        except FloatingPointError as err:
            retries.append(f"{eps:g}: {err}")
            continue
        if retries:
            info["retries"] = np.asarray(retries)
            info["chosen"] = eps
        return result
    raise FloatingPointError(
        f"Method '{problem.method}' diverged at every epsilon tried ({'; '.join(retries)}); "
        "pass a larger epsilon or dtype='float64'."
    )


def _convergence_summary(convergence: dict[str, Any]) -> str:
    groups = convergence.get("groups")
    if isinstance(groups, dict) and "converged" in groups:
        flags = np.asarray(groups["converged"])
        return f"{int((~flags).sum())} of {flags.size} groups above tolerance"
    return ", ".join(f"{k}={v}" for k, v in convergence.items() if not isinstance(v, dict))
