"""One rule for recognising raw counts and guessing a modality's likelihood from its data."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

#: Values inspected when recognising counts (the first ones stored): bounded time on any size.
COUNT_CHECK_VALUES = 1_000_000


def stored_values(x, limit: int | None = COUNT_CHECK_VALUES) -> np.ndarray:
    """The stored values of a dense or sparse matrix, flat, at most the first ``limit``."""
    values = np.asarray(x.data if sp.issparse(x) else x).ravel()
    return values if limit is None else values[:limit]


def is_counts(x, limit: int | None = COUNT_CHECK_VALUES) -> bool:
    """Whether ``x`` holds raw counts: non-negative integer values (of the first ``limit``).

    A matrix with no stored value (all zeros, sparse) counts as counts.

    Examples
    --------
    >>> is_counts(np.array([[0.0, 3.0], [1.0, 0.0]])), is_counts(np.array([[0.5, 1.0]]))
    (True, False)

    """
    values = stored_values(x, limit)
    return bool(np.all(values >= 0) and np.all(np.mod(values, 1) == 0))


def guess_likelihood(x, binary: bool = False) -> str:
    """The likelihood that suits the data ``x``: ``"nb"`` for counts, else ``"normal"``.

    With ``binary``, 0/1 counts give ``"bernoulli"``. Data with no stored value give
    ``"normal"`` (nothing to recognise counts from).

    Examples
    --------
    >>> guess_likelihood(np.array([[0.0, 3.0]])), guess_likelihood(np.array([[0.0, 1.0]]), True)
    ('nb', 'bernoulli')
    >>> guess_likelihood(np.array([[-0.5, 1.2]]))
    'normal'

    """
    values = stored_values(x, None)
    if values.size == 0 or not is_counts(values):
        return "normal"
    return "bernoulli" if binary and values.max() <= 1 else "nb"
