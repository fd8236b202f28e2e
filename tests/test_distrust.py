"""distrust_labels: labeled cells whose latent points to another group leave the group terms."""

import numpy as np
import pytest
import torch

from groove_sc.module import distrust_labels, pseudo_labels


def _reference(z, labels, m, threshold, temperature):
    """Numpy re-derivation: cosine to the other modality's group means, softmax, gate."""
    others = [o for o in z if o != m]
    zo = np.concatenate([z[o][labels[o] >= 0] for o in others])
    lo = np.concatenate([labels[o][labels[o] >= 0] for o in others])
    groups = np.unique(lo)
    proto = np.stack([zo[lo == g].mean(0) for g in groups])
    out = labels[m].copy()
    for i, (zi, li) in enumerate(zip(z[m], labels[m])):
        if li < 0 or li not in groups:
            continue
        cos = proto @ zi / (np.linalg.norm(proto, axis=1) * np.linalg.norm(zi))
        p = np.exp(cos / temperature - (cos / temperature).max())
        p /= p.sum()
        if groups[p.argmax()] != li and p.max() >= threshold:
            out[i] = -1
    return out


@pytest.mark.parametrize("threshold", [0.3, 0.6, 0.95])
def test_distrust_matches_a_numpy_reference(threshold):
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 1, (4, 5))
    z, labels = {}, {}
    for m, n in (("a", 40), ("b", 30), ("c", 20)):
        true = rng.integers(0, 4, n)
        z[m] = (centers[true] + 0.4 * rng.normal(0, 1, (n, 5))).astype(np.float32)
        lab = true.copy()
        flip = rng.random(n) < 0.25
        lab[flip] = rng.integers(0, 4, flip.sum())  # wrong guide calls
        lab[rng.random(n) < 0.1] = -1  # unlabeled
        labels[m] = lab
    zt = {m: torch.tensor(v) for m, v in z.items()}
    lt = {m: torch.tensor(v) for m, v in labels.items()}
    got = distrust_labels(zt, lt, threshold, temperature=0.2)
    for m in z:
        expected = _reference(z, labels, m, threshold, 0.2)
        np.testing.assert_array_equal(got[m].numpy(), expected)
        kept = got[m].numpy() >= 0
        assert (got[m].numpy()[kept] == labels[m][kept]).all()  # never relabels, only leaves out
    n_out = sum(int((got[m] < 0).sum() - (lt[m] < 0).sum()) for m in z)
    assert n_out > 0  # some wrong labels were caught at these settings


def test_distrust_keeps_labels_without_other_evidence_and_composes_with_pseudo_labels():
    z = {"a": torch.tensor([[1.0, 0.0], [0.0, 1.0]]), "b": torch.tensor([[1.0, 0.0]])}
    lab = {"a": torch.tensor([0, 5]), "b": torch.tensor([0])}
    out = distrust_labels(z, lab, 0.5)
    # group 5 has no prototype in b: its cell keeps its label; b's only cell agrees with a[0]
    assert out["a"].tolist() == [0, 5] and out["b"].tolist() == [0]
    lab = {"a": torch.tensor([0, 0]), "b": torch.tensor([0, 1])}
    z = {"a": torch.tensor([[1.0, 0.0], [0.0, 1.0]]), "b": torch.tensor([[1.0, 0.0], [0.0, 1.0]])}
    gated = distrust_labels(z, lab, 0.9)
    assert gated["a"].tolist() == [0, -1]
    # a left-out cell is unlabeled for pseudo_labels, which may then give it the group it resembles
    assert pseudo_labels(z, gated, 0.9)["a"].tolist() == [0, 1]


def test_model_option_validates_and_trains():
    import groove_sc as gs
    from groove_sc.model import GROOVE

    mdata = gs.datasets.simulate(
        n_perturbations=3,
        cells_per_perturbation=12,
        n_features={"rna": 30, "prot": 8},
        label_noise=0.2,
        seed=0,
    )
    GROOVE.setup_mudata(
        mdata,
        perturbation_key="perturbation",
        modalities=["rna", "prot"],
        layers={"rna": "counts"},
        likelihoods={"rna": "nb", "prot": "normal"},
    )
    with pytest.raises(ValueError, match=r"distrust_threshold must be a number in \(0, 1\].*1.5"):
        GROOVE(mdata, distrust_threshold=1.5)
    model = GROOVE(mdata, n_latent=4, n_hidden=16, distrust_threshold=0.5)
    assert model.module.distrust_threshold == 0.5
    model.train(max_epochs=2, enable_progress_bar=False)
    assert np.isfinite(model.history["contrastive_train"].to_numpy(dtype=float)).all()
