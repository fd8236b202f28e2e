"""GROOVE learners: the full model, its ablations and the contrastive baselines.

Every variant is one entry of :data:`GROOVE_VARIANTS` (model options), registered as a learner
by the loop at the bottom; a new variant is a new entry.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import Any

from mudata import MuData

from .._constants import COUNTS_LAYER, LIKELIHOOD_KINDS
from .._counts import guess_likelihood
from .._docs import doc_params
from ..tl._embed import embed
from ..tl._posterior import group_posterior
from ._registry import LEARNER_DOCS, register_learner

#: Learner name -> (GROOVE options, description). Backtranslation stays on in the contrastive
#: baselines so that they differ from ``groove`` in the contrastive term only.
GROOVE_VARIANTS: dict[str, tuple[dict[str, Any], str]] = {
    "groove": (
        {"contrastive": "groupclip", "backtranslation": True},
        "GROOVE: GroupCLIP + backtranslation, aligned with tl.align's defaults (the "
        "group-posterior space for linear aligners, the latent for GW/COOT)",
    ),
    "groove_posterior": (
        {"contrastive": "groupclip", "backtranslation": True, "posterior": True},
        "GROOVE in its group-posterior space for every aligner (tl.group_posterior)",
    ),
    "groove_no_groupclip": (
        {"contrastive": None, "backtranslation": True},
        "GROOVE ablation: contrastive term off (backtranslation only)",
    ),
    "groove_no_within": (
        {"contrastive": "groupclip", "backtranslation": True, "within_group": None},
        "GROOVE ablation: within-group term off (GroupCLIP + backtranslation only)",
    ),
    "groove_no_backtranslation": (
        {"contrastive": "groupclip", "backtranslation": False},
        "GROOVE ablation: backtranslation off (GroupCLIP only)",
    ),
    "clip": (
        {"contrastive": "clip", "backtranslation": True},
        "CLIP on random same-group pseudo-pairs instead of GroupCLIP",
    ),
    "supcon": (
        {"contrastive": "supcon", "backtranslation": True},
        "SupCon over the pooled modalities instead of GroupCLIP",
    ),
}

_NOISY_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "scvi", "pytorch_lightning")


@contextlib.contextmanager
def quiet_training() -> Iterator[None]:
    """Silence Lightning/scvi-tools banners and warnings during a fit.

    Examples
    --------
    >>> import logging
    >>> with quiet_training():
    ...     logging.getLogger("lightning").isEnabledFor(logging.WARNING)
    False

    """
    levels = {}
    for name in _NOISY_LOGGERS:
        logger = logging.getLogger(name)
        levels[name] = logger.level
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def infer_likelihoods(mdata: MuData) -> tuple[dict[str, str], dict[str, str | None]]:
    """Likelihood and data layer per modality, guessed from the data.

    A modality with non-negative integer values in ``layers["counts"]`` (or in ``.X`` when
    there is no such layer) is modelled as counts (``"nb"``), or ``"bernoulli"`` when they are
    all 0/1; anything else as ``"normal"`` on ``.X``.

    Returns
    -------
    ``(likelihoods, layers)``.

    Examples
    --------
    >>> infer_likelihoods(mdata)  # doctest: +SKIP
    ({'rna': 'nb', 'prot': 'normal'}, {'rna': 'counts', 'prot': None})

    """
    likelihoods, layers = {}, {}
    for m, adata in mdata.mod.items():
        layer = COUNTS_LAYER if COUNTS_LAYER in adata.layers else None
        likelihoods[m] = guess_likelihood(adata.layers[layer] if layer else adata.X, binary=True)
        layers[m] = layer if LIKELIHOOD_KINDS[likelihoods[m]] != "continuous" else None
    return likelihoods, layers


@doc_params(**LEARNER_DOCS)
def fit_groove(  # noqa: D417 (parameters from LEARNER_DOCS)
    mdata: MuData,
    key: str,
    *,
    groupby: str | None,
    seed: int,
    contrastive: str | None = "groupclip",
    backtranslation: bool = True,
    n_latent: int = 16,
    max_epochs: int | None = None,
    likelihoods: dict[str, str] | None = None,
    layers: dict[str, str | None] | None = None,
    train_kwargs: dict[str, Any] | None = None,
    posterior: bool = False,
    **model_kwargs: Any,
) -> dict[str, Any]:
    """Set up, train and embed a :class:`groove_sc.model.GROOVE` on every modality of ``mdata``.

    Parameters
    ----------
    mdata
        MuData (registered here with ``perturbation_key=groupby``).
    key
        Key written by :func:`groove_sc.tl.embed` (the latent posterior means and their record
        in ``uns[key]``, so that :func:`groove_sc.tl.align` treats them as a user's GROOVE
        latent), or with ``posterior=True`` their group posterior (and its record).
    %(groupby)s
    %(seed)s
    contrastive, backtranslation
        GROOVE options (set by the variant).
    n_latent
        Latent dimensions.
    max_epochs
        Training epochs (``None``: the model's default).
    likelihoods, layers
        Per modality; guessed by :func:`infer_likelihoods` when not given.
    train_kwargs
        Passed to :meth:`groove_sc.model.GROOVE.train`.
    posterior
        Write the cells' group posterior (:func:`groove_sc.tl.group_posterior` of the latent,
        with the model's temperature and similarity) instead of the latent.
    **model_kwargs
        Passed to :class:`groove_sc.model.GROOVE` (``beta``, ``n_hidden``...).

    Returns
    -------
    ``{"model": GROOVE, "likelihoods": {...}}``; the model's decoders impute.

    Examples
    --------
    >>> info = fit_groove(mdata, "X_groove", groupby="perturbation", seed=0, max_epochs=1,
    ...                   n_latent=4, n_hidden=16)
    >>> info["likelihoods"], mdata["prot"].obsm["X_groove"].shape[1]
    ({'rna': 'nb', 'prot': 'normal'}, 4)

    """
    import scvi

    from ..model import GROOVE

    if groupby is None:
        raise ValueError("GROOVE learners need labels; pass groupby=<label column>.")
    guessed_lik, guessed_layers = infer_likelihoods(mdata)
    likelihoods = {**guessed_lik, **(likelihoods or {})}
    layers = {**guessed_layers, **(layers or {})}
    GROOVE.setup_mudata(
        mdata,
        perturbation_key=groupby,
        modalities=list(mdata.mod),
        layers={m: v for m, v in layers.items() if v is not None},
        likelihoods=likelihoods,
    )
    with quiet_training():
        # the weights' initialisation draws from the global generators: seed them too, so that
        # the learner's ``seed`` fixes the fit also when it is called outside the benchmark
        scvi.settings.seed = seed
        model = GROOVE(
            mdata,
            n_latent=n_latent,
            contrastive=contrastive,
            backtranslation=backtranslation,
            **model_kwargs,
        )
        kwargs = {"enable_progress_bar": False, **(train_kwargs or {})}
        model.train(max_epochs=max_epochs, seed=seed, **kwargs)
        # with tl.embed's record, tl.align treats the latent as a user's GROOVE latent
        embed(mdata, model, key_added=key)
    if posterior:  # the latent's group posterior replaces it (and its record) under ``key``
        tmp = f"{key}_posterior"
        group_posterior(mdata, key, key_added=tmp)
        for m in mdata.uns[key]["modalities"]:
            mdata.mod[m].obsm[key] = mdata.mod[m].obsm.pop(tmp)
        mdata.obsm[key] = mdata.obsm.pop(tmp)
        mdata.uns[key] = mdata.uns.pop(tmp)
    return {"model": model, "likelihoods": likelihoods}


def _variant(options: dict[str, Any], description: str):
    def learner(mdata: MuData, key: str, *, groupby: str | None, seed: int, **kwargs: Any):
        return fit_groove(mdata, key, groupby=groupby, seed=seed, **{**options, **kwargs})

    learner.__doc__ = f"{description} (see :func:`fit_groove` for the keyword arguments)."
    return learner


for _name, (_options, _description) in GROOVE_VARIANTS.items():
    register_learner(_name, shared_space=True, description=_description)(
        _variant(_options, _description)
    )
