"""scanpy-style signature conventions over the public API.

- every public function and every public method of ``GROOVE`` has a return annotation;
- functions that write into the MuData name the written key ``key_added``;
- ``copy`` (where present) is keyword-only and defaults to ``False``: tools and preprocessing
  modify their input in place and return ``None``; ``copy=True`` returns a new object;
- options after the data arguments are keyword-only. The positional arguments each function
  accepts are listed below (the data arguments, plus what the design document and existing
  code pass positionally); a new option must be keyword-only;
- the coupling argument is ``coupling_key`` everywhere (``pl.matching`` keeps ``key`` as an
  alias for the design document's call).
"""

import inspect

import numpy as np
import pytest

import groove_sc as gs
from conftest import strict_warnings

P = inspect.Parameter

#: Public function -> the arguments it accepts positionally, in order.
POSITIONAL = {
    "pp.prepare": ("mdata",),
    "pp.unpair": ("mdata", "modalities", "truth_key", "split", "seed"),
    "tl.embed": ("mdata", "model"),
    "tl.impute": ("mdata", "source", "target"),
    # frozen as the design document and the benchmark scripts call it
    "tl.align": (
        "mdata",
        "source",
        "target",
        "use_rep",
        "method",
        "groupby",
        "epsilon",
        "key_added",
        "device",
    ),
    "tl.register_aligner": ("name",),
    "tl.average_couplings": ("mdata", "keys"),
    "tl.group_posterior": ("mdata", "use_rep"),
    "pl.matching": ("mdata", "coupling_key"),
    "pl.group_mass": ("mdata", "coupling_key", "groupby"),
    "pl.partner_spread": ("mdata", "coupling_key", "groupby"),
    "pl.benchmark": ("results", "metric", "kind", "ax", "show", "return_fig", "save"),
    "pl.write_figures": ("results", "folder", "metric"),
    "metrics.foscttm": ("x", "y"),
    "metrics.foscttm_per_cell": ("x", "y"),
    "metrics.latent_foscttm": ("mdata", "use_rep", "source", "target", "truth_key"),
    "metrics.truth_pairs": ("mdata", "source", "target", "truth_key"),
    "metrics.evaluate_matching": (
        "mdata",
        "coupling_key",
        "truth_key",
        "label_key",
        "target_rep",
        "k",
    ),
    "metrics.evaluate_imputation": ("pred", "truth", "control"),
    "datasets.simulate": ("n_perturbations", "cells_per_perturbation", "shared_fraction"),
    "datasets.simulate_sweep": ("shared_fractions", "seeds"),
    "datasets.papalexi_2021": ("data_dir",),
    "datasets.frangieh_2021": ("data_dir",),
    "datasets.read_papalexi_2021": ("path",),
    "datasets.read_frangieh_2021": ("rna_path", "protein_path"),
    "datasets.cache_dir": ("path",),
}

#: Functions that write a result into the MuData.
WRITERS = ("tl.embed", "tl.align", "tl.impute", "tl.average_couplings")


def _public_functions():
    for sub in ("pp", "tl", "pl", "metrics", "datasets"):
        module = getattr(gs, sub)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                yield f"{sub}.{name}", obj


def _groove_methods():
    for name, member in vars(gs.model.GROOVE).items():
        member = getattr(member, "__func__", member)
        if not name.startswith("_") and inspect.isfunction(member):
            yield f"GROOVE.{name}", member


FUNCTIONS = dict(_public_functions())
METHODS = dict(_groove_methods())


def test_every_public_function_is_listed():
    assert set(FUNCTIONS) == set(POSITIONAL)


@pytest.mark.parametrize("name", sorted({**FUNCTIONS, **METHODS}))
def test_return_annotation(name):
    fn = {**FUNCTIONS, **METHODS}[name]
    assert inspect.signature(fn).return_annotation is not inspect.Signature.empty, name


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_options_are_keyword_only(name):
    params = inspect.signature(FUNCTIONS[name]).parameters.values()
    positional = tuple(
        p.name for p in params if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)
    )
    assert positional == POSITIONAL[name]


@pytest.mark.parametrize("name", sorted({**FUNCTIONS, **METHODS}))
def test_copy_is_keyword_only_and_false(name):
    params = inspect.signature({**FUNCTIONS, **METHODS}[name]).parameters
    if "copy" in params:
        assert params["copy"].kind is P.KEYWORD_ONLY
        assert params["copy"].default is False


@pytest.mark.parametrize("name", WRITERS)
def test_writers_take_key_added(name):
    assert "key_added" in inspect.signature(FUNCTIONS[name]).parameters


def test_coupling_argument_is_coupling_key():
    for name, fn in FUNCTIONS.items():
        params = inspect.signature(fn).parameters
        assert "coupling" not in " ".join(p for p in params if p != "coupling_key"), name
    assert "coupling_key" in inspect.signature(gs.tl.impute).parameters
    assert "coupling_key" in inspect.signature(gs.metrics.evaluate_matching).parameters
    assert "coupling_key" in inspect.signature(gs.pl.matching).parameters


def _aligned():
    mdata = gs.datasets.simulate(
        n_perturbations=3,
        cells_per_perturbation=8,
        n_features={"rna": 20, "prot": 5},
        paired=True,
        seed=0,
    )
    gs.tl.align(mdata, "rna", "prot", use_rep="X_true_shared", key_added="cpl")
    return mdata


def test_matching_key_is_a_silent_alias_of_coupling_key():
    mdata = _aligned()
    with strict_warnings():  # silent: any warning of groove_sc's own is an error here
        a = gs.pl.matching(mdata, coupling_key="cpl", kind="heatmap", show=False)
        b = gs.pl.matching(mdata, key="cpl", kind="heatmap", show=False)
    np.testing.assert_array_equal(a.images[0].get_array(), b.images[0].get_array())
    with pytest.raises(TypeError, match="alias"):
        gs.pl.matching(mdata, coupling_key="cpl", key="other", show=False)


def test_prepare_modifies_in_place_unless_copy():
    mdata = gs.datasets.simulate(n_perturbations=2, cells_per_perturbation=10, seed=0)
    copied = gs.pp.prepare(mdata, n_top_genes=None, copy=True)
    assert copied is not mdata and "groove_prepare" not in mdata["rna"].uns
    assert gs.pp.prepare(mdata, n_top_genes=None) is None
    assert "groove_prepare" in mdata["rna"].uns


def test_missing_obs_column_errors_read_alike():
    """Every argument naming an obs column fails the same way: argument, value, columns, fix."""
    mdata = gs.datasets.simulate(n_perturbations=2, cells_per_perturbation=5, paired=True, seed=0)
    calls = {
        "groupby": lambda: gs.tl.align(mdata, "rna", "prot", groupby="guide"),
        "label_key": lambda: gs.metrics.evaluate_matching(mdata, "c", label_key="guide"),
    }
    gs.tl.align(mdata, "rna", "prot", use_rep="X_true", groupby="perturbation", key_added="c")
    for argument, call in calls.items():
        with pytest.raises(KeyError) as err:
            call()
        msg = err.value.args[0]
        assert msg.startswith(f"{argument}='guide' is not a column of mdata['rna'].obs")
        assert "'perturbation'" in msg and "(columns: [" in msg and msg.endswith(".")
    # long column lists are cut
    for i in range(30):
        mdata["rna"].obs[f"extra{i}"] = 0
    with pytest.raises(KeyError, match=r"'extra\d+', '\.\.\.'\]\)"):
        gs.tl.align(mdata, "rna", "prot", groupby="guide")
