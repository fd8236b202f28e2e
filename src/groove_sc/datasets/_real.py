"""Loaders for public co-assayed perturbation screens (RNA + surface protein).

Each loader downloads the public file(s) once into a cache directory with :mod:`pooch`, checks the
pinned checksum, and converts the file to the layout used across groove_sc:

- two modalities, ``"rna"`` and ``"prot"``, holding the *same* cells under prefixed names
  (``"rna:<barcode>"`` and ``"prot:<barcode>"``), so that the MuData has disjoint obs_names;
- ``obs["cell_id"]``: the original barcode, shared by the two views of one cell (truth for
  evaluation only; :func:`groove_sc.pp.unpair` turns the paired data into a weakly paired one);
- ``obs["perturbation"]``: categorical target gene, non-targeting guides mapped to ``"control"``,
  NaN where no guide was assigned (unlabeled);
- RNA raw counts in ``.X`` and ``.layers["counts"]``; protein raw counts in ``.layers["counts"]``
  and their CLR transform (:func:`muon.prot.pp.clr`) in ``.X``.

The conversion from the downloaded format is done by :func:`read_papalexi_2021` and
:func:`read_frangieh_2021`, which also read files that were downloaded by hand.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from mudata import MuData

from .._constants import COUNTS_LAYER, DEFAULT_GROUPBY, DEFAULT_TRUTH_KEY
from .._counts import is_counts
from .._docs import doc_params
from ._download import (
    _FRANGIEH_PROT,
    _FRANGIEH_RNA,
    _PAPALEXI,
    PINNED,
    _fetch,
    _resolve_hash,
    cache_dir,
)

#: Parameter and raises docs shared by the download loaders.
_LOADER_DOCS = dict(
    data_dir="""data_dir
    Cache directory; see :func:`cache_dir` (default: ``$GROOVE_SC_DATA`` or
    ``~/.cache/groove_sc``).""",
    download="""download
    If ``False``, never touch the network: the file(s) must already be in ``data_dir``.""",
    returns_raises="""Returns
-------
Paired MuData (``"rna"``, ``"prot"``) in groove_sc's layout, converted by the screen's
``read_*`` function (:func:`read_papalexi_2021`, :func:`read_frangieh_2021`).

Raises
------
DatasetNotAvailableError
    When a file is absent and cannot be downloaded; the message says where to download it
    from and where to put it.
ValueError
    When a file does not match its checksum.""",
)


CONTROL = "control"


def _raw_counts(adata: ad.AnnData, what: str, required: bool = True):
    """Raw counts of ``adata`` from ``layers['counts']``, an integer ``.X`` or ``.raw``."""
    candidates = []
    if COUNTS_LAYER in adata.layers:
        candidates.append(adata.layers[COUNTS_LAYER])
    candidates.append(adata.X)
    if adata.raw is not None and adata.raw.n_vars == adata.n_vars:
        candidates.append(adata.raw.X)
    for x in candidates:
        if x is not None and is_counts(x):
            return sp.csr_matrix(x, dtype=np.float32)
    if required:
        raise ValueError(
            f"Could not find raw (non-negative integer) counts for {what} in layers['counts'], "
            ".X or .raw.X; the file does not have the expected format."
        )
    return None


def _clr(counts: sp.spmatrix) -> np.ndarray:
    from ..pp._prepare import clr_dense

    tmp = ad.AnnData(X=counts.copy())
    clr_dense(tmp)
    return tmp.X


def _categorical(values: pd.Series, control_values: Sequence[str]) -> pd.Categorical:
    controls = {str(c) for c in control_values}
    labels = [
        None if pd.isna(v) or str(v) in ("", "nan", "NaN", "None") else str(v)
        for v in values.astype("object")
    ]
    labels = [CONTROL if v in controls else v for v in labels]
    cats = sorted({v for v in labels if v is not None and v != CONTROL})
    if CONTROL in labels:
        cats = [CONTROL, *cats]
    return pd.Categorical(labels, categories=cats)


def _paired_mudata(
    barcodes: pd.Index,
    obs: pd.DataFrame,
    rna_counts: sp.spmatrix,
    rna_var: pd.DataFrame,
    prot_counts: sp.spmatrix,
    prot_var: pd.DataFrame,
    uns: dict,
) -> MuData:
    obs = obs.copy()
    obs[DEFAULT_TRUTH_KEY] = np.asarray(barcodes, dtype=str)
    mods = {}
    for name, counts, var in (("rna", rna_counts, rna_var), ("prot", prot_counts, prot_var)):
        o = obs.copy()
        o.index = pd.Index([f"{name}:{b}" for b in barcodes], name=None)
        a = ad.AnnData(X=counts.copy(), obs=o, var=var.copy())
        a.layers[COUNTS_LAYER] = counts.copy()
        if name == "prot":
            a.X = _clr(counts)
        mods[name] = a
    with warnings.catch_warnings():
        # gene and protein names may coincide (e.g. CD274); they live in separate modalities.
        warnings.filterwarnings("ignore", message=".*var_names.*")
        warnings.filterwarnings("ignore", message=".*Cannot join columns.*")
        mdata = MuData(mods)
    mdata.uns["dataset"] = uns
    return mdata


def _first_column(obs: pd.DataFrame, names: Sequence[str]) -> str | None:
    for n in names:
        if n in obs.columns:
            return n
    return None


# --------------------------------------------------------------------------------------------
# Papalexi et al. 2021 (ECCITE-seq)
# --------------------------------------------------------------------------------------------


def read_papalexi_2021(path: str | os.PathLike) -> MuData:
    """Convert the Papalexi et al. 2021 ECCITE-seq MuData (pertpy's file) to groove_sc's layout.

    The input is the ``.h5mu`` file that :func:`papalexi_2021` downloads (the one distributed
    with pertpy): modalities ``rna`` (gene counts), ``adt`` (4 surface proteins), ``hto`` and
    ``gdo``; per-cell columns ``guide_ID``, ``gene_target`` (``"NT"`` for non-targeting guides),
    ``perturbation`` (``"NT"`` / ``"Perturbed"``) and ``replicate``.

    Parameters
    ----------
    path
        Path to the ``.h5mu`` file.

    Returns
    -------
    MuData with modalities ``"rna"`` and ``"prot"`` holding the same cells under prefixed names.
    ``obs`` of both modalities: ``perturbation`` (categorical target gene; the non-targeting
    guides ``"NT"`` are mapped to ``"control"``), ``guide`` (the guide ID), ``crispr`` (the
    original ``"NT"`` / ``"Perturbed"`` column), ``replicate``, ``condition`` (``"IFNγ"``: all
    cells were stimulated with interferon-γ), ``cell_id`` (the original barcode) and every other
    column of the file. ``hto`` and ``gdo`` are dropped.

    Examples
    --------
    >>> import groove_sc as gs
    >>> mdata = gs.datasets.read_papalexi_2021("papalexi_2021.h5mu")  # doctest: +SKIP
    >>> mdata["rna"].obs["perturbation"].value_counts().head()  # doctest: +SKIP

    """
    import mudata as md

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = md.read_h5mu(path)
    for m in ("rna", "adt"):
        if m not in raw.mod:
            raise ValueError(
                f"{path} has modalities {list(raw.mod)}; expected 'rna' and 'adt' "
                "(the pertpy papalexi_2021 file)."
            )
    return _papalexi_to_groove(raw["rna"], raw["adt"])


def _papalexi_to_groove(rna: ad.AnnData, adt: ad.AnnData) -> MuData:
    barcodes = rna.obs_names.intersection(adt.obs_names, sort=False)
    if len(barcodes) == 0:
        raise ValueError("The 'rna' and 'adt' modalities share no cell barcodes.")
    rna = rna[barcodes]
    adt = adt[barcodes]
    obs = rna.obs.copy()
    for c in adt.obs.columns:  # metadata stored on the protein side only
        if c not in obs.columns:
            obs[c] = adt.obs[c].to_numpy()
    gene_col = _first_column(obs, ["gene_target", "gene"])
    if gene_col is None:
        raise ValueError("No 'gene_target' (or 'gene') column with the target gene of each cell.")
    status_col = _first_column(obs, ["perturbation", "crispr"])
    status = obs[status_col].copy() if status_col is not None else None
    obs[DEFAULT_GROUPBY] = _categorical(obs[gene_col], control_values=["NT"])
    if status is not None:
        obs["crispr"] = status.to_numpy()
    if "guide_ID" in obs.columns:
        obs["guide"] = obs["guide_ID"].astype(str).to_numpy()
    if "condition" not in obs.columns:
        obs["condition"] = pd.Categorical(["IFNγ"] * len(obs))
    uns = {
        "name": "papalexi_2021",
        "reference": "Papalexi et al. 2021, Nat Genet 53:322-331, doi:10.1038/s41588-021-00778-2",
        "source": _PAPALEXI.url,
        "control": "gene_target == 'NT' (non-targeting guides)",
    }
    return _paired_mudata(
        barcodes,
        obs,
        _raw_counts(rna, "the RNA modality"),
        rna.var[[]].copy(),
        _raw_counts(adt, "the ADT modality"),
        adt.var[[]].copy(),
        uns,
    )


@doc_params(**_LOADER_DOCS)
def papalexi_2021(  # noqa: D417 (data_dir, download: shared fragments)
    data_dir: str | os.PathLike | None = None,
    *,
    known_hash: str | None = PINNED,
    download: bool = True,
) -> MuData:
    """ECCITE-seq screen of Papalexi et al. 2021: RNA + 4 surface proteins in about 20,700 cells.

    THP-1 cells stimulated with interferon-γ, about 25 targeted genes (regulators of immune
    checkpoints such as PD-L1), several guides each (111 guide features), plus non-targeting
    guides. The file is downloaded once from
    figshare (https://figshare.com/ndownloader/files/36509460, the MuData distributed with pertpy)
    into ``data_dir`` and checked against the pinned MD5 ``419ec1f14615b4423edd6f16b65c55a7``.
    That checksum is copied from a public download script; it was not recomputed by the groove_sc
    developers (the loader could not be run with network access). If it turns out not to match,
    pass ``known_hash=None``.

    Parameters
    ----------
    %(data_dir)s
    known_hash
        ``"pinned"`` (default) checks the pinned checksum; another ``"md5:..."`` /
        ``"sha256:..."`` string checks that one; ``None`` skips the check.
    %(download)s

    %(returns_raises)s

    Examples
    --------
    >>> mdata = gs.datasets.papalexi_2021()  # doctest: +SKIP
    >>> unpaired = gs.pp.unpair(gs.pp.prepare(mdata, copy=True), seed=0)  # doctest: +SKIP

    """
    directory = cache_dir(data_dir)
    path = _fetch(_PAPALEXI, directory, _resolve_hash(_PAPALEXI, known_hash), download)
    return read_papalexi_2021(path)


# --------------------------------------------------------------------------------------------
# Frangieh et al. 2021 (Perturb-CITE-seq), scPerturb release
# --------------------------------------------------------------------------------------------


def read_frangieh_2021(
    rna_path: str | os.PathLike,
    protein_path: str | os.PathLike,
    *,
    conditions: Sequence[str] | None = None,
) -> MuData:
    """Convert the scPerturb Frangieh et al. 2021 files (RNA, protein) to groove_sc's layout.

    The inputs are ``FrangiehIzar2021_RNA.h5ad`` (gene counts) and
    ``FrangiehIzar2021_protein.h5ad`` (24 antibody counts, 4 of them isotype controls whose name
    contains ``"IgG"``) from scPerturb; both have the same cells, with the columns
    ``perturbation`` (target gene, ``"control"`` for non-targeting guides), ``perturbation_2``
    (culture condition), ``guide_id`` and ``nperts``.

    Parameters
    ----------
    rna_path, protein_path
        Paths to the two ``.h5ad`` files.
    conditions
        Keep only cells of these culture conditions (values of ``perturbation_2``: ``"Control"``,
        ``"IFNγ"``, ``"Co-culture"``); all when ``None``.

    Returns
    -------
    MuData with modalities ``"rna"`` and ``"prot"`` holding the same cells under prefixed names.
    ``obs`` of both modalities: ``perturbation`` (categorical; scPerturb's label, which names the
    first target of multiply-perturbed cells, see ``nperts``), ``condition`` (from
    ``perturbation_2``), ``guide`` (from ``guide_id``), ``cell_id`` and every other column.

    Examples
    --------
    >>> import groove_sc as gs
    >>> mdata = gs.datasets.read_frangieh_2021(
    ...     "FrangiehIzar2021_RNA.h5ad", "FrangiehIzar2021_protein.h5ad", conditions=["IFNγ"]
    ... )  # doctest: +SKIP

    """
    rna = ad.read_h5ad(rna_path)
    prot = ad.read_h5ad(protein_path)
    return _frangieh_to_groove(rna, prot, conditions=conditions)


def _frangieh_to_groove(
    rna: ad.AnnData, prot: ad.AnnData, conditions: Sequence[str] | None = None
) -> MuData:
    barcodes = rna.obs_names.intersection(prot.obs_names, sort=False)
    if len(barcodes) == 0:
        raise ValueError("The RNA and protein files share no cell barcodes.")
    obs = rna.obs.loc[barcodes].copy()
    for c in prot.obs.columns:
        if c not in obs.columns:
            obs[c] = prot.obs.loc[barcodes, c].to_numpy()
    if "perturbation" not in obs.columns:
        raise ValueError("The RNA file has no 'perturbation' column (scPerturb format expected).")
    cond_col = _first_column(obs, ["perturbation_2", "condition"])
    if conditions is not None:
        if cond_col is None:
            raise ValueError("conditions= was given but the files have no condition column.")
        keep = obs[cond_col].astype(str).isin([str(c) for c in conditions]).to_numpy()
        if not keep.any():
            raise ValueError(
                f"No cell has a condition in {list(conditions)}; available: "
                f"{sorted(obs[cond_col].astype(str).unique())}."
            )
        barcodes = barcodes[keep]
        obs = obs.loc[barcodes]
    obs[DEFAULT_GROUPBY] = _categorical(obs["perturbation"], control_values=[CONTROL])
    if cond_col is not None and cond_col != "condition":
        obs["condition"] = pd.Categorical(obs[cond_col].astype(str))
    if "guide_id" in obs.columns:
        obs["guide"] = obs["guide_id"].astype(str).to_numpy()
    rna_idx = rna.obs_names.get_indexer(barcodes)
    prot_idx = prot.obs_names.get_indexer(barcodes)
    uns = {
        "name": "frangieh_2021",
        "reference": "Frangieh et al. 2021, Nat Genet 53:332-341, doi:10.1038/s41588-021-00779-1",
        "source": f"{_FRANGIEH_RNA.url} ; {_FRANGIEH_PROT.url}",
        "control": "scPerturb perturbation == 'control' (non-targeting guides)",
    }
    return _paired_mudata(
        barcodes,
        obs,
        _raw_counts(rna[rna_idx], "the RNA file"),
        rna.var[[]].copy(),
        _raw_counts(prot[prot_idx], "the protein file"),
        prot.var[[]].copy(),
        uns,
    )


@doc_params(**_LOADER_DOCS)
def frangieh_2021(  # noqa: D417 (data_dir, download: shared fragments)
    data_dir: str | os.PathLike | None = None,
    *,
    conditions: Sequence[str] | None = None,
    known_hash: Mapping[str, str | None] | str | None = PINNED,
    download: bool = True,
) -> MuData:
    """Perturb-CITE-seq screen of Frangieh et al. 2021: RNA + 24 antibodies in 218,331 cells.

    Patient-derived melanoma cells, 248 targeted genes (about 750 guides), three culture
    conditions (control, interferon-γ, co-culture with tumour-infiltrating lymphocytes). The two
    scPerturb files are downloaded once from Zenodo record 13350497 into ``data_dir``:

    - ``FrangiehIzar2021_RNA.h5ad``,
      SHA-256 ``cc42ef38bcf703a00e0c77c7945dd53159b12d814c438ae8afeaed9bc71f48d1``;
    - ``FrangiehIzar2021_protein.h5ad`` (24,714,445 bytes),
      SHA-256 ``1f85827b5afad11a30d8ac99399772231110a1c3723bed6ecf7981a12cc3dbcc``.

    These checksums come from public manifests (the protein one from two independent ones); they
    were not recomputed by the groove_sc developers (the loader could not be run with network
    access). If one turns out not to match, pass ``known_hash=None`` or a mapping with the file
    name as key. The full RNA matrix needs several GB of memory.

    Parameters
    ----------
    %(data_dir)s
    conditions
        Keep only these culture conditions (``"Control"``, ``"IFNγ"``, ``"Co-culture"``).
    known_hash
        ``"pinned"`` (default) checks the pinned checksums; ``None`` skips the checks; a mapping
        ``{file name: hash or None}`` overrides them per file.
    %(download)s

    %(returns_raises)s

    Examples
    --------
    >>> mdata = gs.datasets.frangieh_2021(conditions=["IFNγ"])  # doctest: +SKIP

    """
    directory = cache_dir(data_dir)
    paths = [
        _fetch(remote, directory, _resolve_hash(remote, known_hash), download)
        for remote in (_FRANGIEH_RNA, _FRANGIEH_PROT)
    ]
    return read_frangieh_2021(*paths, conditions=conditions)
