"""One learner's embedding aligned by one aligner on one seed: align, score, cache.

An :class:`Alignment` runs :func:`groove_sc.tl.align` on the truth-free view at a requested
epsilon, scores the coupling against the truth on the scoring view (coupling metrics and the
barycentric imputation), and caches the scores by epsilon, so that the tuning modes
(:func:`groove_sc.benchmark._tuning.tuned_scores`) share their alignments.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import scipy.sparse as sp
from mudata import MuData

from .._mudata import extract_block
from ..metrics import truth_pairs
from ._options import RunOptions
from ._scores import barycentric_prediction, imputation_scores, matching_scores
from ._views import dense

_KEY = "_groove_benchmark"
#: Scores of one alignment, its seconds and its relative epsilon.
Scored = tuple[dict[str, float], float, float]


class Alignment:
    """One learner x aligner on one seed (see the module docstring).

    Parameters
    ----------
    options
        The run's options (modalities, columns, ``aligner_kwargs``).
    blind, scoring
        The truth-free view holding the learner's embedding, and the view with the truth.
    key
        ``obsm`` key of the learner's embedding.
    aligner
        Name in :data:`groove_sc.tl.ALIGNERS`.

    Examples
    --------
    >>> from groove_sc.benchmark._options import RunOptions
    >>> from groove_sc.benchmark._views import blind_view
    >>> opts = RunOptions(source="rna", target="prot")
    >>> blind = blind_view(mdata, ["rna", "prot"], "perturbation")
    >>> _ = gs.benchmark.LEARNERS["labels"](blind, "X_labels", groupby="perturbation", seed=0)
    >>> scores, seconds, epsilon = Alignment(opts, blind, mdata, "X_labels", "leot").scores(None)
    >>> 0 < scores["trace"] < 1
    True

    """

    def __init__(self, options: RunOptions, blind: MuData, scoring: MuData, key: str, aligner: str):
        from ..tl import ALIGNERS

        self.options, self.blind, self.scoring, self.key = options, blind, scoring, key
        self.aligner = aligner
        kwargs = dict(options.aligner_kwargs.get(aligner, {}))
        self.fixed_epsilon = kwargs.pop("epsilon", None)
        groupby = kwargs.pop("groupby", options.groupby)
        self.groupby = None if ALIGNERS[aligner].labels == "ignored" else groupby
        self.kwargs = kwargs
        self.cache: dict[float | None, Scored] = {}
        self.spent = 0.0  # seconds of alignments since the last reset

    def _align(self, epsilon: float | None, groupby: str | None, key: str) -> float:
        from ..tl import align

        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            align(
                self.blind,
                self.options.source,
                self.options.target,
                use_rep=self.key,
                method=self.aligner,
                groupby=groupby,
                epsilon=epsilon,
                key_added=key,
                **self.kwargs,
            )
        seconds = time.perf_counter() - t0
        self.spent += seconds
        return seconds

    def coupling(self, epsilon: float | None, groupby: str | None) -> sp.spmatrix:
        """The source x target coupling at ``epsilon`` with the label column ``groupby``.

        A labeled aligner uses ``groupby``; one run unlabeled (``self.groupby`` is ``None``)
        ignores it. Nothing is scored or cached (the held-out-group tuner scores it).
        """
        key = _KEY + "_cv"
        self._align(epsilon, groupby if self.groupby is not None else None, key)
        try:
            return extract_block(self.blind, key, self.options.source, self.options.target)
        finally:
            del self.blind.obsp[key]
            del self.blind.uns[key]

    def scores(self, epsilon: float | None) -> Scored:
        """Scores, seconds and relative epsilon of the alignment at ``epsilon`` (all cells)."""
        if epsilon in self.cache:
            return self.cache[epsilon]
        seconds = self._align(epsilon, self.groupby, _KEY)
        meta = self.blind.uns[_KEY]
        eps_rel = float(meta.get("parameters", {}).get("epsilon_relative", np.nan))
        converged = float(bool(meta.get("convergence", {}).get("converged", True)))
        self.scoring.obsp[_KEY] = self.blind.obsp[_KEY]
        self.scoring.uns[_KEY] = meta
        try:
            scores = self._score()
            scores["converged"] = converged
        finally:
            for view in (self.blind, self.scoring):
                del view.obsp[_KEY]
                del view.uns[_KEY]
        out = (scores, seconds, eps_rel)
        self.cache[epsilon] = out
        if np.isfinite(eps_rel):
            self.cache.setdefault(eps_rel, out)
        return out

    def _score(self) -> dict[str, float]:
        opts, view = self.options, self.scoring
        scores = matching_scores(view, _KEY, opts.truth_key, opts.label_key, opts.target_rep)
        x_target = dense(view.mod[opts.target].X)
        src, tgt = truth_pairs(view, opts.source, opts.target, opts.truth_key)
        pred = barycentric_prediction(view, _KEY, opts.source, opts.target, x_target)
        scores.update(imputation_scores(pred[src], x_target[tgt]))
        return scores
