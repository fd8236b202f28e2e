"""``pl.matching``: what a coupling joins, by group (heatmap) or cell by cell (embedding)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from mudata import MuData

from .._mudata import check_modalities, coupling_modalities, extract_block, modality_positions
from ._utils import finish, get_axes


def _group_codes(labels: pd.Series, names: pd.Index) -> np.ndarray:
    out = np.full(len(labels), -1, dtype=np.int64)
    ok = labels.notna().to_numpy()
    out[ok] = names.get_indexer(labels[ok].astype(str))
    return out


def _ordered_groups(*cols: pd.Series) -> pd.Index:
    """Group names present in any column; categorical order first, then sorted."""
    present = set()
    for col in cols:
        present |= set(col.dropna().astype(str))
    order = []
    for col in cols:
        if isinstance(col.dtype, pd.CategoricalDtype):
            order += [str(c) for c in col.cat.categories if str(c) in present]
    order += sorted(present - set(order))
    return pd.Index(list(dict.fromkeys(order)))


def group_mass(mdata: MuData, key: str, groupby: str) -> tuple[np.ndarray, pd.Index, pd.Index]:
    """Coupling mass summed over source group x target group (sparse products, small output).

    Returns
    -------
    ``(mass, source_groups, target_groups)``: ``mass[i, j]`` is the total mass from source cells
    of ``source_groups[i]`` to target cells of ``target_groups[j]``; unlabeled cells are left
    out.

    Examples
    --------
    >>> mass, rows, cols = group_mass(mdata, "groove_coupling", "perturbation")  # doctest: +SKIP

    """
    source, target = coupling_modalities(mdata, key)
    P = extract_block(mdata, key, source, target)
    ls, lt = (mdata.mod[m].obs[groupby] for m in (source, target))
    names = _ordered_groups(ls, lt)
    rows = names[np.isin(names, ls.dropna().astype(str).unique())]
    cols = names[np.isin(names, lt.dropna().astype(str).unique())]

    def onehot(labels: pd.Series, groups: pd.Index) -> sp.csr_matrix:
        code = _group_codes(labels, groups)
        ok = np.flatnonzero(code >= 0)
        return sp.csr_matrix((np.ones(len(ok)), (ok, code[ok])), shape=(len(labels), len(groups)))

    mass = onehot(ls, rows).T @ P @ onehot(lt, cols)
    return np.asarray(mass.todense(), dtype=np.float64), rows, cols


def _heatmap(mdata, key, groupby, ax, cmap, show_labels, colorbar):
    source, target = coupling_modalities(mdata, key)
    mass, rows, cols = group_mass(mdata, key, groupby)
    total = mass.sum(axis=1, keepdims=True)
    share = np.divide(mass, total, out=np.full_like(mass, np.nan), where=total > 0)
    same = np.asarray(rows)[:, None] == np.asarray(cols)[None, :]
    diag = float(mass[same].sum() / mass.sum()) if mass.sum() > 0 else float("nan")
    fig, ax = get_axes(ax, (max(4.5, 2.5 + 0.25 * len(cols)), max(3.5, 1.5 + 0.25 * len(rows))))
    im = ax.imshow(share, cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    if show_labels is None:
        show_labels = max(len(rows), len(cols)) <= 60
    if show_labels:
        ax.set_xticks(np.arange(len(cols)), cols, rotation=90, fontsize="small")
        ax.set_yticks(np.arange(len(rows)), rows, fontsize="small")
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_xlabel(f"{target} cells by {groupby}")
    ax.set_ylabel(f"{source} cells by {groupby}")
    ax.set_title(f"{key}: same-group mass {diag:.2f}")
    if colorbar:
        fig.colorbar(im, ax=ax, label="share of the row's mass")
    return fig, ax


def _representation(mdata: MuData, mod: str, use_rep: str) -> np.ndarray:
    if use_rep in mdata.obsm:
        z = np.asarray(mdata.obsm[use_rep])[modality_positions(mdata, mod)]
        if np.isfinite(z).all():
            return z
    if use_rep in mdata.mod[mod].obsm:
        return np.asarray(mdata.mod[mod].obsm[use_rep])
    raise KeyError(
        f"'{use_rep}' is in neither mdata.obsm nor mdata['{mod}'].obsm; run "
        "groove_sc.tl.embed(mdata, model, key_added=...) or pass use_rep=/basis=."
    )


def _joint_coordinates(mdata, source, target, use_rep, basis, n_neighbors, seed):
    if basis is not None:
        coords = [_representation(mdata, m, basis)[:, :2] for m in (source, target)]
        return coords[0], coords[1]
    zs, zt = (_representation(mdata, m, use_rep) for m in (source, target))
    if zs.shape[1] != zt.shape[1]:
        raise ValueError(
            f"kind='embedding' needs a joint latent: '{use_rep}' has {zs.shape[1]} dimensions in "
            f"'{source}' and {zt.shape[1]} in '{target}'. Use a shared embedding (e.g. from "
            "groove_sc.tl.embed) or kind='heatmap'."
        )
    import anndata as ad
    import scanpy as sc

    joint = ad.AnnData(X=np.vstack([zs, zt]).astype(np.float32))
    sc.pp.neighbors(joint, use_rep="X", n_neighbors=n_neighbors, random_state=seed)
    sc.tl.umap(joint, random_state=seed)
    xy = joint.obsm["X_umap"]
    return xy[: len(zs)], xy[len(zs) :]


def _embedding(mdata, key, ax, use_rep, basis, n_pairs, n_neighbors, seed, size):
    from matplotlib.collections import LineCollection

    source, target = coupling_modalities(mdata, key)
    if use_rep is None:
        meta_rep = mdata.uns.get(key, {}).get("use_rep")
        use_rep = meta_rep if isinstance(meta_rep, str) else "X_groove"
    xy_s, xy_t = _joint_coordinates(mdata, source, target, use_rep, basis, n_neighbors, seed)
    P = extract_block(mdata, key, source, target)
    has_mass = np.flatnonzero(np.diff(P.indptr) > 0)
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(has_mass, size=min(n_pairs, len(has_mass)), replace=False))
    partner = np.array([P.indices[P.indptr[i] + np.argmax(P.data[P.indptr[i] : P.indptr[i + 1]])]
                        for i in picked], dtype=np.int64)  # fmt: skip
    fig, ax = get_axes(ax, (5.0, 4.5))
    ax.scatter(*xy_s.T, s=size, c="C0", label=source, alpha=0.7, linewidths=0)
    ax.scatter(*xy_t.T, s=size, c="C1", label=target, alpha=0.7, linewidths=0)
    if len(picked):
        segments = np.stack([xy_s[picked], xy_t[partner]], axis=1)
        ax.add_collection(
            LineCollection(segments, colors="0.2", linewidths=0.5, alpha=0.5, label="matched")
        )
    ax.set_xticks([])
    ax.set_yticks([])
    name = "UMAP" if basis is None else basis
    ax.set_xlabel(f"{name} 1")
    ax.set_ylabel(f"{name} 2")
    ax.set_title(f"{key}: {len(picked)} matched pairs on {use_rep if basis is None else basis}")
    ax.legend(loc="best", fontsize="small", markerscale=2, frameon=False)
    return fig, ax


def matching(
    mdata: MuData,
    key: str = "groove_coupling",
    groupby: str | None = None,
    kind: Literal["heatmap", "embedding"] = "heatmap",
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    save: bool | str | Path | None = None,
    *,
    use_rep: str | None = None,
    basis: str | None = None,
    n_pairs: int = 200,
    n_neighbors: int = 15,
    seed: int = 0,
    cmap: str = "viridis",
    show_labels: bool | None = None,
    colorbar: bool = True,
    size: float = 6.0,
) -> Figure | Axes | None:
    """Plot what a coupling from :func:`groove_sc.tl.align` matches.

    - ``kind="heatmap"``: the coupling's mass summed over source group x target group (sparse
      products; the ``n x m`` coupling is never densified), each row normalised to 1: a perfect
      label-respecting coupling is the identity. The title gives the share of all mass joining
      equal groups.
    - ``kind="embedding"``: a UMAP (scanpy's ``neighbors`` + ``umap``) of the joint latent
      ``use_rep`` over the source and target cells, coloured by modality, with ``n_pairs``
      randomly chosen source cells joined by a segment to the target cell holding most of their
      mass.

    Parameters
    ----------
    mdata
        MuData holding ``mdata.obsp[key]`` and ``mdata.uns[key]`` (source, target).
    key
        The coupling's key.
    groupby
        Group column in both modalities (heatmap); default the coupling's ``groupby``, else
        ``"perturbation"``.
    kind
        ``"heatmap"`` or ``"embedding"``.
    ax
        Axes to draw in (default: a new figure).
    show
        Show the figure (``None``: ``sc.settings.autoshow``); ``False`` returns the axes.
    return_fig
        Return the figure.
    save
        ``True`` or a suffix such as ``"_run1.png"``: saved as
        ``sc.settings.figdir / f"matching_{kind}{save}"`` (scanpy's rule); a
        :class:`~pathlib.Path` is used as is.
    use_rep
        Joint latent for the embedding (``mdata.obsm`` or each modality's ``obsm``); default the
        coupling's ``use_rep``, else ``"X_groove"``.
    basis
        Precomputed 2-d coordinates (``mdata.obsm`` or per-modality ``obsm`` key, e.g.
        ``"X_umap"``) instead of computing a UMAP.
    n_pairs
        Matched pairs drawn (at most the number of source cells with mass).
    n_neighbors
        Neighbours of the UMAP graph.
    seed
        Seed of the UMAP and of the pair sample.
    cmap
        Heatmap colour map.
    show_labels
        Group tick labels (default: when there are at most 60 groups).
    colorbar
        Draw the heatmap's colour bar.
    size
        Point size of the embedding.

    Returns
    -------
    The figure if ``return_fig``, the axes if ``show=False``, else ``None``.

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", use_rep="X_groove", method="leot",
    ...             groupby="perturbation", key_added="groove_coupling")  # doctest: +SKIP
    >>> gs.pl.matching(mdata, key="groove_coupling", groupby="perturbation")  # doctest: +SKIP
    >>> ax = gs.pl.matching(mdata, kind="embedding", show=False)  # doctest: +SKIP

    """
    if not isinstance(mdata, MuData):
        raise TypeError(f"pl.matching needs a MuData, got {type(mdata).__name__}.")
    source, target = coupling_modalities(mdata, key)
    check_modalities(mdata, [source, target], "pl.matching")
    if kind == "heatmap":
        if groupby is None:
            meta_group = mdata.uns.get(key, {}).get("groupby")
            groupby = meta_group if isinstance(meta_group, str) and meta_group else "perturbation"
        for m in (source, target):
            if groupby not in mdata.mod[m].obs:
                raise KeyError(
                    f"groupby='{groupby}' is not a column of mdata['{m}'].obs; pass a label "
                    "column present in both modalities."
                )
        fig, ax = _heatmap(mdata, key, groupby, ax, cmap, show_labels, colorbar)
    elif kind == "embedding":
        fig, ax = _embedding(mdata, key, ax, use_rep, basis, n_pairs, n_neighbors, seed, size)
    else:
        raise ValueError(f"kind must be 'heatmap' or 'embedding', got {kind!r}.")
    return finish(fig, ax, f"matching_{kind}", show=show, return_fig=return_fig, save=save)
