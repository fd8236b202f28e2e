"""Tests of groove_sc.datasets.simulate and simulate_sweep."""

from __future__ import annotations

import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import groove_sc as gs

SMALL = {"n_perturbations": 6, "cells_per_perturbation": 40}


@pytest.fixture(scope="module")
def default():
    return gs.datasets.simulate(**SMALL, seed=0)


@pytest.fixture(scope="module")
def paired():
    return gs.datasets.simulate(**SMALL, paired=True, seed=0)


def dense(x):
    """Counts and count-like .X are CSR; compare them as arrays."""
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def _by_id(mdata, mod, key="cell_id"):
    obs = mdata[mod].obs
    return pd.Series(np.arange(mdata[mod].n_obs), index=obs[key].to_numpy())


def test_default_layout(default):
    assert list(default.mod) == ["rna", "prot"]
    n = 6 * 40 + round(0.1 / 0.9 * 240)  # control: 10 % of all cells
    for m in ("rna", "prot"):
        a = default[m]
        assert a.n_obs == n
        assert all(name.startswith(f"{m}:") for name in a.obs_names)
        pert = a.obs["perturbation"]
        assert isinstance(pert.dtype, pd.CategoricalDtype)
        assert list(pert.cat.categories) == ["control"] + [f"pert{i}" for i in range(6)]
        assert pert.value_counts()["control"] == 27
        assert a.X.dtype == np.float32
        assert a.obsm["X_true"].shape == (n, 10)
    assert default.n_obs == 2 * n  # disjoint obs_names: MuData merged nothing
    assert default["rna"].n_vars == 1000 and default["prot"].n_vars == 30
    assert "counts" not in default["prot"].layers


def test_counts_and_count_like_x_are_csr(default):
    rna = default["rna"]
    for x in (rna.X, rna.layers["counts"]):
        assert sp.isspmatrix_csr(x) and x.dtype == np.float32
        assert x.has_canonical_format
    # .X is log1p of the normalised counts: the same sparsity pattern, shared indices
    np.testing.assert_array_equal(rna.X.indptr, rna.layers["counts"].indptr)
    np.testing.assert_array_equal(rna.X.indices, rna.layers["counts"].indices)
    assert (rna.layers["counts"].data > 0).all()
    assert isinstance(default["prot"].X, np.ndarray)  # continuous features stay dense
    atac = gs.datasets.simulate(**SMALL, modalities={"atac": "bernoulli"}, seed=1)["atac"]
    assert sp.isspmatrix_csr(atac.X) and sp.isspmatrix_csr(atac.layers["counts"])


def test_results_do_not_depend_on_the_chunk_size(monkeypatch):
    from groove_sc.datasets import _observe

    mods = {"rna": "zinb", "prot": "normal", "atac": "bernoulli"}
    a = gs.datasets.simulate(**SMALL, modalities=mods, seed=3)
    monkeypatch.setattr(_observe, "_CHUNK_ENTRIES", 4000)  # a few cells per chunk
    b = gs.datasets.simulate(**SMALL, modalities=mods, seed=3)
    for m in mods:
        np.testing.assert_array_equal(dense(a[m].X), dense(b[m].X))


def test_count_layers_and_log_normalisation(default):
    rna = default["rna"]
    counts = dense(rna.layers["counts"])
    assert counts.dtype == np.float32
    np.testing.assert_array_equal(counts, np.round(counts))
    assert counts.min() >= 0
    total = counts.sum(1, keepdims=True)
    expected = np.log1p(counts / total * 1e4)
    np.testing.assert_allclose(dense(rna.X), expected, rtol=1e-5, atol=1e-5)
    # realistic RNA-like counts: overdispersed, many zeros, thousands of counts per cell
    assert 1000 < np.median(total) < 10000
    assert 0.1 < (counts == 0).mean() < 0.9
    mean, var = counts.mean(0), counts.var(0)
    assert np.median(var / np.maximum(mean, 1e-9)) > 1.5


def test_other_likelihoods():
    mods = {"rna": "zinb", "adt": "poisson", "atac": "bernoulli"}
    mdata = gs.datasets.simulate(**SMALL, modalities=mods, n_features={"atac": 300}, seed=3)
    atac = mdata["atac"]
    assert atac.n_vars == 300
    x = dense(atac.X)
    assert set(np.unique(x)) == {0.0, 1.0}
    np.testing.assert_array_equal(dense(atac.layers["counts"]), x)
    assert 0.02 < x.mean() < 0.5
    for m in ("rna", "adt"):
        c = dense(mdata[m].layers["counts"])
        np.testing.assert_array_equal(c, np.round(c))
    # zero inflation: more zeros than the NB rna of the same seed and design
    nb = gs.datasets.simulate(**SMALL, modalities={"rna": "nb"}, seed=3)
    zinb_zeros = (dense(mdata["rna"].layers["counts"]) == 0).mean()
    assert zinb_zeros > (dense(nb["rna"].layers["counts"]) == 0).mean()
    # noise=0 removes the NB overdispersion: the draws equal the Poisson ones of the same seed
    a = gs.datasets.simulate(**SMALL, modalities={"x": "nb"}, noise=0.0, seed=4)
    b = gs.datasets.simulate(**SMALL, modalities={"x": "poisson"}, noise=0.0, seed=4)
    np.testing.assert_array_equal(dense(a["x"].layers["counts"]), dense(b["x"].layers["counts"]))


def test_deterministic_per_seed(default):
    again = gs.datasets.simulate(**SMALL, seed=0)
    other = gs.datasets.simulate(**SMALL, seed=1)
    for m in ("rna", "prot"):
        np.testing.assert_array_equal(dense(default[m].X), dense(again[m].X))
        assert (default[m].obs_names == again[m].obs_names).all()
        assert not np.array_equal(dense(default[m].X), dense(other[m].X))


def test_paired_views(paired):
    rna, prot = paired["rna"], paired["prot"]
    assert rna.n_obs == prot.n_obs
    for a in (rna, prot):
        assert a.obs["cell_id"].is_unique
    assert set(rna.obs["cell_id"]) == set(prot.obs["cell_id"])
    # one view per modality per cell_id; obs names keep the id after the prefix
    np.testing.assert_array_equal(rna.obs_names.str.replace("rna:", ""), rna.obs["cell_id"])
    r, p = _by_id(paired, "rna"), _by_id(paired, "prot")
    ids = r.index
    np.testing.assert_array_equal(
        rna.obsm["X_true_shared"][r[ids]], prot.obsm["X_true_shared"][p[ids]]
    )
    np.testing.assert_array_equal(
        rna.obs["perturbation_true"].to_numpy()[r[ids]],
        prot.obs["perturbation_true"].to_numpy()[p[ids]],
    )
    # rows are shuffled independently: position carries no pairing
    assert (rna.obs["cell_id"].to_numpy() != prot.obs["cell_id"].to_numpy()).mean() > 0.9
    assert gs.metrics.latent_foscttm(paired, "X_true_shared", "rna", "prot") == 0.0


def test_unpaired_views_have_no_partner(default):
    ids = [set(default[m].obs["cell_id"]) for m in ("rna", "prot")]
    assert not ids[0] & ids[1]
    np.testing.assert_array_equal(default["rna"].obs["cell_id"], default["rna"].obs_names)
    with pytest.raises(ValueError, match="no truth"):
        gs.metrics.truth_pairs(default, "rna", "prot")


def test_shared_fraction_splits_the_effect():
    kw = dict(n_perturbations=200, cells_per_perturbation=2, paired=True, seed=5)
    full = gs.datasets.simulate(shared_fraction=1.0, **kw)
    none = gs.datasets.simulate(shared_fraction=0.0, **kw)
    half = gs.datasets.simulate(shared_fraction=0.5, **kw)
    # 1: the whole effect is shared, both views of a cell have the same state
    r, p = _by_id(full, "rna"), _by_id(full, "prot")
    ids = r.index
    np.testing.assert_allclose(
        full["rna"].obsm["X_true"][r[ids]], full["prot"].obsm["X_true"][p[ids]], atol=1e-6
    )
    assert np.abs(full.uns["simulation"]["specific_effect"]["rna"]).max() == 0
    # 0: nothing shared; the modalities' effects are independent draws
    sim0 = none.uns["simulation"]
    assert np.abs(sim0["shared_effect"]).max() == 0
    e_rna, e_prot = sim0["specific_effect"]["rna"][1:], sim0["specific_effect"]["prot"][1:]
    assert abs(np.corrcoef(e_rna.ravel(), e_prot.ravel())[0, 1]) < 0.05
    # 0.5: the effects of the two modalities correlate at about 0.5, the size is unchanged
    sim = half.uns["simulation"]
    tot = {m: sim["shared_effect"][1:] + sim["specific_effect"][m][1:] for m in ("rna", "prot")}
    corr = np.corrcoef(tot["rna"].ravel(), tot["prot"].ravel())[0, 1]
    assert corr == pytest.approx(0.5, abs=0.06)
    assert tot["rna"].std() == pytest.approx(1.0, abs=0.05)

    # common random numbers: the baseline (state minus effect) is the same for every fraction
    def baseline(mdata, m):
        code = mdata[m].obs["perturbation_true"].cat.codes.to_numpy()
        s = mdata.uns["simulation"]
        return mdata[m].obsm["X_true"] - s["shared_effect"][code] - s["specific_effect"][m][code]

    np.testing.assert_allclose(baseline(full, "rna"), baseline(none, "rna"), atol=1e-5)
    # the control group is unperturbed
    ctrl = half["rna"].obs["perturbation_true"] == "control"
    np.testing.assert_allclose(
        half["rna"].obsm["X_true"][ctrl.to_numpy()], baseline(half, "rna")[ctrl.to_numpy()]
    )


def test_shared_state_is_recoverable_from_each_modality():
    mdata = gs.datasets.simulate(
        n_perturbations=10, cells_per_perturbation=100, shared_fraction=1.0, paired=True, seed=0
    )
    x = np.c_[mdata["prot"].X, np.ones(mdata["prot"].n_obs)]
    z = mdata["prot"].obsm["X_true_shared"]
    half = len(x) // 2
    coef = np.linalg.lstsq(x[:half], z[:half], rcond=None)[0]
    resid = z[half:] - x[half:] @ coef
    r2 = 1 - (resid**2).sum() / ((z[half:] - z[half:].mean(0)) ** 2).sum()
    assert r2 > 0.6  # a linear read-out of 30 noisy protein features already explains most


def test_adding_a_modality_leaves_the_others_unchanged():
    a = gs.datasets.simulate(**SMALL, seed=2)
    b = gs.datasets.simulate(
        **SMALL, modalities={"rna": "nb", "prot": "normal", "atac": "bernoulli"}, seed=2
    )
    np.testing.assert_array_equal(dense(a["rna"].X), dense(b["rna"].X))
    np.testing.assert_array_equal(a["prot"].obsm["X_true"], b["prot"].obsm["X_true"])


def test_unlabeled_and_label_noise():
    mdata = gs.datasets.simulate(
        **SMALL, unlabeled_fraction=0.25, label_noise=0.2, paired=True, seed=6
    )
    for m in ("rna", "prot"):
        obs = mdata[m].obs
        n = len(obs)
        pert = obs["perturbation"]
        assert pert.isna().sum() == round(0.25 * n)
        assert "nan" not in list(pert.cat.categories)
        labelled = ~pert.isna()
        wrong = labelled & (pert.astype(object) != obs["perturbation_true"].astype(object))
        assert wrong.sum() == round(0.2 * labelled.sum())
        assert not obs["perturbation_true"].isna().any()
    # drawn independently per view
    r, p = _by_id(mdata, "rna"), _by_id(mdata, "prot")
    hidden_r = mdata["rna"].obs["perturbation"].isna().to_numpy()[r[r.index]]
    hidden_p = mdata["prot"].obs["perturbation"].isna().to_numpy()[p[r.index]]
    assert (hidden_r != hidden_p).any()


def test_group_sizes():
    mdata = gs.datasets.simulate(n_perturbations=8, imbalance=0.8, control_fraction=0, seed=0)
    counts = mdata["rna"].obs["perturbation"].value_counts()
    assert "control" not in counts.index
    assert counts.max() > 2 * counts.min()
    assert counts.sum() == pytest.approx(800, rel=0.1)
    np.testing.assert_array_equal(
        mdata.uns["simulation"]["group_sizes"], counts[mdata.uns["simulation"]["group_names"]]
    )
    sizes = [5, 10, 15]
    mdata = gs.datasets.simulate(n_perturbations=3, cells_per_perturbation=sizes, seed=0)
    counts = mdata["prot"].obs["perturbation"].value_counts()
    assert [counts[f"pert{i}"] for i in range(3)] == sizes
    assert counts["control"] == round(0.1 / 0.9 * 30)


def test_uns_records_parameters_and_writes_to_h5mu(tmp_path, paired):
    sim = paired.uns["simulation"]
    assert sim["shared_fraction"] == 0.5 and sim["seed"] == 0 and sim["paired"] is True
    assert sim["modalities"] == {"rna": "nb", "prot": "normal"}
    assert sim["shared_effect"].shape == (7, 10)
    path = tmp_path / "sim.h5mu"
    paired.write(path)
    back = md.read_h5mu(path)
    np.testing.assert_array_equal(
        dense(back["rna"].layers["counts"]), dense(paired["rna"].layers["counts"])
    )
    assert back.uns["simulation"]["n_features"]["rna"] == 1000
    assert back["rna"].obs["perturbation"].dtype == paired["rna"].obs["perturbation"].dtype


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shared_fraction": 1.5}, "shared_fraction"),
        ({"shared_fraction": -0.1}, "shared_fraction"),
        ({"control_fraction": 1.0}, "control_fraction"),
        ({"unlabeled_fraction": 2}, "unlabeled_fraction"),
        ({"label_noise": -1}, "label_noise"),
        ({"cells_per_perturbation": 0}, "zero cells"),
        ({"n_perturbations": 0}, "n_perturbations"),
        ({"cells_per_perturbation": [10, 10]}, "one size per perturbation"),
        ({"modalities": {"rna": "gaussian"}}, "Unknown likelihood"),
        ({"modalities": {}}, "non-empty"),
        ({"n_features": {"rna": 0}}, "n_features"),
        ({"n_features": {"atac": 10}}, "not in modalities"),
        ({"seed": -1}, "seed"),
        ({"effect_size": -1}, "effect_size"),
        ({"noise": float("nan")}, "noise"),
    ],
)
def test_bad_input(kwargs, match):
    args = {"n_perturbations": 3, "cells_per_perturbation": 10} | kwargs
    with pytest.raises(ValueError, match=match):
        gs.datasets.simulate(**args)


def test_sweep():
    runs = list(
        gs.datasets.simulate_sweep(
            [0.0, 1.0], seeds=[0, 1], n_perturbations=3, cells_per_perturbation=10, paired=True
        )
    )
    assert [(f, s) for f, s, _ in runs] == [(0.0, 0), (1.0, 0), (0.0, 1), (1.0, 1)]
    for f, s, mdata in runs:
        assert mdata.uns["simulation"]["shared_fraction"] == f
        assert mdata.uns["simulation"]["seed"] == s
        assert mdata.uns["simulation"]["paired"] is True
    direct = gs.datasets.simulate(
        n_perturbations=3, cells_per_perturbation=10, paired=True, shared_fraction=1.0, seed=1
    )
    np.testing.assert_array_equal(dense(runs[3][2]["rna"].X), dense(direct["rna"].X))
    with pytest.raises(TypeError, match="sweep"):
        next(gs.datasets.simulate_sweep(seed=3))
    with pytest.raises(ValueError, match="shared_fraction"):
        next(gs.datasets.simulate_sweep([0.5, 2.0]))
