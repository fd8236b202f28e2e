"""The GROOVE torch module: per-modality VAEs sharing one latent space."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import permutations
from typing import Any

import torch
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from scvi.nn import Encoder, FCLayers
from torch import nn
from torch.distributions import Normal, kl_divergence

from .._checks import check_choice, check_number
from .._constants import batch_key, labels_key, x_key
from ._clip import _POSITIVES, DEFAULT_BETA, DEFAULT_TEMPERATURE, SIMILARITIES
from ._contrastive import CONTRASTIVE, default_positives
from ._likelihoods import get_likelihood
from ._pseudo import distrust_labels, pseudo_labels
from ._within import (
    DEFAULT_GAMMA,
    DEFAULT_WITHIN_EPSILON,
    DEFAULT_WITHIN_GROUP,
    WITHIN_GROUP_TERMS,
    within_group_objective,
)


class _Decoder(nn.Module):
    def __init__(
        self,
        n_latent: int,
        n_output: int,
        likelihood: str,
        n_batch: int,
        n_hidden: int,
        n_layers: int,
        use_batch_norm: bool,
        use_layer_norm: bool,
    ):
        super().__init__()
        self.n_batch = n_batch
        self.body = FCLayers(
            n_in=n_latent,
            n_out=n_hidden,
            n_cat_list=[n_batch] if n_batch > 1 else None,
            n_layers=n_layers,
            n_hidden=n_hidden,
            dropout_rate=0.0,
            use_batch_norm=use_batch_norm,
            use_layer_norm=use_layer_norm,
        )
        self.head = get_likelihood(likelihood)(n_hidden, n_output)

    def forward(self, z, library, batch_index):
        cats = (batch_index,) if self.n_batch > 1 else ()
        return self.head(self.body(z, *cats), library)


def check_module_options(
    *,
    contrastive: Any,
    positives: Any,
    similarity: Any,
    within_group: Any,
    gamma: Any,
    pseudo_label_threshold: Any = None,
    distrust_threshold: Any = None,
) -> None:
    """Check the loss options of :class:`GROOVEVAE` (also run by ``GROOVE(...)``).

    Errors name the option, the value and what is valid; the names come from the registries.

    Examples
    --------
    >>> check_module_options(contrastive="groupclip", positives=None, similarity="cosine",
    ...                      within_group="ot_clip", gamma=3.0)
    >>> check_module_options(contrastive="groupclip", positives=None, similarity="dot",
    ...                      within_group=None, gamma=1.0)
    Traceback (most recent call last):
    ValueError: similarity must be one of 'cosine', 'neg_sqeuclidean', got 'dot'.

    """
    check_choice("contrastive", contrastive, tuple(CONTRASTIVE), allow_none=True)
    check_choice("positives", positives, _POSITIVES, allow_none=True)
    check_choice("similarity", similarity, tuple(SIMILARITIES), allow_none=False)
    check_choice("within_group", within_group, tuple(WITHIN_GROUP_TERMS), allow_none=True)
    check_number("gamma", gamma, 0.0)
    for name, value in (
        ("pseudo_label_threshold", pseudo_label_threshold),
        ("distrust_threshold", distrust_threshold),
    ):
        check_number(name, value, 0.0, 1.0, low_open=True, allow_none=True)


class GROOVEVAE(BaseModuleClass):
    """Per-modality encoders/decoders, GroupCLIP on latent means and on-the-fly backtranslation.

    Parameters
    ----------
    n_input
        Number of features per modality.
    likelihoods
        Likelihood name per modality (see :data:`groove_sc.module.LIKELIHOODS`).
    n_batch
        Number of batch categories per modality (1 = no batch covariate).
    library_log_means
        Mean log library size per count modality; sets the library of backtranslated cells.
    n_latent, n_hidden, n_layers, dropout_rate, use_batch_norm, use_layer_norm
        Network sizes and regularisation.
    contrastive
        ``"groupclip"``, ``"clip"``, ``"supcon"`` or ``None``.
    positives, similarity, temperature, learn_temperature
        GroupCLIP options (see :func:`groove_sc.module.group_clip_loss`); ``positives=None``:
        ``"mean_log"`` for ``contrastive="supcon"`` (SupCon's L_out), else ``"sum_in_log"``.
    backtranslation
        Whether to add the on-the-fly backtranslation loss.
    alpha, beta
        Weights of backtranslation and of the contrastive term.
    within_group
        Within-group cross-modal term (``"sinkhorn"``, ``"mmd"``, ``"ot_clip"``; see
        :func:`groove_sc.module.within_group_loss`) or ``None``.
    gamma
        Weight of the within-group term.
    within_epsilon
        Its entropic regularisation, relative to the mean same-group squared distance.
    pseudo_label_threshold
        When set, unlabeled cells of a batch whose nearest group prototype of the other
        modalities has a softmax confidence of at least this value take that group in the
        contrastive and within-group terms (see :func:`groove_sc.module.pseudo_labels`).
    distrust_threshold
        When set, labeled cells of a batch whose latent gives *another* group of the other
        modalities at least this softmax confidence leave the contrastive and within-group
        terms for that batch (see :func:`groove_sc.module.distrust_labels`).

    Examples
    --------
    >>> vae = GROOVEVAE({"rna": 100, "prot": 20}, {"rna": "nb", "prot": "normal"})

    """

    def __init__(
        self,
        n_input: dict[str, int],
        likelihoods: dict[str, str],
        n_batch: dict[str, int] | None = None,
        library_log_means: dict[str, float] | None = None,
        n_latent: int = 32,
        n_hidden: int = 128,
        n_layers: int = 1,
        dropout_rate: float = 0.1,
        use_batch_norm: bool = True,
        use_layer_norm: bool = False,
        contrastive: str | None = "groupclip",
        positives: str | None = None,
        similarity: str = "cosine",
        temperature: float = DEFAULT_TEMPERATURE,
        learn_temperature: bool = False,
        backtranslation: bool = True,
        alpha: float = 1.0,
        beta: float = DEFAULT_BETA,
        within_group: str | None = DEFAULT_WITHIN_GROUP,
        gamma: float = DEFAULT_GAMMA,
        within_epsilon: float = DEFAULT_WITHIN_EPSILON,
        pseudo_label_threshold: float | None = None,
        distrust_threshold: float | None = None,
    ):
        super().__init__()
        check_module_options(
            contrastive=contrastive,
            positives=positives,
            similarity=similarity,
            within_group=within_group,
            gamma=gamma,
            pseudo_label_threshold=pseudo_label_threshold,
            distrust_threshold=distrust_threshold,
        )
        self.modalities: Sequence[str] = list(n_input)
        n_batch = n_batch or {}
        library_log_means = library_log_means or {}
        self.likelihoods = dict(likelihoods)
        self.n_batch = {m: int(n_batch.get(m, 1)) for m in self.modalities}
        self.n_latent = n_latent
        if positives is None:
            positives = default_positives(contrastive)
        self.contrastive, self.positives, self.similarity = contrastive, positives, similarity
        self.backtranslation, self.within_group = backtranslation, within_group
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.within_epsilon = within_epsilon
        self.pseudo_label_threshold = pseudo_label_threshold
        self.distrust_threshold = distrust_threshold
        self.encoders = nn.ModuleDict()
        self.decoders = nn.ModuleDict()
        layers = dict(
            n_hidden=n_hidden,
            n_layers=n_layers,
            use_batch_norm=use_batch_norm,
            use_layer_norm=use_layer_norm,
        )
        for m in self.modalities:
            nb = self.n_batch[m]
            self.encoders[m] = Encoder(
                n_input[m],
                n_latent,
                n_cat_list=[nb] if nb > 1 else None,
                dropout_rate=dropout_rate,
                return_dist=True,
                **layers,
            )
            self.decoders[m] = _Decoder(n_latent, n_input[m], likelihoods[m], nb, **layers)
        self.register_buffer(
            "library_log_means",
            torch.tensor([float(library_log_means.get(m, 0.0)) for m in self.modalities]),
        )
        log_t = torch.tensor(math.log(temperature))
        if learn_temperature:
            self.log_temperature = nn.Parameter(log_t)
        else:
            self.register_buffer("log_temperature", log_t)

    # ------------------------------------------------------------------ helpers
    @property
    def temperature(self) -> torch.Tensor:
        """Current GroupCLIP temperature."""
        return self.log_temperature.exp()

    def _head(self, m: str):
        return self.decoders[m].head

    def _batch(self, tensors: dict, m: str, n: int, device) -> torch.Tensor:
        key = batch_key(m)
        if key in tensors:
            return tensors[key].long().reshape(-1, 1)
        return torch.zeros(n, 1, dtype=torch.long, device=device)

    def encode(self, m: str, x: torch.Tensor, batch_index: torch.Tensor):
        """Posterior ``q(z | x)`` and a reparameterised sample for modality ``m``."""
        cats = (batch_index,) if self.n_batch[m] > 1 else ()
        return self.encoders[m](self._head(m).encoder_input(x), *cats)

    def decode(self, m: str, z: torch.Tensor, library: torch.Tensor, batch_index: torch.Tensor):
        """Likelihood ``p(x | z)`` of modality ``m``."""
        return self.decoders[m](z, library, batch_index)

    def default_library(self, m: str, n: int, device) -> torch.Tensor:
        """Log library for cells translated into modality ``m`` (the modality's mean)."""
        i = self.modalities.index(m)
        return self.library_log_means[i].expand(n, 1).to(device)

    # ------------------------------------------------------- scvi module protocol
    def _get_inference_input(self, tensors, **kwargs):
        present = [m for m in self.modalities if x_key(m) in tensors]
        x = {m: tensors[x_key(m)] for m in present}
        batch = {m: self._batch(tensors, m, x[m].shape[0], x[m].device) for m in present}
        return {"x": x, "batch_index": batch}

    @auto_move_data
    def inference(self, x: dict, batch_index: dict, n_samples: int = 1):
        """Encode every modality present in ``x``."""
        qz, z, library = {}, {}, {}
        for m, xm in x.items():
            qz[m], z[m] = self.encode(m, xm, batch_index[m])
            library[m] = self._head(m).log_library(xm)
        return {"qz": qz, "z": z, "library": library, "batch_index": batch_index}

    def _get_generative_input(self, tensors, inference_outputs, **kwargs):
        return {
            "z": inference_outputs["z"],
            "library": inference_outputs["library"],
            "batch_index": inference_outputs["batch_index"],
        }

    @auto_move_data
    def generative(self, z: dict, library: dict, batch_index: dict):
        """Decode every modality with its own decoder."""
        return {"px": {m: self.decode(m, z[m], library[m], batch_index[m]) for m in z}}

    def translate(self, source: str, target: str, z: torch.Tensor) -> torch.Tensor:
        """Expected target-modality values decoded from latents ``z`` (target's mean library)."""
        n = z.shape[0]
        lib = self.default_library(target, n, z.device)
        b = torch.zeros(n, 1, dtype=torch.long, device=z.device)
        return self.decode(target, z, lib, b).mean

    def backtranslation_loss(self, tensors, inference_outputs) -> torch.Tensor:
        """x_a -> E_a -> D_b (no gradient) -> E_b -> D_a, scored under a's likelihood."""
        qz, lib, bidx = (
            inference_outputs["qz"],
            inference_outputs["library"],
            inference_outputs["batch_index"],
        )
        losses = []
        for a, b in permutations(list(qz), 2):
            x_a = tensors[x_key(a)]
            with torch.no_grad():
                x_b = self.translate(a, b, qz[a].loc)
            zero_b = torch.zeros(x_b.shape[0], 1, dtype=torch.long, device=x_b.device)
            _, z_back = self.encode(b, x_b, zero_b)
            px = self.decode(a, z_back, lib[a], bidx[a])
            losses.append(-px.log_prob(x_a).sum(-1).mean())
        return torch.stack(losses).sum()

    def batch_labels(self, tensors, inference_outputs) -> dict[str, torch.Tensor]:
        """Group labels of the batch's cells: distrusted labels left out, then pseudo-labels."""
        qz = inference_outputs["qz"]
        labels = {m: tensors[labels_key(m)].reshape(-1).long() for m in qz}
        if len(qz) < 2:
            return labels
        z = {m: q.loc for m, q in qz.items()}
        kw = {"temperature": self.temperature, "similarity": self.similarity}
        if self.distrust_threshold is not None:
            labels = distrust_labels(z, labels, self.distrust_threshold, **kw)
        if self.pseudo_label_threshold is not None:
            labels = pseudo_labels(z, labels, self.pseudo_label_threshold, **kw)
        return labels

    def _means_and_labels(self, tensors, inference_outputs, labels) -> tuple[dict, dict]:
        """Latent means per modality and the batch's labels (computed when not given)."""
        if labels is None:
            labels = self.batch_labels(tensors, inference_outputs)
        return {m: q.loc for m, q in inference_outputs["qz"].items()}, labels

    def contrastive_loss(self, tensors, inference_outputs, labels=None) -> torch.Tensor:
        """The configured contrastive objective on latent means."""
        means, labels = self._means_and_labels(tensors, inference_outputs, labels)
        return CONTRASTIVE[self.contrastive](
            means,
            labels,
            temperature=self.temperature,
            positives=self.positives,
            similarity=self.similarity,
        )

    def within_group_loss(self, tensors, inference_outputs, labels=None) -> torch.Tensor:
        """The configured within-group cross-modal term on latent means."""
        means, labels = self._means_and_labels(tensors, inference_outputs, labels)
        return within_group_objective(
            means,
            labels,
            kind=self.within_group,
            epsilon=self.within_epsilon,
            temperature=self.temperature,
            similarity=self.similarity,
        )

    def loss(self, tensors, inference_outputs, generative_outputs, kl_weight: float = 1.0):
        """Reconstruction + KL + alpha * backtranslation + beta * contrastive + gamma * within."""
        qz, px = inference_outputs["qz"], generative_outputs["px"]
        recon, kl, extra = {}, {}, {}
        total = 0.0
        n_obs = 0
        for m in qz:
            rec_m = -px[m].log_prob(tensors[x_key(m)]).sum(-1)
            kl_m = kl_divergence(qz[m], Normal(torch.zeros_like(qz[m].loc), 1.0)).sum(-1)
            recon[f"reconstruction_{m}"] = rec_m.sum()
            kl[f"kl_{m}"] = kl_m.sum()
            extra[f"reconstruction_{m}"] = rec_m.mean().detach()
            extra[f"kl_{m}"] = kl_m.mean().detach()
            total = total + rec_m.mean() + kl_weight * kl_m.mean()
            n_obs += rec_m.shape[0]
        ref = next(iter(qz.values())).loc
        bt = ref.new_zeros(())
        if self.backtranslation and self.alpha > 0 and len(qz) > 1:
            bt = self.backtranslation_loss(tensors, inference_outputs)
            total = total + self.alpha * bt
        labels = self.batch_labels(tensors, inference_outputs)
        cl = ref.new_zeros(())
        if self.contrastive is not None and self.beta > 0 and len(qz) > 1:
            cl = self.contrastive_loss(tensors, inference_outputs, labels)
            total = total + self.beta * cl
        wg = ref.new_zeros(())
        if self.within_group is not None and self.gamma > 0 and len(qz) > 1:
            wg = self.within_group_loss(tensors, inference_outputs, labels)
            total = total + self.gamma * wg
        extra["within_group"] = wg.detach()
        extra["backtranslation"] = bt.detach()
        extra["contrastive"] = cl.detach()
        extra["temperature"] = self.temperature.detach()
        return LossOutput(
            loss=total,
            reconstruction_loss=recon,
            kl_local=kl,
            n_obs_minibatch=n_obs,
            extra_metrics=extra,
        )
