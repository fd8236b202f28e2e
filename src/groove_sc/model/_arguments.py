"""Argument checks for ``GROOVE(...)`` and ``GROOVE.train(...)``: errors that name the argument.

Every check raises before any work starts, with the argument's name, the value received and the
valid range, e.g. ``ValueError: batch_size must be an integer >= 1, got 0.`` Types are checked
too (``TypeError``): a float where an integer is needed, a string where a number is needed.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from .._checks import check_bool, check_int, check_number
from ..module._vae import check_module_options


def check_model_arguments(
    *,
    n_latent: Any,
    n_hidden: Any,
    n_layers: Any,
    dropout_rate: Any,
    contrastive: Any,
    backtranslation: Any,
    alpha: Any,
    beta: Any,
    temperature: Any,
    learn_temperature: Any,
    positives: Any,
    similarity: Any,
    within_group: Any,
    gamma: Any,
) -> None:
    """Check the hyperparameters of :class:`groove_sc.model.GROOVE` before the model is built.

    Raises
    ------
    TypeError, ValueError
        Naming the argument, the value and the valid range or names.

    Examples
    --------
    >>> args = dict(n_latent=32, n_hidden=128, n_layers=1, dropout_rate=0.1,
    ...             contrastive="groupclip", backtranslation=True, alpha=1.0, beta=10.0,
    ...             temperature=0.1, learn_temperature=False, positives=None,
    ...             similarity="cosine", within_group=None, gamma=1.0)
    >>> check_model_arguments(**args)
    >>> check_model_arguments(**{**args, "temperature": -1})
    Traceback (most recent call last):
    ValueError: temperature must be a number > 0, got -1.

    """
    check_int("n_latent", n_latent)
    check_int("n_hidden", n_hidden)
    check_int("n_layers", n_layers)
    check_number("dropout_rate", dropout_rate, 0.0, 1.0, high_open=True)
    check_module_options(
        contrastive=contrastive,
        positives=positives,
        similarity=similarity,
        within_group=within_group,
        gamma=gamma,
    )
    check_bool("backtranslation", backtranslation)
    check_number("alpha", alpha, 0.0)
    check_number("beta", beta, 0.0)
    check_number("temperature", temperature, 0.0, low_open=True)
    check_bool("learn_temperature", learn_temperature)


def check_devices(devices: Any) -> None:
    """Check Lightning's ``devices``: ``"auto"``, ``-1`` (all), a count >= 1 or device indices.

    Examples
    --------
    >>> check_devices("auto"); check_devices(2); check_devices([0, 1]); check_devices("0,1")
    >>> check_devices(0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: devices must be 'auto', -1 (all), a count >= 1 or ... got 0.

    """
    what = "'auto', -1 (all), a count >= 1 or a list of device indices >= 0"
    if isinstance(devices, str):
        text = devices.strip()
        if text in ("auto", "-1"):
            return
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if "," in text and parts and all(p.isdigit() for p in parts):
            return
        if text.isdigit() and int(text) >= 1:
            return
        raise ValueError(f"devices must be {what}, got {devices!r}.")
    if isinstance(devices, (list, tuple)):
        ok = len(devices) > 0 and all(
            isinstance(i, numbers.Integral) and not isinstance(i, bool) and i >= 0 for i in devices
        )
        if not ok:
            raise ValueError(f"devices must be {what}, got {devices!r}.")
        return
    if isinstance(devices, bool) or not isinstance(devices, numbers.Integral):
        raise TypeError(f"devices must be {what}, got {devices!r} ({type(devices).__name__}).")
    if devices != -1 and devices < 1:
        raise ValueError(f"devices must be {what}, got {devices!r}.")


def check_train_arguments(
    *,
    max_epochs: Any,
    lr: Any,
    devices: Any,
    train_size: Any,
    validation_size: Any,
    batch_size: Any,
    groups_per_batch: Any,
    cells_per_group: Any,
    early_stopping: Any,
    early_stopping_patience: Any,
    check_val_every_n_epoch: Any,
    n_epochs_kl_warmup: Any,
    seed: Any,
) -> None:
    """Check the arguments of :meth:`groove_sc.model.GROOVE.train` before training starts.

    Raises
    ------
    TypeError, ValueError
        Naming the argument, the value and the valid range.

    Examples
    --------
    >>> args = dict(max_epochs=10, lr=1e-3, devices="auto", train_size=0.9,
    ...             validation_size=None, batch_size=256, groups_per_batch=None,
    ...             cells_per_group=None, early_stopping=False, early_stopping_patience=20,
    ...             check_val_every_n_epoch=None, n_epochs_kl_warmup=None, seed=None)
    >>> check_train_arguments(**args)
    >>> check_train_arguments(**{**args, "max_epochs": 0})
    Traceback (most recent call last):
    ValueError: max_epochs must be an integer >= 1 or None, got 0.

    """
    check_int("max_epochs", max_epochs, 1, allow_none=True)
    check_number("lr", lr, 0.0, low_open=True)
    check_devices(devices)
    check_number("train_size", train_size, 0.0, 1.0, low_open=True)
    check_number("validation_size", validation_size, 0.0, 1.0, high_open=True, allow_none=True)
    if validation_size is not None and train_size + validation_size > 1 + 1e-9:
        raise ValueError(
            f"train_size + validation_size must be <= 1, got {train_size!r} + "
            f"{validation_size!r} = {train_size + validation_size:g}; lower one of them."
        )
    check_int("batch_size", batch_size, 1)
    check_int("groups_per_batch", groups_per_batch, 1, allow_none=True)
    check_int("cells_per_group", cells_per_group, 1, allow_none=True)
    check_bool("early_stopping", early_stopping)
    check_int("early_stopping_patience", early_stopping_patience, 1)
    check_int("check_val_every_n_epoch", check_val_every_n_epoch, 1, allow_none=True)
    check_int("n_epochs_kl_warmup", n_epochs_kl_warmup, 0, allow_none=True)
    check_int("seed", seed, 0, allow_none=True)


def log_every_n_steps(n_batches: int, n_processes: int = 1, default: int = 10) -> int:
    """Lightning's ``log_every_n_steps`` for an epoch of ``n_batches`` split over processes.

    Lightning warns when an epoch has fewer training batches than the logging interval; the
    interval is therefore at most the number of batches each process takes per epoch.

    Examples
    --------
    >>> log_every_n_steps(9), log_every_n_steps(100), log_every_n_steps(9, n_processes=4)
    (9, 10, 3)

    """
    per_process = int(math.ceil(max(int(n_batches), 1) / max(int(n_processes), 1)))
    return max(1, min(int(default), per_process))
