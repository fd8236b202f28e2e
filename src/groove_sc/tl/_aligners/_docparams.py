"""Parameter docs shared by the aligners, written once and filled in with ``doc_params``.

Each fragment is numpy-docstring text for one or more parameters; an aligner's docstring names
it with a ``%(name)s`` line (see :mod:`groove_sc._docs`). :data:`ALIGNER_DOCS` holds them all.
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

#: Every fragment, by the placeholder name the aligners use.
ALIGNER_DOCS = {
    "problem": PROBLEM,
    "sparsity": SPARSITY,
    "stream_above_linear": STREAM_ABOVE_LINEAR,
    "stream_above_gw": _stream_above("linearised cost"),
    "stream_above_coot": _stream_above("sample cost"),
    "sinkhorn": SINKHORN,
    "solver": SOLVER,
    "gw_outer": GW_OUTER,
    "coot_outer": COOT_OUTER,
    "inner": INNER,
    "group_weights": GROUP_WEIGHTS,
}
