"""DIAGVI (scvi-tools) as an optional learner: the scvi-tools peer of GROOVE in the grid.

DIAGVI (``scvi.external.DIAGVI``, scvi-tools >= 1.4.3, which needs Python >= 3.12) integrates
two modalities with per-modality VAEs whose decoders share feature embeddings learned from a
*guidance graph* (edges between features of the two modalities that measure the same thing,
as in GLUE), an unbalanced Sinkhorn loss between the two latents (``geomloss``) and, with
labels, one classifier per modality on the latent (semi-supervised). The guidance graph needs
``torch_geometric``.

Where any of these is missing the learner is registered all the same, and
:func:`groove_sc.benchmark.run` records its combinations as ``status="skipped"`` with the
reason (see :func:`diagvi_unavailable`), so that one grid runs on every Python.

The guidance graph links features whose names match after :func:`normalize_feature_name`
(see :func:`link_features`), or the pairs a user gives (``feature_links=``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from mudata import MuData

from .._docs import doc_params
from .._mudata import obs_column
from ._feature_links import link_features, user_links
from ._groove import infer_likelihoods, quiet_training
from ._registry import LEARNER_DOCS, register_learner

#: Likelihoods of ``DIAGVI.setup_anndata``.
DIAGVI_LIKELIHOODS: tuple[str, ...] = (
    "nb",
    "zinb",
    "nbmixture",
    "normal",
    "log1pnormal",
    "ziln",
    "zig",
)
_COUNT_LIKELIHOODS = {"nb", "zinb", "nbmixture"}
_INSTALL = (
    'To use it, install on Python >= 3.12: pip install "scvi-tools[diagvi]>=1.4.3" (which '
    'brings torch_geometric and geomloss), or pip install -e ".[diagvi]" in a groove_sc clone.'
)
_LABEL_COLUMN = "_diagvi_label"
_UNLABELED = "_diagvi_unlabeled"


def diagvi_unavailable() -> str | None:
    """Why DIAGVI cannot run in this environment; ``None`` when it can.

    DIAGVI needs ``scvi.external.DIAGVI`` (scvi-tools >= 1.4.3, on Python >= 3.12) and the
    packages ``torch_geometric`` and ``geomloss``; the reason names every missing piece and
    what to install.

    Returns
    -------
    ``None``, or one sentence for the benchmark's ``error`` column.

    Examples
    --------
    >>> from groove_sc.benchmark import diagvi_unavailable
    >>> reason = diagvi_unavailable()
    >>> reason is None or reason.startswith("DIAGVI is not available")
    True

    """
    missing = []
    try:
        from scvi.external import DIAGVI  # noqa: F401
    except ImportError:
        import scvi

        where = f"Python {sys.version_info.major}.{sys.version_info.minor}"
        missing.append(
            f"scvi-tools {scvi.__version__} on {where} has no scvi.external.DIAGVI (it needs "
            "scvi-tools >= 1.4.3, which needs Python >= 3.12)"
        )
    absent = [m for m in ("torch_geometric", "geomloss") if importlib.util.find_spec(m) is None]
    if absent:
        missing.append(f"{' and '.join(absent)} {'is' if len(absent) == 1 else 'are'} missing")
    if not missing:
        return None
    return f"DIAGVI is not available: {'; '.join(missing)}. {_INSTALL}"


def _check_modalities(mdata: MuData) -> list[str]:
    mods = list(mdata.mod)
    if len(mods) != 2:
        raise ValueError(
            f"DIAGVI models exactly two modalities; mdata has {mods}. Pass a MuData with the "
            "two to integrate (the benchmark passes source and target)."
        )
    return mods


def _model_input(adata: ad.AnnData, layer: str | None, groupby: str | None) -> ad.AnnData:
    """A new AnnData with the modelled matrix as ``.X`` and the labels only (nothing else)."""
    x = adata.X if layer is None else adata.layers[layer]
    x = sp.csr_matrix(x, dtype=np.float32) if sp.issparse(x) else np.asarray(x, np.float32)
    obs = pd.DataFrame(index=adata.obs_names.copy())
    if groupby is not None:
        col = adata.obs[groupby].astype("object")
        labels = col.where(col.notna(), _UNLABELED).astype(str)
        obs[_LABEL_COLUMN] = pd.Categorical(labels)
    return ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=adata.var_names.copy()))


def _posterior_means(model: Any, adatas: dict[str, ad.AnnData]) -> dict[str, np.ndarray]:
    """Posterior means of the cell latents (``DIAGVI.get_latent_representation`` samples)."""
    import torch

    out = {}
    model.module.eval()
    with torch.inference_mode():
        for name, adata in adatas.items():
            parts = []
            for tensors in model._make_data_loader(adata, batch_size=1024):
                inf = model.module.inference(
                    **model.module._get_inference_input(tensors), mode=name, deterministic=True
                )
                parts.append(inf["z"].detach().cpu().numpy())
            out[name] = np.concatenate(parts, axis=0)
    return out


def _quiet_callback():
    from lightning.pytorch import Callback
    from lightning.pytorch.callbacks.progress import ProgressBar

    class _NoProgressBar(Callback):
        """DIAGVI.train always asks for a progress bar; switch it off before training."""

        def setup(self, trainer, pl_module, stage):  # noqa: D102
            for cb in trainer.callbacks:
                if isinstance(cb, ProgressBar):
                    cb.disable()

    return _NoProgressBar()


@doc_params(**LEARNER_DOCS)
def fit_diagvi(  # noqa: D417 (parameters from LEARNER_DOCS)
    mdata: MuData,
    key: str,
    *,
    groupby: str | None,
    seed: int,
    n_latent: int = 50,
    max_epochs: int | None = None,
    likelihoods: Mapping[str, str] | None = None,
    layers: Mapping[str, str | None] | None = None,
    feature_links: Literal["names"]
    | pd.DataFrame
    | Mapping[str, Sequence[str]]
    | Sequence[tuple[str, str]]
    | None = "names",
    semi_supervised: bool = True,
    gmm_prior: bool = False,
    normalize_lib: Mapping[str, bool] | None = None,
    latent: Literal["mean", "sample"] = "mean",
    lr: float = 1e-3,
    batch_size: int = 256,
    plan_kwargs: Mapping[str, Any] | None = None,
    train_kwargs: Mapping[str, Any] | None = None,
    verbose: bool = False,
    **model_kwargs: Any,
) -> dict[str, Any]:
    """Train ``scvi.external.DIAGVI`` on the two modalities of ``mdata`` and embed every cell.

    Each modality is copied into a new AnnData holding only the modelled matrix and the
    labels, so the fit reads the data and ``obs[groupby]`` and nothing else (never the truth),
    and leaves ``mdata`` untouched but for ``obsm[key]``. Defaults are DIAGVI's own
    (``n_latent=50``, ``max_epochs`` from scvi-tools' heuristic with DIAGVI's early stopping
    on the validation loss, 10% of the cells held out).

    Parameters
    ----------
    mdata
        MuData with exactly two modalities.
    key
        ``obsm`` key written in both modalities: the posterior means of the cell latents.
    groupby
        Label column. With ``semi_supervised``, each modality gets DIAGVI's classifier of these
        labels on its latent (``labels_key``); missing labels become DIAGVI's unlabeled
        category. ``None``: unsupervised.
    %(seed)s
    n_latent
        Latent dimensions.
    max_epochs
        Training epochs (``None``: DIAGVI's heuristic, 400 up to 20,000 cells; early stopping
        on by default, switch it off with ``train_kwargs={"early_stopping": False}``).
    likelihoods
        Per modality, one of :data:`DIAGVI_LIKELIHOODS`; the others are guessed by
        :func:`groove_sc.benchmark.infer_likelihoods` (counts: ``"nb"``, binary data also
        ``"nb"`` as DIAGVI has no Bernoulli likelihood; anything else ``"normal"`` on ``.X``).
    layers
        Per modality, the layer modelled (``None``: ``.X``); the others are guessed with the
        likelihoods. E.g. ``{"rna": "counts", "adt": "clr"}``.
    feature_links
        The guidance graph's cross-modality edges (each feature also has its self-loop):

        - ``"names"`` (default): features whose names match after
          :func:`normalize_feature_name` (see :func:`link_features`);
        - a DataFrame, or a dict of equal-length lists, with one column per modality (DIAGVI's
          ``mapping_df``), or a sequence of ``(feature of the first modality, feature of the
          second)`` pairs, in ``mdata.mod`` order;
        - ``None``: no links (the modalities then meet through the Sinkhorn loss and the
          labels only).
    semi_supervised
        Use the labels (DIAGVI's classifiers); ``False`` ignores ``groupby``.
    gmm_prior
        DIAGVI's Gaussian-mixture prior (one component per label when semi-supervised).
    normalize_lib
        Per modality, DIAGVI's ``normalize_lib``. Default: on for count likelihoods, off for
        the others (DIAGVI's library is the log of each cell's sum, undefined for centred data
        such as a CLR).
    latent
        ``"mean"`` (posterior means, default) or ``"sample"`` (one posterior sample per cell,
        what ``DIAGVI.get_latent_representation`` returns).
    lr, batch_size
        Passed to ``DIAGVI.train``.
    plan_kwargs
        DIAGVI's training plan (``lam_sinkhorn``, ``lam_graph``, ``lam_class``...).
    train_kwargs
        Further ``DIAGVI.train`` / Lightning arguments (``accelerator``, ``early_stopping``...).
    verbose
        Show DIAGVI's progress bar, log and warnings (quiet by default).
    **model_kwargs
        Passed to ``DIAGVI`` (``n_hidden``, ``n_layers``, ``dropout_rate``).

    Returns
    -------
    ``{"diagvi": the trained model, "likelihoods": {...}, "layers": {...},
    "feature_links": DataFrame of the linked pairs, "epochs": epochs trained}``.

    Raises
    ------
    ImportError
        Where DIAGVI cannot run (the message of :func:`diagvi_unavailable`).

    Examples
    --------
    >>> info = fit_diagvi(mdata, "X_diagvi", groupby="celltype", seed=0, n_latent=16,
    ...                   layers={"rna": "counts", "adt": "clr"},
    ...                   likelihoods={"rna": "nb", "adt": "normal"})  # doctest: +SKIP
    >>> info["feature_links"].head()  # doctest: +SKIP

    """
    reason = diagvi_unavailable()
    if reason is not None:
        raise ImportError(reason)
    mods = _check_modalities(mdata)
    if latent not in ("mean", "sample"):
        raise ValueError(f"latent must be 'mean' or 'sample', got {latent!r}.")
    given = {"likelihoods": likelihoods, "layers": layers, "normalize_lib": normalize_lib}
    for name, per_mod in given.items():
        extra = sorted(set(per_mod or {}) - set(mods))
        if extra:
            raise KeyError(f"{name} names {extra}, which are not modalities of mdata ({mods}).")
    likelihoods, layers = _likelihoods_and_layers(mdata, mods, likelihoods, layers)
    labels = groupby if semi_supervised else None
    setup = _setup_arguments(mdata, mods, likelihoods, normalize_lib, labels, gmm_prior)
    links = _guidance_links(feature_links, mods, {m: mdata.mod[m].var_names for m in mods})
    adatas = {m: _model_input(mdata.mod[m], layers[m], labels) for m in mods}
    fit = {
        "max_epochs": max_epochs,
        "lr": lr,
        "batch_size": batch_size,
        "plan_kwargs": dict(plan_kwargs or {}),
    }
    model, z = _train(
        adatas,
        setup,
        links,
        int(seed),
        fit,
        dict(train_kwargs or {}),
        latent,
        verbose,
        {"n_latent": n_latent, **model_kwargs},
    )
    for m in mods:
        mdata.mod[m].obsm[key] = np.asarray(z[m], dtype=np.float32)
    return {
        "diagvi": model,
        "likelihoods": likelihoods,
        "layers": layers,
        "feature_links": links,
        "epochs": int(model.trainer.current_epoch),
    }


def _likelihoods_and_layers(
    mdata: MuData,
    mods: list[str],
    likelihoods: Mapping[str, str] | None,
    layers: Mapping[str, str | None] | None,
) -> tuple[dict[str, str], dict[str, str | None]]:
    """The given likelihoods and layers, completed by the guessed ones, and checked."""
    guessed_lik, guessed_layers = infer_likelihoods(mdata)
    guessed_lik = {m: "nb" if v == "bernoulli" else v for m, v in guessed_lik.items()}
    likelihoods = {**guessed_lik, **dict(likelihoods or {})}
    layers = {**guessed_layers, **dict(layers or {})}
    for m in mods:
        if likelihoods[m] not in DIAGVI_LIKELIHOODS:
            raise ValueError(
                f"DIAGVI has no likelihood {likelihoods[m]!r} (modality '{m}'); choose one of "
                f"{list(DIAGVI_LIKELIHOODS)}."
            )
        if layers[m] is not None and layers[m] not in mdata.mod[m].layers:
            raise KeyError(
                f"layer '{layers[m]}' is not in mdata['{m}'].layers ({list(mdata.mod[m].layers)})."
            )
    return likelihoods, layers


def _setup_arguments(
    mdata: MuData,
    mods: list[str],
    likelihoods: dict[str, str],
    normalize_lib: Mapping[str, bool] | None,
    groupby: str | None,
    gmm_prior: bool,
) -> dict[str, dict[str, Any]]:
    """Per modality, the arguments of ``DIAGVI.setup_anndata`` (labels: ``groupby``, checked)."""
    norm = {m: likelihoods[m] in _COUNT_LIKELIHOODS for m in mods}
    norm.update(dict(normalize_lib or {}))
    if groupby is not None:
        for m in mods:
            obs_column(mdata, m, groupby, "groupby", "DIAGVI's labels must be in every modality.")
    return {
        m: {
            "labels_key": _LABEL_COLUMN if groupby is not None else None,
            "likelihood": likelihoods[m],
            "normalize_lib": bool(norm[m]),
            "gmm_prior": gmm_prior,
            "unlabeled_category": _UNLABELED,
        }
        for m in mods
    }


def _guidance_links(
    feature_links: Any, mods: list[str], var_names: dict[str, pd.Index]
) -> pd.DataFrame:
    """The guidance graph's cross-modality pairs (see ``feature_links`` of :func:`fit_diagvi`)."""
    if isinstance(feature_links, str):
        if feature_links != "names":
            raise ValueError(
                f"feature_links must be 'names', None, a DataFrame, a dict or a sequence of "
                f"pairs; got {feature_links!r}."
            )
        return link_features(var_names[mods[0]], var_names[mods[1]], modalities=tuple(mods))
    if feature_links is None:
        return pd.DataFrame(columns=mods, dtype=str)
    return user_links(feature_links, mods, var_names)


def _train(
    adatas: dict[str, ad.AnnData],
    setup: dict[str, dict[str, Any]],
    links: pd.DataFrame,
    seed: int,
    fit: dict[str, Any],
    train_kwargs: dict[str, Any],
    latent: str,
    verbose: bool,
    model_kwargs: dict[str, Any],
) -> tuple[Any, dict[str, np.ndarray]]:
    """Set up, train and embed DIAGVI (quiet unless ``verbose``); the model and the latents.

    ``fit`` holds :func:`fit_diagvi`'s own training arguments, ``train_kwargs`` the user's
    further ones (a key in both is an error, as in a direct ``DIAGVI.train`` call).
    """
    import scvi
    from scvi.external import DIAGVI

    quiet = contextlib.nullcontext() if verbose else quiet_training()
    sink = io.StringIO()
    with quiet, contextlib.redirect_stdout(sys.stdout if verbose else sink):
        scvi.settings.seed = seed
        for m, adata in adatas.items():
            DIAGVI.setup_anndata(adata, **setup[m])
        graph = DIAGVI.construct_custom_guidance_graph(adatas, links)
        model = DIAGVI(adatas, guidance_graph=graph, **model_kwargs)
        if not verbose:
            callbacks = [*train_kwargs.get("callbacks", []), _quiet_callback()]
            train_kwargs = {**train_kwargs, "callbacks": callbacks}
        model.train(**fit, **train_kwargs)
        if latent == "mean":
            return model, _posterior_means(model, adatas)
        return model, model.get_latent_representation()


@register_learner(
    "diagvi",
    shared_space=True,
    description="DIAGVI (scvi-tools >= 1.4.3): guidance graph of name-matched features, "
    "Sinkhorn alignment, semi-supervised with the labels",
    availability=diagvi_unavailable,
)
def diagvi(mdata: MuData, key: str, *, groupby: str | None, seed: int, **kwargs: Any):  # noqa: D417 (parameters from LEARNER_DOCS)
    """DIAGVI, the scvi-tools peer (see :func:`fit_diagvi` for the keyword arguments).

    Parameters
    ----------
    %(learner_args)s
    **kwargs
        :func:`fit_diagvi`'s options, e.g. ``max_epochs``, ``n_latent``, ``layers``,
        ``likelihoods``, ``feature_links``.

    Returns
    -------
    The dict of :func:`fit_diagvi`. The model goes under ``"diagvi"``, not ``"model"``: its
    decoder translation is not scored by the benchmark.

    Examples
    --------
    >>> gs.benchmark.run(mdata, learners=["diagvi"], aligners=["leot"], groupby="celltype",
    ...                  learner_kwargs={"diagvi": {"max_epochs": 200}})  # doctest: +SKIP

    """
    return fit_diagvi(mdata, key, groupby=groupby, seed=seed, **kwargs)
