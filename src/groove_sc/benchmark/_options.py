"""The options of a benchmark run: one frozen dataclass, each option documented once, here.

:func:`~groove_sc.benchmark.run` takes every field of :class:`RunOptions` as a keyword
argument of the same name, :func:`~groove_sc.benchmark.run_units` and
:func:`~groove_sc.benchmark.run_sweep` pass them on to it, and a YAML config
(:func:`~groove_sc.benchmark.run_config`) gives them as keys of the same names. Their
documentation in all those places is generated from the fields' ``doc`` below.
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from .._constants import DEFAULT_GROUPBY, DEFAULT_TRUTH_KEY
from .._docs import substitute
from ._tuning import DEFAULT_EPSILON_FACTORS

Tuning = Literal["default", "truth_free", "oracle"]
#: The ways of choosing an aligner's epsilon (the ``tuning`` column).
TUNINGS: tuple[str, ...] = ("default", "truth_free", "oracle")


def _option(default: Any, doc: str) -> Any:
    return dataclasses.field(default=default, metadata={"doc": doc})


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """What a benchmark run scores and how: every option but the data, learners and seeds.

    The fields are keyword arguments of :func:`~groove_sc.benchmark.run` (and of
    ``run_units``/``run_sweep``, which pass them on) and keys of a YAML config. Building one
    checks the values that need no data; ``tuning`` becomes a tuple of modes,
    ``epsilon_factors`` a tuple, ``tune_aligners`` a frozenset and the keyword mappings dicts.

    Attributes
    ----------
    %(run_options)s

    Examples
    --------
    >>> opts = RunOptions(tuning=["default", "oracle"], cv_folds=3)
    >>> opts.tuning, opts.groupby
    (('default', 'oracle'), 'perturbation')
    >>> res = gs.benchmark.run(mdata, ["labels"], ["leot"], seeds=[0], **opts.as_kwargs())

    """

    truth_key: str = _option(
        DEFAULT_TRUTH_KEY, "Shared cell id of the two views of one cell (scoring only)."
    )
    label_key: str | None = _option(
        None, "Optional secondary label for the label-transfer metrics (scoring only)."
    )
    learner_kwargs: Mapping[str, Mapping[str, Any]] | None = _option(
        None,
        "Per learner, keyword arguments of its function, e.g. "
        '``{"groove": {"max_epochs": 50, "n_latent": 16}}``.',
    )
    aligner_kwargs: Mapping[str, Mapping[str, Any]] | None = _option(
        None,
        "Per aligner, keyword arguments of :func:`groove_sc.tl.align` (``epsilon``, ``k``, "
        '``alpha``, ``groupby=None`` to run an ``"optional"`` aligner unlabeled...).',
    )
    source: str | None = _option(
        None,
        "Source modality (default: the first of ``mdata.mod``); couplings are source x "
        "target and imputation predicts the target's features for source cells.",
    )
    target: str | None = _option(
        None, "Target modality (default: the first of ``mdata.mod`` other than ``source``)."
    )
    groupby: str | None = _option(
        DEFAULT_GROUPBY,
        "The label (perturbation) column that learners and label-constrained aligners use.",
    )
    tuning: Tuning | Sequence[Tuning] = _option(
        "default",
        "How the aligners' epsilon is chosen, one mode or several (each gives its own rows, "
        'marked in the ``tuning`` column): ``"default"`` (the aligner\'s default, or '
        '``aligner_kwargs[a]["epsilon"]``), ``"truth_free"`` (held-out-group '
        "cross-validation on the labels, see :mod:`groove_sc.benchmark._tuning`) or "
        '``"oracle"`` (the candidate with the best ``oracle_metric`` against the truth: an '
        "upper bound, not a method). Aligners without an epsilon keep their default under "
        "every mode (``epsilon`` is NaN).",
    )
    epsilon_factors: Sequence[float] = _option(
        DEFAULT_EPSILON_FACTORS,
        "Candidates of the tuners, as multiples of the aligner's default epsilon.",
    )
    cv_folds: int = _option(2, "Folds of merged group pairs in the truth-free criterion.")
    tuning_tol: float = _option(
        0.01, "Truth-free scores within this of the best count as tied (the largest epsilon wins)."
    )
    tuning_criterion: Literal["barycentric", "mass"] = _option(
        "barycentric",
        'Score of the truth-free choice: ``"barycentric"`` (projections of held-out groups '
        'land nearer their own group) or ``"mass"`` (coupling mass stays within the held-out '
        "group); see :mod:`groove_sc.benchmark._tuning`.",
    )
    tune_aligners: Sequence[str] | None = _option(
        None,
        'Aligners that the ``"truth_free"`` and ``"oracle"`` modes tune (default: all with an '
        "epsilon); the others keep their default epsilon under every mode.",
    )
    oracle_metric: str = _option(
        "foscttm_barycentric", "Metric the oracle optimises (direction from its name)."
    )
    target_rep: str | None = _option(
        None,
        "Target representation projected by ``foscttm_barycentric`` (default: the target's "
        "``.X``, the same for every learner).",
    )

    def __post_init__(self) -> None:
        modes = [self.tuning] if isinstance(self.tuning, str) else list(dict.fromkeys(self.tuning))
        if not modes or any(t not in TUNINGS for t in modes):
            raise ValueError(f"tuning must be among {list(TUNINGS)}, got {modes}.")
        tune = None if self.tune_aligners is None else frozenset(self.tune_aligners)
        normalised = {
            "tuning": tuple(modes),
            "epsilon_factors": tuple(self.epsilon_factors),
            "cv_folds": int(self.cv_folds),
            "tuning_tol": float(self.tuning_tol),
            "tune_aligners": tune,
            "learner_kwargs": dict(self.learner_kwargs or {}),
            "aligner_kwargs": dict(self.aligner_kwargs or {}),
        }
        for name, value in normalised.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_arguments(cls, arguments: Mapping[str, Any]) -> RunOptions:
        """The options among a function's arguments (e.g. its ``locals()``), others ignored.

        Examples
        --------
        >>> RunOptions.from_arguments({"cv_folds": 4, "seeds": [0]}).cv_folds
        4

        """
        return cls(**{k: v for k, v in arguments.items() if k in OPTION_NAMES})

    def as_kwargs(self) -> dict[str, Any]:
        """The options as keyword arguments of :func:`~groove_sc.benchmark.run`.

        Examples
        --------
        >>> RunOptions().as_kwargs()["truth_key"]
        'cell_id'

        """
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


_SUMMARY_END = re.compile(r"(?<!e\.g)\.\s| \(|: |; ")
#: Names of the options, in order.
OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RunOptions))


def option_docs(names: Sequence[str] = OPTION_NAMES) -> str:
    """Numpy-docstring entries (name, then the indented description) of some options.

    Examples
    --------
    >>> print(option_docs(["cv_folds"]))
    cv_folds
        Folds of merged group pairs in the truth-free criterion.

    """
    docs = {f.name: f.metadata["doc"] for f in dataclasses.fields(RunOptions)}
    wrap = textwrap.TextWrapper(
        width=92, initial_indent="    ", subsequent_indent="    ", break_on_hyphens=False
    )
    return "\n".join(f"{name}\n{wrap.fill(docs[name])}" for name in names)


def option_summary(name: str) -> str:
    """The first clause of an option's documentation (for the list of config keys).

    Examples
    --------
    >>> option_summary("cv_folds")
    'Folds of merged group pairs in the truth-free criterion'
    >>> option_summary("tuning")
    "How the aligners' epsilon is chosen, one mode or several"

    """
    doc = next(f.metadata["doc"] for f in dataclasses.fields(RunOptions) if f.name == name)
    return _SUMMARY_END.split(doc, maxsplit=1)[0].rstrip(".")


RunOptions.__doc__ = substitute(RunOptions.__doc__, {"run_options": option_docs()})
