"""tl.average_couplings: the weighted mean of stored couplings, with its record."""

import mudata
import numpy as np
import pytest

import groove_sc as gs
from groove_sc._mudata import extract_block


@pytest.fixture
def aligned():
    mdata = gs.datasets.simulate(
        n_perturbations=3, cells_per_perturbation=12, n_features={"rna": 20, "prot": 5},
        paired=True, seed=2,
    )  # fmt: skip
    gs.tl.align(mdata, "rna", "prot", use_rep="X_true_shared", key_added="a")
    gs.tl.align(mdata, "rna", "prot", use_rep="X_true", method="egwl", key_added="b")
    return mdata


def test_average_is_the_weighted_mean_and_keeps_mass(aligned, tmp_path):
    a = extract_block(aligned, "a", "rna", "prot").toarray()
    b = extract_block(aligned, "b", "rna", "prot").toarray()
    gs.tl.average_couplings(aligned, ["a", "b"], weights=[3, 1], key_added="ab")
    got = extract_block(aligned, "ab", "rna", "prot").toarray()
    np.testing.assert_allclose(got, 0.75 * a + 0.25 * b, rtol=1e-12, atol=1e-15)
    assert np.isclose(got.sum(), 1.0)
    # nothing outside the source x target block
    assert aligned.obsp["ab"].nnz == np.count_nonzero(got)
    meta = aligned.uns["ab"]
    assert (meta["source"], meta["target"], meta["method"]) == ("rna", "prot", "average")
    assert list(meta["methods"]) == ["leot", "egwl"]
    np.testing.assert_allclose(meta["weights"], [0.75, 0.25])
    # the average is a coupling like any other: impute and score it, and it survives .h5mu
    gs.tl.impute(aligned, "rna", "prot", coupling_key="ab", key_added="prot_ab")
    assert aligned["prot_ab"].shape == (aligned["rna"].n_obs, aligned["prot"].n_vars)
    assert np.isfinite(gs.metrics.evaluate_matching(aligned, "ab")["foscttm_barycentric"])
    aligned.write(tmp_path / "avg.h5mu")
    back = mudata.read_h5mu(tmp_path / "avg.h5mu")
    np.testing.assert_allclose(extract_block(back, "ab", "rna", "prot").toarray(), got)
    assert list(back.uns["ab"]["averaged"]) == ["a", "b"]


def test_average_of_one_coupling_is_itself_and_copy_leaves_input(aligned):
    out = gs.tl.average_couplings(aligned, "a", key_added="a1", copy=True)
    assert "a1" not in aligned.obsp
    np.testing.assert_allclose(out.obsp["a1"].toarray(), aligned.obsp["a"].toarray())


def test_average_refuses_bad_input(aligned):
    with pytest.raises(KeyError, match=r"'nope' is not in mdata.obsp \(available: \["):
        gs.tl.average_couplings(aligned, ["a", "nope"])
    with pytest.raises(ValueError, match="at least one"):
        gs.tl.average_couplings(aligned, [])
    with pytest.raises(ValueError, match="weights must be 2"):
        gs.tl.average_couplings(aligned, ["a", "b"], weights=[1, -1])
    gs.tl.align(aligned, "prot", "rna", use_rep="X_true_shared", key_added="back")
    with pytest.raises(ValueError, match="same source and target"):
        gs.tl.average_couplings(aligned, ["a", "back"])
