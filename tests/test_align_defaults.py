"""tl.align defaults: the truth-free epsilon="auto" and every source cell coupled."""

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest

import groove_sc as gs
from groove_sc._mudata import extract_block
from groove_sc.tl._aligners._auto_epsilon import choose_guarded, hidden_mass


def make_paired(n_groups=6, k=40, d=4, signal=1.0, seed=0):
    """Two noisy views of the same cells; within-group structure shared with weight ``signal``."""
    rng = np.random.default_rng(seed)
    grp = np.repeat(np.arange(n_groups), k)
    centers = rng.normal(0, 4, (n_groups, d))
    inner = rng.normal(0, 1, (len(grp), d))

    def view(prefix):
        own = rng.normal(0, 1, (len(grp), d))
        z = centers[grp] + signal * inner + (1 - signal) * own + rng.normal(0, 0.1, (len(grp), d))
        obs = pd.DataFrame(
            {"perturbation": pd.Categorical([f"g{i}" for i in grp]),
             "cell_id": [f"c{i}" for i in range(len(grp))]},
            index=[f"{prefix}:c{i}" for i in range(len(grp))],
        )  # fmt: skip
        a = ad.AnnData(z.astype(np.float32), obs=obs)
        a.var_names = [f"{prefix}_f{j}" for j in range(d)]
        a.obsm["X_groove"] = z.astype(np.float32)
        return a

    return md.MuData({"rna": view("rna"), "prot": view("prot")})


def label_only_foscttm(mdata):
    gs.benchmark.LEARNERS["labels"](mdata, "X_lab", groupby="perturbation", seed=0)
    gs.tl.align(mdata, "rna", "prot", use_rep="X_lab", method="leot", key_added="lab")
    return gs.metrics.evaluate_matching(mdata, "lab", target_rep="X_groove")["foscttm_barycentric"]


@pytest.mark.parametrize("method", ["leot", "egw"])
def test_auto_epsilon_is_recorded_and_round_trips(method, tmp_path):
    mdata = make_paired()
    gs.tl.align(mdata, "rna", "prot", method=method)
    info = mdata.uns["groove_coupling"]["epsilon_auto"]
    assert info["mode"] == "auto"
    cands = np.asarray(info["candidates"])
    default = gs.tl.ALIGNERS[method].default_epsilon
    assert np.allclose(cands, np.array([1.0, 4.0, 16.0]) * default)
    assert len(info["scores"]) == len(cands) and len(info["projection_auc"]) == len(cands)
    used = mdata.uns["groove_coupling"]["parameters"]["epsilon_relative"]
    assert np.isclose(used, info["chosen"])
    # the search stops at the first candidate (from the default up) that beats chance
    evaluated = np.asarray(info["evaluated"], dtype=bool)
    assert evaluated[0] and np.isfinite(np.asarray(info["scores"])[evaluated]).all()
    first = int(np.argmin(evaluated)) if not evaluated.all() else len(evaluated)
    assert evaluated[:first].all() and not evaluated[first:].any()
    if not info["fallback"]:
        assert np.isclose(info["chosen"], cands[first - 1])
    assert info["chosen"] in cands or info["fallback"]
    mdata.write(tmp_path / "a.h5mu")
    back = md.read_h5mu(tmp_path / "a.h5mu")
    got = back.uns["groove_coupling"]["epsilon_auto"]["scores"]
    assert np.allclose(got, info["scores"], equal_nan=True)
    got = np.asarray(back.uns["groove_coupling"]["epsilon_auto"]["evaluated"], dtype=bool)
    np.testing.assert_array_equal(got, evaluated)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auto_epsilon_never_worse_than_label_only_on_heldout_groups(seed):
    # with shared within-group structure, every chosen candidate beats the label-only answer
    # (score 0) on the held-out groups; the final coupling also beats label-only on the truth
    mdata = make_paired(signal=1.0, seed=seed)
    gs.tl.align(mdata, "rna", "prot", method="leot")
    info = mdata.uns["groove_coupling"]["epsilon_auto"]
    chosen = np.flatnonzero(np.isclose(info["candidates"], info["chosen"]))
    assert not info["fallback"] and info["scores"][chosen[0]] > info["label_only_score"]
    assert info["scores"][chosen[0]] > info["chance_threshold"][chosen[0]]
    got = gs.metrics.evaluate_matching(mdata, "groove_coupling", target_rep="X_groove")
    assert got["foscttm_barycentric"] < label_only_foscttm(mdata)


def test_auto_epsilon_falls_back_without_signal():
    # a representation that carries nothing (noise, independent between the modalities): no
    # candidate beats the label-only coupling on held-out groups -> the smooth fallback
    mdata = make_paired(seed=3)
    rng = np.random.default_rng(3)
    for m in ("rna", "prot"):
        mdata[m].obsm["X_noise"] = rng.normal(size=(mdata[m].n_obs, 4)).astype(np.float32)
    gs.tl.align(mdata, "rna", "prot", use_rep="X_noise", method="leot", key_added="c")
    info = mdata.uns["c"]["epsilon_auto"]
    assert info["fallback"] and np.isclose(info["chosen"], 16 * max(info["candidates"]))
    assert np.all(np.asarray(info["scores"]) <= np.asarray(info["chance_threshold"]))
    # close to the label-only coupling: every row spread nearly evenly over its group
    P = extract_block(mdata, "c", "rna", "prot").toarray()
    groups = mdata["rna"].obs["perturbation"].to_numpy()
    for g in np.unique(groups):
        rows = P[groups == g][:, mdata["prot"].obs["perturbation"].to_numpy() == g]
        share = rows / rows.sum(1, keepdims=True)
        assert share.max() < 2.0 / share.shape[1] and share.min() > 0.4 / share.shape[1]


def test_auto_epsilon_not_applicable_cases():
    mdata = make_paired()
    gs.tl.align(mdata, "rna", "prot", method="knn", key_added="k")
    assert "no epsilon" in mdata.uns["k"]["epsilon_auto"]["mode"]
    gs.tl.align(mdata, "rna", "prot", method="eot", key_added="e")
    assert "no labels" in mdata.uns["e"]["epsilon_auto"]["mode"]
    gs.tl.align(mdata, "rna", "prot", method="leot", epsilon=0.01, key_added="f")
    assert mdata.uns["f"]["epsilon_auto"]["mode"] == "off"
    assert mdata.uns["f"]["parameters"]["epsilon_relative"] == 0.01
    with pytest.raises(ValueError, match="epsilon must be a positive number, 'auto' or None"):
        gs.tl.align(mdata, "rna", "prot", epsilon="best")


def test_hidden_mass_and_choice_rule_by_hand():
    s_hidden, t_hidden = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])
    blocks = np.zeros(4, dtype=int)
    uniform = np.full((4, 4), 1 / 16)
    # blind to the hidden group: 0; never crossing: 1
    assert np.isclose(hidden_mass(uniform, s_hidden, t_hidden, blocks, blocks), 0.0)
    perfect = np.array([[1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 1, 1], [0, 1, 1, 1]]) / 8.0
    assert np.isclose(hidden_mass(perfect, s_hidden, t_hidden, blocks, blocks), 1.0)
    # agree = 0.125 + 0.125 + 0.25 + 0.25 = 0.75; blind baseline: source mass of hidden group 0
    # (0.5) times its target frequency (1/4) + that of group 1 (0.5) times 3/4 = 0.5
    half = np.array([[0.5, 0.5, 0, 0], [0.5, 0, 0.5, 0], [0, 1, 0, 0], [0, 0, 0, 1]]) / 4.0
    expected = (0.75 - 0.5) / (1 - 0.5)
    assert np.isclose(hidden_mass(half, s_hidden, t_hidden, blocks, blocks), expected)
    # the default stays while it beats chance, even if a sharper candidate scores higher
    assert choose_guarded([1, 2, 4], [True, True, True], default=2) == 2
    # it only moves towards smoother candidates, and never to a sharper one
    assert choose_guarded([1, 2, 4], [True, False, True], default=2) == 4
    assert np.isnan(choose_guarded([1, 2, 4], [True, False, False], default=2))


@pytest.mark.parametrize("method", ["leot", "egwl", "uot", "knn", "egw"])
def test_unlabeled_and_unshared_source_cells_get_mass_by_default(method):
    mdata = make_paired(n_groups=4, k=20, seed=1)
    labels = mdata["rna"].obs["perturbation"].astype(object)
    labels.iloc[[0, 1, 2]] = np.nan  # unlabeled
    labels.iloc[70:80] = "g_rna_only"  # a group absent from prot
    mdata["rna"].obs["perturbation"] = pd.Categorical(labels)
    gs.tl.align(mdata, "rna", "prot", method=method, unmatched_k=5)
    P = extract_block(mdata, "groove_coupling", "rna", "prot").toarray()
    n = P.shape[0]
    assert np.isclose(P.sum(), 1.0)
    left = np.r_[0:3, 70:80]
    assert np.allclose(P[left].sum(1), 1.0 / n)  # every source cell has the same mass
    assert ((P[left] > 0).sum(1) == 5).all()
    if method != "uot":
        assert np.allclose(P.sum(1), 1.0 / n, rtol=1e-3)
    info = mdata.uns["groove_coupling"]["unmatched"]
    assert info["mode"] == "couple" and info["n_source_coupled"] == 13
    # the left-out rows follow the k nearest target cells in the shared space, by hand
    xs = mdata["rna"].obsm["X_groove"].astype(np.float64)
    xt = mdata["prot"].obsm["X_groove"].astype(np.float64)
    for i in left[:4]:
        d = ((xt - xs[i]) ** 2).sum(1)
        nn = np.argsort(d)[:5]
        excess = d[nn] - d[nn].min()
        w = np.exp(-excess / excess.mean())
        assert np.allclose(P[i, nn], w / w.sum() / n, rtol=1e-4)


def test_unmatched_without_shared_space_is_dropped_with_reason():
    mdata = make_paired(n_groups=3, k=15, seed=2)
    mdata["prot"].obsm["X_own"] = np.random.default_rng(0).normal(size=(45, 3))
    labels = mdata["rna"].obs["perturbation"].astype(object)
    labels.iloc[[0, 1]] = np.nan
    mdata["rna"].obs["perturbation"] = pd.Categorical(labels)
    with pytest.warns(UserWarning, match="2 source cells .* stay uncoupled"):
        gs.tl.align(
            mdata, "rna", "prot", method="egw", use_rep={"rna": "X_groove", "prot": "X_own"}
        )
    info = mdata.uns["groove_coupling"]["unmatched"]
    assert info["mode"] == "drop" and "shared representation" in info["reason"]
    P = extract_block(mdata, "groove_coupling", "rna", "prot")
    assert P[[0, 1]].sum() == 0 and np.isclose(P.sum(), 1.0)
    with pytest.raises(ValueError, match="unmatched must be 'couple' or 'drop'"):
        gs.tl.align(mdata, "rna", "prot", unmatched="keep")


def test_auto_epsilon_retries_larger_candidates_when_the_full_problem_diverges():
    from groove_sc.tl._aligners._linear import leot

    calls = []

    @gs.tl.register_aligner("_flaky_leot", default_epsilon=5e-3, labels="required")
    def flaky(problem, **kw):
        calls.append(problem.epsilon)
        full = not str(problem.group_names[0]).startswith("cv")
        if full and problem.epsilon < 0.02:
            raise FloatingPointError("Sinkhorn diverged (test)")
        return leot(problem, **kw)

    try:
        mdata = make_paired(seed=4)
        gs.tl.align(mdata, "rna", "prot", method="_flaky_leot", key_added="f")
        info = mdata.uns["f"]["epsilon_auto"]
        assert mdata.uns["f"]["parameters"]["epsilon_relative"] == 0.02 == info["chosen"]
        assert len(info["retries"]) >= 1 and "diverged" in str(info["retries"][0])
        assert np.isclose(extract_block(mdata, "f", "rna", "prot").sum(), 1.0)
    finally:
        gs.tl.ALIGNERS.pop("_flaky_leot")


def test_auto_epsilon_solves_merged_blocks_at_the_real_groups_scale():
    from groove_sc.tl._aligners._linear import leot, mean_group_cost
    from groove_sc.tl._aligners._problem import build_problem

    seen = []

    @gs.tl.register_aligner("_spy_leot", default_epsilon=0.05, labels="required", shared_rep=True)
    def spy(problem, **kw):
        if str(problem.group_names[0]).startswith("cv"):
            seen.append(problem.mean_cost)
        return leot(problem, **kw)

    try:
        mdata = make_paired(seed=5)
        gs.tl.align(mdata, "rna", "prot", method="_spy_leot", key_added="s")
        problem, _ = build_problem(
            mdata, "rna", "prot", "leot", "X_groove", "perturbation", None, "cpu", None,
            "float32",
        )  # fmt: skip
        # merged blocks mix two groups, whose mean cost is larger: the search must not use it
        expected = mean_group_cost(problem)
        assert seen and all(np.isclose(v, expected) for v in seen)
        final = mdata.uns["s"]["parameters"]
        assert np.isclose(final["cost_scale"], expected, rtol=1e-5)
    finally:
        gs.tl.ALIGNERS.pop("_spy_leot")


def test_auto_epsilon_moves_to_the_first_smoother_candidate_that_beats_chance():
    # a toy aligner: at its default it ignores the representation (uniform within each block,
    # no better than the label-only coupling); from 4x the default on it couples cells with
    # equal representation (here: their group), which resolves held-out groups
    import scipy.sparse as sp

    from groove_sc.tl import AlignResult

    tried = []

    @gs.tl.register_aligner("_toy", default_epsilon=0.1, labels="required", shared_rep=True)
    def toy(problem):
        eps = 0.1 if problem.epsilon is None else problem.epsilon
        if str(problem.group_names[0]).startswith("cv"):
            tried.append(eps)
        xs, xt = problem.rep(shared=True)
        same = problem.source_codes[:, None] == problem.target_codes[None, :]
        same &= (problem.source_codes >= 0)[:, None]
        if eps > 0.1 * 1.5:
            same &= np.abs(xs[:, None, :] - xt[None, :, :]).sum(-1) < 1e-9
        P = same / same.sum(1, keepdims=True).clip(1) / len(xs)
        return AlignResult(coupling=sp.csr_matrix(P / P.sum()))

    try:
        mdata = make_paired(n_groups=6, k=20, seed=6)
        for m in ("rna", "prot"):
            codes = mdata[m].obs["perturbation"].cat.codes.to_numpy()
            mdata[m].obsm["X_id"] = np.eye(6, dtype=np.float32)[codes]
        gs.tl.align(mdata, "rna", "prot", use_rep="X_id", method="_toy", key_added="t")
        info = mdata.uns["t"]["epsilon_auto"]
        np.testing.assert_allclose(info["candidates"], [0.1, 0.4, 1.6])
        np.testing.assert_array_equal(np.asarray(info["evaluated"], bool), [True, True, False])
        assert tried == pytest.approx([0.1, 0.4])
        assert not info["fallback"] and np.isclose(info["chosen"], 0.4)
        assert np.isnan(np.asarray(info["scores"])[2])
    finally:
        gs.tl.ALIGNERS.pop("_toy")
