"""groove-sc quickstart: quiet, a closing table next to the label-only reference, file paths."""

import json

import matplotlib.pyplot as plt
import mudata as md
import numpy as np
import scipy.sparse as sp

from conftest import make_toy, strict_warnings
from groove_sc.cli import main, store_sparse


def test_quickstart_is_quiet_and_ends_with_the_table_and_the_files(tmp_path, capfd):
    out = tmp_path / "qs"
    with strict_warnings():
        main(["quickstart", "--out", str(out), "--perturbations", "3", "--cells", "12",
              "--epochs", "2", "--no-benchmark", "--no-progress"])  # fmt: skip
    plt.close("all")
    printed = capfd.readouterr()
    assert "Warning" not in printed.err and "litlogger" not in printed.out + printed.err
    text = printed.out
    table = text[text.index("Matching rna -> prot") :]
    metrics = json.loads((out / "metrics.json").read_text())
    groove, labels = metrics["matching"], metrics["labels_reference"]["matching"]
    rows = {line.split("  ")[0]: line.split()[-4:] for line in table.splitlines()[3:5]}
    assert list(rows) == ["GROOVE + leot", "labels only + leot"]
    for name, match, imp in (
        ("GROOVE + leot", groove, metrics["imputation_ot"]),
        ("labels only + leot", labels, metrics["labels_reference"]["imputation_ot"]),
    ):
        expected = [match["foscttm_barycentric"], match["trace"], match["top1_accuracy"],
                    imp["pearson_feature"]]  # fmt: skip
        np.testing.assert_allclose([float(v) for v in rows[name]], expected, atol=5e-4)
    assert "GROOVE decoder" in table and "chance" in table
    # where each file is, with its size
    listing = table.split(f"Files in {out.resolve()}:\n")[1].splitlines()
    assert [line.split()[0] for line in listing] == [
        "matching.png", "quickstart.h5mu", "model", "metrics.json"
    ]  # fmt: skip
    for line in listing:
        assert (out / line.split()[0]).exists() and line.split()[2] in ("B", "KB", "MB")
    mdata = md.read_h5mu(out / "quickstart.h5mu")
    assert {"groove_coupling", "labels_coupling"} <= set(mdata.obsp)
    assert {"prot_imputed", "prot_imputed_labels"} <= set(mdata.mod)
    # GROOVE's coupling is computed in its group-posterior space
    assert mdata.uns["groove_coupling"]["use_rep"] == "X_groove"
    assert mdata.uns["groove_coupling"]["space"]["mode"] == "posterior"
    assert "X_groove" in mdata["rna"].obsm


def test_store_sparse_converts_matrices_that_are_mostly_zero():
    mdata = make_toy()
    rng = np.random.default_rng(0)
    sparse_counts = rng.poisson(0.2, mdata["rna"].shape).astype(np.float32)  # ~18% non-zero
    mdata["rna"].layers["counts"] = sparse_counts
    dense_x = mdata["prot"].X.copy()
    assert np.count_nonzero(mdata["rna"].X) / mdata["rna"].X.size > 0.5
    assert store_sparse(mdata) == ["rna.layers[counts]"]  # rna.X is over half non-zero
    assert store_sparse(mdata) == []  # nothing left to convert
    assert sp.issparse(mdata["rna"].layers["counts"])
    np.testing.assert_array_equal(mdata["rna"].layers["counts"].toarray(), sparse_counts)
    assert not sp.issparse(mdata["prot"].X)  # continuous, no zeros: stays dense
    np.testing.assert_array_equal(mdata["prot"].X, dense_x)
