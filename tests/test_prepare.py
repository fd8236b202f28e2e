"""groove_sc.pp.prepare: per-modality preprocessing recipe."""

from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import groove_sc as gs


def _dense(x):
    return np.asarray(x.toarray() if sp.issparse(x) else x)


def _make(n=120, n_genes=300, n_prot=6, n_peaks=0, seed=0, counts_in_layer=False):
    """Weakly paired toy MuData with count data in every modality."""
    rng = np.random.default_rng(seed)
    labels = np.array(["control", "A", "B", None] * (n // 4), dtype=object)
    mods = {}
    # genes with very different dispersions so that HVG selection has something to find
    mu = rng.gamma(0.5, 4.0, size=n_genes)
    rna_counts = rng.negative_binomial(2, 2 / (2 + mu), size=(n, n_genes)).astype(np.float32)
    rna_counts[:, :20] *= rng.integers(0, 8, size=(n, 1))  # 20 very variable genes
    obs = pd.DataFrame(
        {
            "perturbation": pd.Categorical(labels, categories=["control", "A", "B"]),
            "batch": np.array(["b1", "b2"] * (n // 2)),
        }
    )
    rna_obs = obs.set_axis([f"rna:c{i}" for i in range(n)])
    rna = ad.AnnData(
        X=sp.csr_matrix(rna_counts),
        obs=rna_obs,
        var=pd.DataFrame(index=[f"G{j}" for j in range(n_genes)]),
    )
    if counts_in_layer:
        rna.layers["counts"] = rna.X.copy()
        rna.X = sp.csr_matrix(np.log1p(rna_counts))  # something else in X
    mods["rna"] = rna
    prot_counts = rng.poisson(rng.uniform(5, 50, size=n_prot), size=(n, n_prot)).astype(np.float32)
    mods["prot"] = ad.AnnData(
        X=prot_counts,
        obs=obs.set_axis([f"prot:c{i}" for i in range(n)]),
        var=pd.DataFrame(index=[f"P{j}" for j in range(n_prot)]),
    )
    if n_peaks:
        peaks = rng.poisson(0.3, size=(n, n_peaks)).astype(np.float32) * 3
        mods["atac"] = ad.AnnData(
            X=sp.csr_matrix(peaks),
            obs=obs.set_axis([f"atac:c{i}" for i in range(n)]),
            var=pd.DataFrame(index=[f"peak{j}" for j in range(n_peaks)]),
        )
    return md.MuData(mods)


def test_prepare_returns_new_object_and_leaves_input_alone():
    mdata = _make()
    before = {
        m: (_dense(mdata[m].X).copy(), list(mdata[m].layers), mdata[m].shape) for m in mdata.mod
    }
    out = gs.pp.prepare(mdata, n_top_genes=50, copy=True)
    assert out is not mdata
    for m, (x, layers, shape) in before.items():
        np.testing.assert_array_equal(_dense(mdata[m].X), x)
        assert list(mdata[m].layers) == layers
        assert mdata[m].shape == shape
        assert "groove_prepare" not in mdata[m].uns


def test_rna_recipe():
    mdata = _make()
    raw = _dense(mdata["rna"].X).copy()
    out = gs.pp.prepare(mdata, n_top_genes=50, target_sum=1e4, copy=True)
    rna = out["rna"]
    assert rna.n_vars == 50
    assert rna.var["highly_variable"].all()
    # counts kept (subset to the HVGs), X = log1p(normalised counts) with the full library size
    cols = mdata["rna"].var_names.get_indexer(rna.var_names)
    np.testing.assert_array_equal(_dense(rna.layers["counts"]), raw[:, cols])
    expected = np.log1p(raw / raw.sum(1, keepdims=True) * 1e4)[:, cols]
    np.testing.assert_allclose(_dense(rna.X), expected, rtol=1e-4, atol=1e-5)
    # the very variable genes are found
    assert len(set(rna.var_names) & {f"G{j}" for j in range(20)}) >= 15
    params = rna.uns["groove_prepare"]
    assert params["recipe"] == "rna" and params["n_top_genes"] == 50
    assert params["hvg_flavor"] in ("seurat_v3", "seurat")
    # obs are untouched, and the MuData is consistent with its modalities
    assert list(rna.obs_names) == list(mdata["rna"].obs_names)
    assert rna.obs["perturbation"].equals(mdata["rna"].obs["perturbation"])
    assert out.n_vars == rna.n_vars + out["prot"].n_vars


def test_hvg_flavor_default_uses_counts_when_skmisc_is_present():
    pytest.importorskip("skmisc")
    out = gs.pp.prepare(_make(), n_top_genes=40, copy=True)
    assert out["rna"].uns["groove_prepare"]["hvg_flavor"] == "seurat_v3"
    out = gs.pp.prepare(_make(), n_top_genes=40, hvg_flavor="seurat", copy=True)
    assert out["rna"].uns["groove_prepare"]["hvg_flavor"] == "seurat"
    assert out["rna"].n_vars == 40


def test_counts_layer_is_used_when_present_and_hvg_flag_without_subset():
    mdata = _make(counts_in_layer=True)
    counts = _dense(mdata["rna"].layers["counts"]).copy()
    out = gs.pp.prepare(mdata, n_top_genes=30, subset_hvg=False, batch_key="batch", copy=True)
    rna = out["rna"]
    assert rna.n_vars == mdata["rna"].n_vars
    assert rna.var["highly_variable"].sum() == 30
    np.testing.assert_array_equal(_dense(rna.layers["counts"]), counts)
    expected = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4)
    np.testing.assert_allclose(_dense(rna.X), expected, rtol=1e-4, atol=1e-5)


def test_n_top_genes_none_keeps_all_genes():
    out = gs.pp.prepare(_make(n_genes=40), n_top_genes=None, copy=True)
    assert out["rna"].n_vars == 40
    assert out["rna"].var["highly_variable"].all()


def test_protein_clr_matches_muon():
    import muon as mu

    mdata = _make()
    counts = _dense(mdata["prot"].X).copy()
    out = gs.pp.prepare(mdata, n_top_genes=None, copy=True)
    ref = ad.AnnData(X=counts.copy())
    mu.prot.pp.clr(ref)
    np.testing.assert_allclose(_dense(out["prot"].X), _dense(ref.X), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(_dense(out["prot"].layers["counts"]), counts)
    # Seurat's CLR: log1p(x / geometric mean of (1 + x)); axis=0 over cells, axis=1 over proteins
    for axis in (0, 1):
        out_ax = gs.pp.prepare(mdata, n_top_genes=None, clr_axis=axis, copy=True)
        g = np.exp(np.log1p(counts).mean(axis=axis, keepdims=True))
        np.testing.assert_allclose(_dense(out_ax["prot"].X), np.log1p(counts / g), rtol=1e-4)
    # preparing twice gives the same protein values (CLR is recomputed from the counts)
    again = gs.pp.prepare(out, n_top_genes=None, copy=True)
    np.testing.assert_allclose(_dense(again["prot"].X), _dense(out["prot"].X), rtol=1e-6)


def test_continuous_protein_without_counts_is_left_alone():
    mdata = _make()
    x = np.random.default_rng(1).normal(size=mdata["prot"].shape).astype(np.float32)
    mdata["prot"].X = x
    out = gs.pp.prepare(mdata, n_top_genes=None, copy=True)
    np.testing.assert_array_equal(_dense(out["prot"].X), x)
    assert "counts" not in out["prot"].layers
    assert out["prot"].uns["groove_prepare"]["clr"] is False


def test_atac_binarised_and_counts_kept():
    mdata = _make(n_peaks=50)
    counts = _dense(mdata["atac"].X).copy()
    out = gs.pp.prepare(mdata, n_top_genes=None, copy=True)
    x = _dense(out["atac"].X)
    assert set(np.unique(x)) <= {0.0, 1.0}
    np.testing.assert_array_equal(x, (counts > 0).astype(np.float32))
    np.testing.assert_array_equal(_dense(out["atac"].layers["counts"]), counts)


def test_recipes_override_and_in_place():
    mdata = _make()
    mdata.mod["gex"] = mdata.mod.pop("rna")  # a name the default mapping knows
    mdata.update()
    res = gs.pp.prepare(mdata, recipes={"prot": "none"}, n_top_genes=25, copy=False)
    assert res is None
    assert mdata["gex"].n_vars == 25 and "counts" in mdata["gex"].layers
    assert "groove_prepare" not in mdata["prot"].uns  # 'none': untouched
    assert mdata.n_vars == 25 + mdata["prot"].n_vars


def test_errors():
    mdata = _make()
    with pytest.raises(KeyError, match="not in mdata.mod"):
        gs.pp.prepare(mdata, recipes={"nope": "rna"})
    with pytest.raises(ValueError, match="Unknown recipe"):
        gs.pp.prepare(mdata, recipes={"rna": "scrna"})
    with pytest.raises(KeyError, match="batch_key"):
        gs.pp.prepare(mdata, batch_key="missing")
    with pytest.raises(TypeError, match="MuData"):
        gs.pp.prepare(mdata["rna"])
    mdata["rna"].X = sp.csr_matrix(_dense(mdata["rna"].X) * 0.5 + 0.1)
    with pytest.raises(ValueError, match="raw counts"):
        gs.pp.prepare(mdata)


def test_prepare_on_loader_layout(tmp_path):
    """The paired layout returned by the real-data loaders goes through prepare."""
    from groove_sc.datasets._real import _frangieh_to_groove

    rng = np.random.default_rng(3)
    n = 60
    obs = pd.DataFrame(
        {"perturbation": ["control", "JAK1", "B2M"] * 20, "perturbation_2": "IFNγ"},
        index=[f"bc{i}" for i in range(n)],
    )
    rna = ad.AnnData(X=sp.csr_matrix(rng.poisson(1.5, (n, 80)).astype(np.float32)), obs=obs)
    rna.var_names = [f"G{j}" for j in range(80)]
    prot = ad.AnnData(X=rng.poisson(20, (n, 5)).astype(np.float32), obs=obs.copy())
    prot.var_names = [f"P{j}" for j in range(5)]
    mdata = _frangieh_to_groove(rna, prot)
    out = gs.pp.prepare(mdata, n_top_genes=30, copy=True)
    assert out["rna"].n_vars == 30
    np.testing.assert_array_equal(out["rna"].obs["cell_id"], out["prot"].obs["cell_id"])
    np.testing.assert_allclose(_dense(out["prot"].X), _dense(mdata["prot"].X), rtol=1e-5)


def test_a_new_recipe_is_one_registry_entry(monkeypatch):
    from groove_sc.pp._prepare import RECIPES

    def log_counts(adata, name, *, counts_layer, **_):
        adata.layers[counts_layer] = adata.X.copy()
        adata.X = np.log1p(_dense(adata.X)).astype(np.float32)
        return adata, {"recipe": "log_counts"}

    monkeypatch.setitem(RECIPES, "log_counts", log_counts)
    mdata = _make()
    raw = _dense(mdata["prot"].X).copy()
    gs.pp.prepare(mdata, recipes={"prot": "log_counts", "rna": "none"})
    np.testing.assert_allclose(_dense(mdata["prot"].X), np.log1p(raw), rtol=1e-6)
    assert mdata["prot"].uns["groove_prepare"]["recipe"] == "log_counts"
    with pytest.raises(ValueError, match=r"one of \['atac', 'log_counts', 'protein', 'rna'\]"):
        gs.pp.prepare(mdata, recipes={"prot": "scrna"})
