"""Group-balanced minibatches for modalities measured in different cells."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler


def replica_context(num_replicas: int | None = None, rank: int | None = None) -> tuple[int, int]:
    """Number of processes and this process's rank, from :mod:`torch.distributed` by default.

    Values given explicitly win; missing ones come from the initialised default process group
    (Lightning DDP sets it up before it asks for dataloaders), else ``(1, 0)``.

    Examples
    --------
    >>> replica_context()
    (1, 0)
    >>> replica_context(num_replicas=4, rank=2)
    (4, 2)

    """
    if num_replicas is None or rank is None:
        initialised = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if initialised else 1
        if rank is None:
            rank = dist.get_rank() if initialised else 0
    num_replicas, rank = int(num_replicas), int(rank)
    if num_replicas < 1:
        raise ValueError(f"num_replicas must be >= 1, got {num_replicas}.")
    if not 0 <= rank < num_replicas:
        raise ValueError(f"rank must be in [0, num_replicas={num_replicas}), got {rank}.")
    return num_replicas, rank


class _GroupCursor:
    """Cells of one modality grouped by label, reshuffled each cycle, read with a cursor.

    Taking ``k`` cells of a group reads ``k`` consecutive positions of that group's shuffled list
    (wrapping around): without replacement while the group has ``>= k`` unread cells, and cycling
    (i.e. with replacement) for groups smaller than ``k``. Fully vectorised over groups.
    """

    def __init__(self, codes: np.ndarray, cells: np.ndarray, n_groups: int, rng):
        self.rng = rng
        self.cells = cells[np.argsort(codes, kind="stable")]
        self.sizes = np.bincount(codes, minlength=n_groups)
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        self.cursor = np.zeros(n_groups, dtype=np.int64)
        self._shuffle_all()

    def _shuffle_all(self):
        grp = np.repeat(np.arange(len(self.sizes)), self.sizes)
        order = np.lexsort((self.rng.random(len(grp)), grp))
        self.cells = self.cells[order]

    def take(self, groups: np.ndarray, k: int) -> np.ndarray:
        offs = (self.cursor[groups, None] + np.arange(k)[None, :]) % self.sizes[groups, None]
        self.cursor[groups] += k
        return self.cells[self.starts[groups, None] + offs].reshape(-1)


class GroupBalancedSampler(Sampler):
    """Yields ``{modality: local cell indices}`` with the same groups in every modality.

    Each batch draws ``groups_per_batch`` groups shared by all modalities and ``cells_per_group``
    cells of each group in every modality (undersampling large groups, cycling through small ones),
    plus a share of the cells that cannot take part in the contrastive term (unlabeled cells and
    cells of groups absent from another modality), dealt out so that each is seen once per epoch.

    Under distributed training (Lightning DDP) every process builds the same epoch of batches
    from the same seed and keeps every ``num_replicas``-th one, starting at its ``rank``: the
    processes see different batches, each batch still holds the same groups in every modality,
    and one epoch is one pass over the data split across the processes. The epoch's batch count
    is rounded up to a multiple of ``num_replicas`` so that every process takes the same number
    of steps. With one process the batches are exactly those of a non-distributed run.

    Parameters
    ----------
    codes
        Per modality, integer group codes of the candidate cells (``-1`` = unlabeled).
    cells
        Per modality, the local indices of the candidate cells (same length as ``codes``).
    groups_per_batch, cells_per_group
        Batch composition.
    n_batches
        Batches per epoch over all processes; default: enough for one pass over the largest
        modality. Rounded up to a multiple of ``num_replicas``.
    seed
        Seed; with ``fixed=True`` every epoch yields the same batches (validation). Must be the
        same in every process.
    num_replicas, rank
        Number of processes and this process's rank; default: those of the initialised
        :mod:`torch.distributed` process group, else one process.

    Examples
    --------
    >>> s = GroupBalancedSampler({"a": np.array([0, 0, 1, 1]), "b": np.array([0, 1, 1, -1])},
    ...                          {"a": np.arange(4), "b": np.arange(4)}, 2, 2)
    >>> batch = next(iter(s))
    >>> sorted(batch)
    ['a', 'b']
    >>> halves = [GroupBalancedSampler({"a": np.repeat([0, 1], 8), "b": np.repeat([0, 1], 8)},
    ...                                {"a": np.arange(16), "b": np.arange(16)}, 1, 2,
    ...                                num_replicas=2, rank=r) for r in (0, 1)]
    >>> [len(h) for h in halves]
    [4, 4]

    """

    def __init__(
        self,
        codes: dict[str, np.ndarray],
        cells: dict[str, np.ndarray],
        groups_per_batch: int,
        cells_per_group: int,
        n_batches: int | None = None,
        seed: int = 0,
        fixed: bool = False,
        num_replicas: int | None = None,
        rank: int | None = None,
    ):
        self.mods = list(codes)
        self.codes = {m: np.asarray(codes[m], dtype=np.int64) for m in self.mods}
        self.cells = {m: np.asarray(cells[m], dtype=np.int64) for m in self.mods}
        n_groups = 1 + max((c.max() if len(c) else -1) for c in self.codes.values())
        present = np.ones(max(n_groups, 1), dtype=bool)
        for m in self.mods:
            present &= np.bincount(self.codes[m][self.codes[m] >= 0], minlength=len(present)) > 0
        self.shared_groups = np.flatnonzero(present[:n_groups])
        self.n_groups = max(n_groups, 1)
        self.groups_per_batch = max(1, min(int(groups_per_batch), max(len(self.shared_groups), 1)))
        self.cells_per_group = int(cells_per_group)
        self.seed = seed
        self.fixed = fixed
        self._epoch = 0
        self.in_shared = {m: np.isin(self.codes[m], self.shared_groups) for m in self.mods}
        per_batch = self.groups_per_batch * self.cells_per_group
        if n_batches is None:
            biggest = max(len(c) for c in self.codes.values())
            n_batches = max(1, int(np.ceil(biggest / max(per_batch, 1))))
        self.num_replicas, self.rank = replica_context(num_replicas, rank)
        # batches of one epoch over all processes (the same count for each process)
        self.n_batches = self.num_replicas * int(np.ceil(int(n_batches) / self.num_replicas))

    def __len__(self) -> int:
        return self.n_batches // self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch whose batches the next iteration yields (Lightning calls this).

        Every process must draw the same epoch for the processes' batches to be disjoint.
        Without calls, each iteration moves on to the next epoch.
        """
        self._epoch = int(epoch)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        rng = np.random.default_rng(self.seed if self.fixed else self.seed + 7919 * self._epoch)
        self._epoch += 1
        cursors, extras = {}, {}
        for m in self.mods:
            sh = self.in_shared[m]
            cursors[m] = _GroupCursor(self.codes[m][sh], self.cells[m][sh], self.n_groups, rng)
            rest = self.cells[m][~sh]
            extras[m] = np.array_split(rng.permutation(rest), self.n_batches)
        g = self.groups_per_batch
        n_sh = len(self.shared_groups)
        order = np.empty(0, dtype=np.int64)
        for i in range(self.n_batches):
            if n_sh:
                while len(order) < g:
                    order = np.concatenate([order, rng.permutation(self.shared_groups)])
                groups, order = order[:g], order[g:]
            batch = {}
            for m in self.mods:
                parts = [extras[m][i]]
                if n_sh:
                    parts.insert(0, cursors[m].take(groups, self.cells_per_group))
                batch[m] = np.concatenate(parts)
            if i % self.num_replicas == self.rank:
                yield batch
