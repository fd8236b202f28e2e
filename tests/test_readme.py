"""The README's usage block runs as written (smaller sizes) and raises no warning.

The block is read from README.md, so that this test follows the README. Every warning is an
error, except the third-party deprecations raised inside a dependency's own code, where
groove_sc cannot reach them; they are listed by name in ``conftest.THIRD_PARTY_WARNINGS``:

- pandas >= 3.1: "The 'future.infer_string' option is deprecated", from anndata 0.13 whenever
  an AnnData is made;
- pandas >= 3.1: "The inplace keyword in DataFrame.drop is deprecated", from mudata 0.4's
  ``MuData.update()``.

Both are ``DeprecationWarning`` subclasses: hidden by default outside ``__main__``.
"""

import re
from pathlib import Path

import matplotlib.pyplot as plt

from conftest import THIRD_PARTY_WARNINGS, strict_warnings

README = Path(__file__).resolve().parents[1] / "README.md"

# The README's sizes, scaled down for a test (each must occur in the block).
SMALLER = {
    r"n_perturbations=20\b": "n_perturbations=4",
    r"cells_per_perturbation=100\b": "cells_per_perturbation=15",
    r"max_epochs=100\b": "max_epochs=2",
    r'"max_epochs": 100\b': '"max_epochs": 2',
}


def readme_usage() -> str:
    text = README.read_text()
    match = re.search(r"^## Usage\n+```python\n(.*?)^```", text, re.S | re.M)
    assert match, "README.md has no '## Usage' section with a ```python block"
    return match.group(1)


def test_readme_usage_block_runs_without_warnings(monkeypatch, tmp_path, capfd, caplog):
    code = readme_usage()
    for pattern, small in SMALLER.items():
        code, n = re.subn(pattern, small, code)
        assert n >= 1, f"README usage block no longer contains {pattern!r}; update SMALLER"
    monkeypatch.chdir(tmp_path)  # anything the block writes stays in tmp_path
    namespace: dict = {}
    with strict_warnings():
        exec(compile(code, str(README), "exec"), namespace)  # noqa: S102
    plt.close("all")
    printed = capfd.readouterr()
    logged = " ".join(record.getMessage() for record in caplog.records)
    for notice in ("litlogger", "logging interval", "Warning"):
        assert notice not in printed.out + printed.err + logged
    mdata, results = namespace["mdata"], namespace["results"]
    assert "groove_coupling" in mdata.obsp and "prot_imputed" in mdata.mod
    assert set(results["learner"]) == {"labels", "groove"}
    assert (results["status"] == "ok").all()  # the front-page grid has no skipped pair
    imputed = mdata["prot_imputed"]
    assert list(imputed.obs_names) == list(mdata["rna"].obs_names)
    assert imputed.var_names.is_unique and not set(imputed.var_names) & set(mdata["prot"].var_names)


def test_readme_usage_shows_the_whole_workflow():
    usage = readme_usage()
    for call in ("setup_mudata", "GROOVE(", ".train(", "tl.embed", "tl.align", "tl.impute",
                 "evaluate_matching", "pl.matching", "benchmark.run"):  # fmt: skip
        assert call in usage


def test_third_party_warnings_are_listed_with_their_origin():
    assert len(THIRD_PARTY_WARNINGS) == 2
    for message, origin in THIRD_PARTY_WARNINGS:
        assert re.compile(message) and ("anndata" in origin or "mudata" in origin)
