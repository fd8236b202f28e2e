"""tl.group_posterior: GroupCLIP's group log-probabilities, stored at the latent's width."""

import mudata
import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist, pdist
from scipy.special import log_softmax

import groove_sc as gs
from conftest import make_toy, strict_warnings


def _reference(mdata, rep, groupby, temperature, similarity):
    """Full (cells x groups) log-probabilities, written out independently with pandas/scipy."""
    mods = list(mdata.mod)
    means = {
        m: pd.DataFrame(mdata[m].obsm[rep], index=mdata[m].obs_names)
        .groupby(mdata[m].obs[groupby].astype(object).to_numpy())
        .mean()
        for m in mods
    }
    protos = pd.concat(means.values()).groupby(level=0).mean().sort_index()
    out = {}
    for m in mods:
        z, p = mdata[m].obsm[rep].astype(float), protos.to_numpy()
        if similarity == "cosine":
            zn = z / np.linalg.norm(z, axis=1, keepdims=True)
            s = zn @ (p / np.linalg.norm(p, axis=1, keepdims=True)).T
        else:
            s = -cdist(z, p, "sqeuclidean")
        out[m] = log_softmax(s / temperature, axis=1)
    return protos, out


@pytest.fixture
def partly_labeled():
    """Toy latents with unlabeled cells and one group present in one modality only."""
    mdata = make_toy(n_groups=5, k=20, d=4, seed=3)
    rng = np.random.default_rng(0)
    for m in mdata.mod:
        mdata[m].obsm["X_lat"] = rng.normal(size=(mdata[m].n_obs, 4)) + np.repeat(
            rng.normal(0, 3, (5, 4)), 20, axis=0
        )
    labels = mdata["prot"].obs["perturbation"].astype(object)
    labels[labels == "p4"] = None  # p4 only labeled in rna
    labels.iloc[::7] = None  # and some unlabeled cells
    mdata["prot"].obs["perturbation"] = pd.Categorical(labels)
    return mdata


@pytest.mark.parametrize("similarity", ["cosine", "neg_sqeuclidean"])
def test_rows_keep_the_distances_of_the_full_log_posterior(partly_labeled, similarity):
    mdata = partly_labeled
    with strict_warnings():
        gs.tl.group_posterior(
            mdata, "X_lat", groupby="perturbation", temperature=0.3, similarity=similarity
        )
    protos, ref = _reference(mdata, "X_lat", "perturbation", 0.3, similarity)
    meta = mdata.uns["X_lat_posterior"]
    assert list(meta["categories"]) == list(protos.index)
    np.testing.assert_allclose(meta["prototypes"], protos.to_numpy(), rtol=1e-5, atol=1e-6)
    # at most n_latent + 1 columns, and every distance (within and across modalities) kept
    stored = np.concatenate([mdata[m].obsm["X_lat_posterior"] for m in ("rna", "prot")])
    full = np.concatenate([ref["rna"], ref["prot"]])
    assert stored.shape[1] <= 5 and np.isfinite(stored).all()
    np.testing.assert_allclose(pdist(stored), pdist(full), rtol=1e-4, atol=1e-4)
    # the record maps the full vectors onto the stored rows
    np.testing.assert_allclose(
        (ref["rna"] - meta["origin"]) @ meta["basis"],
        mdata["rna"].obsm["X_lat_posterior"],
        rtol=1e-4,
        atol=1e-4,
    )


@pytest.mark.parametrize("similarity", ["cosine", "neg_sqeuclidean"])
def test_latents_far_from_the_origin_keep_their_distances(similarity):
    """Nearly parallel latents far from 0, unlabeled cells spread wider than the prototypes."""
    mdata = make_toy(n_groups=4, k=20, d=8, seed=5)
    rng = np.random.default_rng(1)
    centres = np.repeat(100 + 1e-4 * rng.normal(size=(4, 8)), 20, axis=0)
    for m in mdata.mod:
        wide = np.arange(mdata[m].n_obs) % 2 == 1  # unlabeled: 10 times the spread
        z = centres + 1e-5 * rng.normal(size=(80, 8))
        z[wide] = 100 + 1e-3 * rng.normal(size=(int(wide.sum()), 8))
        mdata[m].obsm["X_far"] = z
        labels = mdata[m].obs["perturbation"].astype(object)
        labels[wide] = None
        mdata[m].obs["perturbation"] = pd.Categorical(labels)
    gs.tl.group_posterior(
        mdata, "X_far", groupby="perturbation", temperature=0.1, similarity=similarity
    )
    _, ref = _reference(mdata, "X_far", "perturbation", 0.1, similarity)
    stored = np.concatenate([mdata[m].obsm["X_far_posterior"] for m in ("rna", "prot")])
    full = np.concatenate([ref["rna"], ref["prot"]])
    np.testing.assert_allclose(pdist(stored), pdist(full), rtol=1e-4, atol=1e-4 * pdist(full).max())


def test_chunks_do_not_change_the_rows(partly_labeled):
    gs.tl.group_posterior(partly_labeled, "X_lat", groupby="perturbation", key_added="a")
    gs.tl.group_posterior(
        partly_labeled, "X_lat", groupby="perturbation", key_added="b", chunk_size=7
    )
    for m in partly_labeled.mod:
        np.testing.assert_allclose(
            partly_labeled[m].obsm["a"], partly_labeled[m].obsm["b"], rtol=1e-6
        )


def test_copy_writes_only_the_documented_keys(partly_labeled):
    before = {m: (set(a.obsm), set(a.obs.columns)) for m, a in partly_labeled.mod.items()}
    out = gs.tl.group_posterior(partly_labeled, "X_lat", groupby="perturbation", copy=True)
    assert {m: (set(a.obsm), set(a.obs.columns)) for m, a in partly_labeled.mod.items()} == before
    assert "X_lat_posterior" not in partly_labeled.uns
    for m, (obsm, _) in before.items():
        assert set(out[m].obsm) == obsm | {"X_lat_posterior"}
    assert "X_lat_posterior" in out.obsm and "X_lat_posterior" in out.uns


def test_defaults_follow_the_model_and_survive_h5mu(toy, tmp_path):
    gs.model.GROOVE.setup_mudata(toy, layers={"rna": "counts"})
    model = gs.model.GROOVE(toy, n_latent=4, n_hidden=16, temperature=0.25)
    model.train(max_epochs=2, enable_progress_bar=False)
    gs.tl.embed(toy, model)
    record = toy.uns["X_groove"]
    assert (record["groupby"], record["similarity"]) == ("perturbation", "cosine")
    with strict_warnings():
        gs.tl.group_posterior(toy)
    meta = toy.uns["X_groove_posterior"]
    assert np.isclose(meta["temperature"], 0.25) and meta["use_rep"] == "X_groove"
    _, ref = _reference(toy, "X_groove", "perturbation", meta["temperature"], "cosine")
    np.testing.assert_allclose(
        pdist(toy["prot"].obsm["X_groove_posterior"]), pdist(ref["prot"]), rtol=1e-4, atol=1e-4
    )
    gs.tl.align(toy, "rna", "prot", use_rep="X_groove_posterior", groupby="perturbation")
    toy.write(tmp_path / "post.h5mu")
    back = mudata.read_h5mu(tmp_path / "post.h5mu")
    np.testing.assert_allclose(
        back["rna"].obsm["X_groove_posterior"], toy["rna"].obsm["X_groove_posterior"]
    )
    assert int(back.uns["X_groove_posterior"]["n_components"]) == meta["n_components"]


def test_bad_input_is_named(partly_labeled):
    with pytest.raises(KeyError, match="X_nope"):
        gs.tl.group_posterior(partly_labeled, "X_nope", groupby="perturbation")
    with pytest.raises(
        KeyError,
        match=r"groupby='batch' is not a column of mdata\['rna'\]\.obs \(columns: \[.*perturbation",
    ):
        gs.tl.group_posterior(partly_labeled, "X_lat", groupby="batch")
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        gs.tl.group_posterior(partly_labeled, "X_lat", groupby="perturbation", temperature=0)
    with pytest.raises(ValueError, match="similarity must be one of"):
        gs.tl.group_posterior(partly_labeled, "X_lat", groupby="perturbation", similarity="dot")
    with pytest.raises(ValueError, match="chunk_size"):
        gs.tl.group_posterior(partly_labeled, "X_lat", groupby="perturbation", chunk_size=0)
    with pytest.raises(ValueError, match="key_added must differ from use_rep"):
        gs.tl.group_posterior(partly_labeled, "X_lat", groupby="perturbation", key_added="X_lat")
    with pytest.raises(ValueError, match="modalities is empty"):
        gs.tl.group_posterior(partly_labeled, "X_lat", groupby="perturbation", modalities=[])
    for m in partly_labeled.mod:
        partly_labeled[m].obs["one"] = pd.Categorical(["a"] * partly_labeled[m].n_obs)
    with pytest.raises(ValueError, match="at least two"):
        gs.tl.group_posterior(partly_labeled, "X_lat", groupby="one")
