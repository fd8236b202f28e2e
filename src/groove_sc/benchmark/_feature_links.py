"""Which features of two modalities measure the same thing (DIAGVI's guidance graph).

Protein and gene names differ by assay prefixes, replicate indices and case (``ADT_CD4-1`` and
``CD4``); :func:`normalize_feature_name` removes those, :func:`link_features` pairs the features
whose normalised names agree, and user-given links are checked by :func:`user_links`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import pandas as pd

#: Assay prefixes removed by :func:`normalize_feature_name` (``ADT_CD4``, ``prot:CD4``...).
_PREFIX = re.compile(r"^(?:adt|ab|antibody|prot|protein|cite|surface)[_:.\- ]+", re.IGNORECASE)
#: A trailing replicate or clone index (``CD4-1``, ``cd4.2``, ``CD38_1``).
_INDEX_SUFFIX = re.compile(r"[._\-]\d+$")
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def normalize_feature_name(name: str) -> str:
    """The key under which :func:`link_features` matches feature names across modalities.

    The rule, applied in this order:

    1. case is ignored;
    2. an assay prefix ``adt``, ``ab``, ``antibody``, ``prot``, ``protein``, ``cite`` or
       ``surface`` followed by ``_``, ``:``, ``.``, ``-`` or a space is removed;
    3. one trailing replicate/clone index (``-1``, ``.2``, ``_1``: a separator and digits) is
       removed;
    4. every character but letters and digits is removed.

    So ``CD4``, ``cd4``, ``CD4-1``, ``cd4.2`` and ``ADT_CD4`` all become ``"cd4"``, and
    ``hla.dr`` and ``HLA-DR`` both ``"hladr"``. Aliases are *not* resolved: a protein named by
    its CD antigen (``CD16``, ``CD56``, ``CD3``) does not match its gene (``FCGR3A``,
    ``NCAM1``, ``CD3E``); give such pairs with ``feature_links=``.

    Parameters
    ----------
    name
        A feature name.

    Returns
    -------
    The normalised key (may be empty).

    Examples
    --------
    >>> from groove_sc.benchmark import normalize_feature_name
    >>> [normalize_feature_name(n) for n in ("CD4", "CD4-1", "ADT_CD4", "cd4.2", "HLA-DR")]
    ['cd4', 'cd4', 'cd4', 'cd4', 'hladr']

    """
    key = _PREFIX.sub("", str(name).strip().casefold())
    key = _INDEX_SUFFIX.sub("", key)
    return _NON_ALNUM.sub("", key)


def link_features(
    names_a: Sequence[str], names_b: Sequence[str], *, modalities: tuple[str, str] = ("a", "b")
) -> pd.DataFrame:
    """Pairs of features of two modalities whose names match after normalisation.

    Every feature of ``names_a`` is linked to every feature of ``names_b`` with the same
    :func:`normalize_feature_name` key (empty keys never match), so ``cd4.1`` and ``cd4.2`` are
    both linked to the gene ``CD4``.

    Parameters
    ----------
    names_a, names_b
        Feature names of the two modalities.
    modalities
        Column names of the result (the two modalities' names).

    Returns
    -------
    DataFrame with one row per link and the two columns ``modalities``; ordered as
    ``names_a``.

    Examples
    --------
    >>> from groove_sc.benchmark import link_features
    >>> link_features(["CD4", "CD19", "MS4A1"], ["cd4.1", "cd4.2", "cd19", "cd20"],
    ...               modalities=("rna", "adt"))
        rna    adt
    0   CD4  cd4.1
    1   CD4  cd4.2
    2  CD19   cd19

    """
    by_key: dict[str, list[str]] = {}
    for name in names_b:
        key = normalize_feature_name(name)
        if key:
            by_key.setdefault(key, []).append(str(name))
    rows = [(str(a), b) for a in names_a for b in by_key.get(normalize_feature_name(a), [])]
    return pd.DataFrame(rows, columns=list(modalities))


def user_links(
    links: pd.DataFrame | Mapping[str, Sequence[str]] | Sequence[tuple[str, str]],
    mods: list[str],
    var_names: dict[str, pd.Index],
) -> pd.DataFrame:
    if isinstance(links, pd.DataFrame | Mapping):
        frame = pd.DataFrame(links)
        absent = [m for m in mods if m not in frame.columns]
        if absent:
            raise ValueError(
                f"feature_links has columns {list(frame.columns)}; it needs one column per "
                f"modality, {mods}."
            )
        frame = frame[mods]
    else:
        pairs = [tuple(p) for p in links]
        if any(len(p) != 2 for p in pairs):
            raise ValueError(
                f"feature_links as a sequence holds (feature of '{mods[0]}', feature of "
                f"'{mods[1]}') pairs."
            )
        frame = pd.DataFrame(pairs, columns=mods)
    frame = frame.astype(str).drop_duplicates().reset_index(drop=True)
    for m in mods:
        unknown = sorted(set(frame[m]) - set(var_names[m].astype(str)))
        if unknown:
            raise ValueError(
                f"feature_links names {len(unknown)} feature(s) that '{m}' does not have, e.g. "
                f"{unknown[:5]}."
            )
    return frame
