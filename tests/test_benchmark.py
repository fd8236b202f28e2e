"""gs.benchmark: registry, skips and errors, reproducibility, truth-blindness, tuning, CLI."""

import re

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import groove_sc as gs
from groove_sc.benchmark import LEARNERS, register_learner
from groove_sc.benchmark._tuning import (
    choose_oracle,
    choose_truth_free,
    label_agreement,
    merge_folds,
    projection_auc,
)
from groove_sc.benchmark._views import blind_view

SIM = {"n_perturbations": 4, "cells_per_perturbation": 15, "n_features": {"rna": 40, "prot": 10}}
GROOVE_FAST = {"max_epochs": 2, "n_latent": 4, "n_hidden": 16}


@pytest.fixture(scope="module")
def sim():
    return gs.datasets.simulate(paired=True, seed=0, **SIM)


@pytest.fixture
def temp_learner():
    """Register learners for one test and remove them afterwards."""
    added = []

    def add(name, func, shared_space=True):
        register_learner(name, shared_space=shared_space)(func)
        added.append(name)

    yield add
    for name in added:
        LEARNERS.pop(name, None)


def _ok(res, **where):
    sel = res
    for k, v in where.items():
        sel = sel[sel[k] == v]
    return sel


# ------------------------------------------------------------------------------- registry
def test_registry_holds_the_issue_learners_with_their_space():
    expected = {
        "pca": False,
        "raw": False,
        "groove": True,
        "groove_no_groupclip": True,
        "groove_no_backtranslation": True,
        "clip": True,
        "supcon": True,
        "propensity": True,
        "labels": True,
    }
    for name, shared in expected.items():
        assert LEARNERS[name].shared_space is shared, name
        assert LEARNERS[name].description


def test_unknown_names_are_rejected_with_the_valid_list(sim):
    with pytest.raises(KeyError, match=r"Unknown learner \['nope'\].*'groove'.*'pca'"):
        gs.benchmark.run(sim, ["nope"], ["leot"], seeds=[0])
    with pytest.raises(KeyError, match=r"Unknown aligner \['sinkhorn9'\].*'egw'.*'leot'"):
        gs.benchmark.run(sim, ["pca"], ["sinkhorn9"], seeds=[0])
    with pytest.raises(KeyError, match="learner_kwargs names"):
        gs.benchmark.run(sim, ["pca"], ["egw"], seeds=[0], learner_kwargs={"groove": {}})


def test_register_learner_adds_an_entry_and_refuses_duplicates(sim, temp_learner):
    def first2(mdata, key, *, groupby, seed):
        for a in mdata.mod.values():
            x = a.X[:, :2]  # simulated RNA is CSR
            a.obsm[key] = x.toarray() if hasattr(x, "toarray") else np.asarray(x)

    temp_learner("first2", first2)
    assert LEARNERS["first2"].shared_space
    with pytest.raises(ValueError, match="already registered"):
        register_learner("first2", shared_space=True)(first2)
    res = gs.benchmark.run(sim, ["first2"], ["knn"], seeds=[0])
    assert set(res["status"]) == {"ok"}
    assert "foscttm_barycentric" in set(res["metric"])


# ----------------------------------------------------------------------- skips and errors
def test_inapplicable_combinations_are_skipped_with_the_reason(sim):
    res = gs.benchmark.run(sim, ["pca", "raw"], ["leot", "fgw", "egw"], seeds=[0])
    for learner in ("pca", "raw"):
        for aligner in ("leot", "fgw"):  # linear OT and fused GW need one shared space
            rows = _ok(res, learner=learner, aligner=aligner)
            assert len(rows) == 1 and rows["status"].item() == "skipped"
            assert "needs a shared space" in rows["error"].item()
            assert np.isnan(rows["value"].item())
        egw = _ok(res, learner=learner, aligner="egw")
        assert set(egw["status"]) == {"ok"} and len(egw) > 5
    no_labels = gs.benchmark.run(sim, ["pca"], ["egw", "egw_all"], seeds=[0], groupby=None)
    assert _ok(no_labels, aligner="egw")["error"].item() == "aligner 'egw' needs labels (groupby)"
    assert set(_ok(no_labels, aligner="egw_all")["status"]) == {"ok"}


def test_a_failing_learner_is_recorded_and_the_others_continue(sim, temp_learner):
    def boom(mdata, key, *, groupby, seed):
        raise RuntimeError("exploded on purpose")

    temp_learner("boom", boom)
    res = gs.benchmark.run(sim, ["boom", "labels"], ["leot", "knn"], seeds=[0])
    bad = _ok(res, learner="boom")
    assert len(bad) == 2 and set(bad["status"]) == {"error"}
    assert bad["error"].str.contains("RuntimeError: exploded on purpose").all()
    good = _ok(res, learner="labels")
    assert set(good["status"]) == {"ok"}
    assert {"leot", "knn", "latent"} <= set(good["aligner"])


def test_a_learner_with_a_broken_output_is_an_error(sim, temp_learner):
    def wrong_width(mdata, key, *, groupby, seed):
        for i, a in enumerate(mdata.mod.values()):
            a.obsm[key] = np.zeros((a.n_obs, 2 + i))

    temp_learner("wrong_width", wrong_width, shared_space=True)
    res = gs.benchmark.run(sim, ["wrong_width"], ["leot"], seeds=[0])
    assert res["status"].item() == "error"
    assert "declares a shared space" in res["error"].item()


def test_a_failing_aligner_is_recorded_and_the_others_continue(sim):
    res = gs.benchmark.run(
        sim, ["labels"], ["leot", "knn"], seeds=[0], aligner_kwargs={"leot": {"bogus": 1}}
    )
    leot = _ok(res, aligner="leot")
    assert leot["status"].item() == "error" and "bogus" in leot["error"].item()
    assert set(_ok(res, aligner="knn")["status"]) == {"ok"}


# ------------------------------------------------------------------------ reproducibility
def test_identical_seeds_give_identical_results(sim):
    kw = {"learner_kwargs": {"groove": GROOVE_FAST, "propensity": {"max_epochs": 5}}}
    args = (sim, ["propensity", "groove"], ["leot", "egw"])
    a = gs.benchmark.run(*args, seeds=[0, 1], **kw)
    b = gs.benchmark.run(*args, seeds=[0, 1], **kw)
    timing = ["fit_seconds", "align_seconds"]
    assert set(a["status"]) == {"ok"}
    pd.testing.assert_frame_equal(a.drop(columns=timing), b.drop(columns=timing))
    # and the seed matters: seed 0 and seed 1 differ
    lat = _ok(a, learner="groove", metric="foscttm_latent").set_index("seed")["value"]
    assert lat.loc[0] != lat.loc[1]


def test_a_groove_learner_called_directly_is_fixed_by_its_seed(sim):
    # outside the benchmark nothing seeds the global generators; the weights' initialisation
    # draws from them, so the learner's seed must fix it (it once did not: the same call gave
    # a different fit after any other draw)
    import torch

    latents = []
    for noise in (1, 2):
        mdata = sim.copy()
        torch.manual_seed(noise)
        np.random.seed(noise)  # noqa: NPY002 - the global state is what is disturbed
        gs.benchmark.LEARNERS["groove"](mdata, "X_g", groupby="perturbation", seed=3, **GROOVE_FAST)
        latents.append(mdata["rna"].obsm["X_g"].copy())
    np.testing.assert_array_equal(latents[0], latents[1])
    mdata = sim.copy()
    gs.benchmark.LEARNERS["groove"](mdata, "X_g", groupby="perturbation", seed=4, **GROOVE_FAST)
    assert not np.array_equal(mdata["rna"].obsm["X_g"], latents[0])


def test_tidy_table_has_matching_imputation_latent_and_decoder_rows(sim):
    res = gs.benchmark.run(
        sim, ["groove"], ["leot"], seeds=[0], learner_kwargs={"groove": GROOVE_FAST}
    )
    assert list(res.columns) == gs.benchmark.COLUMNS
    leot = _ok(res, aligner="leot")
    for metric in ("foscttm_barycentric", "trace", "top1_accuracy", "imputation_pearson_cell"):
        assert metric in set(leot["metric"])
    assert (leot["epsilon"] > 0).all() and (leot["tuning"] == "default").all()
    assert (leot["align_seconds"] > 0).all() and (leot["fit_seconds"] > 0).all()
    dec = _ok(res, aligner="decoder")
    assert {"imputation_pearson_feature", "imputation_mse"} <= set(dec["metric"])
    assert (dec["tuning"] == "n/a").all()
    assert _ok(res, aligner="latent")["metric"].tolist() == ["foscttm_latent"]
    # the input is left untouched
    assert "X_groove" not in sim["rna"].obsm and not sim.obsp


# ------------------------------------------------------------------------ truth blindness
def test_learners_see_no_truth_and_their_output_ignores_it(sim, temp_learner):
    seen, outputs = {}, {}

    def spy(name):
        def learner(mdata, key, *, groupby, seed, **kw):
            seen[name] = {m: (set(a.obs.columns), set(a.obsm)) for m, a in mdata.mod.items()}
            info = LEARNERS[name].func(mdata, key, groupby=groupby, seed=seed, **kw)
            outputs.setdefault(name, []).append(
                {m: np.array(a.obsm[key]) for m, a in mdata.mod.items()}
            )
            return info

        return learner

    names = ["pca", "propensity", "groove"]
    for name in names:
        temp_learner(f"spy_{name}", spy(name), LEARNERS[name].shared_space)
    scrambled = sim.copy()
    for m in scrambled.mod:  # permute the truth, drop the simulation oracles
        a = scrambled[m]
        a.obs["cell_id"] = np.random.default_rng(1).permutation(a.obs["cell_id"].to_numpy())
        a.obs.drop(columns="perturbation_true", inplace=True)
        del a.obsm["X_true"], a.obsm["X_true_shared"]
    kw = {"learner_kwargs": {"spy_groove": GROOVE_FAST, "spy_propensity": {"max_epochs": 5}}}
    for data in (sim, scrambled):
        gs.benchmark.run(data, [f"spy_{n}" for n in names], ["knn"], seeds=[0], **kw)
    for name in names:
        for cols, obsm in seen[name].values():
            assert "cell_id" not in cols and "perturbation_true" not in cols
            assert not obsm & {"X_true", "X_true_shared"}
        first, second = outputs[name]
        for m in first:
            np.testing.assert_array_equal(first[m], second[m])


def test_blind_view_keeps_data_and_labels_only(sim):
    view = blind_view(sim, ["rna", "prot"], "perturbation")
    for m in ("rna", "prot"):
        assert list(view[m].obs.columns) == ["perturbation"]
        assert not view[m].obsm and list(view[m].layers) == list(sim[m].layers)
        dense = [x.toarray() if hasattr(x, "toarray") else x for x in (view[m].X, sim[m].X)]
        np.testing.assert_array_equal(*dense)  # simulated RNA is CSR
        assert (view[m].obs_names == sim[m].obs_names).all()


# --------------------------------------------------------------------------------- tuning
def test_label_scores_on_known_couplings():
    ls = pd.Series(["a", "a", "b", "b"])
    lt = pd.Series(["a", "a", "b", "b"])
    perfect = sp.csr_matrix(np.eye(4) / 4)
    uniform = sp.csr_matrix(np.full((4, 4), 1 / 16))
    swapped = sp.csr_matrix(np.fliplr(np.eye(4)) / 4)
    assert label_agreement(perfect, ls, lt) == pytest.approx(1.0)
    assert label_agreement(uniform, ls, lt) == pytest.approx(0.0)
    assert label_agreement(swapped, ls, lt) == pytest.approx(-1.0)
    y = np.array([[0.0], [0.1], [5.0], [5.1]])
    assert projection_auc(perfect, y, ls, lt) == pytest.approx(1.0)
    assert projection_auc(swapped, y, ls, lt) == pytest.approx(0.0)
    # blocks: only pairs within a block are scored
    blocks = np.array([0, 0, -1, -1])
    assert np.isnan(label_agreement(perfect, ls, lt, blocks, blocks))


def test_merge_folds_and_choosers():
    folds = merge_folds(["a", "b", "c", "d", "e"], n_folds=2, seed=0)
    merged = [g for f in folds for g in f]
    assert len(folds) == 2 and len(merged) == 4 and len(set(merged)) == 4
    for fold in folds:  # each merged name joins exactly its two groups
        for name in set(fold.values()):
            members = sorted(g for g, v in fold.items() if v == name)
            assert len(members) == 2 and sorted(name.split("|")) == members
    assert choose_truth_free([0.1, 0.2, 0.4], [0.5, 0.6, 0.595], tol=0.01) == 0.4
    assert choose_truth_free([0.1, 0.2], [0.5, np.nan], tol=0.0) == 0.1
    assert np.isnan(choose_truth_free([0.1], [np.nan], tol=0.0))
    assert choose_oracle([0.1, 0.2, 0.4], [0.3, 0.1, 0.2], lower_is_better=True) == 0.2
    assert choose_oracle([0.1, 0.2, 0.4], [0.3, 0.1, 0.2], lower_is_better=False) == 0.1


def test_tuning_modes_are_marked_and_truth_free_ignores_the_truth(sim):
    kw = {
        "learner_kwargs": {"propensity": {"max_epochs": 5}},
        "tuning": ["default", "truth_free", "oracle"],
        "epsilon_factors": (0.5, 4.0),
        "seeds": [0],
    }
    res = gs.benchmark.run(sim, ["propensity"], ["leot", "egw_all", "knn"], **kw)
    assert set(res["status"]) == {"ok"}
    fos = _ok(res, metric="foscttm_barycentric").set_index(["aligner", "tuning"])
    for aligner in ("leot", "egw_all"):
        default = fos.loc[(aligner, "default"), "epsilon"]
        for mode in ("truth_free", "oracle"):
            chosen = fos.loc[(aligner, mode), "epsilon"]
            assert np.isclose(chosen, [default * 0.5, default * 4]).any()
        # the oracle is the best of its candidates on its own metric
        assert fos.loc[(aligner, "oracle"), "value"] <= fos.loc[(aligner, "truth_free"), "value"]
    assert np.isnan(fos.loc[("knn", "oracle"), "epsilon"])  # nothing to tune
    scrambled = sim.copy()
    for m in scrambled.mod:
        ids = scrambled[m].obs["cell_id"].to_numpy()
        scrambled[m].obs["cell_id"] = np.random.default_rng(2).permutation(ids)
    kw["tuning"] = ["truth_free"]
    res2 = gs.benchmark.run(scrambled, ["propensity"], ["leot", "egw_all"], **kw)
    eps2 = _ok(res2, metric="trace").set_index("aligner")["epsilon"]
    for aligner in ("leot", "egw_all"):
        assert eps2[aligner] == fos.loc[(aligner, "truth_free"), "epsilon"]


# ------------------------------------------------------------------------ sweeps and CLI
def test_sweep_appends_and_resumes(tmp_path):
    out = tmp_path / "sweep.csv"
    kw = {"shared_fractions": [0.2, 0.8], "seeds": [0], "simulation": SIM, "progress": False}
    res = gs.benchmark.run_sweep(out, ["labels"], ["leot"], **kw)
    assert sorted(res["shared_fraction"].unique()) == [0.2, 0.8]
    assert (res["dataset"] == "simulate").all()
    n = len(res)
    again = gs.benchmark.run_sweep(out, ["labels"], ["leot"], **kw)
    assert len(again) == n  # nothing recomputed
    more = gs.benchmark.run_sweep(out, ["labels", "pca"], ["leot", "egw"], **kw)
    assert len(more) > n
    assert set(more.loc[more["learner"] == "labels", "aligner"]) == {"leot", "latent"}
    assert set(more.loc[more["learner"] == "pca", "status"]) == {"ok", "skipped"}
    # units in parallel processes give the same rows as in this process
    par = gs.benchmark.run_sweep(tmp_path / "par.csv", ["pca"], ["leot", "egw"], n_jobs=2, **kw)
    cols = ["shared_fraction", "learner", "aligner", "metric", "value", "status"]
    key = ["shared_fraction", "learner", "aligner", "metric"]
    pca_par, pca_seq = (df[df["learner"] == "pca"][cols].sort_values(key) for df in (par, more))
    pd.testing.assert_frame_equal(  # float noise of other thread counts allowed
        pca_par.reset_index(drop=True), pca_seq.reset_index(drop=True), atol=1e-3
    )


def test_sweep_varies_simulation_settings_and_names_learner_variants(tmp_path):
    out = tmp_path / "vary.csv"
    res = gs.benchmark.run_sweep(
        out,
        ["pca", "pca_2"],
        ["egw"],
        shared_fractions=[0.8],
        seeds=[0],
        simulation=SIM,
        vary={"label_noise": [0.0, 0.5]},
        variants={"pca_2": {"learner": "pca", "n_comps": 2}},
        progress=False,
    )
    assert set(res["dataset"]) == {"simulate[label_noise=0]", "simulate[label_noise=0.5]"}
    assert set(res["learner"]) == {"pca", "pca_2"}
    ok = res[(res["status"] == "ok") & (res["metric"] == "foscttm_barycentric")]
    fos = ok.set_index(["dataset", "learner"])["value"]
    # the variant ran with its own setting, the noisy labels changed the label-constrained plan
    assert fos[("simulate[label_noise=0]", "pca")] != fos[("simulate[label_noise=0]", "pca_2")]
    assert fos[("simulate[label_noise=0]", "pca")] != fos[("simulate[label_noise=0.5]", "pca")]
    # each (dataset, learner) equals a direct run on that simulation with those arguments
    sim = gs.datasets.simulate(shared_fraction=0.8, seed=0, paired=True, label_noise=0.5, **SIM)
    direct = gs.benchmark.run(
        sim, ["pca"], ["egw"], seeds=[0], learner_kwargs={"pca": {"n_comps": 2}}
    )
    direct = direct[(direct["status"] == "ok") & (direct["metric"] == "foscttm_barycentric")]
    assert fos[("simulate[label_noise=0.5]", "pca_2")] == pytest.approx(direct["value"].iloc[0])
    with pytest.raises(ValueError, match="Learner variant 'bad'.*'learner' entry"):
        gs.benchmark.run_sweep(out, ["bad"], ["egw"], seeds=[0], variants={"bad": {"n_comps": 2}})
    with pytest.raises(KeyError, match="Unknown learner.*nope"):
        gs.benchmark.run_sweep(out, ["v"], ["egw"], seeds=[0], variants={"v": {"learner": "nope"}})
    with pytest.raises(ValueError, match="vary\\['label_noise'\\] must be a list"):
        gs.benchmark.run_sweep(out, ["pca"], ["egw"], seeds=[0], vary={"label_noise": 0.2})


def test_run_config_and_cli(tmp_path, capsys):
    import yaml

    from groove_sc.cli import main

    cfg = {
        "learners": ["labels", "pca"],
        "aligners": ["leot", "egw"],
        "seeds": [0],
        "simulation": {"shared_fractions": [0.3, 0.7], **SIM},
        "figures": {"dir": str(tmp_path / "fig"), "metrics": ["foscttm_barycentric", "trace"]},
        "threads": 1,
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "res.csv"
    assert main(["benchmark", "--config", str(path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "learner pca" in printed and "done in" in printed
    res = gs.benchmark.read_results(out)
    assert set(res["learner"]) == {"labels", "pca"}
    assert _ok(res, learner="pca", aligner="leot")["status"].eq("skipped").all()
    for metric in ("foscttm_barycentric", "trace"):
        for kind in ("grid", "sweep"):
            assert (tmp_path / "fig" / f"benchmark_{kind}_{metric}.png").stat().st_size > 0
    path.write_text(yaml.safe_dump({**cfg, "epochs": 3}))
    with pytest.raises(KeyError, match="Unknown key.*epochs.*learners"):
        gs.benchmark.run_config(path, out)


def test_run_options_are_documented_once_and_are_the_config_keys():
    import dataclasses
    import inspect

    from groove_sc.benchmark._config import CONFIG_KEYS
    from groove_sc.benchmark._options import OPTION_NAMES, RunOptions

    params = inspect.signature(gs.benchmark.run).parameters
    for field in dataclasses.fields(RunOptions):
        assert params[field.name].default == field.default, field.name
        first_words = " ".join(field.metadata["doc"].split()[:4])
        for doc in (gs.benchmark.run.__doc__, RunOptions.__doc__):
            # a parameter line of its own (indented below Python 3.13, which dedents docstrings)
            assert re.search(rf"^ *{field.name}$", doc, re.M), field.name
            assert first_words in " ".join(doc.split())
        assert field.name in CONFIG_KEYS
        assert f"``{field.name}``" in gs.benchmark.run_config.__doc__
    assert set(OPTION_NAMES) <= set(params)
    opts = RunOptions(tuning=["oracle", "default", "oracle"], tune_aligners=["leot"])
    assert opts.tuning == ("oracle", "default") and opts.tune_aligners == frozenset({"leot"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.cv_folds = 3
    with pytest.raises(ValueError, match="tuning must be among"):
        RunOptions(tuning="best")
    with pytest.raises(TypeError, match="not options of groove_sc.benchmark.run"):
        gs.benchmark.run_units("unused.csv", [], None, ["pca"], ["egw"], epochs=3)


def test_learner_and_option_docs_are_filled_in():
    from groove_sc._docs import leftover_placeholders

    objects = [getattr(gs.benchmark, name) for name in gs.benchmark.__all__]
    objects += [spec.func for spec in LEARNERS.values()]
    for obj in objects:
        assert not leftover_placeholders(getattr(obj, "__doc__", None)), obj
    assert "Label column (the perturbation)" in LEARNERS["propensity"].func.__doc__
    assert "Seed of the learner's random draws" in gs.benchmark.fit_diagvi.__doc__


def test_progress_goes_to_the_benchmark_logger(sim, caplog, capsys, monkeypatch):
    import logging

    from groove_sc.benchmark._progress import logger, show_progress

    gs.benchmark.run(sim, ["pca"], ["egw"], seeds=[0])
    assert not caplog.records  # progress=False, logging not configured: nothing
    with caplog.at_level(logging.INFO, logger="groove_sc"):  # configured logging sees them
        gs.benchmark.run(sim, ["pca"], ["egw"], seeds=[0])
        assert caplog.records
    caplog.clear()
    gs.benchmark.run(sim, ["pca"], ["egw"], seeds=[0], progress=True)
    messages = [r.getMessage() for r in caplog.records if r.name == "groove_sc.benchmark"]
    assert messages[0] == "seed 0" and any(m.startswith("pca: fit") for m in messages)
    assert capsys.readouterr().out == ""  # a handler is configured (pytest's): no print
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # as in a fresh notebook
    with show_progress():
        logger.info("seed 7")
    with show_progress(False):
        logger.info("not shown")
    assert capsys.readouterr().out == "[groove-sc benchmark] seed 7\n"
    assert not logger.handlers and logger.level == logging.NOTSET


def test_benchmark_never_imports_pl():
    """pl plots benchmark tables; figures of a config are written by the CLI, so no cycle."""
    import ast
    from pathlib import Path

    for path in (Path(gs.__file__).parent / "benchmark").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):  # function-level imports too
            if isinstance(node, ast.ImportFrom):
                target = "." * node.level + (node.module or "")
                names = {alias.name for alias in node.names}
                assert not target.startswith(("..pl", "groove_sc.pl")), path
                assert not (target in ("..", "groove_sc") and "pl" in names), path


def test_summarize_and_winners_rank_by_the_metric_direction():
    rows = []
    for frac in (0.2, 0.8):
        for learner, aligner, values in (("a", "x", [0.1, 0.3]), ("b", "x", [0.25, 0.25])):
            for seed, v in enumerate(values):
                v = v if frac == 0.2 else 1 - v
                for metric in ("foscttm_barycentric", "trace"):
                    rows.append(dict(shared_fraction=frac, learner=learner, aligner=aligner,
                                     seed=seed, tuning="default", metric=metric, value=v,
                                     status="ok"))  # fmt: skip
    res = pd.DataFrame(rows)
    summary = gs.benchmark.summarize(res, "foscttm_barycentric")
    assert summary.iloc[0][["learner", "mean", "n"]].tolist() == ["a", pytest.approx(0.2), 2]
    low = gs.benchmark.winners(res, "foscttm_barycentric").set_index("shared_fraction")
    high = gs.benchmark.winners(res, "trace").set_index("shared_fraction")
    assert low.loc[0.2, "best"] == "a + x" and low.loc[0.8, "best"] == "b + x"
    assert high.loc[0.2, "best"] == "b + x" and high.loc[0.8, "best"] == "a + x"
    assert high.loc[0.8, "best_mean"] == pytest.approx(0.8)
    only_b = gs.benchmark.winners(res, "trace", learners=["b"])
    assert set(only_b["best"]) == {"b + x"} and only_b["second"].isna().all()


def test_label_key_and_target_rep_are_scoring_only(sim):
    res = gs.benchmark.run(
        sim, ["labels"], ["leot"], seeds=[0], label_key="perturbation_true", target_rep="X_true"
    )
    assert set(res["status"]) == {"ok"}
    assert {"label_transfer_accuracy", "label_diagonal_fraction"} <= set(res["metric"])
    plain = gs.benchmark.run(sim, ["labels"], ["leot"], seeds=[0])
    fos = [_ok(r, metric="foscttm_barycentric")["value"].item() for r in (res, plain)]
    assert fos[0] != fos[1]  # the projected representation changed


def test_non_ok_rows_have_string_metric_and_error(sim):
    res = gs.benchmark.run(sim, ["pca"], ["leot"], seeds=[0])
    assert res["metric"].tolist() == [""] and res["value"].isna().all()
    assert res["error"].str.len().gt(0).all()


def test_label_agreement_with_blocks_against_a_loop():
    """Per-block blind baseline, written out cell by cell; the tl criterion is the same score."""
    from groove_sc.tl._aligners._auto_epsilon import hidden_mass

    rng = np.random.default_rng(0)
    ls = pd.Series(list("abcabcab") + [None])
    lt = pd.Series(list("aabbccab") + [None, "c"])
    sb = np.array([0, 0, 1, 1, 0, 1, -1, 0, 0])
    tb = np.array([0, 0, 0, 1, 1, 1, 0, -1, 1, 1])
    P = sp.csr_matrix(rng.random((9, 10)) * (rng.random((9, 10)) < 0.7))
    Pd = P.toarray()
    agree = total = base = 0.0
    for i in range(9):
        for j in range(10):
            if pd.isna(ls[i]) or pd.isna(lt[j]) or sb[i] < 0 or sb[i] != tb[j]:
                continue
            in_block = [k for k in range(10) if tb[k] == sb[i] and not pd.isna(lt[k])]
            freq = sum(lt[k] == ls[i] for k in in_block) / len(in_block)
            total += Pd[i, j]
            agree += Pd[i, j] * (ls[i] == lt[j])
            base += Pd[i, j] * freq
    agree, base = agree / total, base / total
    expected = (agree - base) / (1 - base)
    assert label_agreement(P, ls, lt, sb, tb) == pytest.approx(expected, rel=1e-12)
    codes = {"a": 0, "b": 1, "c": 2}
    s = np.array([codes.get(v, -1) for v in ls.fillna("")])
    t = np.array([codes.get(v, -1) for v in lt.fillna("")])
    assert hidden_mass(P, s, t, sb, tb) == pytest.approx(expected, rel=1e-12)


def test_count_scale_follows_the_registered_head(monkeypatch):
    from groove_sc.benchmark._scores import to_x_scale
    from groove_sc.module._likelihoods import NBHead

    class MyCounts(NBHead):
        """NB under another name."""

    monkeypatch.setitem(gs.module.LIKELIHOODS, "my_counts", MyCounts)
    pred = np.array([[1.0, 3.0]])
    np.testing.assert_allclose(to_x_scale(pred, "my_counts"), to_x_scale(pred, "nb"))
    np.testing.assert_array_equal(to_x_scale(pred, "normal"), pred)
