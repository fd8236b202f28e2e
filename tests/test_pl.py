"""gs.pl: the artists drawn by matching (heatmap, embedding) and benchmark (grid, sweep)."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

import groove_sc as gs
from groove_sc._mudata import extract_block

SIM = {"n_perturbations": 4, "cells_per_perturbation": 15, "n_features": {"rna": 40, "prot": 10}}


@pytest.fixture(scope="module")
def aligned():
    mdata = gs.datasets.simulate(paired=True, seed=0, **SIM)
    for method, key in (("leot", "lab"), ("eot", "unlab")):
        gs.tl.align(mdata, "rna", "prot", use_rep="X_true_shared", method=method, key_added=key)
    for m in mdata.mod:
        mdata[m].obsm["X_2d"] = mdata[m].obsm["X_true_shared"][:, :2]
    return mdata


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.fixture
def figdir(tmp_path):
    old = sc.settings.figdir
    sc.settings.figdir = tmp_path
    yield tmp_path
    sc.settings.figdir = old


def _dense_group_share(mdata, key):
    P = extract_block(mdata, key, "rna", "prot").toarray()
    ls, lt = (mdata[m].obs["perturbation"].astype(str).to_numpy() for m in ("rna", "prot"))
    groups = list(mdata["rna"].obs["perturbation"].cat.categories)
    mass = np.array([[P[ls == a][:, lt == b].sum() for b in groups] for a in groups])
    return mass / mass.sum(axis=1, keepdims=True), groups


# -------------------------------------------------------------------------------- matching
@pytest.mark.parametrize("key", ["lab", "unlab"])
def test_matching_heatmap_draws_the_row_normalised_group_mass(aligned, key):
    ax = gs.pl.matching(aligned, key=key, groupby="perturbation", kind="heatmap", show=False)
    assert isinstance(ax, Axes)
    (image,) = ax.images
    expected, groups = _dense_group_share(aligned, key)
    np.testing.assert_allclose(image.get_array(), expected, atol=1e-6)
    assert [t.get_text() for t in ax.get_yticklabels()] == groups
    assert [t.get_text() for t in ax.get_xticklabels()] == groups
    assert "same-group mass" in ax.get_title()
    if key == "lab":  # label-constrained: all mass on the diagonal
        np.testing.assert_allclose(image.get_array(), np.eye(len(groups)), atol=1e-6)
        assert "1.00" in ax.get_title()
    assert len(ax.figure.axes) == 2  # heatmap + colour bar


def test_matching_follows_scanpy_conventions(aligned, figdir):
    fig = gs.pl.matching(aligned, key="lab", return_fig=True)
    assert isinstance(fig, Figure) and fig.axes[0].collections  # partners: points
    own_fig, own_ax = plt.subplots()
    out = gs.pl.matching(aligned, key="lab", kind="heatmap", ax=own_ax, show=False,
                         colorbar=False)  # fmt: skip
    assert out is own_ax and len(own_ax.images) == 1 and len(own_fig.axes) == 1
    assert gs.pl.matching(aligned, key="lab", kind="heatmap", show=True, save="_test.png") is None
    assert (figdir / "matching_heatmap_test.png").stat().st_size > 0
    assert gs.pl.matching(aligned, key="lab", show=False, save=True) is not None
    assert (figdir / f"matching_partners.{sc.settings.file_format_figs}").stat().st_size > 0
    with pytest.raises(ValueError, match="kind must be"):
        gs.pl.matching(aligned, key="lab", kind="violin")
    with pytest.raises(KeyError, match="not a column"):
        gs.pl.matching(aligned, key="lab", groupby="dose")


def _dense_partners(mdata, key):
    """Effective number of partners per source cell and group sizes, from the dense coupling."""
    P = extract_block(mdata, key, "rna", "prot").toarray()
    Q = P / P.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        H = -np.where(Q > 0, Q * np.log(Q), 0.0).sum(axis=1)
    ls, lt = (mdata[m].obs["perturbation"].astype(str).to_numpy() for m in ("rna", "prot"))
    n_group = np.array([(lt == g).sum() for g in ls], dtype=float)
    same = np.array([Q[i, lt == ls[i]].sum() for i in range(len(ls))])
    return np.exp(H), n_group, same, ls


@pytest.mark.parametrize("key", ["lab", "unlab"])
def test_partner_spread_equals_a_dense_reference(aligned, key):
    df = gs.pl.partner_spread(aligned, key, "perturbation")
    partners, n_group, same, ls = _dense_partners(aligned, key)
    assert list(df.index) == list(aligned["rna"].obs_names)
    np.testing.assert_allclose(df["partners"], partners, rtol=1e-9)
    np.testing.assert_allclose(df["label_only"], n_group)
    np.testing.assert_allclose(df["same_group"], same, atol=1e-12)
    assert list(df["group"].astype(str)) == list(ls)


def test_partner_spread_of_a_label_only_coupling_is_the_group_size():
    mdata = gs.datasets.simulate(paired=True, seed=2, **SIM)
    for m in mdata.mod:  # the label-only coupling: uniform within each group
        mdata[m].obsm["X_onehot"] = pd.get_dummies(mdata[m].obs["perturbation"]).to_numpy(float)
    gs.tl.align(mdata, "rna", "prot", use_rep="X_onehot", method="leot", key_added="lab")
    df = gs.pl.partner_spread(mdata, "lab", "perturbation")
    np.testing.assert_allclose(df["partners"], df["label_only"], rtol=1e-3)


def test_matching_default_draws_partners_against_the_label_only_reference(aligned):
    ax = gs.pl.matching(aligned, key="lab", groupby="perturbation", show=False, max_points=25)
    partners, n_group, same, ls = _dense_partners(aligned, "lab")
    groups = list(aligned["rna"].obs["perturbation"].cat.categories)
    # one point per sampled source cell, at its group's position (jittered) and its partners
    (points,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    xy = points.get_offsets()
    assert xy.shape == (25, 2)
    pos = np.round(xy[:, 0]).astype(int)
    assert np.all(np.abs(xy[:, 0] - pos) <= 0.3)  # jittered around the group's position
    for (_x, y), g in zip(xy, pos, strict=True):  # a cell of that group with that value
        assert np.isclose(partners[ls == groups[g]], y, rtol=1e-9).any()
    # per group: the median of this coupling and the label-only reference (the group size)
    median, reference = (line for line in ax.lines if line.get_marker() in ("o", "_"))
    np.testing.assert_allclose(median.get_xdata(), np.arange(len(groups)))
    np.testing.assert_allclose(
        median.get_ydata(), [np.median(partners[ls == g]) for g in groups], rtol=1e-9
    )
    np.testing.assert_allclose(reference.get_ydata(), [n_group[ls == g][0] for g in groups])
    # the coupling resolves cells within groups: far below the label-only reference
    assert np.all(median.get_ydata() < 0.5 * reference.get_ydata())
    assert ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == groups
    ratio = np.median(partners / n_group)
    assert f"spreads over {ratio:.0%} of its group" in ax.get_title()
    assert f"same-group mass {same.mean():.2f}" in ax.get_title()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["one rna cell", "median (this coupling)",
                      "labels alone (uniform within group)"]  # fmt: skip


def test_matching_embedding_draws_modalities_and_matched_pairs(aligned):
    ax = gs.pl.matching(
        aligned, key="unlab", kind="embedding", basis="X_2d", n_pairs=10, show=False
    )
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert [p.get_offsets().shape[0] for p in points] == [aligned["rna"].n_obs] * 2
    np.testing.assert_allclose(points[0].get_offsets(), aligned["rna"].obsm["X_2d"], rtol=1e-6)
    np.testing.assert_allclose(points[1].get_offsets(), aligned["prot"].obsm["X_2d"], rtol=1e-6)
    (segs,) = lines
    segments = segs.get_segments()
    assert len(segments) == 10
    # every segment joins a source cell to the target cell holding most of its mass
    P = extract_block(aligned, "unlab", "rna", "prot").toarray()
    xs, xt = aligned["rna"].obsm["X_2d"], aligned["prot"].obsm["X_2d"]
    for seg in segments:
        i = np.flatnonzero(np.isclose(xs, seg[0]).all(axis=1))[0]
        np.testing.assert_allclose(seg[1], xt[P[i].argmax()], rtol=1e-6)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["rna", "prot", "matched"]


@pytest.mark.slow
def test_matching_embedding_computes_a_umap_of_the_joint_latent(aligned):
    ax = gs.pl.matching(aligned, key="lab", kind="embedding", use_rep="X_true_shared",
                        n_pairs=5, n_neighbors=10, show=False)  # fmt: skip
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    (segs,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(points) == 2 and len(segs.get_segments()) == 5
    xy = np.vstack([p.get_offsets() for p in points])
    assert xy.shape == (aligned.n_obs, 2) and np.isfinite(xy).all() and xy.std(axis=0).min() > 0
    assert ax.get_xlabel() == "UMAP 1"


# ------------------------------------------------------------------------------- benchmark
def _results():
    rows = []
    vals = {("A", "x"): [0.10, 0.20], ("A", "y"): [0.30, 0.30], ("B", "x"): [0.40, 0.60]}
    for frac, shift in ((0.2, 0.0), (0.8, 0.1)):
        for (learner, aligner), v in vals.items():
            for seed, value in enumerate(v):
                rows.append(
                    dict(
                        shared_fraction=frac,
                        learner=learner,
                        aligner=aligner,
                        seed=seed,
                        tuning="default",
                        metric="foscttm_barycentric",
                        value=value + shift,
                        status="ok",
                        error="",
                    )  # fmt: skip
                )
        rows.append(
            dict(shared_fraction=frac, learner="B", aligner="y", seed=0, tuning="default",
                 metric="", value=np.nan, status="skipped", error="needs a shared space")
        )  # fmt: skip
    return pd.DataFrame(rows)


def test_benchmark_grid_draws_means_spread_skips_and_the_best_cell():
    res = _results()
    ax = gs.pl.benchmark(res, metric="foscttm_barycentric", shared_fraction=0.2, show=False)
    (image,) = ax.images
    grid = np.ma.filled(image.get_array(), np.nan)
    np.testing.assert_allclose(grid, [[0.15, 0.30], [0.50, np.nan]])
    assert image.get_cmap().name == "viridis_r"  # lower is better: better stays bright
    texts = [t.get_text() for t in ax.texts]
    assert "0.150\n±0.071" in texts and "0.300\n±0.000" in texts and "skip" in texts
    (best,) = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert best.get_xy() == (-0.5, -0.5)  # A x x, the lowest mean
    assert "lower is better" in ax.get_title() and "2 seeds" in ax.get_title()
    ax_all = gs.pl.benchmark(res, "foscttm_barycentric", show=False)  # all fractions pooled
    np.testing.assert_allclose(np.ma.filled(ax_all.images[0].get_array(), np.nan)[0, 0], 0.2)


def test_benchmark_sweep_draws_one_line_per_learner_with_its_best_aligner():
    res = _results()
    ax = gs.pl.benchmark(res, metric="foscttm_barycentric", kind="sweep", show=False, dodge=0)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["A + x", "B + x"]
    data = [line for line in ax.lines if line.get_marker() == "o"]
    assert len(data) == 2
    np.testing.assert_allclose(data[0].get_xdata(), [0.2, 0.8])
    np.testing.assert_allclose(data[0].get_ydata(), [0.15, 0.25])
    np.testing.assert_allclose(data[1].get_ydata(), [0.50, 0.60])
    assert any(isinstance(c, LineCollection) for c in ax.collections)  # error bars
    dodged = gs.pl.benchmark(res, "foscttm_barycentric", kind="sweep", show=False, dodge=0.01)
    first, second = (line for line in dodged.lines if line.get_marker() == "o")
    np.testing.assert_allclose(second.get_xdata() - first.get_xdata(), [0.01, 0.01])
    ax_y = gs.pl.benchmark(res, "foscttm_barycentric", kind="sweep", aligner="y", show=False)
    assert [t.get_text() for t in ax_y.get_legend().get_texts()] == ["A + y"]


def test_benchmark_plot_conventions_and_errors(figdir):
    res = _results()
    assert isinstance(gs.pl.benchmark(res, return_fig=True), Figure)
    assert gs.pl.benchmark(res, kind="sweep", show=True, save=True) is None
    assert (figdir / f"benchmark_sweep.{sc.settings.file_format_figs}").exists()
    with pytest.raises(ValueError, match="available metrics.*foscttm_barycentric"):
        gs.pl.benchmark(res, metric="trace")
    with pytest.raises(ValueError, match="kind must be"):
        gs.pl.benchmark(res, kind="bars")
    with pytest.raises(ValueError, match="shared_fraction"):
        gs.pl.benchmark(res.drop(columns="shared_fraction"), kind="sweep")


def test_benchmark_grid_of_a_real_run():
    mdata = gs.datasets.simulate(paired=True, seed=1, **SIM)
    res = gs.benchmark.run(mdata, ["labels", "pca"], ["leot", "egw"], seeds=[0, 1])
    ax = gs.pl.benchmark(res, "trace", show=False)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["labels", "pca"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["leot", "egw"]
    grid = np.ma.filled(ax.images[0].get_array(), np.nan)
    assert np.isnan(grid[1, 0]) and np.isfinite(grid[0]).all() and np.isfinite(grid[1, 1])
    assert "skip" in [t.get_text() for t in ax.texts]
