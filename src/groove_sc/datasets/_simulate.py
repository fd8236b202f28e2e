"""Simulator of weakly paired multimodal perturbation screens with a known truth."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
from mudata import MuData

from .._constants import (
    COUNTS_LAYER,
    DEFAULT_GROUPBY,
    DEFAULT_TRUTH_KEY,
    LIKELIHOOD_KINDS,
)
from ._observe import (
    LIBRARY_SIZE,
    N_HIDDEN,
    STREAM_BASELINE,
    STREAM_DESIGN,
    STREAM_EFFECTS,
    STREAM_LABELS,
    STREAM_MAPS,
    STREAM_ORDER,
    observe,
    random_mlp,
    stream_rng,
)

_DEFAULT_N_FEATURES = {"count": 1000, "continuous": 30, "binary": 2000}
_FEATURE_PREFIX = {"count": "gene", "continuous": "protein", "binary": "peak"}


def _check_fraction(name: str, value: float, upper_open: bool = False) -> float:
    value = float(value)
    ok = 0.0 <= value < 1.0 if upper_open else 0.0 <= value <= 1.0
    if not ok:
        interval = "[0, 1)" if upper_open else "[0, 1]"
        raise ValueError(f"{name} must lie in {interval}, got {value}.")
    return value


def _check_nonneg(name: str, value: float) -> float:
    value = float(value)
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}.")
    return value


def _group_sizes(
    n_perturbations: int,
    cells_per_perturbation: int | Sequence[int],
    imbalance: float,
    control_fraction: float,
    rng: np.random.Generator,
) -> tuple[list[str], np.ndarray]:
    if isinstance(n_perturbations, bool) or int(n_perturbations) != n_perturbations:
        raise ValueError(f"n_perturbations must be an integer, got {n_perturbations!r}.")
    if n_perturbations < 1:
        raise ValueError(f"n_perturbations must be >= 1, got {n_perturbations}.")
    n_perturbations = int(n_perturbations)
    if np.ndim(cells_per_perturbation) == 0:
        c = int(cells_per_perturbation)
        if c < 1:
            raise ValueError(
                f"cells_per_perturbation must be >= 1 (zero cells cannot be simulated), got {c}."
            )
        if imbalance > 0:
            w = np.exp(imbalance * rng.standard_normal(n_perturbations))
            sizes = np.maximum(1, np.round(c * w / w.mean())).astype(np.int64)
        else:
            sizes = np.full(n_perturbations, c, dtype=np.int64)
    else:
        sizes = np.asarray(cells_per_perturbation, dtype=np.int64)
        if sizes.shape != (n_perturbations,):
            raise ValueError(
                f"cells_per_perturbation has {sizes.size} entries but there are "
                f"{n_perturbations} perturbations; give one size per perturbation or an int."
            )
        if (sizes < 1).any():
            raise ValueError("Every entry of cells_per_perturbation must be >= 1.")
        if imbalance > 0:
            raise ValueError(
                "Give either per-perturbation sizes in cells_per_perturbation or imbalance > 0, "
                "not both."
            )
    width = len(str(n_perturbations - 1))
    names = [f"pert{i:0{width}d}" for i in range(n_perturbations)]
    if control_fraction > 0:
        n_control = max(1, round(control_fraction / (1 - control_fraction) * sizes.sum()))
        names = ["control", *names]
        sizes = np.concatenate([[n_control], sizes])
    return names, sizes


def _observed_labels(
    true_code: np.ndarray,
    n_groups: int,
    unlabeled_fraction: float,
    label_noise: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Observed group codes: -1 for hidden labels, some others replaced by a wrong group."""
    n = len(true_code)
    code = true_code.copy()
    hidden = rng.choice(n, size=round(unlabeled_fraction * n), replace=False)
    code[hidden] = -1
    labelled = np.flatnonzero(code >= 0)
    n_wrong = round(label_noise * len(labelled))
    wrong = rng.choice(labelled, size=n_wrong, replace=False)
    code[wrong] = (code[wrong] + rng.integers(1, n_groups, size=n_wrong)) % n_groups
    return code


def simulate(
    n_perturbations: int = 20,
    cells_per_perturbation: int | Sequence[int] = 100,
    shared_fraction: float = 0.5,
    *,
    modalities: Mapping[str, str] | None = None,
    n_features: int | Mapping[str, int] | None = None,
    n_latent: int = 10,
    effect_size: float = 1.0,
    noise: float = 0.5,
    control_fraction: float = 0.1,
    imbalance: float = 0.0,
    unlabeled_fraction: float = 0.0,
    label_noise: float = 0.0,
    paired: bool = False,
    seed: int = 0,
) -> MuData:
    """Simulate a multimodal perturbation screen with a known ground truth.

    Generative model, for a cell ``i`` in perturbation group ``g`` seen by modality ``m``:

    - baseline state ``b_i ~ N(0, I)`` in ``n_latent`` dimensions (cell-to-cell variation);
    - perturbation effect ``e_gm = s_g + r_gm`` with a part shared by all modalities,
      ``s_g = effect_size * sqrt(shared_fraction) * u_g``, and a modality-specific part,
      ``r_gm = effect_size * sqrt(1 - shared_fraction) * v_gm`` (``u_g``, ``v_gm`` independent
      standard normal; zero for the control group). The effect's size does not depend on
      ``shared_fraction``; the correlation between two modalities' effects equals it. With
      ``shared_fraction=0`` the perturbation signal of one modality is independent of the
      other's; with 1 both see the same effect;
    - state ``z_im = b_i + e_gm``, mapped to features by the modality's own random MLP (one
      hidden layer of 32 units, activation ``tanh(a) + 0.2 a``, injective and smooth);
    - observation noise by likelihood: ``"nb"`` (overdispersion ``1/theta`` = ``noise`` times a
      per-feature log-normal factor; about 3000 counts per cell), ``"zinb"`` (NB plus
      per-feature dropout), ``"poisson"``, ``"normal"`` (per-feature offset plus Gaussian noise
      of sd ``noise``; protein-like, CLR-scale values) or ``"bernoulli"`` (binary, ATAC-like).

    **Pairing.** ``paired=True``: every simulated cell is seen once by every modality, with the
    same baseline ``b_i`` and the same ``obs["cell_id"]`` (``"cell17"``) in each view, so a good
    shared latent can match cells even within a group; this is the truth for FOSCTTM and
    matching metrics. ``paired=False`` (default): each modality gets its own cells drawn from
    the same process (same groups and group sizes, independent baselines); no cell has a
    partner and ``obs["cell_id"]`` equals the obs name (``"rna:cell17"``), unique across views.

    **Labels.** ``obs["perturbation"]`` is a categorical with the group names (``"control"``
    plus ``"pert00"``, ``"pert01"``, ...); hidden labels (``unlabeled_fraction``, as failed guide
    calls) are missing values (NaN), and ``label_noise`` of the remaining cells carry a wrong
    group drawn uniformly from the others. Both are drawn independently per modality (also when
    paired). ``obs["perturbation_true"]`` keeps the true group, for evaluation only.

    Rows of each modality are in an independent random order, so that row position carries no
    pairing information. Observations are generated in chunks of cells (count and binary
    modalities straight into CSR), so memory grows with the non-zero entries, not with
    cells x features. Obs names are ``"<modality>:cell<i>"``, var names
    ``"<modality>_<gene|protein|peak><j>"``.

    Draws come from separate random streams per component (design, effects, maps, baselines,
    noise, labels, order; per modality where it applies), so at a fixed ``seed`` changing
    ``shared_fraction`` changes nothing but the mixing of the effects (common random numbers)
    and adding a modality leaves the others unchanged.

    Parameters
    ----------
    n_perturbations
        Number of perturbation groups besides the control.
    cells_per_perturbation
        Cells per perturbation group (int), or one size per perturbation.
    shared_fraction
        In ``[0, 1]``: share of the perturbation effect's variance common to all modalities.
    modalities
        Modality name -> likelihood (``"nb"``, ``"zinb"``, ``"poisson"``, ``"normal"``,
        ``"bernoulli"``); default ``{"rna": "nb", "prot": "normal"}``.
    n_features
        Features per modality: an int for all, or a mapping per modality; defaults 1000 for
        count, 30 for normal and 2000 for bernoulli modalities.
    n_latent
        Dimension of the true state.
    effect_size
        Standard deviation of the perturbation effect per latent dimension (the baseline has 1).
    noise
        Observation noise level (see above; 0 gives Poisson counts and noiseless normal data).
    control_fraction
        In ``[0, 1)``: share of all cells in an unperturbed ``"control"`` group (none if 0).
    imbalance
        Unequal group sizes: sizes are ``cells_per_perturbation`` times log-normal weights with
        this sd (normalised to mean 1; at least 1 cell). 0 keeps groups equal.
    unlabeled_fraction
        In ``[0, 1]``: share of cells per modality whose label is hidden (NaN).
    label_noise
        In ``[0, 1]``: share of the labelled cells per modality with a wrong label.
    paired
        Whether every cell is seen by every modality (see Pairing).
    seed
        Non-negative integer; the output is a deterministic function of all arguments.

    Returns
    -------
    MuData (axis 0, disjoint prefixed obs_names) with per modality: ``.X`` (log1p of counts
    normalised to 10,000 per cell for count likelihoods, 0/1 for bernoulli: float32 CSR; the
    values for normal: dense float32), ``.layers["counts"]`` (raw integer-valued float32
    counts, CSR, for count and bernoulli likelihoods; ``.X`` and the counts share their
    sparsity pattern), ``obs["perturbation"]``, ``obs["perturbation_true"]``,
    ``obs["cell_id"]``, ``obsm["X_true"]`` (the state ``z_im`` behind this view) and
    ``obsm["X_true_shared"]`` (``b_i + s_g``, identical for all views of one cell: an oracle
    shared embedding). ``mdata.uns["simulation"]`` records the parameters, the group names and
    sizes, and the true effects (``shared_effect``; ``specific_effect`` per modality; rows in
    the order of ``group_names``).

    Examples
    --------
    >>> import groove_sc as gs
    >>> mdata = gs.datasets.simulate(n_perturbations=5, cells_per_perturbation=20, seed=0)
    >>> mdata["rna"].n_obs, mdata["prot"].n_vars
    (111, 30)
    >>> paired = gs.datasets.simulate(n_perturbations=5, paired=True, seed=0)
    >>> gs.metrics.latent_foscttm(paired, "X_true_shared", "rna", "prot")
    0.0

    """
    modalities, feats = _check_modalities(modalities, n_features)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    if int(n_latent) != n_latent or n_latent < 1:
        raise ValueError(f"n_latent must be a positive integer, got {n_latent!r}.")
    params = dict(
        n_perturbations=n_perturbations,
        cells_per_perturbation=cells_per_perturbation,
        shared_fraction=_check_fraction("shared_fraction", shared_fraction),
        modalities=modalities,
        n_features=feats,
        n_latent=int(n_latent),
        effect_size=_check_nonneg("effect_size", effect_size),
        noise=_check_nonneg("noise", noise),
        control_fraction=_check_fraction("control_fraction", control_fraction, upper_open=True),
        imbalance=_check_nonneg("imbalance", imbalance),
        unlabeled_fraction=_check_fraction("unlabeled_fraction", unlabeled_fraction),
        label_noise=_check_fraction("label_noise", label_noise),
        paired=bool(paired),
        seed=int(seed),
    )
    design = _Design.draw(params)
    mods = {name: _modality(design, params, name, lik) for name, lik in modalities.items()}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pull_on_update.*", category=FutureWarning)
        mdata = MuData(mods)
        mdata.update()
    mdata.uns["simulation"] = _record(design, params)
    return mdata


def _check_modalities(
    modalities: Mapping[str, str] | None, n_features: int | Mapping[str, int] | None
) -> tuple[Mapping[str, str], dict[str, int]]:
    """Checked modalities (default rna: nb, prot: normal) and the feature count of each."""
    if modalities is None:
        modalities = {"rna": "nb", "prot": "normal"}
    if not isinstance(modalities, Mapping) or len(modalities) == 0:
        raise ValueError(
            "modalities must be a non-empty mapping of name -> likelihood, e.g. "
            "{'rna': 'nb', 'prot': 'normal'}."
        )
    for name, lik in modalities.items():
        if not isinstance(name, str) or not name or ":" in name:
            raise ValueError(f"Modality names must be non-empty strings without ':', got {name!r}.")
        if lik not in LIKELIHOOD_KINDS:
            raise ValueError(
                f"Unknown likelihood {lik!r} for modality '{name}'; valid ones are "
                f"{sorted(LIKELIHOOD_KINDS)} (the simulator's)."
            )
    feats: dict[str, int] = {}
    for name, lik in modalities.items():
        if n_features is None:
            p = _DEFAULT_N_FEATURES[LIKELIHOOD_KINDS[lik]]
        elif isinstance(n_features, Mapping):
            p = n_features.get(name, _DEFAULT_N_FEATURES[LIKELIHOOD_KINDS[lik]])
        else:
            p = n_features
        if int(p) != p or p < 1:
            raise ValueError(f"n_features for modality '{name}' must be >= 1, got {p!r}.")
        feats[name] = int(p)
    if isinstance(n_features, Mapping) and set(n_features) - set(modalities):
        raise ValueError(
            f"n_features names modalities {sorted(set(n_features) - set(modalities))} that are "
            f"not in modalities ({list(modalities)})."
        )
    return modalities, feats


@dataclass
class _Design:
    """Groups, their sizes and effects, and the shared baselines of a paired simulation."""

    names: list[str]
    sizes: np.ndarray
    true_code: np.ndarray
    shared_effect: np.ndarray
    specific_effect: dict[str, np.ndarray]
    baseline_shared: np.ndarray | None

    @classmethod
    def draw(cls, params: dict[str, Any]) -> _Design:
        """Draw the design from the design, effect and baseline streams."""
        seed, n_latent = params["seed"], params["n_latent"]
        names, sizes = _group_sizes(
            params["n_perturbations"],
            params["cells_per_perturbation"],
            params["imbalance"],
            params["control_fraction"],
            stream_rng(seed, STREAM_DESIGN),
        )
        n_groups = len(names)
        if params["label_noise"] > 0 and n_groups < 2:
            raise ValueError("label_noise > 0 needs at least two groups to draw wrong labels from.")
        perturbed = np.array([g != "control" for g in names])[:, None]
        scale = params["effect_size"]
        f = params["shared_fraction"]
        u = stream_rng(seed, STREAM_EFFECTS).standard_normal((n_groups, n_latent))
        specific = {}
        for name in params["modalities"]:
            v = stream_rng(seed, STREAM_EFFECTS, name).standard_normal((n_groups, n_latent))
            specific[name] = scale * np.sqrt(1 - f) * v * perturbed
        n_cells = int(sizes.sum())
        baseline = None
        if params["paired"]:
            baseline = stream_rng(seed, STREAM_BASELINE).standard_normal((n_cells, n_latent))
        return cls(
            names=names,
            sizes=sizes,
            true_code=np.repeat(np.arange(n_groups), sizes),
            shared_effect=scale * np.sqrt(f) * u * perturbed,
            specific_effect=specific,
            baseline_shared=baseline,
        )


def _modality(design: _Design, params: dict[str, Any], name: str, lik: str) -> ad.AnnData:
    """One modality's view of the simulated cells (states, observations, labels, names)."""
    seed, n_latent, n_feats = params["seed"], params["n_latent"], params["n_features"][name]
    true_code = design.true_code
    n_cells = len(true_code)
    if params["paired"]:
        baseline = design.baseline_shared
    else:
        baseline = stream_rng(seed, STREAM_BASELINE, name).standard_normal((n_cells, n_latent))
    order = stream_rng(seed, STREAM_ORDER, name).permutation(n_cells)
    z_shared = (baseline + design.shared_effect[true_code])[order]
    z = z_shared + design.specific_effect[name][true_code[order]]
    mlp = random_mlp(stream_rng(seed, STREAM_MAPS, name), n_latent, n_feats)
    x, counts = observe(mlp, z, lik, params["noise"], seed, name)
    code = _observed_labels(
        true_code,
        len(design.names),
        params["unlabeled_fraction"],
        params["label_noise"],
        stream_rng(seed, STREAM_LABELS, name),
    )
    cell = np.char.add("cell", np.arange(n_cells).astype(str))[order]
    obs_names = np.char.add(f"{name}:", cell)
    categories = pd.Index(design.names)
    obs = pd.DataFrame(
        {
            DEFAULT_GROUPBY: pd.Categorical.from_codes(code[order], categories),
            f"{DEFAULT_GROUPBY}_true": pd.Categorical.from_codes(true_code[order], categories),
            DEFAULT_TRUTH_KEY: (cell if params["paired"] else obs_names).astype(object),
        },
        index=pd.Index(obs_names.astype(object)),
    )
    width = len(str(n_feats - 1))
    prefix = f"{name}_{_FEATURE_PREFIX[LIKELIHOOD_KINDS[lik]]}"
    var_names = [f"{prefix}{j:0{width}d}" for j in range(n_feats)]
    adata = ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=var_names))
    if counts is not None:
        adata.layers[COUNTS_LAYER] = counts
    adata.obsm["X_true"] = z.astype(np.float32)
    adata.obsm["X_true_shared"] = z_shared.astype(np.float32)
    return adata


def _record(design: _Design, params: dict[str, Any]) -> dict[str, Any]:
    """``mdata.uns["simulation"]``: the parameters, the groups and the true effects."""
    cells = params["cells_per_perturbation"]
    return dict(
        n_perturbations=int(params["n_perturbations"]),
        cells_per_perturbation=(int(cells) if np.ndim(cells) == 0 else [int(c) for c in cells]),
        shared_fraction=params["shared_fraction"],
        modalities={k: str(v) for k, v in params["modalities"].items()},
        n_features=params["n_features"],
        n_latent=params["n_latent"],
        effect_size=params["effect_size"],
        noise=params["noise"],
        control_fraction=params["control_fraction"],
        imbalance=params["imbalance"],
        unlabeled_fraction=params["unlabeled_fraction"],
        label_noise=params["label_noise"],
        paired=params["paired"],
        seed=params["seed"],
        n_hidden=N_HIDDEN,
        library_size=LIBRARY_SIZE,
        group_names=list(design.names),
        group_sizes=[int(s) for s in design.sizes],
        shared_effect=design.shared_effect.astype(np.float32),
        specific_effect={k: v.astype(np.float32) for k, v in design.specific_effect.items()},
    )


def simulate_sweep(
    shared_fractions: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    seeds: Sequence[int] = (0, 1, 2),
    **kwargs: Any,
) -> Iterator[tuple[float, int, MuData]]:
    """Simulations over a grid of ``shared_fraction`` and seeds, one at a time.

    A lazy generator (one MuData in memory at a time). For a given seed all simulations share
    every random draw (baselines, maps, noise, labels): only the split of the perturbation
    effect into shared and specific parts changes, so differences between fractions are not
    confounded by sampling noise.

    Parameters
    ----------
    shared_fractions
        Values of ``shared_fraction``, each in ``[0, 1]``.
    seeds
        Seeds; each gives an independent replicate.
    **kwargs
        Passed to :func:`simulate` (e.g. ``paired=True``, ``n_perturbations=20``).

    Yields
    ------
    ``(shared_fraction, seed, mdata)``.

    Examples
    --------
    >>> import groove_sc as gs
    >>> for f, seed, mdata in gs.datasets.simulate_sweep([0.0, 1.0], seeds=[0], paired=True,
    ...                                                  n_perturbations=3):
    ...     print(f, seed, mdata.uns["simulation"]["shared_fraction"])
    0.0 0 0.0
    1.0 0 1.0

    """
    if "shared_fraction" in kwargs or "seed" in kwargs:
        raise TypeError("Pass shared_fraction and seed as the sweep's lists, not as keywords.")
    fractions = [_check_fraction("shared_fraction", f) for f in shared_fractions]
    for seed in seeds:
        for f in fractions:
            yield f, int(seed), simulate(shared_fraction=f, seed=int(seed), **kwargs)
