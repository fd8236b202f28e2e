"""Observation likelihoods: one registry, one decoder head class per likelihood.

A head maps the decoder's hidden state (and, for counts, the log library size) to a
:class:`torch.distributions.Distribution` with ``log_prob`` and ``mean``. New likelihoods are
added by registering a class in :data:`LIKELIHOODS`.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from scvi.distributions import NegativeBinomial, ZeroInflatedNegativeBinomial
from torch import nn
from torch.distributions import Bernoulli, Normal, Poisson


class LikelihoodHead(nn.Module):
    """Base class: ``forward(h, library) -> Distribution``.

    Attributes
    ----------
    kind
        The kind of data modelled: ``"count"``, ``"continuous"`` or ``"binary"`` (the values of
        :data:`groove_sc._constants.LIKELIHOOD_KINDS`, which the simulator reads). Subclasses
        set it; ``is_count`` follows from it.
    is_count
        Whether observations are non-negative counts (library size from the data, log1p input).

    """

    kind: ClassVar[str] = "continuous"
    is_count: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "is_count" in cls.__dict__ and "kind" not in cls.__dict__:  # set the older way
            cls.kind = "count" if cls.is_count else cls.kind
        cls.is_count = cls.kind == "count"

    def __init__(self, n_hidden: int, n_output: int):
        super().__init__()
        self.n_output = n_output

    @staticmethod
    def encoder_input(x: torch.Tensor) -> torch.Tensor:
        """Transformation applied to observations before the encoder."""
        return x

    @staticmethod
    def log_library(x: torch.Tensor) -> torch.Tensor:
        """Per-cell log library size ``(n, 1)`` (zeros where the likelihood has none)."""
        return x.new_zeros(x.shape[0], 1)


class _CountHead(LikelihoodHead):
    kind = "count"

    def __init__(self, n_hidden: int, n_output: int):
        super().__init__(n_hidden, n_output)
        self.scale = nn.Sequential(nn.Linear(n_hidden, n_output), nn.Softmax(dim=-1))

    @staticmethod
    def encoder_input(x: torch.Tensor) -> torch.Tensor:
        return torch.log1p(x)

    @staticmethod
    def log_library(x: torch.Tensor) -> torch.Tensor:
        return torch.log(x.sum(dim=1, keepdim=True).clamp(min=1.0))

    def rate(self, h: torch.Tensor, library: torch.Tensor) -> torch.Tensor:
        return self.scale(h) * torch.exp(library)


class NBHead(_CountHead):
    """Negative binomial with gene-wise inverse dispersion (scVI's ``gene_likelihood="nb"``)."""

    def __init__(self, n_hidden: int, n_output: int):
        super().__init__(n_hidden, n_output)
        self.log_theta = nn.Parameter(torch.randn(n_output) * 0.1)

    def forward(self, h: torch.Tensor, library: torch.Tensor):
        return NegativeBinomial(mu=self.rate(h, library), theta=torch.exp(self.log_theta))


class ZINBHead(NBHead):
    """Zero-inflated negative binomial (per-cell, per-gene dropout logits)."""

    def __init__(self, n_hidden: int, n_output: int):
        super().__init__(n_hidden, n_output)
        self.dropout = nn.Linear(n_hidden, n_output)

    def forward(self, h: torch.Tensor, library: torch.Tensor):
        return ZeroInflatedNegativeBinomial(
            mu=self.rate(h, library),
            theta=torch.exp(self.log_theta),
            zi_logits=self.dropout(h),
        )


class PoissonHead(_CountHead):
    """Poisson counts with library-size-scaled rates."""

    def forward(self, h: torch.Tensor, library: torch.Tensor):
        return Poisson(self.rate(h, library) + 1e-8)


class NormalHead(LikelihoodHead):
    """Gaussian for continuous features (CLR protein, image embeddings); feature-wise variance."""

    def __init__(self, n_hidden: int, n_output: int):
        super().__init__(n_hidden, n_output)
        self.loc = nn.Linear(n_hidden, n_output)
        self.log_scale = nn.Parameter(torch.zeros(n_output))

    def forward(self, h: torch.Tensor, library: torch.Tensor):
        return Normal(self.loc(h), torch.exp(self.log_scale).clamp(min=1e-4))


class BernoulliHead(LikelihoodHead):
    """Bernoulli for binarised features (ATAC peaks)."""

    kind = "binary"

    def __init__(self, n_hidden: int, n_output: int):
        super().__init__(n_hidden, n_output)
        self.logits = nn.Linear(n_hidden, n_output)

    def forward(self, h: torch.Tensor, library: torch.Tensor):
        return Bernoulli(logits=self.logits(h))


LIKELIHOODS: dict[str, type[LikelihoodHead]] = {
    "nb": NBHead,
    "zinb": ZINBHead,
    "poisson": PoissonHead,
    "normal": NormalHead,
    "bernoulli": BernoulliHead,
}
"""Registry of likelihood names to decoder head classes."""


def get_likelihood(name: str, modality: str | None = None) -> type[LikelihoodHead]:
    """Look up a likelihood head class by name (``modality``: named in the error).

    Examples
    --------
    >>> get_likelihood("nb").is_count
    True

    """
    try:
        return LIKELIHOODS[name]
    except (KeyError, TypeError):
        where = "" if modality is None else f" for modality '{modality}'"
        raise ValueError(
            f"Unknown likelihood {name!r}{where}; valid ones are {sorted(LIKELIHOODS)}."
        ) from None
