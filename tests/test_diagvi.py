"""The optional DIAGVI learner: skipped with a reason where absent, a real fit where present."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import groove_sc as gs
from groove_sc.benchmark import (
    LEARNERS,
    diagvi_unavailable,
    fit_diagvi,
    link_features,
    normalize_feature_name,
)
from groove_sc.benchmark import _diagvi as diagvi_module
from groove_sc.benchmark._feature_links import user_links

SIM = {"n_perturbations": 4, "cells_per_perturbation": 15, "n_features": {"rna": 40, "prot": 10}}
FAST = {"max_epochs": 3, "n_latent": 4, "n_hidden": 16}
ABSENT = diagvi_unavailable() is not None


@pytest.fixture(scope="module")
def sim():
    return gs.datasets.simulate(paired=True, seed=0, **SIM)


def _skipped_rows_only(res, reason_part):
    rows = res[res["learner"] == "diagvi"]
    assert len(rows) and (rows["status"] == "skipped").all()
    assert rows["error"].str.contains(reason_part, regex=False).all()
    assert (rows["metric"] == "").all()


# ----------------------------------------------------------------- registry and skip (any env)
def test_diagvi_is_registered_as_a_shared_space_learner():
    spec = LEARNERS["diagvi"]
    assert spec.shared_space and "DIAGVI" in spec.description
    assert spec.availability is diagvi_unavailable


def test_missing_dependency_gives_skipped_rows_naming_what_to_install(sim, monkeypatch):
    real = diagvi_module.importlib.util.find_spec
    monkeypatch.setattr(
        diagvi_module.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "geomloss" else real(name, *a),
    )
    reason = diagvi_unavailable()
    assert "geomloss" in reason and "pip install" in reason and "scvi-tools" in reason
    res = gs.benchmark.run(sim, ["diagvi", "labels"], ["leot", "egw"], seeds=[0, 1])
    _skipped_rows_only(res, "geomloss")
    # one skipped row per aligner x seed, and the other learners run as usual
    assert len(res[res["learner"] == "diagvi"]) == 4
    assert (res.loc[res["learner"] == "labels", "status"] == "ok").all()
    with pytest.raises(ImportError, match="geomloss"):
        fit_diagvi(sim.copy(), "X_diagvi", groupby="perturbation", seed=0)


@pytest.mark.skipif(not ABSENT, reason="DIAGVI is installed here")
def test_absent_diagvi_is_skipped_cleanly_by_the_benchmark(sim):
    res = gs.benchmark.run(sim, ["diagvi"], ["leot", "knn"], seeds=[0], tuning=["default"])
    _skipped_rows_only(res, "DIAGVI is not available")
    assert res["error"].str.contains("pip install", regex=False).all()
    assert "X_diagvi" not in sim["rna"].obsm


# ------------------------------------------------------------------ guidance graph (any env)
@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("CD4", "cd4"),
        ("CD4-1", "cd4"),
        ("cd4.2", "cd4"),
        ("ADT_CD4", "cd4"),
        ("prot:CD38_1", "cd38"),
        ("HLA-DR", "hladr"),
        ("hla.dr", "hladr"),
        ("CD79A", "cd79a"),
        ("CD8", "cd8"),
    ],
)
def test_normalize_feature_name(name, key):
    assert normalize_feature_name(name) == key


def test_link_features_matches_normalised_names_many_to_many():
    links = link_features(
        ["CD4", "CD8A", "MS4A1", "CD38", "NKX2-1"],
        ["ADT_CD4", "cd8", "cd8a", "cd38.1", "cd38.2", "cd20", "-"],
        modalities=("rna", "adt"),
    )
    assert list(links.columns) == ["rna", "adt"]
    assert set(map(tuple, links.to_numpy())) == {
        ("CD4", "ADT_CD4"),
        ("CD8A", "cd8a"),
        ("CD38", "cd38.1"),
        ("CD38", "cd38.2"),
    }
    assert link_features(["A"], ["B"]).empty


def test_user_links_are_checked_against_the_features():
    var = {"rna": pd.Index(["CD3E", "FCGR3A"]), "adt": pd.Index(["cd3", "cd16"])}
    mods = ["rna", "adt"]
    frame = user_links([("CD3E", "cd3"), ("FCGR3A", "cd16")], mods, var)
    assert frame.to_numpy().tolist() == [["CD3E", "cd3"], ["FCGR3A", "cd16"]]
    same = user_links({"adt": ["cd3"], "rna": ["CD3E"]}, mods, var)
    assert same.to_numpy().tolist() == [["CD3E", "cd3"]]
    with pytest.raises(ValueError, match="does not have"):
        user_links([("CD3E", "cd4")], mods, var)
    with pytest.raises(ValueError, match="one column per modality"):
        user_links(pd.DataFrame({"rna": ["CD3E"]}), mods, var)
    with pytest.raises(ValueError, match="pairs"):
        user_links([("CD3E",)], mods, var)


def test_setup_arguments_complete_and_check_the_modalities(sim):
    mods = ["rna", "prot"]
    lik, layers = diagvi_module._likelihoods_and_layers(sim, mods, {"prot": "normal"}, None)
    assert lik == {"rna": "nb", "prot": "normal"} and layers == {"rna": "counts", "prot": None}
    setup = diagvi_module._setup_arguments(sim, mods, lik, {"rna": False}, "perturbation", True)
    assert [setup[m]["normalize_lib"] for m in mods] == [False, False]
    assert setup["prot"]["labels_key"] and setup["prot"]["gmm_prior"]
    unlabeled = diagvi_module._setup_arguments(sim, mods, lik, None, None, False)
    assert unlabeled["rna"]["labels_key"] is None and unlabeled["rna"]["normalize_lib"]
    with pytest.raises(ValueError, match="no likelihood 'bernoulli'"):
        diagvi_module._likelihoods_and_layers(sim, mods, {"rna": "bernoulli"}, None)
    with pytest.raises(KeyError, match="layer 'clr'"):
        diagvi_module._likelihoods_and_layers(sim, mods, None, {"prot": "clr"})
    with pytest.raises(KeyError, match="groupby='celltype'"):
        diagvi_module._setup_arguments(sim, mods, lik, None, "celltype", False)
    links = diagvi_module._guidance_links(None, mods, {m: sim[m].var_names for m in mods})
    assert list(links.columns) == mods and links.empty
    with pytest.raises(ValueError, match="feature_links must be 'names'"):
        diagvi_module._guidance_links("genes", mods, {m: sim[m].var_names for m in mods})


# ------------------------------------------------------------- a real fit (DIAGVI importable)
def _require_diagvi():
    pytest.importorskip("scvi.external.diagvi", reason="DIAGVI needs scvi-tools >= 1.4.3")
    pytest.importorskip("torch_geometric")
    pytest.importorskip("geomloss")


def test_fit_diagvi_writes_one_latent_per_modality_and_uses_links(sim):
    _require_diagvi()
    data = sim.copy()
    rna_names = list(data["rna"].var_names)
    rna_names[:2] = ["CD4", "CD19"]
    data["rna"].var_names = rna_names
    prot_names = list(data["prot"].var_names)
    prot_names[:3] = ["ADT_CD4", "cd4.2", "CD19-1"]
    data["prot"].var_names = prot_names
    data["rna"].obs.loc[data["rna"].obs_names[:5], "perturbation"] = np.nan  # unlabeled cells
    before = {m: data[m].X.copy() for m in data.mod}
    info = fit_diagvi(data, "X_diagvi", groupby="perturbation", seed=0, **FAST)
    for m in data.mod:
        z = data[m].obsm["X_diagvi"]
        assert z.shape == (data[m].n_obs, FAST["n_latent"]) and np.isfinite(z).all()
        after = data[m].X  # the user's data is left as it was (simulated RNA is CSR)
        assert type(after) is type(before[m])
        np.testing.assert_array_equal(
            after.toarray() if sp.issparse(after) else after,
            before[m].toarray() if sp.issparse(before[m]) else before[m],
        )
    assert info["likelihoods"] == {"rna": "nb", "prot": "normal"}
    assert set(map(tuple, info["feature_links"].to_numpy())) == {
        ("CD4", "ADT_CD4"),
        ("CD4", "cd4.2"),
        ("CD19", "CD19-1"),
    }
    # a given mapping replaces the name rule; posterior means are deterministic
    again = fit_diagvi(
        data, "X_given", groupby="perturbation", seed=0, feature_links=[("CD4", "cd4.2")], **FAST
    )
    assert again["feature_links"].to_numpy().tolist() == [["CD4", "cd4.2"]]
    unlinked = fit_diagvi(data, "X_none", groupby=None, seed=0, feature_links=None, **FAST)
    assert unlinked["feature_links"].empty and data["prot"].obsm["X_none"].shape[1] == 4
    with pytest.raises(ValueError, match="no likelihood 'poisson'"):
        fit_diagvi(data, "X_bad", groupby="perturbation", seed=0, likelihoods={"rna": "poisson"})


def test_diagvi_in_the_benchmark_gives_ok_rows(sim):
    _require_diagvi()
    kw = {"seeds": [0], "learner_kwargs": {"diagvi": FAST}}
    res = gs.benchmark.run(sim, ["diagvi"], ["leot", "egwl"], **kw)
    assert (res["status"] == "ok").all(), res["error"].unique()
    fosc = res.query("metric == 'foscttm_barycentric'")
    assert set(fosc["aligner"]) == {"leot", "egwl"} and fosc["value"].between(0, 1).all()
    assert res.query("aligner == 'latent'")["metric"].tolist() == ["foscttm_latent"]
    assert "X_diagvi" not in sim["rna"].obsm


def test_diagvi_ignores_the_truth(sim):
    _require_diagvi()
    scrambled = sim.copy()
    for m in scrambled.mod:
        a = scrambled[m]
        a.obs["cell_id"] = np.random.default_rng(1).permutation(a.obs["cell_id"].to_numpy())
        a.obs.drop(columns="perturbation_true", inplace=True)
    latents = []
    for data in (sim.copy(), scrambled):
        fit_diagvi(data, "X_diagvi", groupby="perturbation", seed=3, **FAST)
        latents.append({m: data[m].obsm["X_diagvi"] for m in data.mod})
    for m in sim.mod:
        np.testing.assert_array_equal(latents[0][m], latents[1][m])
