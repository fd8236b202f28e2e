"""tl.impute: barycentric projection vs a dense reference, storage, NaN rows, decoder layer."""

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import groove_sc as gs
from conftest import strict_warnings
from groove_sc._mudata import extract_block


def make_pair(sizes_s=(8, 6), sizes_t=(7, 5), seed=0, **align_kw):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, (max(len(sizes_s), len(sizes_t)), 3))

    def modality(prefix, sizes, n_vars):
        grp = np.repeat(np.arange(len(sizes)), sizes)
        obs = pd.DataFrame(
            {"perturbation": pd.Categorical([f"g{i}" for i in grp])},
            index=[f"{prefix}:c{i}" for i in range(len(grp))],
        )
        adata = ad.AnnData(rng.normal(size=(len(grp), n_vars)).astype(np.float32), obs=obs)
        adata.var_names = [f"{prefix}_f{j}" for j in range(n_vars)]
        adata.layers["counts"] = rng.poisson(3.0, (len(grp), n_vars)).astype(np.float32)
        adata.obsm["X_groove"] = (centers[grp] + rng.normal(size=(len(grp), 3))).astype(np.float32)
        return adata

    mdata = md.MuData({"rna": modality("rna", sizes_s, 6), "prot": modality("prot", sizes_t, 4)})
    gs.tl.align(mdata, "rna", "prot", method="leot", **align_kw)
    return mdata


def dense_reference(mdata, values, key="groove_coupling"):
    P = extract_block(mdata, key, "rna", "prot").toarray()
    return (P / P.sum(1, keepdims=True)) @ values


class FakeModel:
    def __init__(self, shape):
        self.shape = shape
        self.calls = []

    def get_imputed_values(self, source, target):
        self.calls.append((source, target))
        return np.arange(np.prod(self.shape), dtype=np.float32).reshape(self.shape)


def test_impute_equals_dense_reference_and_round_trips(tmp_path):
    mdata = make_pair()
    n_obs = mdata.n_obs
    gs.tl.impute(mdata, "rna", "prot")
    imp = mdata["prot_imputed"]
    ref = dense_reference(mdata, mdata["prot"].X)
    assert np.allclose(imp.X, ref, atol=1e-6)
    assert np.array_equal(imp.layers["ot"], imp.X)
    assert list(imp.obs_names) == list(mdata["rna"].obs_names)
    assert list(imp.var_names) == [f"{v}:prot_imputed" for v in mdata["prot"].var_names]
    assert list(imp.var["target_var_name"]) == list(mdata["prot"].var_names)
    assert mdata.n_obs == n_obs  # the imputed cells are the source cells
    assert imp.uns["imputation"]["coupling_key"] == "groove_coupling"

    mdata.write(tmp_path / "imp.h5mu")
    back = md.read_h5mu(tmp_path / "imp.h5mu")
    assert np.allclose(back["prot_imputed"].X, imp.X)
    assert np.allclose(back["prot_imputed"].layers["ot"], imp.X)
    assert back.obsp["groove_coupling"].shape == (n_obs, n_obs)


def test_impute_layer_and_sparse_target():
    mdata = make_pair()
    mdata["prot"].layers["sparse"] = sp.csr_matrix(mdata["prot"].layers["counts"])
    gs.tl.impute(mdata, "rna", "prot", layer="sparse", key_added="counts_hat")
    ref = dense_reference(mdata, mdata["prot"].layers["counts"])
    assert isinstance(mdata["counts_hat"].X, np.ndarray)
    assert np.allclose(mdata["counts_hat"].X, ref, atol=1e-5)
    assert mdata["counts_hat"].uns["imputation"]["layer"] == "sparse"


def test_impute_reversed_coupling_is_transposed():
    mdata = make_pair()
    gs.tl.align(mdata, "prot", "rna", method="leot", key_added="back")
    gs.tl.impute(mdata, "rna", "prot", coupling_key="back", key_added="via_back")
    P = extract_block(mdata, "back", "prot", "rna").toarray().T
    ref = (P / P.sum(1, keepdims=True)) @ mdata["prot"].X
    assert np.allclose(mdata["via_back"].X, ref, atol=1e-6)


def test_unmatched_source_cells_get_nan_rows_with_warning():
    with pytest.warns(UserWarning, match="leaves out cells"):
        mdata = make_pair(sizes_s=(8, 6, 3), sizes_t=(7, 5), unmatched="drop")  # g2 only in rna
    with pytest.warns(UserWarning, match="3 of 17 'rna' cells have no mass.*unmatched='couple'"):
        gs.tl.impute(mdata, "rna", "prot")
    X = mdata["prot_imputed"].X
    assert np.isnan(X[-3:]).all() and np.isfinite(X[:-3]).all()
    assert mdata["prot_imputed"].uns["imputation"]["n_unmatched"] == 3


def test_decoder_layer_from_model():
    mdata = make_pair()
    model = FakeModel((mdata["rna"].n_obs, mdata["prot"].n_vars))
    gs.tl.impute(mdata, "rna", "prot", model=model)
    assert model.calls == [("rna", "prot")]
    assert np.array_equal(mdata["prot_imputed"].layers["decoder"], model.get_imputed_values("", ""))
    with pytest.raises(ValueError, match="returned shape"):
        gs.tl.impute(mdata, "rna", "prot", model=FakeModel((3, 3)))


def test_impute_bad_input():
    mdata = make_pair()
    with pytest.raises(KeyError, match="'missing' is not in mdata.obsp"):
        gs.tl.impute(mdata, "rna", "prot", coupling_key="missing")
    with pytest.raises(KeyError, match=r"layer 'raw' is not in mdata\['prot'\]\.layers"):
        gs.tl.impute(mdata, "rna", "prot", layer="raw")
    with pytest.raises(ValueError, match="would replace an input modality"):
        gs.tl.impute(mdata, "rna", "prot", key_added="rna")
    assert set(mdata.mod) == {"rna", "prot"}


def test_impute_is_quiet_and_names_features_uniquely():
    mdata = make_pair()
    with strict_warnings():  # no mudata FutureWarning, no "var_names are not unique"
        gs.tl.impute(mdata, "rna", "prot", key_added="a")
        gs.tl.impute(mdata, "rna", "prot", key_added="b", var_suffix="_b")
    assert mdata["a"].var_names[0] == f"{mdata['prot'].var_names[0]}:a"
    assert mdata["b"].var_names[0] == f"{mdata['prot'].var_names[0]}_b"
    assert mdata["b"].uns["imputation"]["var_suffix"] == "_b"
    names = [v for m in mdata.mod.values() for v in m.var_names]
    assert len(names) == len(set(names)) and mdata.var_names.is_unique
    assert list(mdata["a"].obs_names) == list(mdata["rna"].obs_names)


def test_nan_rows_warning_quotes_why_align_could_not_couple():
    mdata = make_pair(sizes_s=(8, 6, 3), sizes_t=(7, 5))
    for m, d in (("rna", 3), ("prot", 2)):  # one space per modality: no shared representation
        mdata[m].obsm["X_own"] = np.asarray(mdata[m].obsm["X_groove"])[:, :d]
    with pytest.warns(UserWarning, match="stay uncoupled"):
        gs.tl.align(
            mdata, "rna", "prot", method="egwl", use_rep={"rna": "X_own", "prot": "X_own"},
            epsilon=0.1, key_added="gw",
        )  # fmt: skip
    reason = mdata.uns["gw"]["unmatched"]["reason"]
    with pytest.warns(UserWarning, match="tl.align could not couple them") as record:
        gs.tl.impute(mdata, "rna", "prot", coupling_key="gw", key_added="imp")
    assert reason in str(record[0].message) and "unmatched='couple'" not in str(record[0].message)
