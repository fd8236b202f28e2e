"""Per-modality preprocessing: counts kept, RNA log-normalised + HVGs, protein CLR, ATAC binary."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Literal

import anndata as ad
import numpy as np
import scipy.sparse as sp
from mudata import MuData

from .._constants import COUNTS_LAYER, TARGET_SUM
from .._counts import is_counts
from .._mudata import no_pull_on_update, obs_column

__all__ = ["prepare"]

logger = logging.getLogger(__name__)

Recipe = Literal["rna", "protein", "atac", "none"]

_NAME_TO_RECIPE: dict[str, str] = {
    "rna": "rna",
    "gex": "rna",
    "gene": "rna",
    "expression": "rna",
    "prot": "protein",
    "protein": "protein",
    "adt": "protein",
    "cite": "protein",
    "atac": "atac",
    "peaks": "atac",
    "chromatin": "atac",
}


def _default_recipe(name: str) -> str:
    return _NAME_TO_RECIPE.get(name.lower(), "none")


def _counts_of(adata: ad.AnnData, layer: str, modality: str, required: bool):
    """Raw counts from ``layers[layer]``, else from an integer ``.X`` (then stored in the layer)."""
    if layer in adata.layers:
        return adata.layers[layer]
    if is_counts(adata.X):
        adata.layers[layer] = adata.X.copy()
        return adata.layers[layer]
    if required:
        raise ValueError(
            f"Modality '{modality}' has no layers['{layer}'] and its .X is not raw counts "
            f"(non-negative integers). Put the raw counts in mdata['{modality}'].layers['{layer}'] "
            f"or pass counts_layer=..."
        )
    return None


def _to_float32(x):
    return x.astype(np.float32) if sp.issparse(x) else np.asarray(x, dtype=np.float32)


def _hvg_flavor(flavor: str | None, has_counts: bool) -> str:
    if flavor is not None:
        return flavor
    if not has_counts:
        return "seurat"
    try:
        import skmisc  # noqa: F401  (seurat_v3 needs scikit-misc's loess)
    except ImportError:
        return "seurat"
    return "seurat_v3"


def _prepare_rna(
    adata: ad.AnnData,
    name: str,
    *,
    counts_layer: str,
    target_sum: float | None,
    n_top_genes: int | None,
    hvg_flavor: str | None,
    batch_key: str | None,
    subset_hvg: bool,
    **_: Any,
) -> tuple[ad.AnnData, dict]:
    import scanpy as sc

    counts = _counts_of(adata, counts_layer, name, required=True)
    adata.X = _to_float32(counts.copy())
    sc.pp.normalize_total(adata, target_sum=target_sum)
    sc.pp.log1p(adata)
    params: dict = {"recipe": "rna", "counts_layer": counts_layer, "target_sum": target_sum}
    if n_top_genes is None or n_top_genes >= adata.n_vars:
        adata.var["highly_variable"] = True
        params.update(hvg_flavor="none", n_top_genes=int(adata.n_vars))
        return adata, params
    flavor = _hvg_flavor(hvg_flavor, has_counts=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if flavor == "seurat_v3":
            sc.pp.highly_variable_genes(
                adata,
                n_top_genes=n_top_genes,
                flavor="seurat_v3",
                layer=counts_layer,
                batch_key=batch_key,
            )
        else:
            sc.pp.highly_variable_genes(
                adata, n_top_genes=n_top_genes, flavor=flavor, batch_key=batch_key
            )
    params.update(hvg_flavor=flavor, n_top_genes=int(n_top_genes), subset_hvg=subset_hvg)
    if subset_hvg:
        adata = adata[:, adata.var["highly_variable"].to_numpy()].copy()
    return adata, params


def clr_dense(adata: ad.AnnData, axis: int = 0) -> None:
    """Replace ``adata.X`` by muon's CLR of it (:func:`muon.prot.pp.clr`), dense float32.

    Examples
    --------
    >>> a = ad.AnnData(np.array([[1.0, 3.0], [2.0, 2.0]], dtype=np.float32))
    >>> clr_dense(a)
    >>> a.X.dtype, a.X.shape
    (dtype('float32'), (2, 2))

    """
    with warnings.catch_warnings():  # muon's import warns about scanpy.__version__; clr too
        warnings.simplefilter("ignore")
        import muon as mu

        mu.prot.pp.clr(adata, axis=axis)
    x = adata.X
    adata.X = np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float32)


def _prepare_protein(
    adata: ad.AnnData, name: str, *, counts_layer: str, clr_axis: int, **_: Any
) -> tuple[ad.AnnData, dict]:
    counts = _counts_of(adata, counts_layer, name, required=False)
    if counts is None:
        logger.info("Modality '%s' has no raw counts; .X is kept as it is.", name)
        return adata, {"recipe": "protein", "clr": False, "reason": "no raw counts"}
    adata.X = _to_float32(counts.copy())
    clr_dense(adata, axis=clr_axis)
    return adata, {
        "recipe": "protein",
        "clr": True,
        "clr_axis": clr_axis,
        "counts_layer": counts_layer,
    }


def _prepare_atac(
    adata: ad.AnnData, name: str, *, counts_layer: str, **_: Any
) -> tuple[ad.AnnData, dict]:
    counts = _counts_of(adata, counts_layer, name, required=False)
    source = counts if counts is not None else adata.X
    if sp.issparse(source):
        binary = sp.csr_matrix(source, copy=True)
        binary.data = (binary.data > 0).astype(np.float32)
        binary.eliminate_zeros()
    else:
        binary = (np.asarray(source) > 0).astype(np.float32)
    adata.X = binary
    return adata, {"recipe": "atac", "binarised": True, "counts_layer": counts_layer}


#: The recipes, by name: ``recipe(adata, modality, **options) -> (adata, params)``; each reads
#: the options it needs. ``"none"`` (no entry) leaves a modality as it is.
RECIPES: dict[str, Callable[..., tuple[ad.AnnData, dict]]] = {
    "rna": _prepare_rna,
    "protein": _prepare_protein,
    "atac": _prepare_atac,
}


def prepare(
    mdata: MuData,
    *,
    recipes: Mapping[str, Recipe] | None = None,
    n_top_genes: int | None = 2000,
    hvg_flavor: Literal["seurat_v3", "seurat", "cell_ranger"] | None = None,
    target_sum: float | None = TARGET_SUM,
    subset_hvg: bool = True,
    batch_key: str | None = None,
    counts_layer: str = COUNTS_LAYER,
    clr_axis: Literal[0, 1] = 0,
    copy: bool = False,
) -> MuData | None:
    """Preprocess every modality of a MuData with the recipe groove_sc's models expect.

    Per modality (recipe chosen from the modality name unless ``recipes`` says otherwise):

    ``"rna"`` (names ``rna``, ``gex``)
        raw counts kept in ``.layers[counts_layer]`` (copied there from an integer ``.X`` when
        the layer is absent); ``.X`` = ``log1p`` of counts normalised to ``target_sum`` per cell;
        ``n_top_genes`` highly variable genes selected with :func:`scanpy.pp.highly_variable_genes`
        (flavor ``"seurat_v3"`` on the counts when scikit-misc is installed, else ``"seurat"`` on
        the log-normalised data) and, with ``subset_hvg``, the modality is subset to them.
    ``"protein"`` (names ``prot``, ``protein``, ``adt``)
        raw counts kept in ``.layers[counts_layer]``; ``.X`` = CLR of the counts
        (:func:`muon.prot.pp.clr`, ``axis=clr_axis``). A modality without raw counts (already
        continuous) is left as it is.
    ``"atac"`` (names ``atac``, ``peaks``)
        raw counts kept; ``.X`` binarised (count > 0).
    ``"none"`` (any other name)
        left untouched.

    The RNA counts layer is what the model reads with ``layers={"rna": "counts"}`` and
    ``likelihoods={"rna": "nb"}``; the protein ``.X`` suits ``likelihoods={"prot": "normal"}``.
    ``obs`` (names, ``perturbation``, ``cell_id``, ...) is never changed. The parameters used are
    stored in ``mdata[m].uns["groove_prepare"]``.

    Parameters
    ----------
    mdata
        MuData whose modalities hold raw counts (in ``.X`` or ``.layers[counts_layer]``).
    recipes
        Recipe per modality name, overriding the name-based default, e.g.
        ``{"gene_expression": "rna", "antibody": "protein"}``.
    n_top_genes
        Number of highly variable genes for RNA; ``None`` keeps all genes.
    hvg_flavor
        Flavor for :func:`scanpy.pp.highly_variable_genes`; ``None`` chooses ``"seurat_v3"`` on
        counts when scikit-misc is installed, else ``"seurat"``.
    target_sum
        Total counts per cell after normalisation (``None``: the median library size).
    subset_hvg
        Subset RNA to the highly variable genes (else only ``var["highly_variable"]`` is set).
    batch_key
        ``obs`` column for batch-aware HVG selection.
    counts_layer
        Layer holding (or receiving) the raw counts.
    clr_axis
        ``0``: CLR of each protein across cells (muon's default); ``1``: across proteins per cell.
    copy
        Return a new MuData and leave ``mdata`` untouched; by default (scanpy's convention)
        ``mdata`` is modified in place and ``None`` is returned.

    Returns
    -------
    The preprocessed MuData when ``copy=True``, else ``None``.

    Examples
    --------
    >>> prepared = gs.pp.prepare(mdata, n_top_genes=20, hvg_flavor="seurat", copy=True)
    >>> prepared["rna"].n_vars, "counts" in prepared["rna"].layers  # counts for the NB model
    (20, True)
    >>> gs.pp.prepare(mdata, n_top_genes=None)  # in place
    >>> mdata["rna"].uns["groove_prepare"]["recipe"]
    'rna'

    """
    if not isinstance(mdata, MuData):
        raise TypeError(f"prepare needs a MuData object, got {type(mdata).__name__}.")
    recipes = dict(recipes or {})
    unknown = set(recipes) - set(mdata.mod)
    if unknown:
        raise KeyError(
            f"recipes names modalities {sorted(unknown)} not in mdata.mod {list(mdata.mod)}."
        )
    bad = {m: r for m, r in recipes.items() if r not in (*RECIPES, "none")}
    if bad:
        raise ValueError(f"Unknown recipe(s) {bad}; use one of {sorted(RECIPES)} or 'none'.")
    if batch_key is not None:
        for m in mdata.mod:
            if recipes.get(m, _default_recipe(m)) == "rna":
                obs_column(
                    mdata, m, batch_key, "batch_key",
                    "add it to every RNA modality or pass batch_key=None.",
                )  # fmt: skip

    with no_pull_on_update():
        out = mdata.copy() if copy else mdata
    options = {
        "counts_layer": counts_layer,
        "target_sum": target_sum,
        "n_top_genes": n_top_genes,
        "hvg_flavor": hvg_flavor,
        "batch_key": batch_key,
        "subset_hvg": subset_hvg,
        "clr_axis": clr_axis,
    }
    for name in list(out.mod):
        recipe = RECIPES.get(recipes.get(name, _default_recipe(name)))
        if recipe is None:
            continue
        adata, params = recipe(out.mod[name], name, **options)
        adata.uns["groove_prepare"] = params
        out.mod[name] = adata
    with warnings.catch_warnings(), no_pull_on_update():
        warnings.filterwarnings("ignore", message=".*var_names.*")
        out.update()
    return out if copy else None
