"""Argument checks whose errors name the argument, the value received and the valid range.

Shared by the model, its torch module and the training options; torch-free.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection
from typing import Any


def check_int(name: str, value: Any, minimum: int = 1, *, allow_none: bool = False) -> None:
    """Raise unless ``value`` is an integer ``>= minimum`` (or ``None`` when allowed).

    Examples
    --------
    >>> check_int("batch_size", 128)
    >>> check_int("batch_size", 0)
    Traceback (most recent call last):
    ValueError: batch_size must be an integer >= 1, got 0.

    """
    if value is None and allow_none:
        return
    what = f"an integer >= {minimum}" + (" or None" if allow_none else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {what}, got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"{name} must be {what}, got {value!r}.")


def check_number(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
) -> None:
    """Raise unless ``value`` is a finite real number in the given interval.

    Parameters
    ----------
    name
        Argument name (used in the message).
    value
        Value to check.
    low, high
        Bounds (``None``: unbounded).
    low_open, high_open
        Whether a bound is excluded.
    allow_none
        Accept ``None``.

    Examples
    --------
    >>> check_number("dropout_rate", 0.1, 0, 1, high_open=True)
    >>> check_number("temperature", -1, 0, low_open=True)
    Traceback (most recent call last):
    ValueError: temperature must be a number > 0, got -1.

    """
    if value is None and allow_none:
        return
    if low is not None and high is not None:
        interval = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        interval = f"{'>' if low_open else '>='} {low:g}"
    elif high is not None:
        interval = f"{'<' if high_open else '<='} {high:g}"
    else:
        interval = "finite"
    what = f"a number {interval}" + (" or None" if allow_none else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {what}, got {value!r} ({type(value).__name__}).")
    v = float(value)
    bad = not math.isfinite(v)
    if low is not None:
        bad |= v <= low if low_open else v < low
    if high is not None:
        bad |= v >= high if high_open else v > high
    if bad:
        raise ValueError(f"{name} must be {what}, got {value!r}.")


def check_choice(name: str, value: Any, choices: Collection[Any], *, allow_none: bool) -> None:
    """Raise unless ``value`` is one of ``choices`` (or ``None`` when allowed).

    Examples
    --------
    >>> check_choice("similarity", "cosine", ("cosine", "neg_sqeuclidean"), allow_none=False)
    >>> check_choice("contrastive", "groupclp", ("groupclip", "clip"), allow_none=True)
    Traceback (most recent call last):
    ValueError: contrastive must be one of 'groupclip', 'clip' or None, got 'groupclp'.

    """
    if value is None and allow_none:
        return
    if value not in choices:
        names = ", ".join(repr(c) for c in choices) + (" or None" if allow_none else "")
        raise ValueError(f"{name} must be one of {names}, got {value!r}.")


def check_bool(name: str, value: Any) -> None:
    """Raise unless ``value`` is a bool.

    Examples
    --------
    >>> check_bool("backtranslation", True)

    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__}).")
