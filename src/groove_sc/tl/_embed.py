"""``tl.embed``: write a trained model's latent space into the MuData."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mudata import MuData

from .._constants import DEFAULT_REP
from .._mudata import set_union_obsm

if TYPE_CHECKING:
    from ..model import GROOVE


def embed(
    mdata: MuData,
    model: GROOVE,
    *,
    key_added: str = DEFAULT_REP,
    batch_size: int | None = None,
) -> None:
    """Embed every registered modality with a trained model.

    Writes ``mdata[m].obsm[key_added]`` for each modality the model was set up with, the joint
    ``mdata.obsm[key_added]`` over the union of cells (NaN rows for cells of unregistered
    modalities) and a record of the call in ``mdata.uns[key_added]``: ``model``, ``modalities``,
    ``n_latent``, and the model's label column (``groupby``), GroupCLIP ``temperature`` and
    ``similarity``, which :func:`groove_sc.tl.group_posterior` takes as its defaults.

    Parameters
    ----------
    mdata
        MuData with the registered modalities (the training object, or a query with the same
        features).
    model
        A trained :class:`groove_sc.model.GROOVE`.
    key_added
        Key under which the latent is stored.
    batch_size
        Cells per minibatch during inference (model default when ``None``).

    Examples
    --------
    >>> gs.model.GROOVE.setup_mudata(mdata, layers={"rna": "counts"})
    >>> model = gs.model.GROOVE(mdata, n_latent=4, n_hidden=16)
    >>> model.train(max_epochs=1, enable_progress_bar=False)
    >>> gs.tl.embed(mdata, model, key_added="X_groove")
    >>> mdata["rna"].obsm["X_groove"].shape, mdata.obsm["X_groove"].shape
    ((67, 4), (134, 4))

    """
    latents = model.get_latent_representation(mdata=mdata, modality=None, batch_size=batch_size)
    for mod, z in latents.items():
        mdata.mod[mod].obsm[key_added] = z
    set_union_obsm(mdata, key_added, latents)
    meta: dict[str, Any] = {
        "model": type(model).__name__,
        "modalities": list(latents),
        "n_latent": int(next(iter(latents.values())).shape[1]),
        # what tl.group_posterior needs to use the model's own group softmax
        "groupby": str(model._setup_args["perturbation_key"]),
        "temperature": float(model.module.temperature.detach().cpu()),
        "similarity": str(model.module.similarity),
    }
    mdata.uns[key_added] = meta
