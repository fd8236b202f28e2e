"""Which learner x aligner combinations cannot run, and why (rows with ``status="skipped"``)."""

from __future__ import annotations

from ._registry import Learner


def needs_shared_space(aligner: str) -> bool:
    """Whether an aligner needs a shared space: linear OT, or a fused cost (``fused_rep``).

    Examples
    --------
    >>> needs_shared_space("leot"), needs_shared_space("fgw"), needs_shared_space("egw")
    (True, True, False)

    """
    from ..tl import ALIGNERS

    spec = ALIGNERS[aligner]
    return bool(spec.shared_rep) or "fused_rep" in spec.keyword_names()


def skip_reason(learner: Learner, aligner: str, groupby: str | None) -> str | None:
    """Why ``aligner`` cannot run on ``learner``'s embedding; ``None`` when it can.

    Examples
    --------
    >>> skip_reason(gs.benchmark.LEARNERS["pca"], "leot", "perturbation")
    "aligner 'leot' needs a shared space; learner 'pca' gives one space per modality"
    >>> skip_reason(gs.benchmark.LEARNERS["pca"], "egw", "perturbation") is None
    True

    """
    from ..tl import ALIGNERS

    if needs_shared_space(aligner) and not learner.shared_space:
        return (
            f"aligner '{aligner}' needs a shared space; learner '{learner.name}' gives one "
            "space per modality"
        )
    if ALIGNERS[aligner].labels == "required" and groupby is None:
        return f"aligner '{aligner}' needs labels (groupby)"
    return None
