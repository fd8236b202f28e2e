"""Groups of cells as independent blocks: layout, masses, padded batches and sparse assembly."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

GroupWeights = Literal["source", "target", "mean"]


def _sizes(index: list[np.ndarray]) -> np.ndarray:
    return np.array([len(i) for i in index], dtype=np.int64)


def _kept(index: list[np.ndarray]) -> np.ndarray:
    return np.sort(np.concatenate(index)) if index else np.array([], int)


@dataclass
class GroupLayout:
    """Cells of the two modalities split into groups present on both sides.

    Attributes
    ----------
    names
        Group names, one per block.
    source_index, target_index
        Per group, the positions of its cells in the modality's cell order.
    n_source, n_target
        Number of cells of each modality (kept or not).

    Examples
    --------
    >>> layout = GroupLayout.from_codes(np.array([0, 1, 1, -1]), np.array([1, 0, 0]), ["a", "b"])
    >>> layout.n_groups, layout.source_sizes.tolist(), layout.target_sizes.tolist()
    (2, [1, 2], [2, 1])
    >>> layout.source_kept().tolist(), layout.group_mass("source").tolist()
    ([0, 1, 2], [0.3333333333333333, 0.6666666666666666])

    """

    names: np.ndarray
    source_index: list[np.ndarray]
    target_index: list[np.ndarray]
    n_source: int
    n_target: int

    @classmethod
    def from_codes(
        cls, source_codes: np.ndarray, target_codes: np.ndarray, names: Sequence[str]
    ) -> GroupLayout:
        """Build from integer codes per cell (-1 = not part of the problem).

        Examples
        --------
        >>> GroupLayout.from_codes(np.array([0, 0, 1]), np.array([1, 0]), ["a", "b"]).n_groups
        2

        """
        source_codes = np.asarray(source_codes)
        target_codes = np.asarray(target_codes)
        src, tgt, kept = [], [], []
        s_order = np.argsort(source_codes, kind="stable")
        t_order = np.argsort(target_codes, kind="stable")
        s_bounds = np.searchsorted(source_codes[s_order], np.arange(len(names) + 1))
        t_bounds = np.searchsorted(target_codes[t_order], np.arange(len(names) + 1))
        for code in range(len(names)):
            si = s_order[s_bounds[code] : s_bounds[code + 1]]
            ti = t_order[t_bounds[code] : t_bounds[code + 1]]
            if len(si) and len(ti):
                src.append(si)
                tgt.append(ti)
                kept.append(code)
        return cls(
            names=np.asarray(names, dtype=str)[kept] if kept else np.array([], dtype=str),
            source_index=src,
            target_index=tgt,
            n_source=len(source_codes),
            n_target=len(target_codes),
        )

    @classmethod
    def single(cls, n_source: int, n_target: int, name: str = "all") -> GroupLayout:
        """One block holding every cell (unlabeled methods).

        Examples
        --------
        >>> GroupLayout.single(100, 80).n_groups
        1

        """
        return cls(
            names=np.array([name]),
            source_index=[np.arange(n_source)],
            target_index=[np.arange(n_target)],
            n_source=n_source,
            n_target=n_target,
        )

    @property
    def n_groups(self) -> int:
        """Number of blocks."""
        return len(self.names)

    @property
    def source_sizes(self) -> np.ndarray:
        """Source cells per block."""
        return _sizes(self.source_index)

    @property
    def target_sizes(self) -> np.ndarray:
        """Target cells per block."""
        return _sizes(self.target_index)

    def source_kept(self) -> np.ndarray:
        """Positions of all source cells in some block, in order."""
        return _kept(self.source_index)

    def target_kept(self) -> np.ndarray:
        """Positions of all target cells in some block, in order."""
        return _kept(self.target_index)

    def group_mass(self, group_weights: GroupWeights = "source") -> np.ndarray:
        """Mass of each block (sums to 1).

        ``"source"``: proportional to the block's source cells (every kept source cell then
        carries the same mass); ``"target"``: to its target cells; ``"mean"``: to the mean of both.
        """
        ns, nt = self.source_sizes.astype(float), self.target_sizes.astype(float)
        sizes = {"source": ns, "target": nt, "mean": 0.5 * (ns / ns.sum() + nt / nt.sum())}
        if group_weights not in sizes:
            raise ValueError(
                f"group_weights must be 'source', 'target' or 'mean', got {group_weights!r}."
            )
        w = sizes[group_weights]
        return w / w.sum()

    def cell_masses(self, group_mass: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Uniform masses within each block, scaled to the block's mass."""
        a = [np.full(len(i), w / len(i)) for i, w in zip(self.source_index, group_mass)]
        b = [np.full(len(i), w / len(i)) for i, w in zip(self.target_index, group_mass)]
        return a, b

    def streamed(self, stream_above: int) -> np.ndarray:
        """Whether each block has more than ``stream_above`` source x target pairs."""
        return self.source_sizes * self.target_sizes > stream_above

    def largest_dense(self, stream_above: int) -> int:
        """Pairs of the largest block not solved streamed (0 if every block is)."""
        pairs = self.source_sizes * self.target_sizes
        pairs = pairs[pairs <= stream_above]
        return int(pairs.max()) if len(pairs) else 0

    def chunks(
        self, entry_bytes: int, budget_bytes: int, ids: np.ndarray | None = None
    ) -> Iterator[np.ndarray]:
        """Batches of blocks of similar size whose padded kernels fit ``budget_bytes``.

        Blocks are sorted by size so that padding stays small; a block larger than the budget
        forms a batch of its own. ``ids`` restricts the batches to some blocks.
        """
        ns, nt = self.source_sizes, self.target_sizes
        order = np.lexsort((nt, ns))
        if ids is not None:
            order = order[np.isin(order, ids)]
        start = 0
        while start < len(order):
            stop = start + 1
            while stop < len(order):
                n_max, m_max = ns[order[stop]], nt[order[start : stop + 1]].max()
                if (stop + 1 - start) * n_max * m_max * entry_bytes > budget_bytes:
                    break
                stop += 1
            yield order[start:stop]
            start = stop


def pad_gather(
    values: np.ndarray, index: Sequence[np.ndarray], width: int | None = None, fill: float = 0.0
) -> np.ndarray:
    """Stack ``values[index[g]]`` for each block into a zero-padded ``(G, width, ...)`` array.

    Examples
    --------
    >>> pad_gather(np.arange(5.0), [np.array([0, 1]), np.array([4])]).tolist()
    [[0.0, 1.0], [4.0, 0.0]]

    """
    width = max(len(i) for i in index) if width is None else width
    out = np.full((len(index), width, *values.shape[1:]), fill, dtype=values.dtype)
    for g, idx in enumerate(index):
        out[g, : len(idx)] = values[idx]
    return out


def check_stream_above(stream_above: int | None, default: int) -> int:
    """Validate ``stream_above`` (``None``: the backend's default).

    Examples
    --------
    >>> check_stream_above(None, 2**24)
    16777216

    """
    if stream_above is None:
        return int(default)
    if isinstance(stream_above, bool) or not isinstance(stream_above, int | np.integer):
        raise TypeError(
            f"stream_above must be a non-negative integer (source x target pairs) or None, got "
            f"{stream_above!r}."
        )
    if stream_above < 0:
        raise ValueError(
            f"stream_above must be >= 0 (0 streams every group), got {stream_above!r}."
        )
    return int(stream_above)
