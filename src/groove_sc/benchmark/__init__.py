"""The combinatorial benchmark: every representation learner x every OT aligner.

Learners live in one registry (:data:`LEARNERS`, extended with :func:`register_learner`);
aligners in :data:`groove_sc.tl.ALIGNERS`. :func:`run` scores one dataset, :func:`run_sweep`
simulations over ``shared_fraction`` x seeds into a resumable CSV, :func:`run_config` a YAML
description (``groove-sc benchmark --config FILE.yaml --out results.csv``). Their options are
the fields of :class:`RunOptions`; progress goes to the ``groove_sc.benchmark`` logger.

Examples
--------
>>> import groove_sc as gs
>>> sorted(gs.benchmark.LEARNERS)[:3]
['clip', 'diagvi', 'groove']

"""

from . import _baselines, _diagvi, _groove, _propensity  # noqa: F401  (register the learners)
from ._config import run_config
from ._diagvi import diagvi_unavailable, fit_diagvi
from ._feature_links import link_features, normalize_feature_name
from ._groove import GROOVE_VARIANTS, fit_groove, infer_likelihoods
from ._options import TUNINGS, RunOptions
from ._propensity import fit_classifier
from ._registry import LEARNERS, Learner, register_learner
from ._run import run
from ._seeding import seed_everything
from ._summary import summarize, winners
from ._sweep import read_results, run_sweep, run_units
from ._table import COLUMNS, lower_is_better
from ._tuning import heldout_group_score, label_agreement

__all__ = [
    "COLUMNS",
    "GROOVE_VARIANTS",
    "LEARNERS",
    "Learner",
    "RunOptions",
    "TUNINGS",
    "diagvi_unavailable",
    "fit_classifier",
    "fit_diagvi",
    "fit_groove",
    "heldout_group_score",
    "infer_likelihoods",
    "label_agreement",
    "link_features",
    "lower_is_better",
    "normalize_feature_name",
    "read_results",
    "register_learner",
    "run",
    "run_config",
    "run_sweep",
    "run_units",
    "seed_everything",
    "summarize",
    "winners",
]
