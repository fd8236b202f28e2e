"""Real-data loaders, tested offline on small fixture files in the downloaded formats."""

from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from pooch.hashes import file_hash

import groove_sc as gs
from groove_sc._mudata import check_disjoint_obs_names
from groove_sc.datasets import _real

RNG_SEED = 0


def _counts(rng, n, p, lam=2.0):
    return rng.poisson(lam, size=(n, p)).astype(np.float32)


@pytest.fixture
def papalexi_file(tmp_path):
    """A small .h5mu in the layout of pertpy's papalexi_2021 file (rna/adt/hto/gdo)."""
    rng = np.random.default_rng(RNG_SEED)
    n = 40
    barcodes = [f"l1_AAAC{i:04d}" for i in range(n)]
    targets = np.array(["NT", "STAT2", "IRF1", "CUL3"] * 10, dtype=object)
    guides = np.array([f"{t}g{i % 2 + 1}" for i, t in enumerate(targets)], dtype=object)
    status = np.where(targets == "NT", "NT", "Perturbed")
    obs = pd.DataFrame(
        {
            "orig.ident": "l1",
            "nCount_RNA": rng.integers(1000, 5000, n).astype(float),
            "guide_ID": guides,
            "gene_target": targets,
            "NT": np.where(targets == "NT", "NT", guides),
            "perturbation": status,
            "replicate": np.array(["rep1", "rep2"] * 20),
            "Phase": np.array(["G1", "S", "G2M", "G1"] * 10),
        },
        index=barcodes,
    )
    obs["gene_target"] = obs["gene_target"].astype("category")
    mods = {
        "rna": ad.AnnData(
            X=sp.csr_matrix(_counts(rng, n, 30)),
            obs=obs.copy(),
            var=pd.DataFrame(
                {"name": [f"G{j}" for j in range(30)]}, index=[f"G{j}" for j in range(30)]
            ),
        ),
        "adt": ad.AnnData(
            X=sp.csr_matrix(_counts(rng, n, 4, lam=20)),
            obs=obs.copy(),
            var=pd.DataFrame(index=["PDL1", "PDL2", "CD366", "CD86"]),
        ),
        "hto": ad.AnnData(X=sp.csr_matrix(_counts(rng, n, 3)), obs=obs.copy()),
        "gdo": ad.AnnData(X=sp.csr_matrix(_counts(rng, n, 5)), obs=obs.copy()),
    }
    mods["hto"].var_names = [f"HTO{j}" for j in range(3)]
    mods["gdo"].var_names = [f"gRNA{j}" for j in range(5)]
    path = tmp_path / "papalexi_2021.h5mu"
    md.MuData(mods).write_h5mu(path)
    return path, mods


@pytest.fixture
def frangieh_files(tmp_path):
    """Small scPerturb-style FrangiehIzar2021 RNA and protein .h5ad files."""
    rng = np.random.default_rng(RNG_SEED + 1)
    n = 36
    barcodes = [f"CELL_{i:03d}" for i in range(n)]
    pert = np.array(["control", "JAK1", "IFNGR2", "B2M"] * 9, dtype=object)
    pert[5] = np.nan  # a cell without an assigned guide
    obs = pd.DataFrame(
        {
            "perturbation": pert,
            "perturbation_2": np.array(["Control", "IFNγ", "Co-culture"] * 12),
            "guide_id": [f"{p}_{i % 3}" for i, p in enumerate(pert)],
            "nperts": np.ones(n, dtype=int),
            "celltype": "melanoma",
        },
        index=barcodes,
    )
    rna = ad.AnnData(
        X=sp.csr_matrix(_counts(rng, n, 25)),
        obs=obs.copy(),
        var=pd.DataFrame(
            {"ensembl_id": [f"ENSG{j}" for j in range(25)]}, index=[f"G{j}" for j in range(25)]
        ),
    )
    prot_names = ["CD274", "CD44", "HLA_A", "Mouse_IgG1"]
    order = rng.permutation(n)  # the protein file lists the cells in another order
    prot = ad.AnnData(
        X=sp.csr_matrix(_counts(rng, n, len(prot_names), lam=15)),
        obs=obs.iloc[order].copy(),
        var=pd.DataFrame(index=prot_names),
    )
    rna_path = tmp_path / "FrangiehIzar2021_RNA.h5ad"
    prot_path = tmp_path / "FrangiehIzar2021_protein.h5ad"
    rna.write_h5ad(rna_path)
    prot.write_h5ad(prot_path)
    return rna_path, prot_path, rna, prot


def _dense(x):
    return np.asarray(x.toarray() if sp.issparse(x) else x)


def _check_layout(mdata):
    assert set(mdata.mod) == {"rna", "prot"}
    check_disjoint_obs_names(mdata, ["rna", "prot"])
    rna, prot = mdata["rna"], mdata["prot"]
    assert rna.obs_names.str.startswith("rna:").all()
    assert prot.obs_names.str.startswith("prot:").all()
    # the two views of each cell share cell_id, in the same order
    np.testing.assert_array_equal(rna.obs["cell_id"].to_numpy(), prot.obs["cell_id"].to_numpy())
    for a in (rna, prot):
        assert isinstance(a.obs["perturbation"].dtype, pd.CategoricalDtype)
        assert "counts" in a.layers
    # RNA: counts in X and layer; protein: CLR in X, counts in layer
    np.testing.assert_array_equal(_dense(rna.X), _dense(rna.layers["counts"]))
    assert not np.allclose(_dense(prot.X), _dense(prot.layers["counts"]))


def test_read_papalexi_layout(papalexi_file):
    path, mods = papalexi_file
    mdata = gs.datasets.read_papalexi_2021(path)
    _check_layout(mdata)
    rna, prot = mdata["rna"], mdata["prot"]
    assert rna.n_obs == prot.n_obs == 40
    assert list(prot.var_names) == ["PDL1", "PDL2", "CD366", "CD86"]
    # non-targeting "NT" becomes "control", listed first; the target genes are kept
    assert list(rna.obs["perturbation"].cat.categories) == ["control", "CUL3", "IRF1", "STAT2"]
    src = mods["rna"].obs
    expected = np.where(src["gene_target"] == "NT", "control", src["gene_target"].astype(str))
    np.testing.assert_array_equal(rna.obs["perturbation"].astype(str), expected)
    # extra columns kept; the original NT/Perturbed column renamed to 'crispr'
    np.testing.assert_array_equal(rna.obs["guide"], src["guide_ID"])
    np.testing.assert_array_equal(rna.obs["crispr"], src["perturbation"])
    np.testing.assert_array_equal(rna.obs["replicate"], src["replicate"])
    assert (rna.obs["condition"] == "IFNγ").all()
    assert "Phase" in rna.obs
    np.testing.assert_array_equal(rna.obs["cell_id"], mods["rna"].obs_names)
    # counts are the file's counts, cell for cell
    np.testing.assert_array_equal(_dense(rna.layers["counts"]), _dense(mods["rna"].X))
    np.testing.assert_array_equal(_dense(prot.layers["counts"]), _dense(mods["adt"].X))
    assert mdata.uns["dataset"]["name"] == "papalexi_2021"


def test_papalexi_protein_is_muon_clr(papalexi_file):
    import muon as mu

    path, mods = papalexi_file
    mdata = gs.datasets.read_papalexi_2021(path)
    ref = ad.AnnData(X=mods["adt"].X.toarray())
    mu.prot.pp.clr(ref)
    np.testing.assert_allclose(_dense(mdata["prot"].X), _dense(ref.X), rtol=1e-5, atol=1e-6)


def test_papalexi_loader_from_cache(papalexi_file, monkeypatch):
    path, _ = papalexi_file

    def no_network(*args, **kwargs):
        raise AssertionError("the network must not be used when the file is in the cache")

    monkeypatch.setattr("pooch.retrieve", no_network)
    md5 = "md5:" + file_hash(str(path), alg="md5")
    mdata = gs.datasets.papalexi_2021(data_dir=path.parent, known_hash=md5)
    _check_layout(mdata)
    # known_hash=None skips the check; the environment variable sets the cache directory
    monkeypatch.setenv("GROOVE_SC_DATA", str(path.parent))
    assert gs.datasets.cache_dir() == path.parent
    mdata = gs.datasets.papalexi_2021(known_hash=None, download=False)
    assert mdata["rna"].n_obs == 40


def test_pinned_checksum_is_checked_by_default(papalexi_file):
    path, _ = papalexi_file
    # the fixture is not the real file: the pinned MD5 must reject it, with a clear way out
    with pytest.raises(ValueError, match="known_hash=None") as err:
        gs.datasets.papalexi_2021(data_dir=path.parent, download=False)
    assert "419ec1f14615b4423edd6f16b65c55a7" in str(err.value)
    assert "figshare.com/ndownloader/files/36509460" in str(err.value)


def test_offline_error_says_where_to_put_the_file(tmp_path, monkeypatch):
    import requests

    def offline(*args, **kwargs):
        raise requests.exceptions.ConnectionError("Name or service not known")

    monkeypatch.setattr("pooch.retrieve", offline)
    with pytest.raises(gs.datasets.DatasetNotAvailableError) as err:
        gs.datasets.papalexi_2021(data_dir=tmp_path / "cache")
    msg = str(err.value)
    assert "https://figshare.com/ndownloader/files/36509460" in msg
    assert str(tmp_path / "cache" / "papalexi_2021.h5mu") in msg
    assert "GROOVE_SC_DATA" in msg
    # an offline error is a FileNotFoundError, so generic handlers catch it
    assert isinstance(err.value, FileNotFoundError)

    with pytest.raises(gs.datasets.DatasetNotAvailableError) as err:
        gs.datasets.frangieh_2021(data_dir=tmp_path / "cache", download=False)
    assert "zenodo.org/records/13350497/files/FrangiehIzar2021_RNA.h5ad" in str(err.value)
    assert str(tmp_path / "cache" / "FrangiehIzar2021_RNA.h5ad") in str(err.value)


def test_download_goes_to_cache_with_pinned_hash(tmp_path, monkeypatch, papalexi_file):
    src, _ = papalexi_file
    calls = {}

    def fake_retrieve(url, known_hash=None, fname=None, path=None, progressbar=False):
        calls.update(url=url, known_hash=known_hash, fname=fname, path=path)
        target = tmp_path / "dl" / fname
        target.write_bytes(src.read_bytes())
        return str(target)

    monkeypatch.setattr("pooch.retrieve", fake_retrieve)
    mdata = gs.datasets.papalexi_2021(data_dir=tmp_path / "dl", known_hash=None)
    assert calls["url"] == "https://figshare.com/ndownloader/files/36509460"
    assert calls["fname"] == "papalexi_2021.h5mu"
    assert calls["known_hash"] is None
    assert mdata["prot"].n_vars == 4

    (tmp_path / "dl" / "papalexi_2021.h5mu").unlink()
    gs.datasets.papalexi_2021(data_dir=tmp_path / "dl", known_hash="pinned")
    assert calls["known_hash"] == "md5:419ec1f14615b4423edd6f16b65c55a7"


def test_read_frangieh_layout_and_alignment(frangieh_files):
    rna_path, prot_path, rna_src, prot_src = frangieh_files
    mdata = gs.datasets.read_frangieh_2021(rna_path, prot_path)
    _check_layout(mdata)
    rna, prot = mdata["rna"], mdata["prot"]
    assert rna.n_obs == 36
    assert list(prot.var_names) == ["CD274", "CD44", "HLA_A", "Mouse_IgG1"]
    # protein counts follow the RNA cell order although the file lists cells in another order
    for i in [0, 7, 35]:
        bc = rna.obs["cell_id"].iloc[i]
        np.testing.assert_array_equal(
            _dense(prot.layers["counts"][i]), _dense(prot_src[bc].X).ravel()[None, :]
        )
        np.testing.assert_array_equal(
            _dense(rna.layers["counts"][i]), _dense(rna_src[bc].X).ravel()[None, :]
        )
    cats = list(rna.obs["perturbation"].cat.categories)
    assert cats[0] == "control" and set(cats) == {"control", "JAK1", "IFNGR2", "B2M"}
    assert rna.obs["perturbation"].isna().sum() == 1  # unassigned cell stays unlabeled
    assert set(rna.obs["condition"]) == {"Control", "IFNγ", "Co-culture"}
    np.testing.assert_array_equal(rna.obs["guide"], rna_src.obs["guide_id"])
    assert "nperts" in rna.obs and "celltype" in prot.obs


def test_frangieh_conditions_and_cache(frangieh_files):
    rna_path, prot_path, _, _ = frangieh_files
    mdata = gs.datasets.frangieh_2021(
        data_dir=rna_path.parent, conditions=["IFNγ"], known_hash=None, download=False
    )
    assert mdata["rna"].n_obs == 12
    assert (mdata["prot"].obs["condition"] == "IFNγ").all()
    with pytest.raises(ValueError, match="available"):
        gs.datasets.read_frangieh_2021(rna_path, prot_path, conditions=["nope"])
    # per-file override: a wrong hash for one file is reported with that file's name
    with pytest.raises(ValueError, match="FrangiehIzar2021_protein.h5ad"):
        gs.datasets.frangieh_2021(
            data_dir=rna_path.parent,
            known_hash={
                "FrangiehIzar2021_RNA.h5ad": None,
                "FrangiehIzar2021_protein.h5ad": "md5:0",
            },
            download=False,
        )


def test_non_count_rna_is_rejected(tmp_path):
    rna = ad.AnnData(X=np.full((4, 3), 0.5, dtype=np.float32), obs=pd.DataFrame(index=list("abcd")))
    rna.obs["perturbation"] = ["control", "A", "A", "control"]
    prot = ad.AnnData(X=np.ones((4, 2), dtype=np.float32), obs=rna.obs.copy())
    with pytest.raises(ValueError, match="raw"):
        _real._frangieh_to_groove(rna, prot)
