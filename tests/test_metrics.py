"""Tests of groove_sc.metrics against hand-computed examples and brute-force references."""

from __future__ import annotations

import tracemalloc

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from mudata import MuData
from scipy.spatial.distance import cdist
from scipy.stats import pearsonr, spearmanr

import groove_sc as gs
from groove_sc import _mudata
from groove_sc.metrics import _foscttm, _imputation
from groove_sc.metrics._foscttm import closer_fraction

# --------------------------------------------------------------------------------------------
# brute-force references (dense, O(n^2) memory, written independently of the chunked code)


def ref_closer(q, t, partner, ties="half"):
    d = cdist(q, t, "sqeuclidean")
    out = np.empty(len(q))
    for i in range(len(q)):
        others = np.delete(d[i], partner[i])
        dt = d[i, partner[i]]
        less = np.sum(others < dt)
        equal = np.sum(others == dt)
        out[i] = (less + (0.5 * equal if ties == "half" else 0)) / (len(t) - 1)
    return out


def ref_foscttm(x, y, ties="half"):
    idx = np.arange(len(x))
    return np.concatenate([ref_closer(x, y, idx, ties), ref_closer(y, x, idx, ties)]).mean()


# --------------------------------------------------------------------------------------------
# foscttm


def test_foscttm_hand_example():
    x = np.array([[0.0], [1.0], [2.0]])
    y = x + 0.6
    # x0: nothing closer than 0.6; x1: y0 (0.4) closer, y2 (1.6) not -> 1/2; x2: y1 closer -> 1/2
    f_xy, f_yx = gs.metrics.foscttm_per_cell(x, y)
    np.testing.assert_array_equal(f_xy, [0.0, 0.5, 0.5])
    np.testing.assert_array_equal(f_yx, [0.5, 0.5, 0.0])
    assert gs.metrics.foscttm(x, y) == pytest.approx(2 / 6)
    assert gs.metrics.foscttm(x, x) == 0.0


@pytest.mark.parametrize(("chunk_size", "cols"), [(None, 2048), (1, 2048), (7, 10), (1000, 3)])
def test_foscttm_matches_brute_force(chunk_size, cols, monkeypatch):
    monkeypatch.setattr(_foscttm, "COLS_PER_TILE", cols)  # also tile the target axis
    rng = np.random.default_rng(1)
    x = rng.normal(size=(57, 4))
    y = x + rng.normal(scale=0.8, size=x.shape)
    f_xy, f_yx = gs.metrics.foscttm_per_cell(x, y, chunk_size=chunk_size)
    idx = np.arange(57)
    np.testing.assert_array_equal(f_xy, ref_closer(x, y, idx))
    np.testing.assert_array_equal(f_yx, ref_closer(y, x, idx))
    assert gs.metrics.foscttm(x, y, chunk_size=chunk_size) == pytest.approx(ref_foscttm(x, y))
    # well between perfect and chance for this noise level
    assert 0.02 < gs.metrics.foscttm(x, y) < 0.4


def test_foscttm_random_is_about_half():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(400, 3)), rng.normal(size=(400, 3))
    assert gs.metrics.foscttm(x, y) == pytest.approx(0.5, abs=0.03)


@pytest.mark.parametrize("ties", ["half", "strict"])
def test_foscttm_exact_ties_on_integer_grid(ties):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, size=(60, 2)).astype(float)
    y = rng.integers(0, 3, size=(60, 2)).astype(float)
    assert gs.metrics.foscttm(x, y, ties=ties, chunk_size=9) == pytest.approx(
        ref_foscttm(x, y, ties)
    )
    # far from the origin, rounding of the expansion must not break the ties
    off = np.array([1e4, -3e4])
    assert gs.metrics.foscttm(x + off, y + off, ties=ties) == pytest.approx(ref_foscttm(x, y, ties))


def test_foscttm_collapsed_embedding_is_chance_not_perfect():
    z = np.zeros((50, 3))
    assert gs.metrics.foscttm(z, z) == 0.5
    assert gs.metrics.foscttm(z, z, ties="strict") == 0.0


def test_closer_fraction_rectangular_matches_brute_force(monkeypatch):
    monkeypatch.setattr(_foscttm, "COLS_PER_TILE", 6)
    rng = np.random.default_rng(4)
    q, t = rng.normal(size=(23, 5)), rng.normal(size=(41, 5))
    partner = rng.integers(0, 41, size=23)
    np.testing.assert_array_equal(
        closer_fraction(q, t, partner, chunk_size=5), ref_closer(q, t, partner)
    )


def test_foscttm_memory_is_chunked():
    rng = np.random.default_rng(5)
    n = 5000  # a dense n x n float64 matrix would be 200 MB
    x, y = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
    tracemalloc.start()
    gs.metrics.foscttm(x, y)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 40e6  # two 8 MB tiles at a time


def test_foscttm_bad_input():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="same shape"):
        gs.metrics.foscttm(x, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="same shape"):
        gs.metrics.foscttm(x, np.zeros((5, 3)))
    with pytest.raises(ValueError, match="2-d"):
        gs.metrics.foscttm(np.zeros(5), np.zeros(5))
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        gs.metrics.foscttm(bad, x)
    with pytest.raises(ValueError, match="at least 2"):
        gs.metrics.foscttm(np.zeros((1, 2)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="ties"):
        gs.metrics.foscttm(x, x, ties="average")


# --------------------------------------------------------------------------------------------
# evaluate_matching: a hand-built MuData


def _mdata(src_obs, tgt_obs, x_src, x_tgt):
    rna = ad.AnnData(np.asarray(x_src, dtype=np.float32), obs=src_obs)
    prot = ad.AnnData(np.asarray(x_tgt, dtype=np.float32), obs=tgt_obs)
    rna.var_names = [f"g{j}" for j in range(rna.n_vars)]
    prot.var_names = [f"p{j}" for j in range(prot.n_vars)]
    mdata = MuData({"rna": rna, "prot": prot})
    mdata.update()
    return mdata


def _store(mdata, block, key="cpl", groupby="perturbation"):
    mdata.obsp[key] = _mudata.embed_block(mdata, sp.csr_matrix(block), "rna", "prot")
    mdata.uns[key] = {"source": "rna", "target": "prot", "groupby": groupby}


@pytest.fixture
def hand():
    src = pd.DataFrame(
        {
            "cell_id": ["b", "a", "d", "x"],
            "perturbation": pd.Categorical(["g1", "g1", "g2", "g2"]),
            "celltype": pd.Categorical(["B", "B", "A", np.nan]),
        },
        index=["rna:0", "rna:1", "rna:2", "rna:3"],
    )
    tgt = pd.DataFrame(
        {
            "cell_id": ["a", "b", "c", "d", "e"],
            "perturbation": pd.Categorical(["g1", "g1", "g1", "g2", "g2"]),
            "celltype": pd.Categorical(["A", "B", "B", "A", np.nan]),
        },
        index=["prot:0", "prot:1", "prot:2", "prot:3", "prot:4"],
    )
    y = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    mdata = _mdata(src, tgt, np.zeros((4, 2)), y)
    # rna:3 ('x') has no partner; rna:1 has an all-zero row
    block = np.array(
        [
            [0.0, 0.1, 0.1, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.3, 0.1],
            [0.2, 0.0, 0.0, 0.0, 0.2],
        ]
    )
    _store(mdata, block)
    return mdata


def test_evaluate_matching_hand_example(hand):
    res = gs.metrics.evaluate_matching(hand, "cpl", k=(1, 2), label_key="celltype")
    # predictions: rna:0 -> 1.5 (partner at 1, tie with 2) -> 0.5/4; rna:1 no mass -> 0.5;
    # rna:2 -> 0.75*10 + 0.25*11 = 10.25 (partner 10 nearest) -> 0
    assert res["foscttm_barycentric"] == pytest.approx((0.125 + 0.5 + 0.0) / 3)
    assert res["trace"] == pytest.approx((0.5 + 0.0 + 0.75) / 3)
    assert res["trace_random"] == pytest.approx(1 / 5)
    assert res["trace_random_group"] == pytest.approx((1 / 3 + 1 / 3 + 1 / 2) / 3)
    # top-1: rna:0 ties two targets at 0.5 -> 1/2; rna:1 uniform over 5 -> 1/5; rna:2 -> 1
    assert res["top1_accuracy"] == pytest.approx((0.5 + 0.2 + 1.0) / 3)
    assert res["top2_accuracy"] == pytest.approx((1.0 + 0.4 + 1.0) / 3)
    # label transfer: rna:0 -> B (right), rna:1 no mass -> A/B tie (1/2), rna:2 -> A (right)
    assert res["label_transfer_accuracy"] == pytest.approx(2.5 / 3)
    # chance: p_s = (A 1/3, B 2/3), p_t = (A 1/2, B 1/2)
    assert res["label_transfer_accuracy_random"] == pytest.approx(0.5)
    assert res["label_transfer_accuracy_scaled"] == pytest.approx((2.5 / 3 - 0.5) / 0.5)
    # labelled block mass: rna:0 -> B 0.2, rna:2 -> A 0.3 (0.1 to an unlabelled cell excluded)
    assert res["label_diagonal_fraction"] == pytest.approx(1.0)
    assert res["label_diagonal_fraction_random"] == pytest.approx(0.6 * 0.6 + 0.4 * 0.4)
    assert res["label_diagonal_fraction_scaled"] == pytest.approx(1.0)
    assert res["n_pairs"] == 3 and res["n_source"] == 4 and res["n_target"] == 5
    assert res["frac_unmatched"] == pytest.approx(1 / 3)
    assert not any(np.isnan(v) for v in res.values())


def test_evaluate_matching_does_not_modify_input(hand):
    before = hand.obsp["cpl"].copy()
    obs_before = hand["rna"].obs.copy()
    gs.metrics.evaluate_matching(hand, "cpl", label_key="celltype")
    assert (hand.obsp["cpl"] != before).nnz == 0
    pd.testing.assert_frame_equal(hand["rna"].obs, obs_before)


def test_evaluate_matching_target_rep_options(hand):
    y = hand["prot"].X.copy()
    hand["prot"].obsm["Y"] = y
    a = gs.metrics.evaluate_matching(hand, "cpl")
    b = gs.metrics.evaluate_matching(hand, "cpl", target_rep="Y")
    c = gs.metrics.evaluate_matching(hand, "cpl", target_rep=y * 3 + 1)  # affine: same ranks
    assert a == b
    assert a["foscttm_barycentric"] == pytest.approx(c["foscttm_barycentric"])
    with pytest.raises(KeyError, match="neither"):
        gs.metrics.evaluate_matching(hand, "cpl", target_rep="missing")


def _random_paired(n=60, n_t=70, d=3, seed=0):
    """Random paired MuData: the first n target cells are partners of the n source cells."""
    rng = np.random.default_rng(seed)
    n_ids = max(n, n_t)
    perm = rng.permutation(n_ids)[:n]  # source i is cell perm[i]: a pair when perm[i] < n_t
    groups = np.array(["g0", "g1", "g2"])[rng.integers(0, 3, n_ids)]
    tgt_ids = [f"c{i}" for i in range(n_t)]
    t_group = groups[:n_t]
    src = pd.DataFrame(
        {"cell_id": [f"c{i}" for i in perm], "perturbation": pd.Categorical(groups[perm])},
        index=[f"rna:{i}" for i in range(n)],
    )
    tgt = pd.DataFrame(
        {"cell_id": tgt_ids, "perturbation": pd.Categorical(t_group)},
        index=[f"prot:{i}" for i in range(n_t)],
    )
    mdata = _mdata(src, tgt, rng.normal(size=(n, d)), rng.normal(size=(n_t, d)))
    return mdata, perm


def test_evaluate_matching_matches_dense_reference():
    mdata, perm = _random_paired()
    rng = np.random.default_rng(7)
    dense = rng.random((60, 70)) * (rng.random((60, 70)) < 0.15)
    dense[5] = 0.0  # an all-zero row
    dense /= dense.sum()
    _store(mdata, dense)
    res = gs.metrics.evaluate_matching(mdata, "cpl", k=(1, 3, 10))

    y = np.asarray(mdata["prot"].X, dtype=np.float64)
    mass = dense.sum(1, keepdims=True)
    q = np.divide(dense, mass, out=np.zeros_like(dense), where=mass > 0)
    bary = ref_closer(q @ y, y, perm)
    bary[5] = 0.5
    assert res["foscttm_barycentric"] == pytest.approx(bary.mean())
    m = q[np.arange(60), perm]
    assert res["trace"] == pytest.approx(m.mean())
    for k in (1, 3, 10):
        hits = []
        for i in range(60):
            greater = np.sum(q[i] > m[i])
            equal = np.sum(q[i] == m[i])
            hits.append(np.clip((k - greater) / equal, 0, 1))
        assert res[f"top{k}_accuracy"] == pytest.approx(np.mean(hits))
    assert res["frac_unmatched"] == pytest.approx(1 / 60)


def test_evaluate_matching_reference_couplings():
    mdata, perm = _random_paired(n=70, n_t=70)
    labels_s = mdata["rna"].obs["perturbation"].astype(str).to_numpy()
    labels_t = mdata["prot"].obs["perturbation"].astype(str).to_numpy()

    # perfect coupling: each source cell's mass on its partner
    perfect = np.zeros((70, 70))
    perfect[np.arange(70), perm] = 1 / 70
    _store(mdata, perfect, "perfect")
    res = gs.metrics.evaluate_matching(mdata, "perfect")
    assert res["foscttm_barycentric"] == 0.0
    assert res["trace"] == pytest.approx(1.0)
    assert res["top1_accuracy"] == pytest.approx(1.0)

    # every row the same: every prediction is the mean, partners take every rank once -> 0.5
    _store(mdata, np.full((70, 70), 1 / 4900), "flat")
    res = gs.metrics.evaluate_matching(mdata, "flat")
    assert res["foscttm_barycentric"] == pytest.approx(0.5)
    assert res["trace"] == pytest.approx(res["trace_random"])
    assert res["top1_accuracy"] == pytest.approx(1 / 70)

    # label-only uniform coupling: trace equals its random-within-group baseline exactly
    same = (labels_s[:, None] == labels_t[None, :]).astype(float)
    same /= same.sum()
    _store(mdata, same, "label_only")
    res = gs.metrics.evaluate_matching(mdata, "label_only")
    assert res["trace"] == pytest.approx(res["trace_random_group"])
    assert res["top1_accuracy"] == pytest.approx(res["trace_random_group"])
    assert res["trace_random_group"] > 2 * res["trace_random"]  # three groups


def test_label_metrics_match_dense_reference():
    mdata, _ = _random_paired(n=50, n_t=40, seed=3)
    rng = np.random.default_rng(3)
    ls = np.array(["A", "B", "C"])[rng.integers(0, 3, 50)].astype(object)
    lt = np.array(["A", "B", "D"])[rng.integers(0, 3, 40)].astype(object)
    ls[:4] = np.nan
    lt[:3] = np.nan
    mdata["rna"].obs["ct"] = pd.Categorical(ls)
    mdata["prot"].obs["ct"] = pd.Categorical(lt)
    dense = rng.random((50, 40)) * (rng.random((50, 40)) < 0.3)
    dense /= dense.sum()
    _store(mdata, dense)
    res = gs.metrics.evaluate_matching(mdata, "cpl", label_key="ct")

    cats = ["A", "B", "D"]
    ok_s = np.array([isinstance(v, str) for v in ls])
    ok_t = np.array([isinstance(v, str) for v in lt])
    credit = []
    for i in np.flatnonzero(ok_s):
        row = dense[i] / dense[i].sum() if dense[i].sum() > 0 else dense[i]
        score = np.array([row[ok_t & (lt == c)].sum() for c in cats])
        tied = np.isclose(score, score.max(), rtol=0, atol=1e-12)
        credit.append(tied[cats.index(ls[i])] / tied.sum() if ls[i] in cats else 0.0)
    assert res["label_transfer_accuracy"] == pytest.approx(np.mean(credit))
    ps = pd.Series(ls[ok_s]).value_counts(normalize=True)
    pt = pd.Series(lt[ok_t]).value_counts(normalize=True)
    chance = sum(ps[c] * pt.get(c, 0.0) for c in ps.index)
    perfect = np.isin(ls[ok_s], cats).mean()
    assert res["label_transfer_accuracy_random"] == pytest.approx(chance)
    assert res["label_transfer_accuracy_scaled"] == pytest.approx(
        (np.mean(credit) - chance) / (perfect - chance)
    )
    block = dense[np.ix_(ok_s, ok_t)]
    same = ls[ok_s][:, None] == lt[ok_t][None, :]
    diag = block[same].sum() / block.sum()
    assert res["label_diagonal_fraction"] == pytest.approx(diag)
    r = pd.Series(block.sum(1)).groupby(ls[ok_s]).sum() / block.sum()
    c = pd.Series(block.sum(0)).groupby(lt[ok_t]).sum() / block.sum()
    rand = sum(r[k] * c.get(k, 0.0) for k in r.index)
    assert res["label_diagonal_fraction_random"] == pytest.approx(rand)
    perf = sum(r.get(k, 0.0) for k in cats)
    assert res["label_diagonal_fraction_scaled"] == pytest.approx((diag - rand) / (perf - rand))


def test_evaluate_matching_bad_input(hand):
    with pytest.raises(KeyError, match="obsp"):
        gs.metrics.evaluate_matching(hand, "nope")
    with pytest.raises(KeyError, match=r"truth_key=.barcode. is not a column.*cell_id"):
        gs.metrics.evaluate_matching(hand, "cpl", truth_key="barcode")
    with pytest.raises(KeyError, match=r"label_key=.celltype2. is not a column of mdata"):
        gs.metrics.evaluate_matching(hand, "cpl", label_key="celltype2")
    with pytest.raises(ValueError, match="positive"):
        gs.metrics.evaluate_matching(hand, "cpl", k=(0,))
    neg = hand.copy()
    block = np.zeros((4, 5))
    block[0, 0] = -1
    _store(neg, block)
    with pytest.raises(ValueError, match="negative"):
        gs.metrics.evaluate_matching(neg, "cpl")
    dup = hand.copy()
    dup["prot"].obs["cell_id"] = ["a", "a", "c", "d", "e"]
    with pytest.raises(ValueError, match="not unique"):
        gs.metrics.evaluate_matching(dup, "cpl")
    other = hand.copy()
    other["rna"].obs["cell_id"] = ["p", "q", "r", "s"]
    with pytest.raises(ValueError, match="no truth"):
        gs.metrics.evaluate_matching(other, "cpl")


def test_no_partner_in_unpaired_simulation():
    mdata = gs.datasets.simulate(n_perturbations=3, cells_per_perturbation=10, seed=0)
    with pytest.raises(ValueError, match="paired"):
        gs.metrics.truth_pairs(mdata, "rna", "prot")


# --------------------------------------------------------------------------------------------
# truth_pairs and latent_foscttm


def test_truth_pairs_and_latent_foscttm():
    mdata = gs.datasets.simulate(n_perturbations=4, cells_per_perturbation=30, paired=True, seed=1)
    src, tgt = gs.metrics.truth_pairs(mdata, "rna", "prot")
    rna_ids = mdata["rna"].obs["cell_id"].to_numpy()
    prot_ids = mdata["prot"].obs["cell_id"].to_numpy()
    assert len(src) == mdata["rna"].n_obs
    np.testing.assert_array_equal(rna_ids[src], prot_ids[tgt])
    # the oracle shared state matches every cell exactly
    assert gs.metrics.latent_foscttm(mdata, "X_true_shared", "rna", "prot") == 0.0
    # any embedding: equal to foscttm over the pairs, found here with a plain dict
    rng = np.random.default_rng(0)
    for m in ("rna", "prot"):
        mdata[m].obsm["Z"] = rng.normal(size=(mdata[m].n_obs, 3))
    where = {cid: j for j, cid in enumerate(prot_ids)}
    x = mdata["rna"].obsm["Z"]
    y = mdata["prot"].obsm["Z"][[where[c] for c in rna_ids]]
    expected = ref_foscttm(x, y)
    assert gs.metrics.latent_foscttm(mdata, "Z", "rna", "prot") == pytest.approx(expected)
    # the joint mdata.obsm is read when the modality has no such key
    _mudata.set_union_obsm(mdata, "J", {m: mdata[m].obsm.pop("Z") for m in ("rna", "prot")})
    assert gs.metrics.latent_foscttm(mdata, "J", "rna", "prot") == pytest.approx(expected)
    with pytest.raises(KeyError, match="Representation"):
        gs.metrics.latent_foscttm(mdata, "nothing", "rna", "prot")
    with pytest.raises(KeyError, match="atac"):
        gs.metrics.latent_foscttm(mdata, "J", "rna", "atac")


# --------------------------------------------------------------------------------------------
# evaluate_imputation


def test_imputation_hand_example():
    truth = np.array([[1.0, 2.0, 3.0], [2.0, 0.0, 1.0]])
    res = gs.metrics.evaluate_imputation(2 * truth + 1, truth)
    assert res["pearson_cell"] == pytest.approx(1.0)
    assert res["spearman_feature"] == pytest.approx(1.0)
    # errors truth + 1: (4 + 9 + 16 + 9 + 1 + 4) / 6
    assert res["mse"] == pytest.approx(43 / 6)
    res = gs.metrics.evaluate_imputation(-truth, truth)
    assert res["pearson_cell"] == pytest.approx(-1.0)
    assert res["spearman_cell"] == pytest.approx(-1.0)
    # per feature with two cells every correlation is +-1; all three columns decrease
    assert res["pearson_feature"] == pytest.approx(-1.0)
    # control subtraction: truth - c = [[0, 1, 1], [1, -1, -1]]; pred - c = [[1, 0, 1], ...]
    pred = np.array([[2.0, 1.0, 3.0], [2.0, 0.0, 1.0]])
    res = gs.metrics.evaluate_imputation(pred, truth, control=np.array([1.0, 1.0, 2.0]))
    # cell 0: (1, 0, 1) vs (0, 1, 1): centred (1/3, -2/3, 1/3) vs (-2/3, 1/3, 1/3) -> -1/2
    # cell 1: identical -> 1
    assert res["pearson_cell"] == pytest.approx((-0.5 + 1.0) / 2)


def test_imputation_matches_scipy_reference(monkeypatch):
    rng = np.random.default_rng(8)
    truth = rng.normal(size=(40, 12))
    pred = truth + rng.normal(size=truth.shape)
    pred[:, 3] = np.round(pred[:, 3])  # ties for Spearman
    truth[7] = 2.5  # a constant cell: undefined, left out
    pred[:, 5] = 1.0  # a constant feature: undefined, left out
    ctrl = rng.normal(size=(9, 12))

    def reference(p, t):
        def mean_corr(f, a, b):
            vals = [
                f(a[i], b[i])[0] for i in range(len(a)) if np.ptp(a[i]) > 0 and np.ptp(b[i]) > 0
            ]
            return np.mean(vals)

        return {
            "pearson_cell": mean_corr(pearsonr, p, t),
            "spearman_cell": mean_corr(spearmanr, p, t),
            "pearson_feature": mean_corr(pearsonr, p.T, t.T),
            "spearman_feature": mean_corr(spearmanr, p.T, t.T),
            "mse": np.mean((p - t) ** 2),
        }

    c = ctrl.mean(0)
    cases = [
        ({}, reference(pred, truth)),
        ({"control": ctrl}, reference(pred - c, truth - c)),
        ({"control": np.abs(c) + 1, "control_mode": "divide"}, None),
    ]
    cases[2] = (cases[2][0], reference(pred / (np.abs(c) + 1), truth / (np.abs(c) + 1)))
    for kwargs, ref in cases:
        for block in (None, 30):  # also walk rows and columns in tiny blocks
            if block:
                monkeypatch.setattr(_imputation, "_BLOCK_ENTRIES", block)
            res = gs.metrics.evaluate_imputation(pred, truth, **kwargs)
            for key, val in ref.items():
                assert res[key] == pytest.approx(val), (kwargs, key)
            assert res["n_cells_undefined"] == (0 if "control" in kwargs else 1)
            assert res["n_features_undefined"] == 1
    # sparse input gives the same numbers
    dense = gs.metrics.evaluate_imputation(pred, truth)
    assert gs.metrics.evaluate_imputation(sp.csr_matrix(pred), sp.csc_matrix(truth)) == dense


def test_imputation_bad_input():
    a = np.ones((4, 3))
    with pytest.raises(ValueError, match="same shape"):
        gs.metrics.evaluate_imputation(a, np.ones((4, 2)))
    bad = np.arange(12.0).reshape(4, 3)
    bad[2, 0] = np.nan
    with pytest.raises(ValueError, match="'pred' contains NaN.*row 2"):
        gs.metrics.evaluate_imputation(bad, a)
    with pytest.raises(ValueError, match="'truth' contains NaN"):
        gs.metrics.evaluate_imputation(a, bad)
    with pytest.raises(ValueError, match="3 features"):
        gs.metrics.evaluate_imputation(a, a, control=np.ones(5))
    with pytest.raises(ValueError, match="strictly positive"):
        gs.metrics.evaluate_imputation(a, a, control=np.zeros(3), control_mode="divide")
    with pytest.raises(ValueError, match="control_mode"):
        gs.metrics.evaluate_imputation(a, a, control_mode="ratio")
    # all-constant input: every correlation undefined, reported as NaN with the counts
    res = gs.metrics.evaluate_imputation(a, a)
    assert np.isnan(res["pearson_cell"]) and res["n_cells_undefined"] == 4
    assert res["mse"] == 0.0
