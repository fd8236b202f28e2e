"""Groups of cells as independent blocks: layout, masses, padded batches and sparse assembly."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp

GroupWeights = Literal["source", "target", "mean"]


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
    >>> layout = GroupLayout.from_codes(src_codes, tgt_codes, names)  # doctest: +SKIP

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
        >>> GroupLayout.single(100, 80).n_groups  # doctest: +SKIP
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
        """Number of blocks.

        Examples
        --------
        >>> layout.n_groups  # doctest: +SKIP

        """
        return len(self.names)

    @property
    def source_sizes(self) -> np.ndarray:
        """Source cells per block.

        Examples
        --------
        >>> layout.source_sizes  # doctest: +SKIP

        """
        return np.array([len(i) for i in self.source_index], dtype=np.int64)

    @property
    def target_sizes(self) -> np.ndarray:
        """Target cells per block.

        Examples
        --------
        >>> layout.target_sizes  # doctest: +SKIP

        """
        return np.array([len(i) for i in self.target_index], dtype=np.int64)

    def source_kept(self) -> np.ndarray:
        """Positions of all source cells in some block.

        Examples
        --------
        >>> layout.source_kept()  # doctest: +SKIP

        """
        return (
            np.sort(np.concatenate(self.source_index)) if self.source_index else np.array([], int)
        )

    def target_kept(self) -> np.ndarray:
        """Positions of all target cells in some block.

        Examples
        --------
        >>> layout.target_kept()  # doctest: +SKIP

        """
        return (
            np.sort(np.concatenate(self.target_index)) if self.target_index else np.array([], int)
        )

    def group_mass(self, group_weights: GroupWeights = "source") -> np.ndarray:
        """Mass of each block (sums to 1).

        ``"source"``: proportional to the block's source cells (every kept source cell then
        carries the same mass); ``"target"``: to its target cells; ``"mean"``: to the mean of both.

        Examples
        --------
        >>> layout.group_mass("source")  # doctest: +SKIP

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
        """Uniform masses within each block, scaled to the block's mass.

        Examples
        --------
        >>> a, b = layout.cell_masses(layout.group_mass())  # doctest: +SKIP

        """
        a = [np.full(len(i), w / len(i)) for i, w in zip(self.source_index, group_mass)]
        b = [np.full(len(i), w / len(i)) for i, w in zip(self.target_index, group_mass)]
        return a, b

    def chunks(self, entry_bytes: int, budget_bytes: int) -> Iterator[np.ndarray]:
        """Batches of blocks of similar size whose padded kernels fit ``budget_bytes``.

        Blocks are sorted by size so that padding stays small; a block larger than the budget
        forms a batch of its own.

        Examples
        --------
        >>> for ids in layout.chunks(4, 2**22): ...  # doctest: +SKIP

        """
        ns, nt = self.source_sizes, self.target_sizes
        order = np.lexsort((nt, ns))
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
    >>> pad_gather(np.arange(5.0), [np.array([0, 1]), np.array([4])]).shape  # doctest: +SKIP
    (2, 2)

    """
    width = max(len(i) for i in index) if width is None else width
    out = np.full((len(index), width, *values.shape[1:]), fill, dtype=values.dtype)
    for g, idx in enumerate(index):
        out[g, : len(idx)] = values[idx]
    return out


class CouplingBuilder:
    """Collect padded block plans into one sparse coupling, dropping negligible entries.

    Entries below ``prune`` times their row's largest entry are dropped (entropic plans are
    dense in exact arithmetic but most entries are many orders of magnitude below the row mass).

    Examples
    --------
    >>> builder = CouplingBuilder(n_source, n_target)  # doctest: +SKIP
    >>> builder.add(P_padded, src_index, tgt_index)  # doctest: +SKIP
    >>> P = builder.to_csr()  # doctest: +SKIP

    """

    def __init__(self, n_source: int, n_target: int, prune: float = 1e-12) -> None:
        self.shape = (n_source, n_target)
        self.prune = prune
        self._rows: list[np.ndarray] = []
        self._cols: list[np.ndarray] = []
        self._vals: list[np.ndarray] = []

    def add(
        self,
        plans: np.ndarray,
        source_index: Sequence[np.ndarray],
        target_index: Sequence[np.ndarray],
        scale: np.ndarray | None = None,
    ) -> None:
        """Add padded plans ``(G, N, M)`` of blocks with the given cell positions.

        Examples
        --------
        >>> builder.add(P, [np.arange(3)], [np.arange(4)])  # doctest: +SKIP

        """
        for g, (si, ti) in enumerate(zip(source_index, target_index)):
            block = plans[g, : len(si), : len(ti)]
            if self.prune > 0:
                keep = block > self.prune * block.max(axis=1, keepdims=True)
            else:
                keep = block > 0
            r, c = np.nonzero(keep)
            vals = block[r, c].astype(np.float64)
            if scale is not None:
                vals = vals * scale[g]
            self._rows.append(si[r].astype(np.int64))
            self._cols.append(ti[c].astype(np.int64))
            self._vals.append(vals)

    def add_sparse(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> None:
        """Add entries given in modality cell positions.

        Examples
        --------
        >>> builder.add_sparse(np.array([0]), np.array([1]), np.array([0.5]))  # doctest: +SKIP

        """
        self._rows.append(np.asarray(rows, dtype=np.int64))
        self._cols.append(np.asarray(cols, dtype=np.int64))
        self._vals.append(np.asarray(vals, dtype=np.float64))

    def to_csr(self) -> sp.csr_matrix:
        """The assembled ``(n_source, n_target)`` CSR matrix.

        Examples
        --------
        >>> builder.to_csr().shape  # doctest: +SKIP

        """
        if not self._vals:
            return sp.csr_matrix(self.shape)
        rows = np.concatenate(self._rows)
        cols = np.concatenate(self._cols)
        vals = np.concatenate(self._vals)
        self._rows, self._cols, self._vals = [], [], []
        out = sp.csr_matrix((vals, (rows, cols)), shape=self.shape)
        out.sum_duplicates()
        return out
