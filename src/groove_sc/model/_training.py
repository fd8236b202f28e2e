"""Training helpers for GROOVE: a DDP-safe training plan and device/strategy checks."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator

import numpy as np
import torch
from lightning.pytorch.strategies import DDPStrategy, Strategy
from scvi.module.base import LossOutput
from scvi.train import LoudEarlyStopping, TrainingPlan

from ._arguments import log_every_n_steps

# strategies whose processes are forked from the running interpreter (the notebook-safe ones)
_FORK_STRATEGIES = ("ddp_notebook", "ddp_fork")
_SCRIPT_DDP = "ddp_find_unused_parameters_true"
_NOTEBOOK_DDP = "ddp_notebook_find_unused_parameters_true"


class GrooveTrainingPlan(TrainingPlan):
    """scvi-tools' :class:`~scvi.train.TrainingPlan`, with metric logging that is safe under DDP.

    scvi-tools logs a module's ``extra_metrics`` inside ``torch.inference_mode()``, so Lightning
    creates its running sums for them as inference tensors; under DDP, ``sync_dist`` then reduces
    those sums in place at the end of the training epoch (outside inference mode), which torch
    refuses. Here the metrics are logged under ``torch.no_grad()`` instead, with ``sync_dist``
    under any DDP strategy, so every process reports the mean over all processes.

    Examples
    --------
    >>> gs.model.GROOVE.setup_mudata(mdata, layers={"rna": "counts"})
    >>> plan = GrooveTrainingPlan(gs.model.GROOVE(mdata).module, lr=1e-3)
    >>> plan.lr
    0.001

    """

    @torch.no_grad()
    def compute_and_log_metrics(self, loss_output: LossOutput, metrics: dict, mode: str) -> None:
        """Update the ELBO metric and log it with every extra metric of the module."""
        n_obs = loss_output.n_obs_minibatch
        metrics[f"elbo_{mode}"].update(
            reconstruction_loss=loss_output.reconstruction_loss_sum,
            kl_local=loss_output.kl_local_sum,
            kl_global=loss_output.kl_global_sum,
            n_obs_minibatch=n_obs,
        )
        kwargs = dict(
            on_step=self.on_step,
            on_epoch=self.on_epoch,
            batch_size=n_obs,
            sync_dist=self.use_sync_dist,
        )
        self.log_dict(metrics, **kwargs)
        for key, value in (loss_output.extra_metrics or {}).items():
            if isinstance(value, torch.Tensor):
                if value.dim() != 0:  # only scalars are logged (as in scvi-tools)
                    continue
                value = value.detach()
            self.log(f"{key}_{mode}", value, **kwargs)


def is_ddp(strategy: str | Strategy | None) -> bool:
    """Whether a Lightning ``strategy`` is data-parallel (any ``"ddp..."`` name or instance).

    Examples
    --------
    >>> is_ddp("ddp_find_unused_parameters_true"), is_ddp("auto")
    (True, False)

    """
    if isinstance(strategy, str):
        return "ddp" in strategy
    return isinstance(strategy, DDPStrategy)


def in_notebook() -> bool:
    """Whether Python runs interactively (a notebook or a REPL), as Lightning decides it."""
    return hasattr(sys, "ps1") or bool(sys.flags.interactive)


def _requested_devices(devices) -> list[int] | int | None:
    """Device indices (list), a device count (int) or ``None`` (``"auto"``/``-1``: all)."""
    if isinstance(devices, str):
        text = devices.strip()
        if text in ("auto", "-1", ""):
            return None
        if "," in text:
            return [int(i) for i in text.split(",") if i.strip()]
        return int(text) if text.lstrip("-").isdigit() else None
    if isinstance(devices, (list, tuple)):
        return [int(i) for i in devices]
    if isinstance(devices, int) and devices != -1:
        return devices
    return None


def max_processes(devices, strategy: str | Strategy | None, num_nodes: int = 1) -> int:
    """An upper bound on the number of training processes (1 unless ``strategy`` is DDP).

    Examples
    --------
    >>> max_processes(4, "ddp"), max_processes([0, 1], "ddp", num_nodes=2), max_processes(4, None)
    (4, 4, 1)

    """
    if not is_ddp(strategy):
        return 1
    wanted = _requested_devices(devices)
    if isinstance(wanted, list):
        per_node = len(wanted)
    elif isinstance(wanted, int):
        per_node = wanted
    else:  # "auto" / -1: every visible GPU or core
        per_node = max(torch.cuda.device_count(), os.cpu_count() or 1)
    return max(1, per_node) * max(1, int(num_nodes or 1))


def check_devices_and_strategy(accelerator: str, devices, strategy: str | Strategy | None) -> None:
    """Refuse ``devices``/``strategy`` combinations that cannot work, before Lightning starts.

    Parameters
    ----------
    accelerator
        Lightning accelerator (``"auto"``, ``"cpu"``, ``"gpu"``/``"cuda"``; others not checked).
    devices
        Lightning ``devices`` (a count, a list or comma-separated string of indices, ``-1`` or
        ``"auto"``).
    strategy
        Lightning ``strategy`` name or instance (``None`` = ``"auto"``).

    Raises
    ------
    ValueError
        More CPU processes than cores or more GPUs than visible, a notebook-only DDP strategy
        outside a notebook, or a script-only DDP strategy inside one.

    Examples
    --------
    >>> check_devices_and_strategy("cpu", 1, "auto")
    >>> check_devices_and_strategy("cpu", 10_000, "ddp")
    Traceback (most recent call last):
    ValueError: devices=10000 asks for 10000 CPU processes ...

    """
    name = strategy if isinstance(strategy, str) else None
    if name is not None and "ddp" in name:
        forked = name.startswith(_FORK_STRATEGIES)
        if name.startswith("ddp_notebook") and not in_notebook():
            raise ValueError(
                f"strategy={name!r} is meant for Jupyter notebooks, but Python is not running "
                f"interactively. In a script, use strategy={_SCRIPT_DDP!r}."
            )
        if not forked and in_notebook():
            raise ValueError(
                f"strategy={name!r} starts its processes by re-running a script, which a notebook "
                f"cannot do. In a notebook, use strategy={_NOTEBOOK_DDP!r}, or run the training "
                "as a script."
            )
    acc = str(accelerator).lower() if isinstance(accelerator, str) else None
    if acc == "auto":
        if torch.cuda.is_available():
            acc = "gpu"
        elif torch.backends.mps.is_available():
            acc = None
        else:
            acc = "cpu"
    wanted = _requested_devices(devices)
    if wanted is None:
        return
    if acc == "cpu" and isinstance(wanted, int):
        n_cores = os.cpu_count() or 1
        if wanted > n_cores:
            raise ValueError(
                f"devices={devices!r} asks for {wanted} CPU processes but this machine has "
                f"{n_cores} CPU cores. Use devices <= {n_cores} with accelerator='cpu', or "
                "accelerator='gpu' on a machine with GPUs."
            )
    elif acc in ("gpu", "cuda"):
        n_gpus = torch.cuda.device_count()
        too_many = (
            wanted > n_gpus
            if isinstance(wanted, int)
            else any(i < 0 or i >= n_gpus for i in wanted)
        )
        if too_many:
            have = f"only {n_gpus} GPU(s) are visible" if n_gpus else "no GPU is visible"
            fix = (
                f"use devices <= {n_gpus}, device indices below {n_gpus} or devices=-1 (all)"
                if n_gpus
                else "use accelerator='cpu' (or 'auto')"
            )
            raise ValueError(
                f"devices={devices!r} with accelerator={accelerator!r}, but {have} "
                f"(torch.cuda.device_count() = {n_gpus}); {fix}."
            )


class RankZeroEarlyStopping(LoudEarlyStopping):
    """scvi-tools' early stopping, for DDP: the reason for stopping is printed by rank 0 only.

    Lightning's early stopping works under DDP: the monitored validation metric is logged with
    ``sync_dist`` (the same value in every process) and the decision to stop is reduced across
    the processes, so they all stop after the same epoch.

    Examples
    --------
    >>> cb = RankZeroEarlyStopping(monitor="validation_loss", patience=20, warmup_epochs=0)

    """

    def teardown(self, trainer, pl_module, stage: str | None = None) -> None:
        """Print the reason for stopping, from rank 0."""
        if trainer.is_global_zero:
            super().teardown(trainer, pl_module, stage)


class _DropLitLoggerTip(logging.Filter):
    """Drop Lightning's advertisement for its ``litlogger`` package (an info record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in str(record.getMessage())


# Loggers through which Lightning's ``rank_zero_info`` writes (whichever module set it last).
_RANK_ZERO_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning_utilities.core.rank_zero",
)


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Leave out three notices of Lightning that ask nothing of the user, for one fit only.

    - the "Tip" advertising ``litlogger`` that Lightning logs whenever a Trainer is made;
    - torch's ``FutureWarning`` "``isinstance(treespec, LeafSpec)`` is deprecated", raised
      inside Lightning's own ``lightning.pytorch.utilities._pytree`` at every fit (seen with
      Lightning 2.6.6 and torch 2.13): addressed to Lightning's developers, not to its users;
    - "The 'train_dataloader' does not have many workers" (machines with more than two
      cores): GROOVE's loaders read in-memory arrays in the main process on purpose, so
      dataloader workers would only add start-up and copying costs.

    Everything else (device summary, warnings from other modules) passes through, and the
    logging filters and warning filters are restored on exit.

    Examples
    --------
    >>> with quiet_lightning():
    ...     pass

    """
    tip = _DropLitLoggerTip()
    loggers = [logging.getLogger(name) for name in _RANK_ZERO_LOGGERS]
    for logger in loggers:
        logger.addFilter(tip)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore",
                message=r".*LeafSpec.*is deprecated",
                category=FutureWarning,
                module=r"lightning\.pytorch\.utilities\._pytree",
            )
            warnings.filterwarnings("ignore", message=r".*does not have many workers")
            yield
    finally:
        for logger in loggers:
            logger.removeFilter(tip)


def batch_composition(
    codes: dict[str, np.ndarray],
    batch_size: int,
    groups_per_batch: int | None,
    cells_per_group: int | None,
) -> tuple[int, int]:
    """``(groups_per_batch, cells_per_group)`` of the group-balanced minibatches.

    Defaults: ``cells_per_group = max(8, ceil(batch_size / n_groups))`` (``batch_size //
    groups_per_batch`` when that is given) and ``groups_per_batch = batch_size //
    cells_per_group``, at most the number of groups shared by every modality.

    Examples
    --------
    >>> codes = {"rna": np.array([0, 1, 2, 2]), "prot": np.array([0, 1, -1, 2])}
    >>> batch_composition(codes, 256, None, None)
    (2, 86)

    """
    shared = set.intersection(*(set(np.unique(c[c >= 0])) for c in codes.values()))
    n_groups = max(len(shared), 1)
    if cells_per_group is None:
        cells_per_group = max(8, int(np.ceil(batch_size / n_groups)))
        if groups_per_batch is not None:
            cells_per_group = max(1, batch_size // groups_per_batch)
    if groups_per_batch is None:
        groups_per_batch = max(1, min(n_groups, batch_size // cells_per_group))
    return groups_per_batch, cells_per_group


def early_stopping_options(trainer_kwargs: dict, ddp: bool, monitor: str, patience: int) -> dict:
    """Trainer keywords that turn early stopping on (Lightning's callback under DDP).

    scvi-tools' Trainer turns early stopping off under DDP; Lightning's callback works there.

    Examples
    --------
    >>> early_stopping_options({}, False, "validation_loss", 5)["early_stopping_patience"]
    5

    """
    trainer_kwargs = dict(trainer_kwargs)
    if ddp:
        stop = RankZeroEarlyStopping(
            monitor=monitor, patience=patience, min_delta=0.0, mode="min", warmup_epochs=0
        )
        trainer_kwargs["callbacks"] = [*list(trainer_kwargs.get("callbacks") or []), stop]
    else:
        trainer_kwargs.update(
            early_stopping=True, early_stopping_monitor=monitor, early_stopping_patience=patience
        )
    return trainer_kwargs


def trainer_options(
    trainer_kwargs: dict, check_val_every_n_epoch: int | None, devices, n_train_batches: int
) -> dict:
    """The Trainer keywords GROOVE sets unless given: validation, logging, sampler, checkpoints.

    Examples
    --------
    >>> trainer_options({}, None, 1, 3)["log_every_n_steps"]
    3

    """
    trainer_kwargs = dict(trainer_kwargs)
    if check_val_every_n_epoch is not None:
        trainer_kwargs["check_val_every_n_epoch"] = check_val_every_n_epoch
    trainer_kwargs.setdefault("enable_checkpointing", False)
    # Lightning warns when an epoch has fewer batches than the logging interval
    n_processes = max_processes(
        devices, trainer_kwargs.get("strategy"), trainer_kwargs.get("num_nodes", 1)
    )
    trainer_kwargs.setdefault("log_every_n_steps", log_every_n_steps(n_train_batches, n_processes))
    # the group-balanced sampler shares batches out across DDP processes itself
    trainer_kwargs["use_distributed_sampler"] = False
    return trainer_kwargs
