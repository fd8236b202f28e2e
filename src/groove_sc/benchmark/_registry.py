"""The learner registry: one dict from learner name to :class:`Learner`.

The benchmark looks learners up here and nowhere else; adding a learner means registering a
function with :func:`register_learner`, never an ``if`` branch in the runner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from mudata import MuData

from .._docs import substitute

#: ``func(mdata, key, *, groupby, seed, **kwargs) -> dict | None``.
LearnerFunc = Callable[..., "dict[str, Any] | None"]

#: ``availability() -> None`` when a learner can run here, else the reason it cannot.
Availability = Callable[[], "str | None"]

#: Docstring fragments of the arguments every learner function takes (``%(mdata)s``...,
#: and all four as ``%(learner_args)s``); :func:`register_learner` fills them in.
LEARNER_DOCS: dict[str, str] = {
    "mdata": """mdata
    MuData whose modalities are embedded; in the benchmark, its truth-free view (each
    modality's data and ``obs[groupby]``, nothing else).""",
    "key": """key
    ``obsm`` key written in every modality.""",
    "groupby": """groupby
    Label column (the perturbation); learners that need labels raise without one.""",
    "seed": """seed
    Seed of the learner's random draws (initialisation, data split, batches).""",
}
LEARNER_DOCS["learner_args"] = "\n".join(
    LEARNER_DOCS[k] for k in ("mdata", "key", "groupby", "seed")
)


@dataclass(frozen=True)
class Learner:
    """A registered representation learner.

    Attributes
    ----------
    name
        Name used in :func:`groove_sc.benchmark.run` (``learners=[...]``).
    func
        ``func(mdata, key, *, groupby, seed, **kwargs)``: writes ``mdata[m].obsm[key]`` for
        every modality of ``mdata`` from the data and the ``groupby`` labels alone, and returns
        ``None`` or a dict of extra information (``{"model": model}`` lets the benchmark score
        the model's decoder imputation through ``model.get_imputed_values``).
    shared_space
        Whether the modalities' representations live in one space (same dimensions, comparable
        coordinates), as linear OT needs. ``False`` for per-modality spaces (PCA, raw features),
        which only Gromov-Wasserstein and COOT aligners can use.
    description
        One line for error messages and docs.
    availability
        Optional check of an optional dependency: ``None`` when the learner can run in this
        environment, else the reason it cannot, naming what to install. The benchmark records
        an unavailable learner's combinations as ``status="skipped"`` with that reason.

    Examples
    --------
    >>> gs.benchmark.LEARNERS["pca"].shared_space
    False

    """

    name: str
    func: LearnerFunc
    shared_space: bool
    description: str = ""
    availability: Availability | None = None

    def unavailable_reason(self) -> str | None:
        """Why the learner cannot run in this environment; ``None`` when it can.

        Examples
        --------
        >>> gs.benchmark.LEARNERS["pca"].unavailable_reason() is None
        True

        """
        return None if self.availability is None else self.availability()

    def __call__(self, mdata: MuData, key: str, **kwargs: Any) -> dict[str, Any]:
        out = self.func(mdata, key, **kwargs)
        return dict(out or {})


#: Registered learners, by name.
LEARNERS: dict[str, Learner] = {}


def register_learner(
    name: str,
    *,
    shared_space: bool,
    description: str = "",
    overwrite: bool = False,
    availability: Availability | None = None,
) -> Callable[[LearnerFunc], LearnerFunc]:
    """Decorator adding a function to :data:`LEARNERS` under ``name``.

    Parameters
    ----------
    name
        Learner name for :func:`groove_sc.benchmark.run`.
    shared_space
        Whether the learner embeds all modalities in one shared space (see :class:`Learner`).
    description
        One line; defaults to the first line of the function's docstring. The docstring may
        name the learner arguments' shared documentation, :data:`LEARNER_DOCS`
        (``%(mdata)s``, ``%(key)s``, ``%(groupby)s``, ``%(seed)s`` or ``%(learner_args)s``
        on a line of its own), which is filled in here.
    overwrite
        Replace an existing entry of the same name (otherwise an error).
    availability
        Optional ``() -> str | None`` for learners with optional dependencies: the reason the
        learner cannot run here (the benchmark then skips it with that reason), ``None`` when
        it can.

    Returns
    -------
    The decorator; it returns the function itself (its docstring filled in).

    Examples
    --------
    >>> @gs.benchmark.register_learner("first2", shared_space=False)
    ... def first2(mdata, key, *, groupby, seed):
    ...     for m in mdata.mod:
    ...         x = mdata[m].X[:, :2]
    ...         mdata[m].obsm[key] = x.toarray() if hasattr(x, "toarray") else np.asarray(x)
    >>> res = gs.benchmark.run(mdata, learners=["first2"], aligners=["egw"], seeds=[0])
    >>> set(res["status"])
    {'ok'}
    >>> del gs.benchmark.LEARNERS["first2"]

    """
    if name in LEARNERS and not overwrite:
        raise ValueError(
            f"A learner named '{name}' is already registered; pass overwrite=True to "
            "replace it or pick another name."
        )

    def decorate(func: LearnerFunc) -> LearnerFunc:
        if func.__doc__:
            func.__doc__ = substitute(func.__doc__, LEARNER_DOCS)
        LEARNERS[name] = Learner(
            name=name,
            func=func,
            shared_space=bool(shared_space),
            description=description or (func.__doc__ or "").strip().split("\n")[0],
            availability=availability,
        )
        return func

    return decorate


def check_names(names: Iterable[str], registry: dict[str, Any], what: str) -> list[str]:
    """Validate names against a registry; unknown names raise a ``KeyError`` with the valid list.

    Parameters
    ----------
    names
        Requested names (a single string is one name).
    registry
        The registry dict.
    what
        ``"learner"`` or ``"aligner"``, for the message.

    Returns
    -------
    The names as a list, duplicates removed (first occurrence kept).

    Examples
    --------
    >>> check_names(["pca", "labels", "pca"], LEARNERS, "learner")
    ['pca', 'labels']

    """
    if isinstance(names, str):
        names = [names]
    names = list(dict.fromkeys(names))
    if not names:
        raise ValueError(f"Give at least one {what}; valid {what}s: {sorted(registry)}.")
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise KeyError(
            f"Unknown {what}{'s' if len(unknown) > 1 else ''} {unknown}; valid {what}s: "
            f"{sorted(registry)}."
        )
    return names
