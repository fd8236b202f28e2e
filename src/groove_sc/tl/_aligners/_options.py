"""Aligner options: frozen dataclasses documented once, and the flat signature built from them.

The solver families share groups of options: iterations, inner Sinkhorn solves, coupling
storage, group weights. Each group is a frozen dataclass. An aligner lists the groups it takes,
each with its defaults and its parameter docs (an :class:`OptionGroup`), and
:func:`aligner_options` gives it the flat public signature
``aligner(problem, tol=..., max_iter=..., prune=..., ...)`` that :func:`groove_sc.tl.align`
passes the user's keywords to, and the docstring's Parameters section. The aligner's body
receives one instance of each group holding the user's values.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from ..._constants import DEFAULT_PRUNE
from ..._docs import substitute
from ._docparams import PROBLEM
from ._groups import GroupWeights
from ._registry import AlignResult
from ._sparsify import DEFAULT_KEEP_MASS, DEFAULT_MAX_PER_ROW

_POSITIONAL = inspect.Parameter.POSITIONAL_OR_KEYWORD


@dataclass(frozen=True)
class Iterations:
    """Convergence of a solver's (outer) loop: tolerance and iteration cap."""

    tol: float
    max_iter: int


@dataclass(frozen=True)
class Sinkhorn(Iterations):
    """A balanced Sinkhorn solve: convergence and accelerations (over-relaxation, warm-up)."""

    omega: float | str = "auto"
    eps_scaling: int = 3


@dataclass(frozen=True)
class Unbalanced:
    """An unbalanced Sinkhorn solve: marginal relaxation and convergence."""

    reg_m: float = 0.1
    tol: float = 1e-6
    max_iter: int = 10_000


@dataclass(frozen=True)
class FeatureIterations:
    """COOT's block-coordinate loop: the feature plan's epsilon and the convergence."""

    epsilon_feature: float | None = None
    tol: float = 1e-6
    max_iter: int = 100


@dataclass(frozen=True)
class Fused:
    """Fused GW: the weight of the GW term and the representation of the feature cost."""

    alpha: float = 0.5
    fused_rep: str | None = None


@dataclass(frozen=True)
class Inner:
    """Each inner Sinkhorn solve of an iterative (GW, COOT) solver."""

    inner_tol: float = 1e-4
    inner_max_iter: int = 10_000


@dataclass(frozen=True)
class Storage:
    """How the coupling is stored and which blocks are solved streamed (see :class:`.Blocks`)."""

    prune: float = DEFAULT_PRUNE
    keep_mass: float = DEFAULT_KEEP_MASS
    max_per_row: int | None = DEFAULT_MAX_PER_ROW
    stream_above: int | None = None


@dataclass(frozen=True)
class Solver:
    """The batched solver or POT's, per group."""

    solver: Literal["batched", "pot"] = "batched"


@dataclass(frozen=True)
class PotSolver(Solver):
    """The batched solver or POT's, with POT's Sinkhorn variant."""

    pot_method: str = "sinkhorn"


@dataclass(frozen=True)
class Grouping:
    """The mass of each group of a labeled aligner."""

    group_weights: GroupWeights = "source"


@dataclass(frozen=True)
class OptionGroup:
    """A group's default values (a frozen dataclass instance) and its numpy parameter docs.

    Examples
    --------
    >>> OptionGroup(Inner(), "(the docs of inner_tol and inner_max_iter)").names()
    ['inner_tol', 'inner_max_iter']

    """

    defaults: Any
    doc: str

    def names(self) -> list[str]:
        """The group's parameter names, in signature order."""
        return [f.name for f in fields(self.defaults)]


def _signature(groups: tuple[OptionGroup, ...]) -> inspect.Signature:
    params = [inspect.Parameter("problem", _POSITIONAL, annotation="AlignProblem")]
    for group in groups:
        for f in fields(group.defaults):
            default = getattr(group.defaults, f.name)
            params.append(
                inspect.Parameter(f.name, _POSITIONAL, default=default, annotation=f.type)
            )
    return inspect.Signature(params, return_annotation="AlignResult")


def _with_parameters(doc: str, groups: tuple[OptionGroup, ...]) -> str:
    """``doc`` with the groups' Parameters section inserted before its Examples section."""
    docs = {"problem": PROBLEM, **{f"group{i}": g.doc for i, g in enumerate(groups)}}
    # the body's own indentation: 4 spaces, or none where Python (>= 3.13) dedents docstrings
    found = re.search(r"^( *)Examples\n", doc, re.MULTILINE)
    pad, cut = (found.group(1), found.start()) if found else ("    ", len(doc))
    lines = "\n".join(f"{pad}%({name})s" for name in docs)
    section = substitute(f"{pad}Parameters\n{pad}----------\n{lines}\n\n", docs)
    return f"{doc[:cut]}{section}{doc[cut:]}"


def aligner_options(
    *groups: OptionGroup,
) -> Callable[[Callable[..., AlignResult]], Callable[..., AlignResult]]:
    r"""Decorator giving an aligner body ``body(problem, *group_values)`` its public form.

    The public function takes ``problem`` and every parameter of ``groups`` (in order, with the
    groups' defaults), and calls the body with one instance per group holding the values given.
    Its docstring is the body's with a Parameters section (``problem`` and each group's docs)
    inserted before the Examples section.

    Parameters
    ----------
    *groups
        The option groups, in signature order.

    Examples
    --------
    >>> @aligner_options(OptionGroup(Inner(), "inner_tol\n    T.\ninner_max_iter\n    N."))
    ... def show(problem, inner):
    ...     '''Show the options.
    ...
    ...     Examples
    ...     --------
    ...     '''
    ...     return inner
    >>> show(None, inner_tol=1e-6)
    Inner(inner_tol=1e-06, inner_max_iter=10000)
    >>> list(inspect.signature(show).parameters)
    ['problem', 'inner_tol', 'inner_max_iter']
    >>> [line.strip() for line in show.__doc__.splitlines()][2:7]
    ['Parameters', '----------', 'problem', 'Prepared by :func:`groove_sc.tl.align`.', 'inner_tol']

    """
    signature = _signature(groups)
    owner = {name: i for i, group in enumerate(groups) for name in group.names()}

    def decorate(body: Callable[..., AlignResult]) -> Callable[..., AlignResult]:
        @functools.wraps(body)
        def aligner(*args: Any, **kwargs: Any) -> AlignResult:
            given = signature.bind(*args, **kwargs).arguments
            values: list[dict[str, Any]] = [{} for _ in groups]
            for name in list(given)[1:]:
                values[owner[name]][name] = given[name]
            options = [replace(g.defaults, **v) for g, v in zip(groups, values)]
            return body(given["problem"], *options)

        aligner.__signature__ = signature  # type: ignore[attr-defined]
        aligner.__doc__ = _with_parameters(body.__doc__ or "", groups)
        return aligner

    return decorate
