"""Docstring fragments of the Sinkhorn solvers' parameters (:mod:`._sinkhorn`, :mod:`._stream`).

Filled into :func:`._sinkhorn.sinkhorn_padded`, :func:`._sparse_sinkhorn.sparse_sinkhorn` and
:func:`._stream.solve_stream` by :func:`groove_sc._docs.doc_params`.
"""

from __future__ import annotations

#: Fragment name -> numpy-docstring text of one parameter.
SINKHORN_PARAMS: dict[str, str] = {
    "eps": """\
eps
    Absolute entropic regularisation.""",
    "reg_m": """\
reg_m
    Absolute KL marginal penalty for unbalanced OT (``None``: balanced).""",
    "omega": """\
omega
    Over-relaxation: ``"auto"`` (adaptive) or a fixed value in ``[1, 2)``; unbalanced
    problems always use 1.""",
    "omega_max": """\
omega_max
    Cap of the adaptive over-relaxation.""",
    "check_every": """\
check_every
    Iterations between convergence checks (each check synchronises with the device).""",
    "eps_scaling": """\
eps_scaling
    Number of warm-up stages at ``eps * 2**k`` (k = eps_scaling, ..., 1), each solved to a
    loose tolerance and warm-starting the next; balanced only.""",
}
