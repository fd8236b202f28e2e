"""Parameter docs of the aligners' option groups, each written once.

Each fragment is numpy-docstring text for the parameters of one option group
(:mod:`._options`); :func:`._options.aligner_options` renders an aligner's Parameters section
from the fragments of its groups.
"""

from __future__ import annotations

PROBLEM = """\
problem
    Prepared by :func:`groove_sc.tl.align`."""

SPARSITY = """\
prune
    Entries below ``prune`` times their row's maximum are not stored.
keep_mass
    Each stored row keeps its largest entries up to this share of its mass, rescaled so
    that the row keeps its full mass (``1.0``: no mass dropped).
max_per_row
    At most this many entries are stored per row (``None``: no cap). The mass moved from
    dropped entries is ``uns[key_added]["convergence"]["dropped_mass"]``."""

STREAM_ABOVE_LINEAR = """\
stream_above
    Groups with more source x target pairs than this are solved without a dense block:
    the cost is streamed in row chunks from its factorisation (``None``: 4096 x 4096 on
    CPU, 32768 x 32768 on a GPU; ``0`` streams every group). Same solution up to ``tol``."""


def _stream_above(cost: str) -> str:
    return f"""\
stream_above
    Groups with more source x target pairs than this are solved without a dense block,
    streaming row chunks of the factorised {cost} (``None``: 4096 x 4096 on CPU,
    32768 x 32768 on a GPU; ``0`` streams every group)."""


SINKHORN = """\
tol
    Convergence: L1 error of both marginals relative to each group's mass.
max_iter
    Iteration cap per group.
omega
    Over-relaxation, ``"auto"`` (adaptive per group) or a value in ``[1, 2)``.
eps_scaling
    Warm-up stages at ``2**k`` times epsilon (k = eps_scaling, ..., 1), each solved to a
    loose tolerance and warm-starting the next."""

SOLVER = """\
solver
    ``"batched"`` (padded groups in one tensor program) or ``"pot"`` (``ot.sinkhorn`` per
    group, for reference).
pot_method
    POT's Sinkhorn variant for ``solver="pot"``."""

GW_OUTER = """\
tol
    Outer convergence: relative change of the ``(d1 + 2) x (d2 + 2)`` statistic
    ``V1^T T V2`` (which determines the gradient) between iterations.
max_iter
    Outer (projected-gradient) iteration cap."""

COOT_OUTER = """\
epsilon_feature
    Relative epsilon of the feature plan (default ``5e-2``).
tol
    Stop when the feature plan changes by less than ``tol`` (L1).
max_iter
    Block-coordinate iterations."""

INNER = """\
inner_tol
    Tolerance of each Sinkhorn solve (relative L1 marginal error).
inner_max_iter
    Iteration cap of each Sinkhorn solve."""

GROUP_WEIGHTS = """\
group_weights
    Mass of each group: ``"source"``, ``"target"`` or ``"mean"`` group size."""

UNBALANCED = """\
reg_m
    Marginal relaxation, relative to the largest same-group cost.
tol
    Stop when the log-scalings change by less than ``tol``.
max_iter
    Iteration cap."""

UOT_SOLVER = """\
solver
    ``"batched"`` or ``"pot"`` (``ot.unbalanced.sinkhorn_unbalanced`` per group)."""

LEOT_GROUP_WEIGHTS = """\
group_weights
    ``"source"`` (default: every kept source cell has the same mass), ``"target"`` or
    ``"mean"``."""

FUSED = """\
alpha
    Weight of the GW term in ``[0, 1]``.
fused_rep
    Shared ``obsm`` key for the feature cost ``M``."""


def storage(cost: str | None = None) -> str:
    """The docs of :class:`._options.Storage`: sparsity, and streaming of the factorised ``cost``.

    ``None``: the linear solvers' squared-Euclidean cost.

    Examples
    --------
    >>> storage("sample cost").splitlines()[-2]
    '    streaming row chunks of the factorised sample cost (``None``: 4096 x 4096 on CPU,'

    """
    return SPARSITY + "\n" + (STREAM_ABOVE_LINEAR if cost is None else _stream_above(cost))
