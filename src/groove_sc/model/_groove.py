"""The user-facing GROOVE model (scvi-tools ``BaseModelClass``)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import scvi
import torch
from mudata import MuData
from scvi.data import AnnDataManager, AnnDataManagerValidationCheck
from scvi.data.fields import MuDataCategoricalObsField, MuDataLayerField
from scvi.model.base import BaseModelClass
from scvi.train import TrainRunner
from scvi.utils._docstrings import devices_dsp

from .. import _constants as keys
from .._constants import DEFAULT_GROUPBY
from .._mudata import check_disjoint_obs_names, check_modalities, obs_column
from ..data import GrooveDataModule, MuDataGroupLabelsField, encode_labels
from ..module import GROOVEVAE, get_likelihood
from ..module._clip import DEFAULT_BETA, DEFAULT_TEMPERATURE
from ..module._within import DEFAULT_GAMMA, DEFAULT_WITHIN_GROUP
from ._arguments import check_model_arguments, check_train_arguments
from ._training import (
    GrooveTrainingPlan,
    batch_composition,
    check_devices_and_strategy,
    early_stopping_options,
    is_ddp,
    quiet_lightning,
    trainer_options,
)
from ._validation import check_matrix, get_matrix, resolve_likelihoods, shared_categories

logger = logging.getLogger(__name__)

#: Most epochs of the default training length (see ``GROOVE.train``'s ``max_epochs``).
MAX_DEFAULT_EPOCHS = 250

#: GROOVE.train arguments checked by :func:`check_train_arguments`.
_TRAIN_ARGS = tuple(
    (
        "max_epochs lr devices train_size validation_size batch_size groups_per_batch "
        "cells_per_group early_stopping early_stopping_patience check_val_every_n_epoch "
        "n_epochs_kl_warmup seed"
    ).split()
)
#: GROOVE.__init__ arguments checked by :func:`check_model_arguments`.
_MODEL_ARGS = tuple(
    (
        "n_latent n_hidden n_layers dropout_rate contrastive backtranslation alpha beta "
        "temperature learn_temperature positives similarity within_group gamma"
    ).split()
)


def _written_by_impute(mdata: MuData, mod: str) -> bool:
    """Whether modality ``mod`` is an output of :func:`groove_sc.tl.impute` (its source's cells)."""
    record = mdata.mod[mod].uns.get("imputation")
    if not isinstance(record, dict) or not {"source", "target"} <= set(record):
        return False
    source = str(record["source"])
    return source in mdata.mod and mdata.mod[mod].obs_names.equals(mdata.mod[source].obs_names)


#: What to do about a missing ``batch_key`` column.
BATCH_HINT = "add the batch column to every modality, or pass batch_key=None."


class GROOVE(BaseModelClass):
    """GROOVE: group-contrastive VAE for weakly paired modalities.

    One encoder/decoder pair per modality maps cells into a shared latent space, trained with
    each modality's likelihood, a KL term, on-the-fly backtranslation (x_a -> E_a -> D_b -> E_b
    -> D_a) and GroupCLIP on the latent means, using only the perturbation label shared by cells
    of different modalities.

    Parameters
    ----------
    mdata
        MuData registered with :meth:`setup_mudata`.
    n_latent, n_hidden, n_layers, dropout_rate
        Network sizes (integers >= 1) and dropout rate (in ``[0, 1)``).
    contrastive
        ``"groupclip"`` (default), ``"clip"`` (random same-group pseudo-pairs), ``"supcon"``
        (pooled modalities) or ``None`` (off).
    backtranslation
        On-the-fly backtranslation on/off.
    alpha
        Weight of backtranslation (>= 0).
    beta
        Weight of the contrastive term (>= 0). Default 10, the paper's value (see the "Real
        co-assayed data" page for the held-out-group comparison with 3 and 30).
    temperature, learn_temperature, positives, similarity
        GroupCLIP options (``temperature > 0``), see
        :func:`groove_sc.module.group_clip_loss`. ``positives=None`` means ``"sum_in_log"``,
        except for ``contrastive="supcon"`` where it means SupCon's own ``"mean_log"`` (with
        pooled modalities, ``"sum_in_log"`` is satisfied by modality-specific clusters and does
        not align the modalities).
    within_group
        Within-group cross-modal term on the latent means (``"ot_clip"``, default:
        OT-guided soft positives; ``"sinkhorn"``, ``"mmd"``; see
        :func:`groove_sc.module.within_group_loss`), or ``None`` for the paper's objective
        (GroupCLIP + backtranslation only). GroupCLIP aligns groups; this term aligns the cells
        inside each group. The default and its weight were chosen without the truth, by
        held-out merged groups (see the "Real co-assayed data" page).
    gamma
        Weight of the within-group term (>= 0, default 3).
    pseudo_label_threshold
        Unlabeled cells take part in the contrastive and within-group terms with the group of
        the nearest prototype of the other modalities when its softmax confidence reaches this
        value (see :func:`groove_sc.module.pseudo_labels`); ``None``: reconstruction only.
    distrust_threshold
        Experimental, for wrong labels (failed or swapped guide calls): a labeled cell whose
        latent gives *another* group of the other modalities at least this softmax confidence
        (over the batch's group prototypes) leaves the contrastive and within-group terms for
        that batch (see :func:`groove_sc.module.distrust_labels`). ``None`` (default): every
        label is trusted, the paper's objective. Measured on simulations with 20% wrong labels
        it did *not* raise the matching quality (the "Robustness" docs page).
    **module_kwargs
        Passed to :class:`groove_sc.module.GROOVEVAE` (``use_batch_norm``, ``use_layer_norm``,
        ``within_epsilon``).

    Raises
    ------
    TypeError, ValueError
        For a hyperparameter outside its valid range or an unknown option name; the message
        names the argument, the value and what is valid.

    Examples
    --------
    >>> gs.model.GROOVE.setup_mudata(mdata, perturbation_key="perturbation",
    ...     modalities=["rna", "prot"], layers={"rna": "counts"},
    ...     likelihoods={"rna": "nb", "prot": "normal"})
    >>> model = gs.model.GROOVE(mdata, n_latent=4, n_hidden=16)
    >>> model.train(max_epochs=2, enable_progress_bar=False)
    >>> model.get_latent_representation(modality="rna").shape
    (67, 4)

    """

    _module_cls = GROOVEVAE

    def __init__(
        self,
        mdata: MuData,
        n_latent: int = 32,
        n_hidden: int = 128,
        n_layers: int = 1,
        dropout_rate: float = 0.1,
        contrastive: Literal["groupclip", "clip", "supcon"] | None = "groupclip",
        backtranslation: bool = True,
        alpha: float = 1.0,
        beta: float = DEFAULT_BETA,
        temperature: float = DEFAULT_TEMPERATURE,
        learn_temperature: bool = False,
        positives: Literal["sum_in_log", "mean_log"] | None = None,
        similarity: Literal["cosine", "neg_sqeuclidean"] = "cosine",
        within_group: Literal["sinkhorn", "mmd", "ot_clip"] | None = DEFAULT_WITHIN_GROUP,
        gamma: float = DEFAULT_GAMMA,
        pseudo_label_threshold: float | None = None,
        distrust_threshold: float | None = None,
        **module_kwargs,
    ):
        check_model_arguments(**{k: v for k, v in locals().items() if k in _MODEL_ARGS})
        super().__init__(mdata)
        args = self._setup_args
        mods = list(args["modalities"])
        stats = self.summary_stats
        n_input = {m: int(stats[f"n_{keys.x_key(m)}"]) for m in mods}
        n_batch = {m: int(stats.get(f"n_{keys.batch_key(m)}", 1)) for m in mods}
        likelihoods = dict(args["likelihoods"])
        lib_means = {}
        for m in mods:
            if get_likelihood(likelihoods[m]).is_count:
                x = self.adata_manager.get_from_registry(keys.x_key(m))
                tot = np.asarray(x.sum(axis=1)).ravel()
                lib_means[m] = float(np.log(np.clip(tot, 1, None)).mean())
        self.module = self._module_cls(
            n_input=n_input,
            likelihoods=likelihoods,
            n_batch=n_batch,
            library_log_means=lib_means,
            n_latent=n_latent,
            n_hidden=n_hidden,
            n_layers=n_layers,
            dropout_rate=dropout_rate,
            contrastive=contrastive,
            positives=positives,
            similarity=similarity,
            temperature=temperature,
            learn_temperature=learn_temperature,
            backtranslation=backtranslation,
            alpha=alpha,
            beta=beta,
            within_group=within_group,
            gamma=gamma,
            pseudo_label_threshold=pseudo_label_threshold,
            distrust_threshold=distrust_threshold,
            **module_kwargs,
        )
        self._model_summary_string = (
            f"GROOVE: modalities {mods} ({', '.join(f'{m}: {likelihoods[m]}' for m in mods)}), "
            f"n_latent {n_latent}, contrastive {contrastive} (beta {beta:g}), backtranslation "
            f"{backtranslation}, within-group term "
            f"{within_group if within_group is None else f'{within_group} (gamma {gamma:g})'}."
        )
        self.init_params_ = self._get_init_params(locals())

    # ------------------------------------------------------------------- setup
    @classmethod
    def setup_anndata(cls, *args, **kwargs) -> None:
        """Not supported: GROOVE models several modalities; use :meth:`setup_mudata`."""
        raise NotImplementedError(
            "GROOVE needs a MuData with one modality per measurement; use GROOVE.setup_mudata."
        )

    @classmethod
    def setup_mudata(
        cls,
        mdata: MuData,
        perturbation_key: str = DEFAULT_GROUPBY,
        modalities: Sequence[str] | None = None,
        layers: dict[str, str | None] | None = None,
        likelihoods: dict[str, str] | None = None,
        batch_key: str | None = None,
        unlabeled_category: str | None = None,
        **kwargs,
    ) -> None:
        """Register a weakly paired MuData (modalities measured in different cells).

        Parameters
        ----------
        mdata
            MuData whose modalities hold disjoint cells with distinct obs_names.
        perturbation_key
            ``.obs`` column, in every modality, with the perturbation (group) of each cell.
            Missing values (and ``unlabeled_category``) mark unlabeled cells: they are used for
            reconstruction only. Categories are mapped to one code shared by all modalities.
        modalities
            Modalities to model (two or more); default: all of ``mdata.mod`` except the
            modalities :func:`groove_sc.tl.impute` wrote (they share their source's cells).
        layers
            Per modality, the layer holding the data (``None``/absent: ``.X``).
        likelihoods
            Per modality, one of ``"nb"``, ``"zinb"``, ``"poisson"`` (counts), ``"normal"``
            (continuous), ``"bernoulli"`` (binary). Absent: ``"nb"`` for integer data, else
            ``"normal"``.
        batch_key
            Optional ``.obs`` column (in every modality) with a batch covariate.
        unlabeled_category
            A category value that means "unlabeled" (e.g. ``"unassigned"``).
        **kwargs
            Passed to ``AnnDataManager.register_fields`` (used by :meth:`load`).

        Notes
        -----
        As every scvi-tools model, registration writes integer code columns
        ``_scvi_labels_<modality>`` (and ``_scvi_batch_<modality>``) into each modality's
        ``.obs`` and ``_scvi_uuid``/``_scvi_manager_uuid`` into ``.uns``. Nothing else is
        changed.

        Examples
        --------
        >>> GROOVE.setup_mudata(mdata, perturbation_key="perturbation",
        ...     modalities=["rna", "prot"], layers={"rna": "counts"},
        ...     likelihoods={"rna": "nb", "prot": "normal"})
        >>> sorted(mdata["rna"].obs["_scvi_labels_rna"].unique().tolist())
        [0, 1, 2, 3, 4]

        """
        setup_method_args = cls._get_setup_method_args(**locals())
        if not isinstance(mdata, MuData):
            raise TypeError(f"setup_mudata needs a MuData, got {type(mdata).__name__}.")
        imputed = [m for m in mdata.mod if _written_by_impute(mdata, m)]
        if modalities is None:  # every measured modality; tl.impute's outputs share their cells
            modalities = [m for m in mdata.mod if m not in imputed]
        modalities = list(modalities)
        if len(modalities) < 2:
            left_out = f" (left out as tl.impute's outputs: {imputed})" if imputed else ""
            raise ValueError(f"GROOVE needs at least two modalities, got {modalities}{left_out}.")
        check_modalities(mdata, modalities, "GROOVE.setup_mudata")
        layers = dict(layers or {})
        extra = set(layers) - set(modalities)
        if extra:
            raise KeyError(f"layers names modalities {sorted(extra)} not in {modalities}.")
        check_disjoint_obs_names(mdata, modalities)
        likelihoods = resolve_likelihoods(mdata, modalities, layers, likelihoods)
        for m in modalities:
            where = f"layer '{layers[m]}'" if layers.get(m) else ".X"
            check_matrix(get_matrix(mdata.mod[m], layers.get(m), m), m, where, likelihoods[m])
            if batch_key is not None:
                obs_column(mdata, m, batch_key, "batch_key", BATCH_HINT)
        categories = shared_categories(mdata, modalities, perturbation_key, unlabeled_category)
        setup_method_args["setup_args"]["modalities"] = modalities
        setup_method_args["setup_args"]["likelihoods"] = likelihoods
        setup_method_args["setup_args"]["layers"] = {m: layers.get(m) for m in modalities}

        fields = []
        for m in modalities:
            fields.append(
                MuDataLayerField(
                    keys.x_key(m), layers.get(m), mod_key=m, is_count_data=False, mod_required=True
                )
            )
            fields.append(
                MuDataGroupLabelsField(
                    keys.labels_key(m),
                    perturbation_key,
                    categories,
                    unlabeled_category,
                    mod_key=m,
                    mod_required=True,
                )
            )
            if batch_key is not None:
                fields.append(
                    MuDataCategoricalObsField(
                        keys.batch_key(m), batch_key, mod_key=m, mod_required=True
                    )
                )
        manager = AnnDataManager(
            fields=fields,
            setup_method_args=setup_method_args,
            validation_checks=AnnDataManagerValidationCheck(check_fully_paired_mudata=False),
        )
        manager.register_fields(mdata, **kwargs)
        cls.register_manager(manager)

    @classmethod
    def load(cls, dir_path: str, adata: MuData | None = None, **kwargs) -> GROOVE:
        """Load a model saved with :meth:`save` (scvi-tools' ``BaseModelClass.load``).

        Parameters
        ----------
        dir_path
            Folder written by :meth:`save`.
        adata
            MuData to attach (set up again with the saved registry); default the saved one.
        **kwargs
            Passed to scvi-tools' ``load`` (``accelerator``, ``device``, ``prefix``...).

        Examples
        --------
        >>> GROOVE.setup_mudata(mdata, layers={"rna": "counts"})
        >>> model = GROOVE(mdata, n_latent=4, n_hidden=16)
        >>> model.train(max_epochs=1, enable_progress_bar=False)
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as path:
        ...     model.save(path, overwrite=True)
        ...     loaded = GROOVE.load(path, mdata)
        >>> loaded.modalities
        ['rna', 'prot']

        """
        download_log = logging.getLogger("scvi.data._download")
        level = download_log.level
        # scvi-tools' loader logs "File ... already downloaded" for every local model file
        download_log.setLevel(logging.WARNING)
        try:
            with warnings.catch_warnings():
                # scvi-tools' load reads the deprecated MuData.mod_names (a FutureWarning of
                # mudata >= 0.3.4 that the user cannot act on)
                warnings.filterwarnings(
                    "ignore", message=r".*mod_names is deprecated", category=FutureWarning
                )
                return super().load(dir_path, adata=adata, **kwargs)
        finally:
            download_log.setLevel(level)

    # ------------------------------------------------------------------ helpers
    @property
    def _setup_args(self) -> dict:
        return self.adata_manager.registry["setup_args"]

    @property
    def modalities(self) -> list[str]:
        """Modalities the model was set up with."""
        return list(self._setup_args["modalities"])

    @property
    def categories(self) -> np.ndarray:
        """Perturbation categories; code ``k`` is ``categories[k]`` in every modality."""
        reg = self.adata_manager.get_state_registry(keys.labels_key(self.modalities[0]))
        return np.asarray(reg["categorical_mapping"], dtype=str)

    def _registry_keys(self, m: str) -> dict[str, type]:
        out = {keys.x_key(m): np.float32, keys.labels_key(m): np.int64}
        if self._setup_args.get("batch_key") is not None:
            out[keys.batch_key(m)] = np.int64
        return out

    def _codes(self, m: str) -> np.ndarray:
        return np.asarray(self.adata_manager.get_from_registry(keys.labels_key(m))).reshape(-1)

    def _modality_arrays(self, mdata: MuData, m: str):
        """Data matrix and batch codes of modality ``m`` of any MuData with the same features."""
        if m not in self.modalities:
            raise ValueError(f"Modality '{m}' is not one of the model's {self.modalities}.")
        check_modalities(mdata, [m], "the model")
        adata = mdata.mod[m]
        x = get_matrix(adata, self._setup_args["layers"].get(m), m)
        train_vars = self.adata_manager.get_state_registry(keys.x_key(m)).get("column_names")
        if train_vars is not None and not np.array_equal(
            np.asarray(adata.var_names), np.asarray(train_vars)
        ):
            raise ValueError(
                f"Features of modality '{m}' differ from the training data's "
                f"({adata.n_vars} vs {len(train_vars)}); subset/reorder them to the model's "
                "var_names first."
            )
        bkey = self._setup_args.get("batch_key")
        if bkey is None:
            b = np.zeros(adata.n_obs, dtype=np.int64)
        else:
            mapping = self.adata_manager.get_state_registry(keys.batch_key(m))[
                "categorical_mapping"
            ]
            b = encode_labels(obs_column(mdata, m, bkey, "batch_key", BATCH_HINT), mapping)
            if (b < 0).any():
                col = adata.obs[bkey]
                missing = int(col.isna().sum())
                if missing:
                    raise ValueError(
                        f"obs['{bkey}'] of modality '{m}' has {missing} cells without a batch; "
                        f"give each a batch the model knows ({[str(v) for v in mapping][:10]})."
                    )
                unseen = sorted({str(v) for v in col[b < 0].unique()})
                raise ValueError(
                    f"obs['{bkey}'] of modality '{m}' has batches unseen in training "
                    f"({unseen[:10]}{' ...' if len(unseen) > 10 else ''}; the model knows "
                    f"{[str(v) for v in mapping][:10]}). Map the query's batches to trained ones "
                    "or train a model that includes them."
                )
        return x, b

    def _chunks(self, n: int, batch_size: int | None):
        bs = int(batch_size or 1024)
        for start in range(0, n, bs):
            yield slice(start, min(start + bs, n))

    @torch.inference_mode()
    def _encode(self, mdata: MuData, m: str, batch_size: int | None, give_mean: bool):
        x, b = self._modality_arrays(mdata, m)
        dev = self.device
        self.module.eval()
        out = []
        for sl in self._chunks(x.shape[0], batch_size):
            xs = x[sl]
            xs = xs.toarray() if sp.issparse(xs) else np.asarray(xs)
            xt = torch.as_tensor(xs, dtype=torch.float32, device=dev)
            bt = torch.as_tensor(b[sl], device=dev).reshape(-1, 1)
            qz, z = self.module.encode(m, xt, bt)
            out.append((qz.loc if give_mean else z).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.module.n_latent), np.float32)

    # --------------------------------------------------------------- training
    @devices_dsp.dedent
    def train(  # noqa: D417 (accelerator, devices: scvi-tools fragments)
        self,
        max_epochs: int | None = None,
        lr: float = 1e-3,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        train_size: float = 0.9,
        validation_size: float | None = None,
        batch_size: int = 256,
        groups_per_batch: int | None = None,
        cells_per_group: int | None = None,
        early_stopping: bool = False,
        early_stopping_monitor: str = "validation_loss",
        early_stopping_patience: int = 20,
        check_val_every_n_epoch: int | None = None,
        n_epochs_kl_warmup: int | None = None,
        seed: int | None = None,
        plan_kwargs: dict | None = None,
        **trainer_kwargs: Any,
    ) -> None:
        """Train with group-balanced minibatches through scvi-tools' TrainRunner (Lightning).

        Several GPUs or nodes: pass a Lightning DDP ``strategy`` (in a script
        ``"ddp_find_unused_parameters_true"``, in a notebook
        ``"ddp_notebook_find_unused_parameters_true"``) with ``devices`` and, for several
        nodes, ``num_nodes``. Each process then takes its own share of every epoch's
        group-balanced batches (one epoch = one pass split across the processes, so each of
        ``n`` processes takes about ``1/n`` of the optimizer steps), logged metrics are averaged
        over the processes, and early stopping works. Combinations that cannot work (more
        ``devices`` than CPU cores or visible GPUs, a notebook DDP strategy in a script or a
        script one in a notebook, ``use_distributed_sampler=True``) raise a ``ValueError``
        before training starts, as do arguments outside their valid range (``max_epochs=0``,
        ``batch_size=0``, ``lr <= 0``...; a ``TypeError`` for a wrong type): the message names
        the argument, the value and the valid range. See the "Training on several GPUs or
        nodes" page of the documentation.

        Parameters
        ----------
        max_epochs
            Epochs (one epoch = one pass over the largest modality's training cells), >= 1;
            default ``min(250, max(20, round(2e6 / n_cells)))``, ``n_cells`` summed over the
            modalities. The cap of 250 is where the held-out loss (``validation_size=0.1``)
            stopped falling on the real development set and on simulations
            (``benchmarks/validation_epochs.py``).
        lr
            Adam learning rate (> 0).
        %(param_accelerator)s
        %(param_devices)s
            ``devices`` may not exceed the CPU cores (``accelerator="cpu"``) or the visible
            GPUs.
        train_size, validation_size
            Per-modality split fractions: ``train_size`` in ``(0, 1]``, ``validation_size`` in
            ``[0, 1)`` (default ``1 - train_size``), their sum at most 1.
        batch_size
            Labeled cells per modality per batch (``groups_per_batch * cells_per_group``) when
            those are not given; >= 1.
        groups_per_batch, cells_per_group
            Batch composition (each >= 1): the same groups in every modality,
            ``cells_per_group`` cells each.
            Default ``cells_per_group = 8`` (more when there are few groups) and
            ``groups_per_batch = batch_size // cells_per_group``, at most the number of groups.
        early_stopping, early_stopping_monitor, early_stopping_patience
            Early stopping on a validation metric (total loss by default). Also under DDP,
            where the metric is averaged over the processes and all of them stop together.
        check_val_every_n_epoch
            Validation frequency (1 when early stopping is on).
        n_epochs_kl_warmup
            Epochs of linear KL warm-up (0: none); default ``max_epochs // 4``.
        seed
            Seed of the data split and batch sampling (``scvi.settings.seed`` when ``None``).
        plan_kwargs
            Passed to :class:`scvi.train.TrainingPlan` (``weight_decay``, ``max_kl_weight``...).
        **trainer_kwargs
            Passed to :class:`scvi.train.Trainer` (``strategy``, ``num_nodes``...).
            ``log_every_n_steps`` defaults to at most the number of batches per epoch.

        Returns
        -------
        ``None``; the losses per epoch are in ``model.history``.

        Examples
        --------
        >>> GROOVE.setup_mudata(mdata, layers={"rna": "counts"})
        >>> model = GROOVE(mdata, n_latent=4, n_hidden=16)
        >>> model.train(max_epochs=2, groups_per_batch=4, cells_per_group=8,
        ...             enable_progress_bar=False)
        >>> len(model.history["contrastive_train"])
        2

        Two processes on two GPUs, from a script:

        >>> model.train(accelerator="gpu", devices=2,
        ...             strategy="ddp_find_unused_parameters_true")  # doctest: +SKIP

        """
        check_train_arguments(**{k: v for k, v in locals().items() if k in _TRAIN_ARGS})
        strategy = trainer_kwargs.get("strategy")
        check_devices_and_strategy(accelerator, devices, strategy)
        if trainer_kwargs.pop("use_distributed_sampler", False):
            raise ValueError(
                "use_distributed_sampler=True is not supported: GROOVE's group-balanced sampler "
                "already shares the batches out across DDP processes. Leave it unset."
            )
        codes = {m: self._codes(m) for m in self.modalities}
        if max_epochs is None:
            n_cells = sum(len(c) for c in codes.values())
            max_epochs = int(min(MAX_DEFAULT_EPOCHS, max(20, round(2e6 / max(n_cells, 1)))))
        groups_per_batch, cells_per_group = batch_composition(
            codes, batch_size, groups_per_batch, cells_per_group
        )
        seed = int(scvi.settings.seed or 0) if seed is None else seed
        datamodule = GrooveDataModule(
            self.adata_manager,
            {m: self._registry_keys(m) for m in self.modalities},
            codes,
            train_size=train_size,
            validation_size=validation_size,
            groups_per_batch=groups_per_batch,
            cells_per_group=cells_per_group,
            seed=seed,
        )
        plan_kwargs = dict(plan_kwargs or {})
        if n_epochs_kl_warmup is None:
            n_epochs_kl_warmup = max(1, max_epochs // 4)
        plan_kwargs.setdefault("n_epochs_kl_warmup", n_epochs_kl_warmup)
        plan = GrooveTrainingPlan(self.module, lr=lr, **plan_kwargs)
        if early_stopping:
            if datamodule.n_val == 0:
                raise ValueError("early_stopping needs a validation split (train_size < 1).")
            check_val_every_n_epoch = check_val_every_n_epoch or 1
            trainer_kwargs = early_stopping_options(
                trainer_kwargs, is_ddp(strategy), early_stopping_monitor, early_stopping_patience
            )
        trainer_kwargs = trainer_options(
            trainer_kwargs, check_val_every_n_epoch, devices, datamodule.n_train_batches
        )
        with quiet_lightning(), warnings.catch_warnings():
            # scvi-tools warns under any DDP strategy even when early stopping is on (see above)
            warnings.filterwarnings("ignore", "early_stopping was automatically disabled")
            runner = TrainRunner(
                self,
                training_plan=plan,
                data_splitter=datamodule,
                max_epochs=max_epochs,
                accelerator=accelerator,
                devices=devices,
                **trainer_kwargs,
            )
        self._batch_composition = {
            "groups_per_batch": int(groups_per_batch),
            "cells_per_group": int(cells_per_group),
        }
        # queries (get_latent_representation...) leave the module in eval mode, and Lightning
        # keeps the mode it finds: train mode for every fit, also after a query
        self.module.train()
        with quiet_lightning():
            runner()

    # ---------------------------------------------------------------- queries
    def get_latent_representation(
        self,
        mdata: MuData | None = None,
        modality: str | None = None,
        batch_size: int | None = None,
        give_mean: bool = True,
    ) -> np.ndarray | dict[str, np.ndarray]:
        """Latent representation of the cells of one or every modality.

        Parameters
        ----------
        mdata
            MuData to embed (default: the registered one). A query MuData works too if its
            modalities have the training features (a subset of modalities is fine).
        modality
            One modality -> ndarray ``(n_cells, n_latent)``; ``None`` -> dict over the model's
            modalities present in ``mdata``.
        batch_size
            Cells per inference minibatch.
        give_mean
            Posterior mean (default) or one sample.

        Examples
        --------
        >>> GROOVE.setup_mudata(mdata, layers={"rna": "counts"})
        >>> model = GROOVE(mdata, n_latent=4, n_hidden=16)
        >>> model.train(max_epochs=1, enable_progress_bar=False)
        >>> model.get_latent_representation(modality="rna").shape
        (67, 4)
        >>> sorted(model.get_latent_representation())
        ['prot', 'rna']

        """
        self._check_if_trained(warn=True)
        mdata = self.adata if mdata is None else mdata
        if modality is not None:
            return self._encode(mdata, modality, batch_size, give_mean)
        return {
            m: self._encode(mdata, m, batch_size, give_mean)
            for m in self.modalities
            if m in mdata.mod
        }

    @torch.inference_mode()
    def get_imputed_values(
        self,
        source: str,
        target: str,
        mdata: MuData | None = None,
        batch_size: int | None = None,
        library_size: float | None = None,
    ) -> np.ndarray:
        """Decoder translation: encode ``source`` cells, decode with ``target``'s decoder.

        Parameters
        ----------
        source, target
            Modalities.
        mdata
            MuData holding the source cells (default: the registered one).
        batch_size
            Cells per inference minibatch.
        library_size
            For a count target: library size of the expected counts (e.g. ``1e4``); default
            the target modality's mean library size. Ignored for other likelihoods.

        Returns
        -------
        ndarray ``(n_source_cells, n_target_features)`` of expected values (means of the
        target likelihood: counts, continuous values or probabilities).

        Examples
        --------
        >>> GROOVE.setup_mudata(mdata, layers={"rna": "counts"})
        >>> model = GROOVE(mdata, n_latent=4, n_hidden=16)
        >>> model.train(max_epochs=1, enable_progress_bar=False)
        >>> model.get_imputed_values(source="rna", target="prot").shape
        (67, 10)

        """
        self._check_if_trained(warn=True)
        if target not in self.modalities:
            raise ValueError(f"target '{target}' is not one of the model's {self.modalities}.")
        mdata = self.adata if mdata is None else mdata
        z = self._encode(mdata, source, batch_size, give_mean=True)
        out = []
        self.module.eval()
        for sl in self._chunks(z.shape[0], batch_size):
            zt = torch.as_tensor(z[sl], device=self.device)
            mean = self.module.translate(source, target, zt)
            if library_size is not None and self.module.decoders[target].head.is_count:
                i = self.modalities.index(target)
                mean = mean / self.module.library_log_means[i].exp() * library_size
            out.append(mean.cpu().numpy())
        n_out = self.module.decoders[target].head.n_output
        return np.concatenate(out) if out else np.zeros((0, n_out), np.float32)
