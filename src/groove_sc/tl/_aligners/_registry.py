"""The aligner registry: one dict from method name to :class:`Aligner`.

``tl.align`` looks the method up here and nowhere else; adding a method means adding an entry
(with :func:`register_aligner`), never an ``if`` branch.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from ._problem import AlignProblem


@dataclass
class AlignResult:
    """What an aligner returns to :func:`groove_sc.tl.align`.

    Attributes
    ----------
    coupling
        Sparse ``(n_source, n_target)`` coupling over *all* cells of the two modalities, in each
        modality's own cell order (rows/columns of dropped cells are zero). Total mass 1.
    parameters
        Parameters actually used (absolute and relative epsilon, tolerances, ...). Values must be
        numbers, strings, booleans, numpy arrays or nested dicts of those (h5mu-writable).
    convergence
        Diagnostics (iterations, marginal error, converged flag), same value rules.

    Examples
    --------
    >>> AlignResult(coupling=sp.csr_matrix((3, 4))).parameters
    {}

    """

    coupling: sp.csr_matrix
    parameters: dict[str, Any] = field(default_factory=dict)
    convergence: dict[str, Any] = field(default_factory=dict)


#: How an aligner uses ``groupby`` (see :class:`Aligner`).
LabelUse = Literal["required", "optional", "ignored"]


@dataclass(frozen=True)
class Aligner:
    """A registered alignment method.

    Attributes
    ----------
    name
        The ``method=`` string of :func:`groove_sc.tl.align`.
    func
        ``func(problem, **method_kwargs) -> AlignResult``.
    labels
        ``"required"``: solves per-group / label-restricted problems and needs ``groupby``;
        ``"optional"``: restricted to groups when ``groupby`` is given, over all cells otherwise;
        ``"ignored"``: one problem over all cells, ``groupby`` is not read.
    shared_rep
        Whether both modalities must carry the same representation (same dimension), as for
        linear OT. ``False`` for Gromov-Wasserstein and COOT, which compare each modality with
        itself and accept ``use_rep`` as a per-modality dict. ``True`` also means that
        ``tl.align(space="auto")`` gives the aligner a GROOVE latent's group-posterior
        coordinates (read them with ``problem.rep()``).
    dense
        Whether the unlabeled form builds ``n_source x n_target`` dense matrices; such calls are
        refused above ``max_pairs`` unless the user raises it.
    default_epsilon
        The method's default relative epsilon, or ``None`` for a method without one; scales
        the candidates of ``epsilon="auto"``.
    description
        One line shown in error messages and docs.

    Examples
    --------
    >>> gs.tl.ALIGNERS["knn"].labels, gs.tl.ALIGNERS["knn"].default_epsilon is None
    ('optional', True)

    """

    name: str
    func: Callable[..., AlignResult]
    labels: LabelUse = "required"
    shared_rep: bool = True
    dense: bool = False
    default_epsilon: float | None = None
    description: str = ""

    def keyword_names(self) -> list[str]:
        """Keyword arguments ``func`` accepts beyond the problem.

        Examples
        --------
        >>> gs.tl.ALIGNERS["knn"].keyword_names()
        ['k', 'weights']

        """
        params = list(inspect.signature(self.func).parameters.values())[1:]
        return [p.name for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]

    def accepts_any_keyword(self) -> bool:
        """Whether ``func`` takes ``**kwargs``.

        Examples
        --------
        >>> gs.tl.ALIGNERS["knn"].accepts_any_keyword()
        False

        """
        params = inspect.signature(self.func).parameters.values()
        return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)

    def groupby_for(self, groupby: str | None) -> str | None:
        """The ``groupby`` this aligner reads: ``None`` when it ignores labels.

        Raises ``ValueError`` for a label-constrained aligner without ``groupby``, naming the
        registered methods that run without labels.

        Examples
        --------
        >>> gs.tl.ALIGNERS["eot"].groupby_for("perturbation") is None
        True
        >>> gs.tl.ALIGNERS["leot"].groupby_for("perturbation")
        'perturbation'

        """
        if self.labels == "ignored":
            return None
        if self.labels == "required" and groupby is None:
            raise ValueError(
                f"Method '{self.name}' is label-constrained and needs groupby= (an obs column "
                "present in both modalities); for an alignment without labels use one of "
                f"{methods_with_labels('optional', 'ignored')}."
            )
        return groupby

    def __call__(self, problem: AlignProblem, **kwargs: Any) -> AlignResult:
        return self.func(problem, **kwargs)


#: Registered aligners, by ``method=`` name.
ALIGNERS: dict[str, Aligner] = {}


def methods_with_labels(*uses: LabelUse) -> list[str]:
    """Registered method names whose label use is one of ``uses``, sorted.

    Examples
    --------
    >>> "leot" in methods_with_labels("required"), "eot" in methods_with_labels("required")
    (True, False)

    """
    return sorted(name for name, spec in ALIGNERS.items() if spec.labels in uses)


def register_aligner(
    name: str,
    *,
    labels: LabelUse = "required",
    shared_rep: bool = True,
    dense: bool = False,
    default_epsilon: float | None = None,
    description: str = "",
    overwrite: bool = False,
) -> Callable[[Callable[..., AlignResult]], Callable[..., AlignResult]]:
    """Decorator adding a function to :data:`ALIGNERS` under ``name``.

    The function receives an :class:`~groove_sc.tl.AlignProblem` (cells, labels, representations,
    epsilon, device) and the user's extra keyword arguments, and returns an
    :class:`~groove_sc.tl.AlignResult`.

    Parameters
    ----------
    name
        Method name for ``tl.align(method=name)``.
    labels, shared_rep, dense, default_epsilon, description
        See :class:`Aligner`.
    overwrite
        Replace an existing entry of the same name (otherwise an error).

    Examples
    --------
    >>> @gs.tl.register_aligner("uniform", labels="ignored", overwrite=True)
    ... def uniform(problem):
    ...     '''The product coupling: every source cell spread over every target cell.'''
    ...     n, m = problem.n_source, problem.n_target
    ...     return gs.tl.AlignResult(coupling=sp.csr_matrix(np.full((n, m), 1 / (n * m))))
    >>> gs.tl.align(mdata, "rna", "prot", use_rep="X_true_shared", method="uniform")
    >>> mdata.obsp["groove_coupling"].nnz == 67 * 67
    True
    >>> del gs.tl.ALIGNERS["uniform"]

    """
    if labels not in ("required", "optional", "ignored"):
        raise ValueError(f"labels must be 'required', 'optional' or 'ignored', got {labels!r}.")
    options = {"labels": labels, "shared_rep": shared_rep, "dense": dense}

    def decorate(func: Callable[..., AlignResult]) -> Callable[..., AlignResult]:
        if name in ALIGNERS and not overwrite:
            raise ValueError(
                f"An aligner named '{name}' is already registered; pass overwrite=True to "
                "replace it or pick another name."
            )
        summary = description or (func.__doc__ or "").strip().split("\n")[0]
        ALIGNERS[name] = Aligner(
            name, func, **options, default_epsilon=default_epsilon, description=summary
        )
        return func

    return decorate


def check_total_mass(coupling: sp.csr_matrix, method: str, atol: float = 1e-4) -> sp.csr_matrix:
    """Check that a coupling is finite, non-negative and of total mass 1 (renormalising drift).

    Examples
    --------
    >>> P = check_total_mass(sp.csr_matrix(np.full((2, 2), 0.25)), "uniform")
    >>> float(P.sum())
    1.0

    """
    data = coupling.data
    if not np.all(np.isfinite(data)):
        raise FloatingPointError(
            f"Aligner '{method}' produced a non-finite coupling; increase epsilon or check the "
            "representation for extreme values."
        )
    if data.size and data.min() < 0:
        raise FloatingPointError(f"Aligner '{method}' produced negative coupling entries.")
    mass = float(data.sum(dtype=np.float64))
    if not abs(mass - 1.0) <= atol:
        raise FloatingPointError(
            f"Aligner '{method}' produced a coupling of total mass {mass:.6g} instead of 1."
        )
    coupling = coupling.copy()
    coupling.data = coupling.data / mass
    return coupling
