"""tl.align(space=...): a GROOVE latent is compared in its group posterior by linear aligners."""

import mudata
import numpy as np
import pandas as pd
import pytest

import groove_sc as gs
from conftest import make_toy, strict_warnings
from groove_sc.benchmark._seeding import seed_everything


@pytest.fixture(scope="module")
def embedded():
    """Toy MuData with a briefly trained GROOVE latent, tl.embed's record and unlabeled cells."""
    mdata = make_toy(n_groups=5, k=24, seed=4)
    labels = mdata["prot"].obs["perturbation"].astype(object)
    labels.iloc[::9] = None
    mdata["prot"].obs["perturbation"] = pd.Categorical(labels)
    gs.model.GROOVE.setup_mudata(mdata, layers={"rna": "counts"})
    model = gs.model.GROOVE(mdata, n_latent=4, n_hidden=16, temperature=0.2)
    model.train(max_epochs=3, seed=0, enable_progress_bar=False)
    gs.tl.embed(mdata, model)
    return mdata


def _coupling(mdata, key):
    return mdata.obsp[key].toarray()


def test_groove_latent_is_aligned_in_its_group_posterior(embedded):
    mdata = embedded.copy()
    obsm_before = {m: set(mdata[m].obsm) for m in mdata.mod}
    with strict_warnings():
        gs.tl.align(mdata, "rna", "prot", use_rep="X_groove", key_added="auto")
    # nothing but the coupling is written
    assert {m: set(mdata[m].obsm) for m in mdata.mod} == obsm_before
    record = mdata.uns["auto"]["space"]
    assert record["mode"] == "posterior" and record["groupby"] == "perturbation"
    assert np.isclose(record["temperature"], 0.2) and record["similarity"] == "cosine"
    assert mdata.uns["auto"]["use_rep"] == "X_groove"
    # the same coupling as the explicit two-step path
    gs.tl.group_posterior(mdata)
    gs.tl.align(mdata, "rna", "prot", use_rep="X_groove_posterior", key_added="explicit")
    assert mdata.uns["explicit"]["space"]["mode"] == "rep"
    np.testing.assert_allclose(_coupling(mdata, "auto"), _coupling(mdata, "explicit"), atol=1e-7)
    # every source cell (unlabeled prot cells are targets here) keeps its mass
    rows = np.asarray(mdata.obsp["auto"].sum(1)).ravel()[: mdata["rna"].n_obs]
    np.testing.assert_allclose(rows, 1 / mdata["rna"].n_obs, rtol=1e-3)


def test_space_rep_is_the_latent_itself(embedded):
    mdata = embedded.copy()
    for m in mdata.mod:  # the same numbers without tl.embed's record
        mdata[m].obsm["X_plain"] = mdata[m].obsm["X_groove"].copy()
    gs.tl.align(mdata, "rna", "prot", use_rep="X_groove", space="rep", key_added="rep")
    gs.tl.align(mdata, "rna", "prot", use_rep="X_plain", key_added="plain")
    assert mdata.uns["plain"]["space"]["mode"] == "rep"
    assert "not a GROOVE latent" in mdata.uns["plain"]["space"]["reason"]
    np.testing.assert_allclose(_coupling(mdata, "rep"), _coupling(mdata, "plain"), atol=1e-9)
    assert not np.allclose(_coupling(mdata, "rep"), 0)


def test_gw_methods_keep_the_latent_and_knn_uses_the_posterior(embedded):
    mdata = embedded.copy()
    gs.tl.align(mdata, "prot", "rna", use_rep="X_groove", method="egwl", key_added="gw")
    assert mdata.uns["gw"]["space"]["mode"] == "rep"
    assert "egwl" in mdata.uns["gw"]["space"]["reason"]
    gs.tl.align(mdata, "prot", "rna", use_rep="X_groove", method="knn", key_added="knn")
    assert mdata.uns["knn"]["space"]["mode"] == "posterior"
    gs.tl.group_posterior(mdata)
    gs.tl.align(mdata, "prot", "rna", use_rep="X_groove_posterior", method="knn", key_added="ref")
    np.testing.assert_allclose(_coupling(mdata, "knn"), _coupling(mdata, "ref"), atol=1e-7)


def test_posterior_space_on_any_shared_rep_and_h5mu(embedded, tmp_path):
    mdata = embedded.copy()
    for m in mdata.mod:
        mdata[m].obsm["X_plain"] = mdata[m].obsm["X_groove"].copy()
    gs.tl.align(mdata, "rna", "prot", use_rep="X_plain", space="posterior", key_added="c")
    space = mdata.uns["c"]["space"]
    assert space["mode"] == "posterior" and np.isclose(space["temperature"], 0.1)  # the default
    mdata.write(tmp_path / "space.h5mu")
    back = mudata.read_h5mu(tmp_path / "space.h5mu")
    assert back.uns["c"]["space"]["mode"] == "posterior"
    assert int(back.uns["c"]["space"]["n_components"]) == int(space["n_components"])


def test_auto_falls_back_when_the_posterior_cannot_be_formed(embedded):
    mdata = embedded.copy()
    mdata.uns["X_groove"] = {**mdata.uns["X_groove"], "groupby": "guide"}  # not in obs
    with pytest.warns(UserWarning, match="uns\\['X_groove'\\]\\['groupby'\\].*space='rep'"):
        gs.tl.align(mdata, "rna", "prot", use_rep="X_groove", key_added="c")
    space = mdata.uns["c"]["space"]
    assert space["mode"] == "rep" and "guide" in space["reason"]
    with pytest.raises(KeyError, match="guide"):
        gs.tl.align(mdata, "rna", "prot", use_rep="X_groove", space="posterior")
    with strict_warnings():  # the user's choice: no warning
        gs.tl.align(mdata, "rna", "prot", use_rep="X_groove", space="rep", key_added="r")


def test_a_latent_overwritten_since_tl_embed_is_not_a_groove_latent(embedded):
    mdata = embedded.copy()
    for m in mdata.mod:
        mdata[m].obsm["X_groove"] = np.hstack([mdata[m].obsm["X_groove"]] * 2)
    gs.tl.align(mdata, "rna", "prot", use_rep="X_groove", key_added="c")
    assert mdata.uns["c"]["space"]["mode"] == "rep"


def test_posterior_of_an_unrecorded_rep_uses_the_alignment_labels(embedded):
    mdata = embedded.copy()
    for m in mdata.mod:
        mdata[m].obsm["X_plain"] = mdata[m].obsm["X_groove"].copy()
        mdata[m].obs["guide"] = mdata[m].obs["perturbation"]
    gs.tl.align(
        mdata, "rna", "prot", use_rep="X_plain", groupby="guide", space="posterior", key_added="c"
    )
    assert mdata.uns["c"]["space"]["groupby"] == "guide"
    gs.tl.group_posterior(mdata, "X_plain", groupby="guide")
    gs.tl.align(mdata, "rna", "prot", use_rep="X_plain_posterior", groupby="guide", key_added="r")
    np.testing.assert_allclose(_coupling(mdata, "c"), _coupling(mdata, "r"), atol=1e-7)
    # GW with one key given per modality
    same = {"rna": "X_plain", "prot": "X_plain"}
    gs.tl.align(mdata, "rna", "prot", use_rep=same, method="egwl", groupby="guide",
                space="posterior", key_added="gw")  # fmt: skip
    assert mdata.uns["gw"]["space"]["mode"] == "posterior"


def test_bad_space_is_named(embedded):
    with pytest.raises(ValueError, match="space must be one of"):
        gs.tl.align(embedded, "rna", "prot", use_rep="X_groove", space="latent")
    with pytest.raises(ValueError, match="space='posterior' needs one latent"):
        gs.tl.align(
            embedded,
            "rna",
            "prot",
            use_rep={"rna": "X_groove", "prot": "X_true"},
            method="egwl",
            space="posterior",
        )


def test_benchmark_groove_learners_are_aligned_like_a_users_latent():
    mdata = make_toy(n_groups=4, k=20, seed=5)
    for name, key in (("groove", "X_g"), ("groove_posterior", "X_p")):
        seed_everything(0)  # as the benchmark does before every learner
        gs.benchmark.LEARNERS[name](
            mdata, key, groupby="perturbation", seed=0, max_epochs=2, n_latent=4
        )
    assert mdata.uns["X_g"]["model"] == "GROOVE"
    gs.tl.align(mdata, "rna", "prot", use_rep="X_g", key_added="g")
    gs.tl.align(mdata, "rna", "prot", use_rep="X_p", key_added="p")
    # the same fit (same seed): the default path on the latent equals the stored posterior
    assert mdata.uns["g"]["space"]["mode"] == "posterior"
    assert mdata.uns["p"]["space"]["mode"] == "rep"
    assert mdata["rna"].obsm["X_p"].shape[1] <= 5 and "X_p_posterior" not in mdata["rna"].obsm
    np.testing.assert_allclose(_coupling(mdata, "g"), _coupling(mdata, "p"), atol=1e-7)


def test_a_missing_groupby_names_the_models_label_column(embedded):
    mdata = embedded.copy()
    for m in ("rna", "prot"):
        mdata[m].obs["gene"] = mdata[m].obs["perturbation"]
        del mdata[m].obs["perturbation"]
    mdata.uns["X_groove"] = {**mdata.uns["X_groove"], "groupby": "gene"}
    with pytest.raises(KeyError, match=r"groupby='perturbation' is not a column.*groupby='gene'"):
        gs.tl.align(mdata, "rna", "prot", use_rep="X_groove")
    gs.tl.align(mdata, "rna", "prot", use_rep="X_groove", groupby="gene", key_added="c")
    assert mdata.uns["c"]["space"]["mode"] == "posterior"
