"""Lightning data module: per-modality scvi-tools datasets, group-balanced batches."""

from __future__ import annotations

import numpy as np
from lightning.pytorch import LightningDataModule
from scvi.data import AnnDataManager
from torch.utils.data import DataLoader, Dataset

from ._sampler import GroupBalancedSampler


class MultiModalDataset(Dataset):
    """Index ``{modality: local indices}`` -> one flat dict of arrays (keys carry the modality).

    Each modality is an :class:`scvi.data.AnnTorchDataset` made by
    ``adata_manager.create_torch_dataset`` restricted to that modality's registry keys, so rows
    are read from the modality's own matrix at its own (local) positions.

    Examples
    --------
    >>> gs.model.GROOVE.setup_mudata(mdata, layers={"rna": "counts"})
    >>> manager = gs.model.GROOVE(mdata).adata_manager
    >>> ds = MultiModalDataset(manager, {"rna": {"X_rna": np.float32, "labels_rna": np.int64}})
    >>> ds[{"rna": np.array([0, 5])}]["X_rna"].shape
    (2, 40)

    """

    def __init__(self, adata_manager: AnnDataManager, keys: dict[str, dict[str, type]]):
        self.datasets = {
            m: adata_manager.create_torch_dataset(data_and_attributes=k) for m, k in keys.items()
        }

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets.values())

    def __getitem__(self, indices: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for m, idx in indices.items():
            out.update(self.datasets[m][np.asarray(idx)])
        return out


class GrooveDataModule(LightningDataModule):
    """Train/validation split per modality and group-balanced loaders.

    Parameters
    ----------
    adata_manager
        The model's manager (one MuData, disjoint cells).
    keys
        Registry keys and dtypes to load, per modality.
    codes
        Group codes per modality (``-1`` unlabeled), in each modality's local cell order.
    train_size, validation_size
        Fractions of each modality's cells; ``validation_size=None`` -> ``1 - train_size``.
    groups_per_batch, cells_per_group
        Batch composition (see :class:`GroupBalancedSampler`).
    seed
        Seed of the split and of the sampler.

    Notes
    -----
    Under Lightning DDP the loaders' samplers share the batches out across the processes
    themselves (see :class:`GroupBalancedSampler`), so the Trainer must not wrap them in its own
    distributed sampler: pass ``use_distributed_sampler=False`` (``GROOVE.train`` does). Every
    process uses rank 0's seed, so the split and the batches agree across processes.

    Examples
    --------
    >>> gs.model.GROOVE.setup_mudata(mdata, layers={"rna": "counts"})
    >>> model = gs.model.GROOVE(mdata)
    >>> keys = {m: {f"X_{m}": np.float32, f"labels_{m}": np.int64} for m in model.modalities}
    >>> codes = {m: model._codes(m) for m in model.modalities}
    >>> dm = GrooveDataModule(model.adata_manager, keys, codes, groups_per_batch=5,
    ...                       cells_per_group=4)
    >>> dm.n_train_batches > 0, dm.n_val > 0
    (True, True)

    """

    def __init__(
        self,
        adata_manager: AnnDataManager,
        keys: dict[str, dict[str, type]],
        codes: dict[str, np.ndarray],
        train_size: float = 0.9,
        validation_size: float | None = None,
        groups_per_batch: int = 32,
        cells_per_group: int = 8,
        seed: int = 0,
        pin_memory: bool = False,
    ):
        super().__init__()
        if not 0 < train_size <= 1:
            raise ValueError(f"train_size must be in (0, 1], got {train_size}.")
        validation_size = 1 - train_size if validation_size is None else validation_size
        if validation_size < 0 or train_size + validation_size > 1 + 1e-9:
            raise ValueError("train_size + validation_size must be <= 1.")
        self.adata_manager = adata_manager
        self.keys = keys
        self.codes = codes
        self.train_size = train_size
        self.validation_size = validation_size
        self.groups_per_batch = groups_per_batch
        self.cells_per_group = cells_per_group
        self.seed = seed
        self.pin_memory = pin_memory
        self.train_idx: dict[str, np.ndarray] = {}
        self.val_idx: dict[str, np.ndarray] = {}
        self.test_idx: dict[str, np.ndarray] = {}
        self._split()

    def _split(self) -> None:
        rng = np.random.default_rng(self.seed)
        for m, c in self.codes.items():
            n = len(c)
            perm = rng.permutation(n)
            n_train = int(np.ceil(self.train_size * n))
            n_val = min(n - n_train, int(np.floor(self.validation_size * n)))
            self.train_idx[m] = np.sort(perm[:n_train])
            self.val_idx[m] = np.sort(perm[n_train : n_train + n_val])
            self.test_idx[m] = np.sort(perm[n_train + n_val :])
        self.n_train = int(sum(len(v) for v in self.train_idx.values()))
        self.n_val = int(sum(len(v) for v in self.val_idx.values()))

    @property
    def n_train_batches(self) -> int:
        """Training batches per epoch, over all processes together."""
        codes = {m: self.codes[m][i] for m, i in self.train_idx.items()}
        sampler = GroupBalancedSampler(
            codes,
            self.train_idx,
            self.groups_per_batch,
            self.cells_per_group,
            num_replicas=1,
            rank=0,
        )
        return int(sampler.n_batches)

    def setup(self, stage: str | None = None) -> None:
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1:
            # the split and the sampler's batches must agree across processes
            seed = int(trainer.strategy.broadcast(self.seed, src=0))
            if seed != self.seed:
                self.seed = seed
                self._split()
        self.dataset = MultiModalDataset(self.adata_manager, self.keys)

    def _loader(self, idx: dict[str, np.ndarray], fixed: bool) -> DataLoader:
        sampler = GroupBalancedSampler(
            {m: self.codes[m][i] for m, i in idx.items()},
            idx,
            self.groups_per_batch,
            self.cells_per_group,
            seed=self.seed + (1 if fixed else 0),
            fixed=fixed,
        )
        return DataLoader(
            self.dataset, sampler=sampler, batch_size=None, pin_memory=self.pin_memory
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_idx, fixed=False)

    def val_dataloader(self) -> DataLoader | list:
        if self.n_val == 0 or any(len(v) == 0 for v in self.val_idx.values()):
            return []
        return self._loader(self.val_idx, fixed=True)
