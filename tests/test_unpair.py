"""Tests of groove_sc.pp.unpair."""

from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
from mudata import MuData

import groove_sc as gs


def coassayed(n=40, seed=0, extra_rna=0):
    """CITE-seq-like MuData: the same barcodes in both modalities, a global label column."""
    rng = np.random.default_rng(seed)
    barcodes = [f"BC{i:03d}" for i in range(n)]
    rna = ad.AnnData(rng.poisson(2.0, (n + extra_rna, 5)).astype(np.float32))
    rna.obs_names = barcodes + [f"ONLYRNA{i}" for i in range(extra_rna)]
    rna.var_names = [f"g{j}" for j in range(5)]
    rna.obs["n_genes"] = np.arange(n + extra_rna)
    prot = ad.AnnData(rng.normal(size=(n, 3)).astype(np.float32))
    prot.obs_names = barcodes[::-1]  # another order
    prot.var_names = [f"p{j}" for j in range(3)]
    mdata = MuData({"rna": rna, "prot": prot})
    mdata.update()
    groups = np.array(["control", "A", "B", "C"])[np.arange(len(mdata.obs_names)) % 4]
    mdata.obs["perturbation"] = pd.Categorical(groups)
    return mdata


def _row_of(adata, name):
    return adata.obs_names.get_loc(name)


def test_same_split_keeps_every_cell_with_truth():
    mdata = coassayed()
    out = gs.pp.unpair(mdata, split="same", seed=0)
    assert out is not mdata
    for m in ("rna", "prot"):
        a = out[m]
        assert a.n_obs == 40
        assert all(n.startswith(f"{m}:BC") for n in a.obs_names)
        np.testing.assert_array_equal(a.obs_names.str.replace(f"{m}:", ""), a.obs["cell_id"])
        # rows carry the original data of the same barcode
        orig = mdata[m]
        for name in a.obs["cell_id"][:5]:
            np.testing.assert_array_equal(
                a.X[_row_of(a, f"{m}:{name}")], orig.X[_row_of(orig, name)]
            )
        # global label copied, categorical kept, values follow the barcode
        assert isinstance(a.obs["perturbation"].dtype, pd.CategoricalDtype)
        np.testing.assert_array_equal(
            a.obs["perturbation"].astype(str),
            mdata.obs.loc[a.obs["cell_id"], "perturbation"].astype(str),
        )
    assert out.n_obs == 80
    src, tgt = gs.metrics.truth_pairs(out, "rna", "prot")
    assert len(src) == 40
    np.testing.assert_array_equal(
        out["rna"].obs["cell_id"].to_numpy()[src], out["prot"].obs["cell_id"].to_numpy()[tgt]
    )
    # rows are shuffled independently per modality; shuffle=False keeps the original order
    assert (out["rna"].obs["cell_id"].to_numpy() != mdata["rna"].obs_names).any()
    kept = gs.pp.unpair(mdata, shuffle=False)
    np.testing.assert_array_equal(kept["prot"].obs["cell_id"], mdata["prot"].obs_names)
    assert out.uns["unpair"]["split"] == "same" and out.uns["unpair"]["n_shared"] == 40


def test_input_is_not_modified():
    mdata = coassayed()
    names = {m: mdata[m].obs_names.copy() for m in mdata.mod}
    obs_cols = {m: list(mdata[m].obs.columns) for m in mdata.mod}
    x = mdata["rna"].X.copy()
    gs.pp.unpair(mdata, split="disjoint", groupby="perturbation", seed=1)
    for m in mdata.mod:
        assert (mdata[m].obs_names == names[m]).all()
        assert list(mdata[m].obs.columns) == obs_cols[m]
    np.testing.assert_array_equal(mdata["rna"].X, x)
    assert "unpair" not in mdata.uns


def test_disjoint_split_is_a_balanced_partition():
    mdata = coassayed(n=41)
    mdata["rna"].obs["perturbation"] = mdata.obs.loc[mdata["rna"].obs_names, "perturbation"]
    out = gs.pp.unpair(mdata, split="disjoint", groupby="perturbation", seed=3)
    ids = {m: set(out[m].obs["cell_id"]) for m in ("rna", "prot")}
    assert not ids["rna"] & ids["prot"]
    assert ids["rna"] | ids["prot"] == set(mdata["rna"].obs_names)
    assert abs(len(ids["rna"]) - len(ids["prot"])) <= 1
    # stratified: every group is divided evenly
    for g in ("control", "A", "B", "C"):
        counts = [int((out[m].obs["perturbation"] == g).sum()) for m in ("rna", "prot")]
        assert abs(counts[0] - counts[1]) <= 1, (g, counts)
    with pytest.raises(ValueError, match="no truth"):
        gs.metrics.truth_pairs(out, "rna", "prot")
    # deterministic per seed, different across seeds
    again = gs.pp.unpair(mdata, split="disjoint", groupby="perturbation", seed=3)
    np.testing.assert_array_equal(again["rna"].obs_names, out["rna"].obs_names)
    other = gs.pp.unpair(mdata, split="disjoint", groupby="perturbation", seed=4)
    assert set(other["rna"].obs["cell_id"]) != ids["rna"]


def test_disjoint_three_modalities():
    rng = np.random.default_rng(0)
    mods = {}
    for m, p in (("rna", 4), ("prot", 2), ("atac", 3)):
        a = ad.AnnData(rng.normal(size=(30, p)).astype(np.float32))
        a.obs_names = [f"c{i}" for i in range(30)]
        a.var_names = [f"{m}{j}" for j in range(p)]
        mods[m] = a
    out = gs.pp.unpair(MuData(mods), split="disjoint", seed=0)
    sizes = [out[m].n_obs for m in ("rna", "prot", "atac")]
    assert sizes == [10, 10, 10]
    assert len(set().union(*(set(out[m].obs["cell_id"]) for m in out.mod))) == 30
    sub = gs.pp.unpair(MuData(mods), modalities=["atac", "prot"], seed=0)
    assert list(sub.mod) == ["atac", "prot"] and sub["atac"].n_obs == 30


def test_cells_missing_from_a_modality_are_dropped_with_a_warning():
    mdata = coassayed(n=20, extra_rna=3)
    with pytest.warns(UserWarning, match="dropped per modality"):
        out = gs.pp.unpair(mdata)
    assert out["rna"].n_obs == out["prot"].n_obs == 20
    assert out.uns["unpair"]["n_shared"] == 20


def test_pairs_by_truth_column_and_keeps_existing_prefix():
    paired = gs.datasets.simulate(n_perturbations=3, cells_per_perturbation=10, paired=True)
    out = gs.pp.unpair(paired, split="disjoint", groupby="perturbation_true", seed=0)
    assert out.uns["unpair"]["paired_by"] == "column"
    for m in ("rna", "prot"):
        assert all(n.startswith(f"{m}:cell") for n in out[m].obs_names)  # no "rna:rna:"
        np.testing.assert_array_equal(
            out[m].obs_names.str.replace(f"{m}:", ""), out[m].obs["cell_id"]
        )
    assert out["rna"].n_obs + out["prot"].n_obs == paired["rna"].n_obs
    assert "simulation" in out.uns  # uns is carried over
    same = gs.pp.unpair(paired, split="same", seed=0)
    r = same["rna"].obs.set_index("cell_id")
    p = same["prot"].obs.set_index("cell_id")
    np.testing.assert_array_equal(
        r.loc[p.index, "perturbation_true"].astype(str), p["perturbation_true"].astype(str)
    )


def test_output_writes_to_h5mu(tmp_path):
    out = gs.pp.unpair(coassayed(), split="disjoint", seed=0)
    out.write(tmp_path / "u.h5mu")
    back = md.read_h5mu(tmp_path / "u.h5mu")
    assert (back["rna"].obs_names == out["rna"].obs_names).all()
    assert back.uns["unpair"]["split"] == "disjoint"


def test_bad_input():
    mdata = coassayed()
    with pytest.raises(ValueError, match="at least two"):
        gs.pp.unpair(mdata, modalities=["rna"])
    with pytest.raises(KeyError, match="atac"):
        gs.pp.unpair(mdata, modalities=["rna", "atac"])
    with pytest.raises(ValueError, match="split"):
        gs.pp.unpair(mdata, split="half")
    with pytest.raises(KeyError, match="groupby"):
        gs.pp.unpair(mdata, split="disjoint", groupby="dose")
    with pytest.raises(TypeError, match="MuData"):
        gs.pp.unpair(mdata["rna"])
    # already weakly paired (disjoint names, no truth column): nothing to pair
    unpaired = gs.datasets.simulate(n_perturbations=2, cells_per_perturbation=5, seed=0)
    for m in unpaired.mod:
        del unpaired[m].obs["cell_id"]
    with pytest.raises(ValueError, match="No cell is measured in all"):
        gs.pp.unpair(unpaired)
    dup = coassayed()
    for m in dup.mod:
        dup[m].obs["cell_id"] = "same"
    with pytest.raises(ValueError, match="not unique"):
        gs.pp.unpair(dup)
