"""``pl.matching``: what a coupling adds to the labels (partners), by group (heatmap), by cell."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from mudata import MuData

from .._constants import DEFAULT_COUPLING_KEY, DEFAULT_GROUPBY, DEFAULT_REP
from .._labels import label_codes
from .._mudata import check_modalities, coupling_modalities, extract_block, obs_column
from .._representation import get_rep
from ._utils import finish, get_axes


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


def group_mass(
    mdata: MuData, coupling_key: str, groupby: str
) -> tuple[np.ndarray, pd.Index, pd.Index]:
    """Coupling mass summed over source group x target group (sparse products, small output).

    Returns
    -------
    ``(mass, source_groups, target_groups)``: ``mass[i, j]`` is the total mass from source cells
    of ``source_groups[i]`` to target cells of ``target_groups[j]``; unlabeled cells are left
    out.

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", use_rep="X_true_shared", key_added="groove_coupling")
    >>> mass, rows, cols = gs.pl.group_mass(mdata, "groove_coupling", "perturbation")
    >>> mass.shape, round(float(mass.sum()), 6)
    ((5, 5), 1.0)

    """
    source, target = coupling_modalities(mdata, coupling_key)
    P = extract_block(mdata, coupling_key, source, target)
    ls, lt = (mdata.mod[m].obs[groupby] for m in (source, target))
    names = _ordered_groups(ls, lt)
    rows = names[np.isin(names, ls.dropna().astype(str).unique())]
    cols = names[np.isin(names, lt.dropna().astype(str).unique())]

    def onehot(labels: pd.Series, groups: pd.Index) -> sp.csr_matrix:
        code = label_codes(labels, groups)
        ok = np.flatnonzero(code >= 0)
        return sp.csr_matrix((np.ones(len(ok)), (ok, code[ok])), shape=(len(labels), len(groups)))

    mass = onehot(ls, rows).T @ P @ onehot(lt, cols)
    return np.asarray(mass.todense(), dtype=np.float64), rows, cols


def partner_spread(mdata: MuData, coupling_key: str, groupby: str) -> pd.DataFrame:
    """Per source cell: over how many target cells its mass spreads, against the labels alone.

    A label-only coupling (uniform within each group, e.g. any aligner on a one-hot encoding of
    the labels) spreads each source cell's mass evenly over the target cells of its group; a
    coupling that resolves cells *within* groups concentrates it on a few of them.

    Returns
    -------
    DataFrame indexed by the labelled source cells (``obs_names``) with columns

    - ``group``: the cell's ``groupby`` label (categorical, groups in plotting order);
    - ``partners``: effective number of partners, ``exp(H)`` of the cell's row of the coupling
      normalised to 1 (``1``: all mass on one target cell; NaN: no mass);
    - ``label_only``: the same for the label-only coupling, i.e. the number of target cells of
      the cell's group (NaN when the group is absent from the target);
    - ``same_group``: share of the cell's mass on target cells of its own group.

    Unlabelled source cells are left out. The coupling is never densified.

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", use_rep="X_true_shared", key_added="groove_coupling")
    >>> df = gs.pl.partner_spread(mdata, "groove_coupling", "perturbation")
    >>> bool((df["partners"] <= df["label_only"] + 1e-6).all())
    True

    """
    source, target = coupling_modalities(mdata, coupling_key)
    P = extract_block(mdata, coupling_key, source, target).astype(np.float64).tocsr()
    P.sum_duplicates()
    ls, lt = (mdata.mod[m].obs[groupby] for m in (source, target))
    names = _ordered_groups(ls, lt)
    gs_, gt = label_codes(ls, names), label_codes(lt, names)
    n_s = P.shape[0]
    row = np.repeat(np.arange(n_s), np.diff(P.indptr))
    mass = np.bincount(row, weights=P.data, minlength=n_s)
    p = np.divide(P.data, mass[row], out=np.zeros_like(P.data), where=mass[row] > 0)
    plogp = np.zeros_like(p)
    np.multiply(p, np.log(p, where=p > 0, out=np.zeros_like(p)), out=plogp, where=p > 0)
    entropy = -np.bincount(row, weights=plogp, minlength=n_s)
    partners = np.where(mass > 0, np.exp(entropy), np.nan)
    same = np.bincount(row, weights=p * (gt[P.indices] == gs_[row]), minlength=n_s)
    same = np.where(mass > 0, same, np.nan)
    n_target = np.bincount(gt[gt >= 0], minlength=len(names)).astype(np.float64)
    n_target[n_target == 0] = np.nan
    keep = gs_ >= 0
    present = names[np.unique(gs_[keep])]
    group = pd.Categorical(np.asarray(names)[gs_[keep]], categories=list(present))
    return pd.DataFrame(
        {
            "group": group,
            "partners": partners[keep],
            "label_only": n_target[gs_[keep]],
            "same_group": same[keep],
        },
        index=mdata.mod[source].obs_names[keep],
    )


def _partners(mdata, key, groupby, ax, show_labels, max_points, seed, size):
    source, target = coupling_modalities(mdata, key)
    df = partner_spread(mdata, key, groupby)
    groups = list(df["group"].cat.categories)
    x = df["group"].cat.codes.to_numpy().astype(np.float64)
    cells = np.flatnonzero(np.isfinite(df["partners"].to_numpy()))
    rng = np.random.default_rng(seed)
    shown = np.sort(rng.choice(cells, size=min(max_points, len(cells)), replace=False))
    jitter = rng.uniform(-0.3, 0.3, size=len(shown))
    by_group = df.groupby("group", observed=False)
    median = by_group["partners"].median().reindex(groups).to_numpy()
    label_only = by_group["label_only"].first().reindex(groups).to_numpy()
    fig, ax = get_axes(ax, (max(5.0, 2.5 + 0.22 * len(groups)), 4.0))
    ax.scatter(
        x[shown] + jitter,
        df["partners"].to_numpy()[shown],
        s=size,
        c="0.6",
        alpha=0.5,
        linewidths=0,
        label=f"one {source} cell",
    )
    pos = np.arange(len(groups))
    ax.plot(pos, median, "o", color="C0", markersize=6, label="median (this coupling)")
    ax.plot(
        pos,
        label_only,
        "_",
        color="C3",
        markersize=14,
        markeredgewidth=2.5,
        label="labels alone (uniform within group)",
    )
    ax.set_yscale("log")
    ax.axhline(1.0, color="0.3", linewidth=0.8, linestyle=":")
    if show_labels is None:
        show_labels = len(groups) <= 60
    if show_labels:
        ax.set_xticks(pos, groups, rotation=90, fontsize="small")
    else:
        ax.set_xticks([])
    ax.set_xlim(-0.7, len(groups) - 0.3)
    ax.set_xlabel(f"{source} cells by {groupby}")
    ax.set_ylabel(f"{target} cells sharing one {source} cell's mass\n(effective number)")
    ratio = float(np.nanmedian(df["partners"] / df["label_only"])) if len(cells) else np.nan
    same = float(np.nanmean(df["same_group"])) if len(cells) else np.nan
    ax.set_title(
        f"{key}: a cell's mass spreads over {ratio:.0%} of its group\n"
        f"(labels alone: 100%); same-group mass {same:.2f}",
        fontsize="medium",
    )
    ax.legend(loc="best", fontsize="small", frameon=False, markerscale=1.5)
    return fig, ax


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


def _joint_coordinates(mdata, source, target, use_rep, basis, n_neighbors, seed):
    if basis is not None:
        coords = [get_rep(mdata, m, basis, argument="basis")[:, :2] for m in (source, target)]
        return coords[0], coords[1]
    zs, zt = (get_rep(mdata, m, use_rep) for m in (source, target))
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
        use_rep = meta_rep if isinstance(meta_rep, str) else DEFAULT_REP
    xy_s, xy_t = _joint_coordinates(mdata, source, target, use_rep, basis, n_neighbors, seed)
    P = extract_block(mdata, key, source, target)
    has_mass = np.flatnonzero(np.diff(P.indptr) > 0)
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(has_mass, size=min(n_pairs, len(has_mass)), replace=False))
    partner = np.array(
        [P.indices[P.indptr[i] + np.argmax(P.data[P.indptr[i] : P.indptr[i + 1]])] for i in picked],
        dtype=np.int64,
    )
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
    coupling_key: str = DEFAULT_COUPLING_KEY,
    *,
    groupby: str | None = None,
    kind: Literal["partners", "heatmap", "embedding"] = "partners",
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    save: bool | str | Path | None = None,
    key: str | None = None,
    use_rep: str | None = None,
    basis: str | None = None,
    n_pairs: int = 200,
    n_neighbors: int = 15,
    seed: int = 0,
    cmap: str = "viridis",
    show_labels: bool | None = None,
    colorbar: bool = True,
    size: float = 6.0,
    max_points: int = 2000,
) -> Figure | Axes | None:
    """Plot what a coupling from :func:`groove_sc.tl.align` matches, beyond the labels.

    - ``kind="partners"`` (default): for each source cell, over how many target cells its
      mass spreads (the effective number ``exp(H)`` of its normalised row, log scale; one grey
      point per cell, at most ``max_points``), with each group's median, next to what the
      labels alone give: a label-only coupling spreads a cell's mass evenly over all target
      cells of its group (red bars). The further the points lie below the bars, the more the
      coupling resolves cells *within* groups; the title gives the median share of its group
      a cell's mass reaches and the share of mass joining equal groups. Values from
      :func:`groove_sc.pl.partner_spread`.
    - ``kind="heatmap"``: the coupling's mass summed over source group x target group (sparse
      products; the ``n x m`` coupling is never densified), each row normalised to 1: a perfect
      label-respecting coupling is the identity (and a label-constrained aligner gives it by
      construction). The title gives the share of all mass joining equal groups.
    - ``kind="embedding"``: a UMAP (scanpy's ``neighbors`` + ``umap``) of the joint latent
      ``use_rep`` over the source and target cells, coloured by modality, with ``n_pairs``
      randomly chosen source cells joined by a segment to the target cell holding most of their
      mass.

    Parameters
    ----------
    mdata
        MuData holding ``mdata.obsp[coupling_key]`` and ``mdata.uns[coupling_key]``.
    coupling_key
        The coupling's key (``key_added`` of :func:`groove_sc.tl.align`), as in
        :func:`groove_sc.tl.impute` and :func:`groove_sc.metrics.evaluate_matching`.
    groupby
        Group column in both modalities (partners, heatmap); default the coupling's
        ``groupby``, else ``"perturbation"``.
    kind
        ``"partners"``, ``"heatmap"`` or ``"embedding"``.
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
    key
        Alias of ``coupling_key``, accepted silently (``gs.pl.matching(mdata,
        key="groove_coupling")``); giving both is an error.
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
        Seed of the UMAP, of the pair sample and of the cells drawn by ``kind="partners"``.
    cmap
        Heatmap colour map.
    show_labels
        Group tick labels (default: when there are at most 60 groups).
    colorbar
        Draw the heatmap's colour bar.
    size
        Point size of the embedding and of the partners plot.
    max_points
        Cells drawn as points by ``kind="partners"`` (a random sample; medians use all cells).

    Returns
    -------
    The figure if ``return_fig``, the axes if ``show=False``, else ``None``.

    Examples
    --------
    >>> gs.tl.align(mdata, "rna", "prot", use_rep="X_true_shared", method="leot",
    ...             groupby="perturbation", key_added="groove_coupling")
    >>> ax = gs.pl.matching(mdata, coupling_key="groove_coupling", show=False)
    >>> ax = gs.pl.matching(mdata, key="groove_coupling", kind="heatmap", show=False)

    """
    coupling_key = _coupling_key(coupling_key, key)
    if not isinstance(mdata, MuData):
        raise TypeError(f"pl.matching needs a MuData, got {type(mdata).__name__}.")
    source, target = coupling_modalities(mdata, coupling_key)
    check_modalities(mdata, [source, target], "pl.matching")
    if kind in ("partners", "heatmap"):
        groupby = _groupby(mdata, coupling_key, groupby, (source, target))
        if kind == "partners":
            fig, ax = _partners(
                mdata, coupling_key, groupby, ax, show_labels, max_points, seed, size
            )
        else:
            fig, ax = _heatmap(mdata, coupling_key, groupby, ax, cmap, show_labels, colorbar)
    elif kind == "embedding":
        fig, ax = _embedding(
            mdata, coupling_key, ax, use_rep, basis, n_pairs, n_neighbors, seed, size
        )
    else:
        raise ValueError(f"kind must be 'partners', 'heatmap' or 'embedding', got {kind!r}.")
    return finish(fig, ax, f"matching_{kind}", show=show, return_fig=return_fig, save=save)


def _coupling_key(coupling_key: str, key: str | None) -> str:
    """``coupling_key``, or its alias ``key`` when given (both, and different: an error)."""
    if key is None:
        return coupling_key
    if coupling_key not in (key, DEFAULT_COUPLING_KEY):
        raise TypeError(
            f"pl.matching got coupling_key={coupling_key!r} and its alias key={key!r}; pass one."
        )
    return key


def _groupby(mdata: MuData, coupling_key: str, groupby: str | None, mods: tuple[str, str]) -> str:
    """The label column: given, else the coupling's own, else the default; checked."""
    if groupby is None:
        meta_group = mdata.uns.get(coupling_key, {}).get("groupby")
        groupby = meta_group if isinstance(meta_group, str) and meta_group else DEFAULT_GROUPBY
    for m in mods:
        obs_column(mdata, m, groupby, "groupby", "pass a label column present in both modalities.")
    return groupby
