"""Torch building blocks of GROOVE: encoders/decoders, likelihoods, GroupCLIP, the VAE module."""

from ._clip import (
    group_clip_loss,
    prototype_directions,
    pseudo_pair_indices,
    similarity_matrix,
)
from ._contrastive import CONTRASTIVE
from ._likelihoods import LIKELIHOODS, LikelihoodHead, get_likelihood
from ._pseudo import distrust_labels, pseudo_labels
from ._vae import GROOVEVAE
from ._within import within_group_loss

__all__ = [
    "CONTRASTIVE",
    "GROOVEVAE",
    "LIKELIHOODS",
    "LikelihoodHead",
    "distrust_labels",
    "get_likelihood",
    "prototype_directions",
    "pseudo_labels",
    "group_clip_loss",
    "pseudo_pair_indices",
    "similarity_matrix",
    "within_group_loss",
]
