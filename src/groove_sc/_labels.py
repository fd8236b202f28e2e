"""One rule for turning a label column into integer codes."""

from __future__ import annotations

import numpy as np
import pandas as pd


def label_codes(labels: pd.Series, names: pd.Index) -> np.ndarray:
    """Per cell, the position of its label in ``names``; ``-1`` for missing or unknown labels.

    Labels are compared as strings, so a categorical, string or numeric column all work.

    Parameters
    ----------
    labels
        One label per cell (missing values allowed).
    names
        The label names, in code order.

    Returns
    -------
    ``int64`` array of codes.

    Examples
    --------
    >>> label_codes(pd.Series(["b", None, "a", "z"]), pd.Index(["a", "b"]))
    array([ 1, -1,  0, -1])

    """
    out = np.full(len(labels), -1, dtype=np.int64)
    ok = labels.notna().to_numpy()
    out[ok] = names.get_indexer(labels[ok].astype(str))
    return out
