"""Propensity-score learner (Xi et al. 2024): per-modality classifiers of the perturbation.

Each modality gets its own small MLP that predicts the perturbation from the cell's features.
Because the classes are the same in every modality, the predicted class probabilities (the
propensity scores) of cells of different modalities live in one shared space, which linear OT
can align.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from mudata import MuData
from torch import nn

from .._mudata import obs_column
from ._registry import register_learner
from ._views import dense

Output = Literal["proba", "log_proba"]


def _shared_classes(mdata: MuData, groupby: str) -> list[str]:
    sets = []
    for m in mdata.mod:
        hint = "the propensity learner needs the labels in every modality."
        col = obs_column(mdata, m, groupby, "groupby", hint)
        sets.append(set(col[col.notna()].astype(str)))
    classes = sorted(set.intersection(*sets))
    if len(classes) < 2:
        raise ValueError(
            f"The propensity learner needs at least two groups of obs['{groupby}'] present in "
            f"every modality, found {classes}."
        )
    return classes


def fit_classifier(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    seed: int,
    n_hidden: int = 64,
    dropout: float = 0.1,
    max_epochs: int = 100,
    lr: float = 3e-3,
    weight_decay: float = 1e-3,
    batch_size: int = 128,
    validation_fraction: float = 0.15,
    patience: int = 5,
) -> nn.Module:
    """Train an MLP classifier with early stopping on a held-out split of the labelled cells.

    Parameters
    ----------
    x
        ``(n_cells, n_features)`` standardised features.
    y
        Class index per cell, ``-1`` for cells not used in training.
    n_classes
        Number of classes.
    seed
        Seed of the initialisation, the split and the batch order.
    n_hidden, dropout
        One hidden layer of ``n_hidden`` ReLU units with dropout.
    max_epochs, lr, weight_decay, batch_size
        Adam optimisation.
    validation_fraction, patience
        Early stopping on the cross-entropy of a random split of the labelled cells; the
        weights of the best epoch are kept.

    Returns
    -------
    The trained module (eval mode), mapping features to logits.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(40, 3))
    >>> net = fit_classifier(x, (x[:, 0] > 0).astype(int), 2, seed=0, max_epochs=2)
    >>> net(torch.as_tensor(x, dtype=torch.float32)).shape
    torch.Size([40, 2])

    """
    gen = torch.Generator().manual_seed(int(seed))
    rng = np.random.default_rng(seed)
    torch.manual_seed(int(seed))
    net = nn.Sequential(
        nn.Linear(x.shape[1], n_hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(n_hidden, n_classes),
    )
    labelled = np.flatnonzero(y >= 0)
    rng.shuffle(labelled)
    n_val = int(round(validation_fraction * len(labelled)))
    val, train = labelled[:n_val], labelled[n_val:]
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    best, best_state, waited = np.inf, None, 0
    for _ in range(max_epochs):
        net.train()
        order = torch.as_tensor(train)[torch.randperm(len(train), generator=gen)]
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            opt.zero_grad()
            loss_fn(net(xt[idx]), yt[idx]).backward()
            opt.step()
        if n_val == 0:
            continue
        net.eval()
        with torch.no_grad():
            v = float(loss_fn(net(xt[val]), yt[val]))
        if v < best - 1e-4:
            best, waited = v, 0
            best_state = {k: t.clone() for k, t in net.state_dict().items()}
        else:
            waited += 1
            if waited >= patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    return net.eval()


@register_learner(
    "propensity",
    shared_space=True,
    description="propensity scores (Xi et al. 2024): per-modality MLP classifier of the label",
)
def propensity(  # noqa: D417 (parameters from LEARNER_DOCS)
    mdata: MuData,
    key: str,
    *,
    groupby: str | None,
    seed: int,
    output: Output = "log_proba",
    **fit_kwargs: Any,
) -> dict[str, Any]:
    """Per-modality perturbation classifiers; their predicted probabilities are the shared space.

    For each modality, features of ``.X`` are standardised and an MLP (one hidden layer) is
    trained to predict ``obs[groupby]`` over the groups present in every modality (cells of
    other groups and unlabelled cells are not trained on), with early stopping on a held-out
    split. Every cell is then embedded by its predicted class distribution.

    Parameters
    ----------
    %(learner_args)s
    output
        ``"log_proba"`` (default; log-probabilities, which keep the within-group variation a
        confident classifier squeezes against 0 or 1) or ``"proba"`` (the softmax itself, as
        in Xi et al. 2024).
    **fit_kwargs
        Passed to :func:`fit_classifier` (``n_hidden``, ``max_epochs``, ``lr``...).

    Returns
    -------
    ``{"classes": [...], "train_accuracy": {modality: float}}``.

    Examples
    --------
    >>> info = propensity(mdata, "X_propensity", groupby="perturbation", seed=0, max_epochs=2)
    >>> info["classes"], mdata["rna"].obsm["X_propensity"].shape[1]
    (['control', 'pert0', 'pert1', 'pert2', 'pert3'], 5)

    """
    if groupby is None:
        raise ValueError("The propensity learner needs labels; pass groupby=<label column>.")
    if output not in ("proba", "log_proba"):
        raise ValueError(f"output must be 'proba' or 'log_proba', got {output!r}.")
    classes = _shared_classes(mdata, groupby)
    lookup = pd.Index(classes)
    accuracy = {}
    for i, (m, adata) in enumerate(mdata.mod.items()):
        x = dense(adata.X)
        sd = x.std(axis=0)
        x = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
        col = adata.obs[groupby]
        y = np.where(col.notna(), lookup.get_indexer(col.astype(str)), -1)
        net = fit_classifier(x, y, len(classes), seed=seed + 7919 * i, **fit_kwargs)
        with torch.no_grad():
            logp = torch.log_softmax(net(torch.as_tensor(x, dtype=torch.float32)), dim=1)
        logp = logp.numpy()
        adata.obsm[key] = (logp if output == "log_proba" else np.exp(logp)).astype(np.float32)
        ok = y >= 0
        accuracy[m] = float((logp[ok].argmax(axis=1) == y[ok]).mean()) if ok.any() else np.nan
    return {"classes": classes, "train_accuracy": accuracy}
