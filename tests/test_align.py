"""tl.align: every aligner against POT on each block, marginals, storage and bad input."""

import warnings

import anndata as ad
import mudata as md
import numpy as np
import ot
import ot.coot
import pandas as pd
import pytest
import scipy.sparse as sp

import groove_sc as gs
from groove_sc._mudata import extract_block

ALL_METHODS = ["eot", "leot", "egw", "egw_all", "egwl", "fgw", "uot", "coot", "cootl", "knn"]


def make_blobs(sizes_s=(12, 9, 7), sizes_t=(10, 11, 6), d=4, d_t=None, seed=0):
    """Two modalities of Gaussian blobs per group, prefixed obs_names, obsm['X_groove']."""
    rng = np.random.default_rng(seed)
    n_groups = max(len(sizes_s), len(sizes_t))
    centers = rng.normal(0, 3, (n_groups, d))
    proj = rng.normal(size=(d, d_t or d))

    def modality(prefix, sizes):
        grp = np.repeat(np.arange(len(sizes)), sizes)
        z = centers[grp] + rng.normal(0, 1, (len(grp), d))
        obs = pd.DataFrame(
            {
                "perturbation": pd.Categorical([f"g{i}" for i in grp]),
                "cell_id": [f"c{i}" for i in range(len(grp))],
            },
            index=[f"{prefix}:c{i}" for i in range(len(grp))],
        )
        adata = ad.AnnData(rng.normal(size=(len(grp), 5)).astype(np.float32), obs=obs)
        adata.var_names = [f"{prefix}_f{j}" for j in range(5)]
        adata.obsm["X_groove"] = z.astype(np.float32)
        adata.obsm["X_own"] = (z @ proj).astype(np.float32)
        return adata

    return md.MuData({"rna": modality("rna", sizes_s), "prot": modality("prot", sizes_t)})


@pytest.fixture
def mdata():
    return make_blobs()


@pytest.fixture
def one_torch_thread():
    """Torch on one CPU thread: the test blocks are tiny, and on a busy machine torch's thread
    pool made each torch solve up to 30 times slower than with one thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=["numpy", "torch"])
def backend(request):
    """Every aligner test runs on both array backends (torch on the CPU), as POT's ``nx``."""
    if request.param == "torch":
        request.getfixturevalue("one_torch_thread")
    return request.param


def sqdist(x, y):
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


def groups(mdata, mod):
    return mdata[mod].obs["perturbation"].astype(str).to_numpy()


def block(mdata, key="groove_coupling"):
    return extract_block(mdata, key, "rna", "prot").toarray()


def rep(mdata, mod, key="X_groove"):
    return np.asarray(mdata[mod].obsm[key], dtype=np.float64)


# comparisons of whole couplings store every entry (no sparsification by mass or per-row cap)
FULL = {"keep_mass": 1.0, "max_per_row": None}
TIGHT = {"dtype": "float64", **FULL}
TIGHT_GW = {"dtype": "float64", "tol": 1e-10, "inner_tol": 1e-11, "max_iter": 2000, **FULL}
POT_GW = {"tol": 1e-13, "max_iter": 5000, "stopThr": 1e-13, "numItermax": 100_000}


# --- registry ------------------------------------------------------------------------------


def test_registry_has_every_method():
    assert set(ALL_METHODS) <= set(gs.tl.ALIGNERS)
    for name in ALL_METHODS:
        aligner = gs.tl.ALIGNERS[name]
        assert aligner.name == name and aligner.description


def test_register_custom_aligner(mdata):
    @gs.tl.register_aligner("first_target_test", labels="optional")
    def first_target(problem, weight=1.0):
        P = sp.lil_matrix((problem.n_source, problem.n_target))
        P[:, 0] = weight
        P = P.tocsr()
        return gs.tl.AlignResult(coupling=P / P.sum(), parameters={"weight": weight})

    try:
        gs.tl.align(mdata, "rna", "prot", method="first_target_test", weight=2.0)
        P = block(mdata)
        assert np.allclose(P[:, 0], 1 / mdata["rna"].n_obs) and P[:, 1:].sum() == 0
        assert mdata.uns["groove_coupling"]["parameters"]["weight"] == 2.0
        with pytest.raises(ValueError, match="already registered"):
            gs.tl.register_aligner("first_target_test")(first_target)
    finally:
        del gs.tl.ALIGNERS["first_target_test"]


def test_unknown_method_lists_valid_ones(mdata):
    with pytest.raises(ValueError, match="Valid methods.*'leot'"):
        gs.tl.align(mdata, "rna", "prot", method="sinkhorn")


# --- linear OT -----------------------------------------------------------------------------


@pytest.mark.parametrize(("dtype", "rtol"), [("float64", 1e-5), ("float32", 1e-3)])
def test_leot_equals_pot_per_group(mdata, backend, dtype, rtol):
    gs.tl.align(mdata, "rna", "prot", method="leot", backend=backend, dtype=dtype, tol=1e-9, **FULL)
    meta = mdata.uns["groove_coupling"]
    eps = meta["parameters"]["epsilon"]
    P = block(mdata)
    xs, xt = rep(mdata, "rna"), rep(mdata, "prot")
    gs_, gt = groups(mdata, "rna"), groups(mdata, "prot")
    # epsilon is relative to the mean same-group cost, groups weighted by their source cells
    cmean = sum(
        (gs_ == g).mean() * sqdist(xs[gs_ == g], xt[gt == g]).mean() for g in np.unique(gs_)
    )
    assert np.isclose(eps, 0.05 * cmean, rtol=1e-5)
    assert meta["parameters"]["epsilon_relative"] == 0.05
    assert meta["parameters"]["epsilon_scale"] == "mean"
    n = len(gs_)
    for g in np.unique(gs_):
        i, j = gs_ == g, gt == g
        ref = ot.sinkhorn(
            np.full(i.sum(), 1 / i.sum()), np.full(j.sum(), 1 / j.sum()),
            sqdist(xs[i], xt[j]), eps, stopThr=1e-12, numItermax=100_000,
        )  # fmt: skip
        got = P[np.ix_(i, j)] / (i.sum() / n)
        assert np.abs(got - ref).max() <= rtol * ref.max()


def test_leot_marginals_and_block_diagonal(mdata, backend):
    gs.tl.align(mdata, "rna", "prot", backend=backend, method="leot", tol=1e-6, **TIGHT)
    P = block(mdata)
    gs_, gt = groups(mdata, "rna"), groups(mdata, "prot")
    assert P[gs_[:, None] != gt[None, :]].sum() == 0
    assert np.isclose(P.sum(), 1.0)
    # every source cell carries 1/n; each group's target cells share that group's mass
    assert np.allclose(P.sum(1), 1 / len(gs_), rtol=1e-5)
    for g in np.unique(gt):
        mass = (gs_ == g).mean()
        assert np.allclose(P.sum(0)[gt == g], mass / (gt == g).sum(), rtol=1e-5)
    conv = mdata.uns["groove_coupling"]["convergence"]
    assert conv["converged"] and conv["marginal_error"] < 1e-6
    assert list(conv["groups"]["names"]) == ["g0", "g1", "g2"]


def test_leot_batched_equals_pot_solver(mdata, backend):
    gs.tl.align(
        mdata, "rna", "prot", backend=backend, method="leot", tol=1e-9, key_added="batched", **TIGHT
    )
    gs.tl.align(
        mdata,
        "rna",
        "prot",
        backend=backend,
        method="leot",
        solver="pot",
        tol=1e-9,
        key_added="pot",
        **TIGHT,
    )
    assert np.allclose(block(mdata, "batched"), block(mdata, "pot"), atol=1e-9)


def test_eot_equals_pot_dense(mdata, backend):
    gs.tl.align(
        mdata, "rna", "prot", backend=backend, method="eot", epsilon=0.02, tol=1e-10, **TIGHT
    )
    eps = mdata.uns["groove_coupling"]["parameters"]["epsilon"]
    M = sqdist(rep(mdata, "rna"), rep(mdata, "prot"))
    assert np.isclose(eps, 0.02 * M.max())
    ref = ot.sinkhorn(ot.unif(M.shape[0]), ot.unif(M.shape[1]), M, eps, stopThr=1e-13)
    assert np.abs(block(mdata) - ref).max() <= 1e-6 * ref.max()
    assert mdata.uns["groove_coupling"]["groupby"] == ""


def test_uot_equals_pot_per_group(mdata, backend):
    gs.tl.align(mdata, "rna", "prot", backend=backend, method="uot", reg_m=0.05, tol=1e-12, **TIGHT)
    par = mdata.uns["groove_coupling"]["parameters"]
    eps, reg_m, mass = par["epsilon"], par["reg_m"], par["mass_before_normalisation"]
    P = block(mdata) * mass
    xs, xt = rep(mdata, "rna"), rep(mdata, "prot")
    gs_, gt = groups(mdata, "rna"), groups(mdata, "prot")
    total = 0.0
    for g in np.unique(gs_):
        i, j = gs_ == g, gt == g
        ref = ot.unbalanced.sinkhorn_unbalanced(
            np.full(i.sum(), 1 / len(gs_)), np.full(j.sum(), 1 / len(gt)), sqdist(xs[i], xt[j]),
            eps, reg_m, stopThr=1e-14, numItermax=100_000,
        )  # fmt: skip
        assert np.abs(P[np.ix_(i, j)] - ref).max() <= 1e-6 * ref.max()
        total += ref.sum()
    assert np.isclose(total, mass)
    assert np.isclose(block(mdata).sum(), 1.0)


# --- Gromov-Wasserstein ----------------------------------------------------------------------


def geometry(x):
    x = x - x.mean(0)
    D = sqdist(x, x)
    return D / D.mean()


@pytest.mark.parametrize("method", ["egw", "fgw"])
def test_gw_per_group_equals_pot(mdata, method, backend):
    use_rep = {"rna": "X_groove", "prot": "X_own"} if method == "egw" else "X_groove"
    gs.tl.align(
        mdata,
        "rna",
        "prot",
        backend=backend,
        method=method,
        use_rep=use_rep,
        epsilon=0.05,
        **TIGHT_GW,
    )
    eps = mdata.uns["groove_coupling"]["parameters"]["epsilon"]
    P = block(mdata)
    xs = rep(mdata, "rna")
    xt = rep(mdata, "prot", "X_own" if method == "egw" else "X_groove")
    gs_, gt = groups(mdata, "rna"), groups(mdata, "prot")
    s1, s2 = sqdist(xs, xs).mean(), sqdist(xt, xt).mean()
    sf = sqdist(xs, xt).mean()
    for g in np.unique(gs_):
        i, j = gs_ == g, gt == g
        C1, C2 = sqdist(xs[i], xs[i]) / s1, sqdist(xt[j], xt[j]) / s2
        p, q = ot.unif(i.sum()), ot.unif(j.sum())
        if method == "egw":
            ref = ot.gromov.entropic_gromov_wasserstein(C1, C2, p, q, epsilon=eps, **POT_GW)
        else:
            M = sqdist(xs[i], xt[j]) / sf
            ref = ot.gromov.entropic_fused_gromov_wasserstein(
                M, C1, C2, p, q, epsilon=eps, alpha=0.5, **POT_GW
            )
        got = P[np.ix_(i, j)] / i.mean()
        assert np.abs(got - ref).max() <= 1e-5 * ref.max()


def test_egw_all_equals_pot_dense(mdata, backend):
    use_rep = {"rna": "X_groove", "prot": "X_own"}
    gs.tl.align(
        mdata,
        "rna",
        "prot",
        backend=backend,
        method="egw_all",
        use_rep=use_rep,
        epsilon=0.05,
        **TIGHT_GW,
    )
    eps = mdata.uns["groove_coupling"]["parameters"]["epsilon"]
    C1, C2 = geometry(rep(mdata, "rna")), geometry(rep(mdata, "prot", "X_own"))
    ref = ot.gromov.entropic_gromov_wasserstein(C1, C2, epsilon=eps, **POT_GW)
    assert np.abs(block(mdata) - ref).max() <= 1e-5 * ref.max()


def test_egwl_equals_dense_masked_reference(mdata, backend):
    """egwl = POT's projected-gradient GW on the full geometries, Sinkhorn on same-group pairs."""
    use_rep = {"rna": "X_groove", "prot": "X_own"}
    gs.tl.align(
        mdata,
        "rna",
        "prot",
        backend=backend,
        method="egwl",
        use_rep=use_rep,
        epsilon=0.05,
        **TIGHT_GW,
    )
    eps = mdata.uns["groove_coupling"]["parameters"]["epsilon"]
    C1, C2 = geometry(rep(mdata, "rna")), geometry(rep(mdata, "prot", "X_own"))
    gs_, gt = groups(mdata, "rna"), groups(mdata, "prot")
    same = gs_[:, None] == gt[None, :]
    p = ot.unif(len(gs_))
    q = np.array([(gs_ == g).mean() / (gt == g).sum() for g in gt])
    T = np.where(same, np.outer(p, q), 0.0)
    T /= T.sum(1, keepdims=True) / p[:, None]
    constC, hC1, hC2 = ot.gromov.init_matrix(C1, C2, p, q)
    for _ in range(500):
        grad = np.where(same, ot.gromov.gwggrad(constC, hC1, hC2, T), np.inf)
        T_new = ot.sinkhorn(p, q, grad, eps, stopThr=1e-14, numItermax=100_000)
        if np.abs(T_new - T).max() < 1e-15:
            break
        T = T_new
    P = block(mdata)
    assert np.abs(P - T_new).max() <= 1e-6 * T_new.max()
    assert P[~same].sum() == 0
    assert np.allclose(P.sum(1), p, rtol=1e-6) and np.allclose(P.sum(0), q, rtol=1e-6)


def test_egwl_keeps_more_mass_within_groups_than_egw_all():
    sim = gs.datasets.simulate(
        n_perturbations=5, cells_per_perturbation=25, control_fraction=0.0, effect_size=2.0,
        seed=1,
    )  # fmt: skip
    within = {}
    for method in ("egw_all", "egwl"):
        gs.tl.align(sim, "rna", "prot", use_rep="X_true", method=method, key_added=method)
        P = block(sim, method)
        same = groups(sim, "rna")[:, None] == groups(sim, "prot")[None, :]
        within[method] = P[same].sum()
    assert within["egwl"] == pytest.approx(1.0)
    assert within["egw_all"] < 0.9 * within["egwl"]


# --- COOT ----------------------------------------------------------------------------------


def test_coot_equals_pot(mdata, backend):
    use_rep = {"rna": "X_groove", "prot": "X_own"}
    gs.tl.align(
        mdata, "rna", "prot", backend=backend, method="coot", use_rep=use_rep, tol=1e-10,
        inner_tol=1e-11, max_iter=500, **TIGHT,
    )  # fmt: skip
    meta = mdata.uns["groove_coupling"]
    es, ef = meta["parameters"]["epsilon"], meta["parameters"]["epsilon_feature"]
    Ps, Pf = ot.coot.co_optimal_transport(
        rep(mdata, "rna"), rep(mdata, "prot", "X_own"), epsilon=(es, ef), nits_bcd=1000,
        tol_bcd=1e-13, nits_ot=20_000, tol_sinkhorn=1e-13, early_stopping_tol=0,
    )  # fmt: skip
    assert np.abs(block(mdata) - Ps).max() <= 1e-6 * Ps.max()
    assert np.abs(meta["convergence"]["feature_coupling"] - Pf).max() <= 1e-6 * Pf.max()


def test_cootl_block_diagonal_and_single_group_equals_coot(mdata, backend):
    kw = {"use_rep": {"rna": "X_groove", "prot": "X_own"}, "tol": 1e-10, "inner_tol": 1e-11}
    kw.update(FULL)
    gs.tl.align(mdata, "rna", "prot", backend=backend, method="cootl", dtype="float64", **kw)
    P = block(mdata)
    gs_, gt = groups(mdata, "rna"), groups(mdata, "prot")
    assert P[gs_[:, None] != gt[None, :]].sum() == 0
    assert np.allclose(P.sum(1), 1 / len(gs_), rtol=1e-6)

    one = make_blobs(sizes_s=(12,), sizes_t=(10,))
    gs.tl.align(
        one, "rna", "prot", backend=backend, method="cootl", dtype="float64", key_added="l", **kw
    )
    gs.tl.align(
        one, "rna", "prot", backend=backend, method="coot", dtype="float64", key_added="u", **kw
    )
    assert np.allclose(block(one, "l"), block(one, "u"), atol=1e-10)


# --- knn -----------------------------------------------------------------------------------


def test_knn_rows_sum_to_source_marginal(mdata, backend):
    gs.tl.align(mdata, "rna", "prot", backend=backend, method="knn", k=3)
    P = block(mdata)
    gs_, gt = groups(mdata, "rna"), groups(mdata, "prot")
    assert np.allclose(P.sum(1), 1 / len(gs_))
    assert ((P > 0).sum(1) == 3).all()
    assert P[gs_[:, None] != gt[None, :]].sum() == 0
    # the neighbours are the nearest same-group target cells
    xs, xt = rep(mdata, "rna"), rep(mdata, "prot")
    for i in range(len(gs_)):
        cand = np.flatnonzero(gt == gs_[i])
        nearest = cand[np.argsort(sqdist(xs[i : i + 1], xt[cand])[0])[:3]]
        assert set(np.flatnonzero(P[i])) == set(nearest)


def test_knn_without_groups_and_distance_weights(mdata, backend):
    gs.tl.align(
        mdata, "rna", "prot", backend=backend, method="knn", groupby=None, k=15, weights="distance"
    )
    P = block(mdata)
    assert np.allclose(P.sum(1), 1 / P.shape[0])
    assert ((P > 0).sum(1) == 15).all()  # more neighbours than any group holds
    dist = np.sqrt(sqdist(rep(mdata, "rna"), rep(mdata, "prot")))
    row = P[0] * dist[0]  # weights proportional to the inverse distance
    assert np.allclose(row[P[0] > 0], row[P[0] > 0][0])
    assert mdata.uns["groove_coupling"]["groupby"] == ""


# --- storage, labels, invariance -----------------------------------------------------------


@pytest.mark.parametrize("method", ALL_METHODS)
def test_every_method_stores_and_round_trips(mdata, method, tmp_path):
    use_rep = "X_groove"
    mdata.obsp["other"] = sp.identity(mdata.n_obs, format="csr")
    mdata.uns["other"] = {"keep": 1}
    before = {m: mdata[m].obsm["X_groove"].copy() for m in mdata.mod}
    gs.tl.align(mdata, "rna", "prot", use_rep=use_rep, method=method, key_added="cpl")
    full = mdata.obsp["cpl"]
    assert sp.isspmatrix_csr(full) or sp.issparse(full)
    assert np.isclose(full.sum(), 1.0)
    rna = np.isin(np.arange(mdata.n_obs), np.flatnonzero(mdata.obsmap["rna"]))
    assert full[~rna].nnz == 0  # only source rows
    meta = mdata.uns["cpl"]
    assert meta["method"] == method and meta["source"] == "rna" and meta["target"] == "prot"
    assert meta["runtime"] > 0
    assert ("epsilon" in meta["parameters"]) == (method != "knn")
    assert (mdata.obsp["other"] != sp.identity(mdata.n_obs)).nnz == 0
    assert mdata.uns["other"] == {"keep": 1}
    assert all(np.array_equal(before[m], mdata[m].obsm["X_groove"]) for m in mdata.mod)

    mdata.write(tmp_path / "x.h5mu")
    back = md.read_h5mu(tmp_path / "x.h5mu")
    assert abs(back.obsp["cpl"] - full).max() == 0
    assert back.uns["cpl"]["method"] == method
    assert set(back.uns["cpl"]["convergence"]) == set(meta["convergence"])
    assert set(back.uns["cpl"]["parameters"]) == set(meta["parameters"])


@pytest.mark.parametrize("method", ["leot", "egwl", "uot", "knn"])
def test_unlabeled_and_unshared_cells_are_dropped_with_warning(method):
    data = make_blobs(sizes_s=(10, 8, 5), sizes_t=(9, 7))  # g2 exists only in rna
    labels = data["prot"].obs["perturbation"].astype(object)
    labels.iloc[[0, 1]] = np.nan
    data["prot"].obs["perturbation"] = pd.Categorical(labels)
    with pytest.warns(UserWarning, match="'rna': 0 unlabeled, 5 in groups absent.*'prot': 2"):
        gs.tl.align(data, "rna", "prot", method=method, unmatched="drop")
    P = block(data)
    gs_, gt = groups(data, "rna"), data["prot"].obs["perturbation"].to_numpy()
    assert P[gs_ == "g2"].sum() == 0 and P[:, [0, 1]].sum() == 0
    assert (P[gs_ != "g2"].sum(1) > 0).all()
    dropped = data.uns["groove_coupling"]["dropped"]
    assert dropped["rna_group_absent"] == 5 and dropped["prot_unlabeled"] == 2
    assert np.isclose(P.sum(), 1.0)
    assert pd.isna(gt[0])


def test_single_cell_group_is_kept():
    data = make_blobs(sizes_s=(10, 1), sizes_t=(9, 4))
    for method, kw in (("leot", {"tol": 1e-8}), ("egw", {"inner_tol": 1e-8})):
        gs.tl.align(data, "rna", "prot", method=method, dtype="float64", **kw)
        P = block(data)
        assert np.allclose(P.sum(1), 1 / 11, rtol=1e-4)
        assert np.allclose(P[-1, -4:], 1 / 11 / 4, rtol=1e-4)  # the lone cell spreads evenly


def test_truth_column_is_not_read(mdata):
    gs.tl.align(mdata, "rna", "prot", method="leot", key_added="a")
    rng = np.random.default_rng(0)
    mdata["prot"].obs["cell_id"] = rng.permutation(mdata["prot"].obs["cell_id"].to_numpy())
    del mdata["rna"].obs["cell_id"]
    gs.tl.align(mdata, "rna", "prot", method="leot", key_added="b")
    assert abs(mdata.obsp["a"] - mdata.obsp["b"]).max() == 0


def test_copy_leaves_input_untouched(mdata):
    out = gs.tl.align(mdata, "rna", "prot", method="leot", copy=True)
    assert "groove_coupling" in out.obsp and "groove_coupling" not in mdata.obsp
    assert gs.tl.align(mdata, "rna", "prot", method="leot") is None


def test_torch_backend_matches_numpy_for_egwl(mdata, one_torch_thread):
    kw = {"method": "egwl", "use_rep": {"rna": "X_groove", "prot": "X_own"}, **TIGHT}
    gs.tl.align(mdata, "rna", "prot", backend="numpy", key_added="np", **kw)
    gs.tl.align(mdata, "rna", "prot", backend="torch", key_added="pt", **kw)
    assert abs(mdata.obsp["np"] - mdata.obsp["pt"]).max() < 1e-10
    assert mdata.uns["pt"]["backend"] == "torch"


def test_leot_default_epsilon_converges_in_float32():
    data = make_blobs(sizes_s=(40, 30, 35), sizes_t=(30, 45, 25), d=8, seed=3)
    gs.tl.align(data, "rna", "prot", method="leot")  # epsilon 0.05 of the mean cost
    conv = data.uns["groove_coupling"]["convergence"]
    assert conv["converged"] and conv["marginal_error"] < 1e-4


# --- bad input -----------------------------------------------------------------------------


def test_bad_input_errors(mdata):
    with pytest.raises(KeyError, match=r"use_rep 'X_missing'.*mdata\['rna'\]\.obsm"):
        gs.tl.align(mdata, "rna", "prot", use_rep="X_missing")
    with pytest.raises(ValueError, match="shared representation.*4 dimensions.*'X_wide'"):
        mdata["prot"].obsm["X_wide"] = np.zeros((mdata["prot"].n_obs, 7))
        mdata["rna"].obsm["X_wide"] = np.zeros((mdata["rna"].n_obs, 4))
        gs.tl.align(mdata, "rna", "prot", use_rep="X_wide")
    with pytest.raises(ValueError, match="different var_names"):
        gs.tl.align(mdata, "rna", "prot", use_rep="X")
    with pytest.raises(KeyError, match=r"groupby='batch'.*mdata\['rna'\]\.obs"):
        gs.tl.align(mdata, "rna", "prot", groupby="batch")
    for eps in (0, -1.0, np.nan):
        with pytest.raises(ValueError, match="epsilon must be a positive"):
            gs.tl.align(mdata, "rna", "prot", epsilon=eps)
    with pytest.raises(TypeError, match=r"unexpected keyword.*\['alpha'\]"):
        gs.tl.align(mdata, "rna", "prot", method="leot", alpha=0.5)
    with pytest.raises(ValueError, match="needs groupby") as err:
        gs.tl.align(mdata, "rna", "prot", method="egwl", groupby=None)
    # the alternatives named are the registered methods that run without labels
    without = [m for m, a in gs.tl.ALIGNERS.items() if a.labels != "required"]
    assert {"eot", "knn"} <= set(without)
    assert all(f"'{m}'" in str(err.value) for m in without)
    assert "'leot'" not in str(err.value)
    with pytest.raises(KeyError, match="Modality 'atac'"):
        gs.tl.align(mdata, "rna", "atac")
    assert "groove_coupling" not in mdata.obsp and "groove_coupling" not in mdata.uns


def test_no_shared_groups_and_nan_embedding(mdata):
    bad = make_blobs()
    bad["prot"].obs["perturbation"] = pd.Categorical(["other"] * bad["prot"].n_obs)
    with pytest.raises(ValueError, match="No value of obs\\['perturbation'\\] occurs in both"):
        gs.tl.align(bad, "rna", "prot")
    mdata["rna"].obsm["X_groove"][3, 1] = np.nan
    with pytest.raises(ValueError, match=r"mdata\['rna'\]\.obsm\['X_groove'\] has NaN.*1 of"):
        gs.tl.align(mdata, "rna", "prot")


def test_dense_methods_refuse_large_problems(mdata):
    for method in ("eot", "egw_all", "coot"):
        with pytest.raises(ValueError, match="above max_pairs=100"):
            gs.tl.align(mdata, "rna", "prot", method=method, max_pairs=100)
    gs.tl.align(mdata, "rna", "prot", method="eot", max_pairs=None)  # explicit override
    gs.tl.align(mdata, "rna", "prot", method="leot", max_pairs=100)  # labeled: no limit
    assert mdata.uns["groove_coupling"]["method"] == "leot"


def test_unavailable_device_is_a_clear_error(mdata):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        gs.tl.align(mdata, "rna", "prot", device="cuda")
    with pytest.raises(ValueError, match="CPU only"):
        gs.tl.align(mdata, "rna", "prot", device="cuda", backend="numpy")


def test_non_convergence_warns(mdata, backend):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match="did not converge"):
            gs.tl.align(mdata, "rna", "prot", backend=backend, method="leot", max_iter=2)


# --- sparse storage and streamed large groups ----------------------------------------------


@pytest.mark.parametrize("method", ["leot", "egwl", "uot", "cootl"])
def test_sparsified_coupling_keeps_row_marginals_and_reports_dropped_mass(mdata, method, backend):
    kw = {"use_rep": {"rna": "X_groove", "prot": "X_own"}} if method in ("egwl", "cootl") else {}
    kw["epsilon"] = None  # one fixed epsilon: the storage options must not change the plan
    gs.tl.align(
        mdata, "rna", "prot", backend=backend, method=method, key_added="full", **FULL, **kw
    )
    gs.tl.align(
        mdata, "rna", "prot", backend=backend, method=method, key_added="sparse", keep_mass=0.9,
        max_per_row=3, **kw,
    )  # fmt: skip
    full, sparse = block(mdata, "full"), block(mdata, "sparse")
    assert ((sparse > 0).sum(1) <= 3).all()
    assert np.isclose(sparse.sum(), 1.0)
    # every row keeps its mass: the kept entries are rescaled, not dropped
    np.testing.assert_allclose(sparse.sum(1), full.sum(1), rtol=1e-6)
    # the kept entries are each row's largest, in the same proportions as in the full plan
    for i in range(full.shape[0]):
        kept = np.flatnonzero(sparse[i])
        order = np.argsort(-full[i])
        assert set(kept) == set(order[: len(kept)])
        ratio = sparse[i, kept] / full[i, kept]
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-6)
    # the reported dropped mass is the mass of the entries that were not kept
    dropped = full[sparse == 0].sum() / full.sum()
    meta = mdata.uns["sparse"]
    assert meta["convergence"]["dropped_mass"] == pytest.approx(dropped, rel=1e-6)
    assert meta["parameters"]["keep_mass"] == 0.9 and meta["parameters"]["max_per_row"] == 3
    assert mdata.uns["full"]["convergence"]["dropped_mass"] < 1e-9


def test_default_sparsity_bounds_entries_per_row():
    data = make_blobs(sizes_s=(300, 20), sizes_t=(600, 25), d=3, seed=1)
    gs.tl.align(data, "rna", "prot", method="leot", epsilon=0.2)  # a spread-out plan
    P = data.obsp["groove_coupling"]
    meta = data.uns["groove_coupling"]
    assert meta["parameters"]["keep_mass"] == 0.99 and meta["parameters"]["max_per_row"] == 256
    assert np.diff(P.indptr).max() == 256
    assert 0.01 < meta["convergence"]["dropped_mass"] < 0.5
    gs.tl.align(data, "rna", "prot", method="leot", epsilon=0.2, key_added="full", **FULL)
    np.testing.assert_allclose(block(data).sum(1), block(data, "full").sum(1), rtol=1e-6)


@pytest.mark.parametrize("method", ["leot", "egwl", "cootl", "eot"])
def test_bad_sparsity_options_are_refused(mdata, method):
    for cap in (0, -5):
        with pytest.raises(ValueError, match=rf"max_per_row must be a positive integer.*{cap}"):
            gs.tl.align(mdata, "rna", "prot", method=method, max_per_row=cap)
    for mass in (0.0, 1.5, -0.1, np.nan):
        with pytest.raises(ValueError, match="keep_mass must lie in \\(0, 1\\]"):
            gs.tl.align(mdata, "rna", "prot", method=method, keep_mass=mass)
    with pytest.raises(TypeError, match="max_per_row must be a positive integer or None"):
        gs.tl.align(mdata, "rna", "prot", method=method, max_per_row=2.5)
    with pytest.raises(ValueError, match="stream_above must be >= 0"):
        gs.tl.align(mdata, "rna", "prot", method=method, stream_above=-1)
    assert "groove_coupling" not in mdata.obsp


STREAM_CASES = [
    ("leot", {"tol": 1e-9}),
    ("uot", {"tol": 1e-10, "reg_m": 0.05}),
    ("eot", {"tol": 1e-9}),
    ("egwl", {"use_rep": {"rna": "X_groove", "prot": "X_own"}, "tol": 1e-9, "inner_tol": 1e-10}),
    ("egw", {"use_rep": {"rna": "X_groove", "prot": "X_own"}, "tol": 1e-9, "inner_tol": 1e-10}),
    ("fgw", {"tol": 1e-9, "inner_tol": 1e-10}),
    ("cootl", {"use_rep": {"rna": "X_groove", "prot": "X_own"}, "tol": 1e-9, "inner_tol": 1e-10}),
]


@pytest.mark.parametrize(("method", "kw"), STREAM_CASES)
@pytest.mark.parametrize("path", ["sparse_rounds", "exact_passes"])
def test_streamed_groups_equal_the_dense_solve(method, kw, path, monkeypatch):
    """stream_above=0 solves every group from its factorised cost, never a dense block."""
    from groove_sc.tl._aligners import _plan_rows, _stream

    if path == "exact_passes":  # rows count as spread out: subsampled start + exact passes
        monkeypatch.setattr(_plan_rows, "SUPPORT_FIRST", 2)
        monkeypatch.setattr(_stream, "SUPPORT_MAX", 3)
        monkeypatch.setattr(_stream, "SUBSAMPLE", 10)
    data = make_blobs(sizes_s=(40, 30, 35), sizes_t=(30, 45, 25), d=4, seed=3)
    opts = {"epsilon": 0.05, **TIGHT, **kw}
    gs.tl.align(data, "rna", "prot", method=method, key_added="dense", **opts)
    gs.tl.align(data, "rna", "prot", method=method, key_added="stream", stream_above=0, **opts)
    dense, stream = block(data, "dense"), block(data, "stream")
    conv = data.uns["stream"]["convergence"]
    assert conv["converged"]
    n_groups = 1 if method == "eot" else 3
    assert conv["n_streamed_groups"] == n_groups and conv["n_streamed_passes"] >= n_groups
    assert data.uns["dense"]["convergence"]["n_streamed_groups"] == 0
    assert np.abs(stream - dense).max() <= 1e-6 * dense.max()


def test_stream_solver_output_is_sparsified_like_the_dense_one():
    from groove_sc.tl._aligners._stream import FactoredCost, solve_stream

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 3)), rng.normal(size=(150, 3))
    a, b = np.full(200, 1 / 200), np.full(150, 1 / 150)
    cost = FactoredCost.sqeuclidean(x, y, dtype="float64")
    full = solve_stream(cost, a, b, 0.5, tol=1e-10, keep_mass=1.0, max_per_row=None)
    P = np.zeros((200, 150))
    P[full.rows, full.cols] = full.vals
    ref = ot.sinkhorn(a, b, sqdist(x, y), 0.5, stopThr=1e-13, numItermax=100_000)
    assert np.abs(P - ref).max() <= 1e-7 * ref.max()
    out = solve_stream(cost, a, b, 0.5, tol=1e-10, keep_mass=0.95, max_per_row=10)
    S = np.zeros((200, 150))
    S[out.rows, out.cols] = out.vals
    from groove_sc.tl._aligners._sparsify import sparsify_rows

    r, c, v, dropped = sparsify_rows(P, 0.95, 10)
    R = np.zeros_like(P)
    R[r, c] = v
    np.testing.assert_allclose(S, R, atol=1e-9 * P.max())
    assert out.dropped == pytest.approx(dropped, rel=1e-6)
    np.testing.assert_allclose(S.sum(1), a, rtol=1e-9)


def test_blockwise_mean_cost_matches_brute_force():
    from groove_sc.tl._aligners._costs import blockwise_mean_sqeuclidean

    rng = np.random.default_rng(4)
    xs, xt = rng.normal(size=(30, 5)) + 7.0, rng.normal(size=(25, 5)) + 7.0
    si = [np.arange(0, 12), np.arange(12, 30)]
    ti = [np.arange(0, 20), np.arange(20, 25)]
    a = [rng.random(12), rng.random(18)]
    b = [rng.random(20), rng.random(5)]
    expected, weight = 0.0, 0.0
    for s_, t_, a_, b_ in zip(si, ti, a, b):
        C = sqdist(xs[s_], xt[t_])
        expected += a_.sum() * (a_ @ C @ b_) / (a_.sum() * b_.sum())
        weight += a_.sum()
    got = blockwise_mean_sqeuclidean(xs, xt, si, ti, a, b)
    assert np.isclose(got, expected / weight, rtol=1e-10)


def test_leot_on_identical_cells_per_group_is_uniform():
    # a one-hot label space: every same-group cost is 0, so no scale can be taken from it
    mdata = make_blobs(sizes_s=(10, 12), sizes_t=(8, 9), d=2, seed=0)
    for m in ("rna", "prot"):
        codes = mdata[m].obs["perturbation"].cat.codes.to_numpy()
        mdata[m].obsm["X_onehot"] = np.eye(2)[codes] * 3.0
    gs.tl.align(mdata, "rna", "prot", method="leot", use_rep="X_onehot", epsilon=None)
    assert mdata.uns["groove_coupling"]["parameters"]["cost_scale"] == 1.0
    P = block(mdata).toarray() if hasattr(block(mdata), "toarray") else block(mdata)
    gs_, gt = groups(mdata, "rna"), groups(mdata, "prot")
    for g in np.unique(gs_):
        rows = P[np.ix_(gs_ == g, gt == g)]
        assert np.allclose(rows, rows.mean())


def test_gw_on_a_constant_representation_names_the_modality(mdata):
    mdata["prot"].obsm["X_const"] = np.zeros((mdata["prot"].n_obs, 3))
    mdata["rna"].obsm["X_const"] = np.asarray(mdata["rna"].obsm["X_groove"])[:, :3]
    with pytest.raises(ValueError, match=r"same representation in 'prot' \('X_const'\)"):
        gs.tl.align(mdata, "rna", "prot", use_rep="X_const", method="egw", epsilon=0.1)
    from groove_sc._mudata import coupling_modalities

    gs.tl.align(mdata, "rna", "prot", key_added="mine")
    with pytest.raises(KeyError, match=r"couplings recorded: \['mine'\]"):
        coupling_modalities(mdata, "typo")


def test_a_wrapper_without_its_own_default_epsilon_uses_the_solvers(mdata):
    from groove_sc.tl._aligners._linear import leot

    @gs.tl.register_aligner("my_leot", labels="required", overwrite=True)
    def my_leot(problem, **kw):
        """leot under another name."""
        return leot(problem, **kw)

    try:
        gs.tl.align(mdata, "rna", "prot", method="my_leot", key_added="w", epsilon=None)
        gs.tl.align(mdata, "rna", "prot", method="leot", key_added="l", epsilon=None)
        assert mdata.uns["w"]["parameters"]["epsilon_relative"] == pytest.approx(0.05)
        np.testing.assert_allclose(block(mdata, "w"), block(mdata, "l"))
    finally:
        del gs.tl.ALIGNERS["my_leot"]
