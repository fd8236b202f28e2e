"""GROOVE end to end on CPU: setup, training, queries, save/load, bad input."""

import mudata as md
import numpy as np
import pandas as pd
import pytest
import torch

import groove_sc as gs
from conftest import make_toy, strict_warnings
from groove_sc.model import GROOVE

SETUP = dict(
    perturbation_key="perturbation",
    modalities=["rna", "prot"],
    layers={"rna": "counts"},
    likelihoods={"rna": "nb", "prot": "normal"},
)
QUIET = dict(enable_progress_bar=False)


@pytest.fixture(scope="module")
def trained():
    mdata = make_toy(seed=1)
    GROOVE.setup_mudata(mdata, **SETUP)
    model = GROOVE(mdata, n_latent=6, n_hidden=32)
    model.train(max_epochs=4, check_val_every_n_epoch=2, **QUIET)
    return mdata, model


def test_training_logs_every_loss_term(trained):
    _, model = trained
    h = model.history
    for key in [
        "reconstruction_rna_train",
        "reconstruction_prot_train",
        "kl_rna_train",
        "kl_prot_train",
        "backtranslation_train",
        "contrastive_train",
        "validation_loss",
    ]:
        assert key in h and np.isfinite(h[key].to_numpy(dtype=float)).all(), key
    assert float(h["contrastive_train"].iloc[-1, 0]) > 0
    assert float(h["backtranslation_train"].iloc[-1, 0]) > 0


def test_latent_and_imputation_shapes(trained):
    mdata, model = trained
    z = model.get_latent_representation()
    assert set(z) == {"rna", "prot"}
    assert z["rna"].shape == (mdata["rna"].n_obs, 6) and z["prot"].shape == (180, 6)
    assert np.allclose(model.get_latent_representation(modality="rna"), z["rna"], atol=1e-6)
    x = model.get_imputed_values(source="rna", target="prot")
    assert x.shape == (mdata["rna"].n_obs, mdata["prot"].n_vars) and np.isfinite(x).all()
    counts = model.get_imputed_values(source="prot", target="rna", library_size=1e4)
    assert np.allclose(counts.sum(1), 1e4, rtol=1e-4)  # softmax scale times library size


def test_imputation_equals_manual_decoder_translation(trained):
    mdata, model = trained
    z = torch.as_tensor(model.get_latent_representation(modality="prot"))
    dec = model.module.decoders["rna"]
    lib = model.module.library_log_means[0].expand(len(z), 1)
    with torch.no_grad():
        manual = dec.head.scale(dec.body(z)) * lib.exp()
    got = model.get_imputed_values(source="prot", target="rna")
    np.testing.assert_allclose(got, manual.numpy(), rtol=1e-4, atol=1e-5)


def test_embed_writes_keys_and_survives_h5mu(trained, tmp_path):
    mdata, model = trained
    gs.tl.embed(mdata, model, key_added="X_groove")
    assert mdata["rna"].obsm["X_groove"].shape == (180, 6)
    assert mdata.obsm["X_groove"].shape == (mdata.n_obs, 6)
    pos = mdata.obs_names.get_indexer(mdata["prot"].obs_names)
    np.testing.assert_allclose(mdata.obsm["X_groove"][pos], mdata["prot"].obsm["X_groove"])
    path = tmp_path / "embedded.h5mu"
    mdata.write(path)
    back = md.read_h5mu(path)
    np.testing.assert_allclose(back["rna"].obsm["X_groove"], mdata["rna"].obsm["X_groove"])
    np.testing.assert_allclose(back.obsm["X_groove"], mdata.obsm["X_groove"])
    assert back.uns["X_groove"]["n_latent"] == 6


def test_save_load_round_trip(trained, tmp_path):
    mdata, model = trained
    z = model.get_latent_representation()
    model.save(tmp_path / "model", overwrite=True)
    loaded = GROOVE.load(tmp_path / "model", mdata)
    z2 = loaded.get_latent_representation()
    for m in z:
        np.testing.assert_allclose(z[m], z2[m], atol=1e-6)
    fresh = make_toy(seed=1)  # a fresh copy of the same data, never set up
    loaded2 = GROOVE.load(tmp_path / "model", fresh)
    z3 = loaded2.get_latent_representation()
    for m in z:
        np.testing.assert_allclose(z[m], z3[m], atol=1e-6)
    assert list(loaded2.categories) == list(model.categories)


def test_query_cells_of_one_modality(trained):
    mdata, model = trained
    query = md.MuData({"rna": mdata["rna"][:25].copy()})
    zq = model.get_latent_representation(mdata=query, modality="rna")
    np.testing.assert_allclose(zq, model.get_latent_representation(modality="rna")[:25], atol=1e-5)
    wrong = md.MuData({"rna": mdata["rna"][:, :10].copy()})
    with pytest.raises(ValueError, match="Features of modality 'rna'"):
        model.get_latent_representation(mdata=wrong, modality="rna")


@pytest.mark.parametrize("contrastive", ["clip", "supcon", None])
def test_ablations_train(contrastive):
    mdata = make_toy(seed=2, k=12)
    GROOVE.setup_mudata(mdata, **SETUP)
    model = GROOVE(mdata, n_latent=4, n_hidden=16, contrastive=contrastive, backtranslation=False)
    model.train(max_epochs=2, **QUIET)
    h = model.history
    last = float(h["contrastive_train"].iloc[-1, 0])
    assert (last == 0.0) == (contrastive is None)
    assert float(h["backtranslation_train"].iloc[-1, 0]) == 0.0


def test_early_stopping_and_unlabeled_cells():
    mdata = make_toy(seed=3, k=15)
    obs = mdata["rna"].obs
    obs["perturbation"] = obs["perturbation"].astype(object)
    obs.iloc[:20, obs.columns.get_loc("perturbation")] = np.nan  # failed guide calls
    obs["perturbation"] = obs["perturbation"].astype("category")
    mdata.update()
    GROOVE.setup_mudata(mdata, **SETUP)
    assert (mdata["rna"].obs["_scvi_labels_rna"].to_numpy()[:20] == -1).all()
    model = GROOVE(mdata, n_latent=4, n_hidden=16)
    model.train(max_epochs=50, early_stopping=True, early_stopping_patience=1, lr=1e-6, **QUIET)
    assert len(model.history["validation_loss"]) < 50  # stopped early


def test_user_data_keeps_its_content():
    mdata = make_toy(seed=4, k=10)
    before = {m: (a.obs.copy(), a.X.copy(), dict(a.layers)) for m, a in mdata.mod.items()}
    GROOVE.setup_mudata(mdata, **SETUP)
    for m, (obs, x, layers) in before.items():
        a = mdata[m]
        pd.testing.assert_frame_equal(a.obs[obs.columns], obs)
        np.testing.assert_array_equal(a.X, x)
        np.testing.assert_array_equal(
            a.layers["counts"] if "counts" in layers else a.X, layers.get("counts", x)
        )
        new_cols = set(a.obs.columns) - set(obs.columns)
        assert new_cols == {f"_scvi_labels_{m}"}


# ----------------------------------------------------------------- bad input
def _bad(mutate, match, **overrides):
    mdata = make_toy(seed=5, k=8)
    mutate(mdata)
    kw = {**SETUP, **overrides}
    with pytest.raises((ValueError, KeyError, TypeError), match=match):
        GROOVE.setup_mudata(mdata, **kw)


def test_missing_modality():
    _bad(lambda m: None, "Modality 'atac' is not in mdata.mod", modalities=["rna", "atac"])


def test_missing_perturbation_key():
    def drop(m):
        del m["prot"].obs["perturbation"]

    _bad(
        drop, r"perturbation_key='perturbation' is not a column of mdata\['prot'\]\.obs \(columns: "
    )


def test_no_shared_perturbation():
    def rename(m):
        obs = m["prot"].obs
        obs["perturbation"] = pd.Categorical(["x_" + str(v) for v in obs["perturbation"]])

    _bad(rename, "No value of obs\\['perturbation'\\] is shared")


def test_nan_in_data():
    def nan(m):
        m["prot"].X[0, 0] = np.nan

    _bad(nan, "Modality 'prot' \\(.X\\) contains NaN")


def test_negative_counts():
    def neg(m):
        m["rna"].layers["counts"][0, 0] = -1

    _bad(neg, "Modality 'rna' \\(layer 'counts'\\) has negative values")


def test_non_integer_counts_warn():
    mdata = make_toy(seed=5, k=8)
    mdata["rna"].layers["counts"] = mdata["rna"].layers["counts"] + 0.5
    with pytest.warns(UserWarning, match="non-integer values"):
        GROOVE.setup_mudata(mdata, **SETUP)


def test_shared_obs_names():
    mdata = make_toy(seed=5, k=8)
    prot = mdata["prot"].copy()
    prot.obs_names = mdata["rna"].obs_names
    bad = md.MuData({"rna": mdata["rna"].copy(), "prot": prot})
    with pytest.raises(ValueError, match="share .* obs_names"):
        GROOVE.setup_mudata(bad, **SETUP)


def test_modality_without_labels():
    def unlabel(m):
        m["prot"].obs["perturbation"] = pd.Categorical([np.nan] * m["prot"].n_obs)

    _bad(unlabel, "Modality 'prot' has no labeled cells")


def test_unknown_likelihood():
    _bad(
        lambda m: None,
        "Unknown likelihood 'gamma' for modality 'prot'",
        likelihoods={"rna": "nb", "prot": "gamma"},
    )


def test_missing_layer():
    _bad(lambda m: None, "Layer 'raw' not found in modality 'rna'", layers={"rna": "raw"})


def test_groupclip_latent_matches_views_better_than_no_contrastive():
    """Direct FOSCTTM between the two views of each cell, GroupCLIP on vs off, same seeds."""
    import scvi

    scores = {"groupclip": [], None: []}
    for seed in (0, 1):
        for contrastive in scores:
            scvi.settings.seed = seed
            mdata = make_toy(n_groups=8, k=40, n_genes=60, n_prot=15, seed=seed, d=6)
            GROOVE.setup_mudata(mdata, **SETUP)
            model = GROOVE(mdata, n_latent=6, n_hidden=64, contrastive=contrastive)
            model.train(max_epochs=25, **QUIET)
            z = model.get_latent_representation()
            scores[contrastive].append(gs.metrics.foscttm(z["rna"], z["prot"]))
    with_clip, without = np.mean(scores["groupclip"]), np.mean(scores[None])
    assert without > 0.25  # no cross-modal signal without the contrastive term
    assert with_clip < 0.5 * without


def test_supcon_defaults_to_its_own_mean_log_form():
    mdata = make_toy(seed=6, k=8)
    GROOVE.setup_mudata(mdata, **SETUP)
    assert GROOVE(mdata, contrastive="supcon").module.positives == "mean_log"
    assert GROOVE(mdata).module.positives == "sum_in_log"
    assert GROOVE(mdata, contrastive="supcon", positives="sum_in_log").module.positives == (
        "sum_in_log"
    )


def test_training_after_a_query_runs_in_train_mode():
    # queries put the module in eval mode; a further fit must train with dropout and batch
    # statistics again, as the first one did
    mdata = make_toy(seed=2)
    GROOVE.setup_mudata(mdata, **SETUP)
    model = GROOVE(mdata, n_latent=4, n_hidden=16)
    modes = []
    forward = model.module.forward

    def spy(*args, **kwargs):
        modes.append(model.module.training)
        return forward(*args, **kwargs)

    model.module.forward = spy
    model.train(max_epochs=1, **QUIET)
    first = set(modes)
    model.get_latent_representation()
    assert not model.module.training
    modes.clear()
    model.train(max_epochs=1, **QUIET)
    assert first == {True} and set(modes) == {True}


def test_likelihood_kinds_follow_the_heads():
    """The simulator's table of kinds and the decoder heads agree; is_count follows kind."""
    from groove_sc._constants import COUNT_LIKELIHOODS, LIKELIHOOD_KINDS

    assert {n: h.kind for n, h in gs.module.LIKELIHOODS.items()} == LIKELIHOOD_KINDS
    assert {n for n, h in gs.module.LIKELIHOODS.items() if h.is_count} == set(COUNT_LIKELIHOODS)


def test_registered_count_likelihood_gets_a_library_size(monkeypatch):
    """A count head added to the registry alone is treated as counts by the model."""
    from groove_sc.module._likelihoods import NBHead

    class MyCounts(NBHead):
        """A user's count likelihood (here NB under another name)."""

    monkeypatch.setitem(gs.module.LIKELIHOODS, "my_counts", MyCounts)
    assert MyCounts.is_count
    mdata = make_toy(seed=2)
    GROOVE.setup_mudata(mdata, **{**SETUP, "likelihoods": {"rna": "my_counts", "prot": "normal"}})
    model = GROOVE(mdata, n_latent=4, n_hidden=16)
    x = mdata["rna"].layers["counts"]
    expected = np.log(np.clip(np.asarray(x.sum(axis=1)).ravel(), 1, None)).mean()
    rna = model.module.modalities.index("rna")
    assert np.isclose(float(model.module.library_log_means[rna]), expected, rtol=1e-6)
    assert float(model.module.library_log_means[model.module.modalities.index("prot")]) == 0.0


def test_query_with_an_unseen_or_missing_batch_names_it():
    mdata = make_toy(seed=4)
    for m in ("rna", "prot"):
        mdata[m].obs["batch"] = pd.Categorical(["b0", "b1"] * (mdata[m].n_obs // 2))
    GROOVE.setup_mudata(mdata, batch_key="batch", **SETUP)
    model = GROOVE(mdata, n_latent=4, n_hidden=16)
    model.train(max_epochs=1, **QUIET)
    query = make_toy(seed=5)
    for m in ("rna", "prot"):
        query[m].obs["batch"] = pd.Categorical(["b0", "b7"] * (query[m].n_obs // 2))
    with pytest.raises(ValueError, match=r"unseen in training \(\['b7'\].*\['b0', 'b1'\]\)"):
        model.get_latent_representation(query, modality="rna")
    query["rna"].obs["batch"] = pd.Categorical([None, "b0"] * (query["rna"].n_obs // 2))
    with pytest.raises(ValueError, match=r"has \d+ cells without a batch.*\['b0', 'b1'\]"):
        model.get_latent_representation(query, modality="rna")
    del query["rna"].obs["batch"]
    with pytest.raises(KeyError, match=r"batch_key='batch' is not a column.*pass batch_key=None"):
        model.get_latent_representation(query, modality="rna")


def test_setup_warns_when_counts_are_left_out_and_skips_imputed_modalities():
    mdata = make_toy(seed=6)
    with pytest.warns(UserWarning, match=r"'rna' is modelled as 'normal' on \.X.*layers=\{'rna'"):
        GROOVE.setup_mudata(mdata, perturbation_key="perturbation", modalities=["rna", "prot"])
    # the documented set-up is quiet, and tl.impute's output is not taken for a modality
    with strict_warnings():
        GROOVE.setup_mudata(mdata, **SETUP)
    model = GROOVE(mdata, n_latent=4, n_hidden=16)
    model.train(max_epochs=1, **QUIET)
    gs.tl.embed(mdata, model)
    gs.tl.align(mdata, "rna", "prot", use_rep="X_groove")
    gs.tl.impute(mdata, "rna", "prot")
    assert "prot_imputed" in mdata.mod
    with strict_warnings():
        GROOVE.setup_mudata(
            mdata, perturbation_key="perturbation", layers={"rna": "counts"},
            likelihoods={"rna": "nb", "prot": "normal"},
        )  # fmt: skip
    assert GROOVE(mdata, n_latent=4, n_hidden=16).modalities == ["rna", "prot"]


def test_a_head_that_sets_is_count_the_older_way_stays_a_count_head():
    from groove_sc.module import LikelihoodHead

    class Old(LikelihoodHead):
        is_count = True

    class New(LikelihoodHead):
        kind = "count"

    assert Old.kind == "count" and Old.is_count and New.is_count
    assert not LikelihoodHead.is_count


def test_setup_leaves_out_only_what_tl_impute_wrote_and_the_clr_protein_is_quiet():
    mdata = make_toy(seed=7)
    mdata["prot"].uns["imputation"] = {"method": "knn"}  # the user's own record: kept
    with strict_warnings():
        GROOVE.setup_mudata(mdata, **SETUP)
    assert GROOVE(mdata, n_latent=4, n_hidden=16).modalities == ["rna", "prot"]
    # CLR protein with its counts kept (pp.prepare's output) is 'normal' on .X: no warning
    prot = mdata["prot"]
    prot.layers["counts"] = np.random.default_rng(0).poisson(3.0, prot.shape).astype(np.float32)
    prot.X = prot.X - prot.X.mean(axis=1, keepdims=True)
    with strict_warnings():
        GROOVE.setup_mudata(
            mdata, perturbation_key="perturbation", modalities=["rna", "prot"],
            layers={"rna": "counts"}, likelihoods={"rna": "nb"},
        )  # fmt: skip
