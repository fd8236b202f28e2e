"""One seed for every random number generator a learner may draw from."""

from __future__ import annotations

import random

import numpy as np

from ._groove import quiet_training


def seed_everything(seed: int) -> None:
    """Seed Python, numpy, torch and scvi-tools (Lightning) with one value.

    The benchmark calls it before every learner, so that equal seeds give equal tables.

    Examples
    --------
    >>> seed_everything(0)
    >>> a = np.random.rand()
    >>> seed_everything(0)
    >>> a == np.random.rand()
    True

    """
    import scvi
    import torch

    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - third-party code may draw from the global state
    torch.manual_seed(seed)
    with quiet_training():
        scvi.settings.seed = seed
