"""Three modalities end to end: RNA + protein + ATAC trained jointly, aligned per pair."""

from itertools import combinations

import mudata as md
import numpy as np
import pytest
import scipy.sparse as sp
import torch

import groove_sc as gs
from groove_sc.model import GROOVE

MODS = {"rna": "nb", "prot": "normal", "atac": "bernoulli"}
PAIRS = list(combinations(MODS, 2))


@pytest.fixture(scope="module")
def three():
    mdata = gs.datasets.simulate(
        n_perturbations=5,
        cells_per_perturbation=20,
        shared_fraction=0.8,
        modalities=MODS,
        n_features={"rna": 60, "prot": 12, "atac": 80},
        paired=True,
        seed=3,
    )
    GROOVE.setup_mudata(
        mdata,
        perturbation_key="perturbation",
        modalities=list(MODS),
        layers={"rna": "counts", "atac": "counts"},
        likelihoods=MODS,
    )
    model = GROOVE(mdata, n_latent=6, n_hidden=32)
    model.train(max_epochs=15, enable_progress_bar=False)
    return mdata, model


def test_joint_training_embeds_all_three_and_the_joint_latent(three):
    mdata, model = three
    history = model.history
    loss = history["train_loss"].to_numpy(dtype=float).ravel()
    assert np.isfinite(loss).all() and loss[-1] < loss[0]
    for m in MODS:  # every modality's terms are trained
        for term in ("reconstruction", "kl"):
            assert np.isfinite(history[f"{term}_{m}_train"].to_numpy(dtype=float)).all()
    gs.tl.embed(mdata, model, key_added="X_groove")
    for m in MODS:
        z = mdata[m].obsm["X_groove"]
        assert z.shape == (mdata[m].n_obs, 6) and np.isfinite(z).all()
    joint = np.asarray(mdata.obsm["X_groove"])
    assert joint.shape == (mdata.n_obs, 6) and mdata.n_obs == sum(mdata[m].n_obs for m in MODS)
    # the joint rows of each modality's cells are that modality's latent
    for m in MODS:
        rows = np.flatnonzero(mdata.obsmap[m] > 0)
        order = mdata.obsmap[m][rows] - 1
        np.testing.assert_allclose(joint[rows], mdata[m].obsm["X_groove"][order], rtol=1e-6)


def test_every_pair_is_coupled_imputed_scored_plotted_and_survives_h5mu(three, tmp_path):
    mdata, model = three
    gs.tl.embed(mdata, model, key_added="X_groove")
    scores = {}
    for a, b in PAIRS:
        key = f"{a}_{b}_coupling"
        gs.tl.align(mdata, source=a, target=b, use_rep="X_groove", key_added=key)
        p = mdata.obsp[key]
        rows = mdata.obsmap[a] > 0
        cols = mdata.obsmap[b] > 0
        assert p.sum() == pytest.approx(1.0, abs=1e-6)
        assert p[~rows].nnz == 0 and p[:, ~cols].nnz == 0  # only the a x b block holds mass
        assert mdata.uns[key]["source"] == a and mdata.uns[key]["target"] == b
        imputed = f"{b}_from_{a}"
        gs.tl.impute(mdata, source=a, target=b, coupling_key=key, model=model, key_added=imputed)
        imp = mdata.mod[f"{b}_from_{a}"]
        assert imp.shape == (mdata[a].n_obs, mdata[b].n_vars)
        assert list(imp.obs_names) == list(mdata[a].obs_names)
        assert {"ot", "decoder"} <= set(imp.layers)
        scores[(a, b)] = gs.metrics.evaluate_matching(mdata, coupling_key=key)
        fig = gs.pl.matching(mdata, key=key, groupby="perturbation", return_fig=True)
        assert fig.axes and a in fig.axes[0].get_title() + fig.axes[0].get_xlabel() + b
    for (a, b), s in scores.items():
        # every source cell has a true partner in every other modality, and better than chance
        assert s["frac_unmatched"] == 0.0
        assert s["foscttm_barycentric"] < 0.45, (a, b, s["foscttm_barycentric"])
    path = tmp_path / "three.h5mu"
    mdata.write_h5mu(path)
    back = md.read_h5mu(path)
    for a, b in PAIRS:
        key = f"{a}_{b}_coupling"
        diff = sp.csr_matrix(back.obsp[key]) - sp.csr_matrix(mdata.obsp[key])
        assert abs(diff).max() < 1e-12
        assert back.uns[key]["method"] == mdata.uns[key]["method"]
        np.testing.assert_allclose(back.mod[f"{b}_from_{a}"].X, mdata.mod[f"{b}_from_{a}"].X)
        again = gs.metrics.evaluate_matching(back, coupling_key=key)
        assert again["trace"] == pytest.approx(scores[(a, b)]["trace"])


def test_groupclip_averages_and_backtranslation_sums_over_modality_pairs(three, monkeypatch):
    """The documented pair rule, against hand-made two-modality references."""
    mdata, model = three
    module = model.module.eval()
    encode = module.encode

    def encode_mean(m, x, batch_index):  # the posterior mean instead of a draw: deterministic
        qz, _ = encode(m, x, batch_index)
        return qz, qz.loc

    monkeypatch.setattr(module, "encode", encode_mean)
    rng = np.random.default_rng(0)
    tensors, labels = {}, {}
    for m in MODS:
        x = mdata[m].layers["counts"] if m != "prot" else mdata[m].X
        x = x.toarray() if sp.issparse(x) else np.asarray(x)
        idx = rng.choice(mdata[m].n_obs, 24, replace=False)
        tensors[f"X_{m}"] = torch.tensor(x[idx], dtype=torch.float32)
        labels[m] = torch.tensor(rng.integers(0, 4, 24))
    with torch.no_grad():
        out = module.inference(**module._get_inference_input(tensors))
        qz = out["qz"]
        kw = {
            "temperature": float(module.temperature),
            "positives": module.positives,
            "similarity": module.similarity,
        }
        pairwise = [
            gs.module.group_clip_loss(qz[a].loc, qz[b].loc, labels[a], labels[b], **kw)
            for a, b in PAIRS
        ]
        contrastive = module.contrastive_loss(tensors, out, labels)
        torch.testing.assert_close(contrastive, torch.stack(pairwise).mean())
        back3 = module.backtranslation_loss(tensors, out)
        back2 = [
            module.backtranslation_loss(tensors, {**out, "qz": {a: qz[a], b: qz[b]}})
            for a, b in PAIRS
        ]
        torch.testing.assert_close(back3, torch.stack(back2).sum(), rtol=1e-5, atol=1e-4)
