"""The shared skeleton of the linear, GW and COOT solvers: prepare, iterate, assemble.

Every solver family splits the cells into the blocks of a :class:`.GroupLayout` and runs

1. *prepare*: :class:`Blocks` validates the storage options, batches the dense blocks into
   padded chunks of similar size (:meth:`.GroupLayout.chunks`) and makes every block with more
   than ``stream_above`` pairs a chunk of its own, solved streamed (:mod:`._stream`); the
   family gathers its per-cell data into the chunks (:meth:`Blocks.gather`);
2. *iterate*: :meth:`Blocks.sinkhorn` solves entropic OT on a chunk's cost (batched over its
   padded blocks, or streamed from a :class:`.FactoredCost`), warm-started from the chunk's
   previous potentials, and records every block's iterations and marginal error;
3. *assemble*: :meth:`Blocks.add` sparsifies each chunk's plan into the coupling and
   :meth:`Blocks.result` adds the storage options and per-block records to the family's own.

Dense chunks hold padded backend arrays ``(G, N, ...)``; a streamed chunk holds the numpy rows
of its one block. :meth:`Blocks.threads` limits BLAS to one thread around a solve whose dense
blocks are all small (see :meth:`.ArrayOps.blas_threads_for`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._costs import support_max
from ._groups import GroupLayout, check_stream_above, pad_gather
from ._problem import AlignProblem
from ._registry import AlignResult
from ._sinkhorn import sinkhorn_padded
from ._sparsify import CouplingBuilder, check_sparsity
from ._stream import StreamOutput, solve_stream


@dataclass
class Chunk:
    """A batch of padded dense blocks, or one block solved streamed.

    Attributes
    ----------
    ids
        Group ids of the blocks.
    source, target
        Per block, the positions of its cells in each modality.
    streamed
        Whether the (single) block is solved streamed.
    a, b
        Cell masses: padded backend arrays ``(G, N)``, ``(G, M)`` (dense) or numpy (streamed).
    data
        The family's per-cell arrays (:meth:`Blocks.gather`), also read as attributes.
    f, g, plan
        Potentials and plan of the last dense solve (the potentials warm-start the next).
    out
        The last streamed solve (its potentials warm-start the next).

    """

    ids: np.ndarray
    source: list[np.ndarray]
    target: list[np.ndarray]
    streamed: bool
    a: Any
    b: Any
    data: dict[str, Any] = field(default_factory=dict)
    f: Any = None
    g: Any = None
    plan: Any = None
    out: StreamOutput | None = None

    def __getattr__(self, name: str) -> Any:
        data = self.__dict__.get("data", {})
        if name in data:
            return data[name]
        raise AttributeError(f"{type(self).__name__!r} has no attribute or data {name!r}")


class Blocks:
    """The chunks of one solve, their per-block records and the coupling being assembled.

    Parameters
    ----------
    problem
        The alignment problem (backend in ``problem.ops``).
    layout
        Its blocks.
    a_cells, b_cells
        Per block, the masses of its source and target cells.
    prune, keep_mass, max_per_row
        Sparsification of the stored rows (:func:`.sparsify_rows`).
    stream_above
        Blocks with more pairs are solved streamed (``None``: the backend's default).
    streaming
        ``False`` solves every block dense whatever its size.

    """

    def __init__(
        self,
        problem: AlignProblem,
        layout: GroupLayout,
        a_cells: list[np.ndarray],
        b_cells: list[np.ndarray],
        *,
        prune: float,
        keep_mass: float,
        max_per_row: int | None,
        stream_above: int | None,
        streaming: bool = True,
    ) -> None:
        self.problem, self.ops, self.layout = problem, problem.ops, layout
        self.prune = prune
        self.keep_mass, self.max_per_row = check_sparsity(keep_mass, max_per_row)
        self.stream_above = check_stream_above(stream_above, self.ops.memory.stream_above)
        self.streamed = layout.streamed(self.stream_above) & streaming
        self.largest_dense = layout.largest_dense(self.stream_above if streaming else 2**63 - 1)
        self.a, self.b = np.zeros(layout.n_source), np.zeros(layout.n_target)
        for si, ti, a, b in zip(layout.source_index, layout.target_index, a_cells, b_cells):
            self.a[si], self.b[ti] = a, b
        G = layout.n_groups
        self.n_iter, self.error, self.converged = np.zeros(G, int), np.zeros(G), np.zeros(G, bool)
        self.n_passes = 0
        self.builder = CouplingBuilder(
            layout.n_source, layout.n_target, prune, self.keep_mass, self.max_per_row
        )
        ops = self.ops
        dense = layout.chunks(ops.itemsize, ops.memory.chunk_bytes, np.flatnonzero(~self.streamed))
        self.chunks = [self._chunk(ids, False) for ids in dense]
        self.chunks += [self._chunk(np.array([g]), True) for g in np.flatnonzero(self.streamed)]

    def _chunk(self, ids: np.ndarray, streamed: bool) -> Chunk:
        si = [self.layout.source_index[g] for g in ids]
        ti = [self.layout.target_index[g] for g in ids]
        ch = Chunk(ids, si, ti, streamed, None, None)
        ch.a, ch.b = self.take(ch, self.a), self.take(ch, self.b, "target")
        return ch

    def threads(self) -> contextlib.AbstractContextManager:
        """BLAS thread limit for the dense blocks (the streamed ones use one thread)."""
        return self.ops.blas_threads_for(self.largest_dense)

    # -- prepare -------------------------------------------------------------------------------

    def take(self, ch: Chunk, values: np.ndarray, side: str = "source") -> Any:
        """``values`` of the chunk's cells: padded ``(G, N, ...)`` backend array, or numpy rows."""
        index = ch.source if side == "source" else ch.target
        return values[index[0]] if ch.streamed else self.ops.asarray(pad_gather(values, index))

    def gather(self, ch: Chunk, side: str, **values: np.ndarray) -> None:
        """Store ``values`` of the chunk's cells (see :meth:`take`) in ``ch.data``."""
        ch.data.update({name: self.take(ch, v, side) for name, v in values.items()})

    def product_statistic(self, ch: Chunk, L: Any, R: Any) -> Any:
        """``L^T (a b^T / mass) R`` per block: ``(G, r1, r2)`` (dense) or ``(r1, r2)`` numpy."""
        if ch.streamed:
            return np.outer(L.T @ ch.a, R.T @ ch.b) / ch.a.sum()
        ops = self.ops
        mass = ops.nx.sum(ch.a, axis=1)[:, None, None]
        la = ops.transpose(L) @ ch.a[:, :, None]
        rb = ops.transpose(R) @ ch.b[:, :, None]
        return (la @ ops.transpose(rb)) / mass

    def cost_scale(self, costs: Iterable[Any]) -> float:
        """Largest entry on the support of the chunks' costs (one per chunk), at least 0."""
        ops = self.ops
        maxima = [
            C.max() if ch.streamed else support_max(C, ch.a, ch.b, ops)
            for ch, C in zip(self.chunks, costs)
        ]
        return max([0.0, *maxima])

    # -- iterate -------------------------------------------------------------------------------

    def sinkhorn(
        self,
        ch: Chunk,
        cost: Any,
        eps: float,
        *,
        tol: float,
        max_iter: int,
        stat: tuple[Any, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Solve the chunk on ``cost`` from its last potentials; ``stat=(L, R)``: ``L^T T R``.

        ``cost`` is a padded backend array (dense) or a :class:`.FactoredCost` (streamed);
        ``options`` go to :func:`.sinkhorn_padded` / :func:`.solve_stream`. The statistic is
        ``(G, r1, r2)`` per block (dense) or ``(r1, r2)`` numpy (streamed).
        """
        if ch.streamed:
            prev = ch.out
            out = ch.out = solve_stream(
                cost,
                ch.a,
                ch.b,
                eps,
                tol=tol,
                max_iter=max_iter,
                f=None if prev is None else prev.f,
                g=None if prev is None else prev.g,
                keep_mass=self.keep_mass,
                max_per_row=self.max_per_row,
                prune=self.prune,
                stat_factors=stat,
                column_nearest=None if prev is None else prev.column_nearest,
                **options,
            )
            self.n_passes += out.n_passes
            self.record(ch.ids, out.n_iter, out.error, out.converged)
            return out.stat
        out = sinkhorn_padded(
            cost,
            ch.a,
            ch.b,
            eps,
            ops=self.ops,
            tol=tol,
            max_iter=max_iter,
            f=ch.f,
            g=ch.g,
            **options,
        )
        ch.f, ch.g, ch.plan = out.f, out.g, out.plan
        self.record(ch.ids, out.n_iter, out.error, out.converged)
        return None if stat is None else (self.ops.transpose(stat[0]) @ out.plan) @ stat[1]

    def record(self, ids: np.ndarray, n_iter: Any, error: Any, converged: Any) -> None:
        """Iterations, marginal error and convergence of the last solve of blocks ``ids``."""
        self.n_iter[ids], self.error[ids], self.converged[ids] = n_iter, error, converged

    # -- assemble ------------------------------------------------------------------------------

    def add(self, ch: Chunk, scale: np.ndarray | None = None) -> None:
        """Store the chunk's last plan (times ``scale`` per block) and release its arrays."""
        if ch.streamed:
            out, w = ch.out, 1.0 if scale is None else float(scale[0])
            si, ti = ch.source[0], ch.target[0]
            self.builder.add_sparse(si[out.rows], ti[out.cols], out.vals * w, out.dropped * w)
        else:
            self.builder.add(self.ops.to_numpy(ch.plan), ch.source, ch.target, scale=scale)
        ch.plan = None
        ch.data.clear()

    def result(
        self,
        coupling: Any,
        parameters: dict[str, Any],
        summary: dict[str, Any],
        groups: dict[str, Any],
    ) -> AlignResult:
        """The :class:`.AlignResult` with the storage options and per-block records added."""
        parameters = {
            **parameters,
            "prune": self.prune,
            "keep_mass": self.keep_mass,
            "max_per_row": 0 if self.max_per_row is None else self.max_per_row,
            "stream_above": self.stream_above,
        }
        convergence = {
            **summary,
            "n_groups": self.layout.n_groups,
            "dropped_mass": self.builder.dropped_mass,
            "n_streamed_groups": int(self.streamed.sum()),
            "n_streamed_passes": self.n_passes,
            "groups": {"names": self.layout.names, **groups, "streamed": self.streamed},
        }
        return AlignResult(coupling=coupling, parameters=parameters, convergence=convergence)
