"""Within-group cross-modal terms, checked against hand-written per-group references."""

import numpy as np
import ot
import pytest
import torch

import groove_sc as gs
from groove_sc.module import within_group_loss


def toy_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    z_a = torch.randn(11, 4, generator=g, dtype=torch.float64)
    z_b = torch.randn(10, 4, generator=g, dtype=torch.float64)
    # group 2 only in a, group 3 only in b, one unlabeled cell on each side
    la = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 2, -1, 0])
    lb = torch.tensor([0, 0, 1, 1, 1, 3, 3, -1, 0, 1])
    return z_a, z_b, la, lb


def shared_blocks(z_a, z_b, la, lb):
    za, zb = z_a.numpy(), z_b.numpy()
    la, lb = la.numpy(), lb.numpy()
    for g in sorted(set(la[la >= 0]) & set(lb[lb >= 0])):
        yield za[la == g], zb[lb == g]


def sq(x, y):
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


def test_mmd_equals_per_group_loop():
    z_a, z_b, la, lb = toy_batch()
    blocks = list(shared_blocks(z_a, z_b, la, lb))
    cross = np.concatenate([sq(x, y).ravel() for x, y in blocks])
    h = np.sort(cross)[(len(cross) - 1) // 2]  # the lower median, as torch.median
    ref = np.mean(
        [
            np.exp(-sq(x, x) / h).mean()
            + np.exp(-sq(y, y) / h).mean()
            - 2 * np.exp(-sq(x, y) / h).mean()
            for x, y in blocks
        ]
    )
    got = within_group_loss(z_a, z_b, la, lb, kind="mmd")
    assert np.isclose(float(got), ref, rtol=1e-10)


def test_sinkhorn_divergence_equals_pot_per_group():
    z_a, z_b, la, lb = toy_batch(1)
    blocks = list(shared_blocks(z_a, z_b, la, lb))
    scale = np.concatenate([sq(x, y).ravel() for x, y in blocks]).mean()
    eps = 0.5 * scale  # a large epsilon: both solvers converge to machine precision

    def transport(x, y):
        C = sq(x, y)
        P = ot.sinkhorn(
            np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y)), C, eps,
            method="sinkhorn_log", numItermax=50_000, stopThr=1e-13,
        )  # fmt: skip
        return (P * C).sum()

    ref = np.mean([transport(x, y) - 0.5 * (transport(x, x) + transport(y, y)) for x, y in blocks])
    got = within_group_loss(z_a, z_b, la, lb, kind="sinkhorn", epsilon=0.5, n_iter=2000)
    assert np.isclose(float(got), ref, rtol=1e-7)


@pytest.mark.parametrize("similarity", ["cosine", "neg_sqeuclidean"])
def test_ot_clip_equals_per_group_cross_entropy_with_pot_targets(similarity):
    z_a, z_b, la, lb = toy_batch(2)
    tau = 0.2
    blocks = list(shared_blocks(z_a, z_b, la, lb))
    scale = np.concatenate([sq(x, y).ravel() for x, y in blocks]).mean()
    ce_ab, ce_ba = [], []
    for x, y in blocks:
        C = sq(x, y)
        P = ot.sinkhorn(
            np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y)), C, 0.5 * scale,
            method="sinkhorn_log", numItermax=50_000, stopThr=1e-13,
        )  # fmt: skip
        if similarity == "cosine":
            xn = x / np.linalg.norm(x, axis=1, keepdims=True)
            yn = y / np.linalg.norm(y, axis=1, keepdims=True)
            logits = xn @ yn.T / tau
        else:
            logits = -C / tau
        log_row = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        log_col = logits - np.log(np.exp(logits).sum(0, keepdims=True))
        ce_ab.extend(-(P / P.sum(1, keepdims=True) * log_row).sum(1))
        ce_ba.extend(-(P / P.sum(0, keepdims=True) * log_col).sum(0))
    ref = 0.5 * (np.mean(ce_ab) + np.mean(ce_ba))
    got = within_group_loss(
        z_a, z_b, la, lb, kind="ot_clip", epsilon=0.5, temperature=tau, n_iter=2000,
        similarity=similarity,
    )  # fmt: skip
    assert np.isclose(float(got), ref, rtol=1e-7)


@pytest.mark.parametrize("kind", ["sinkhorn", "mmd", "ot_clip"])
def test_within_group_gradients_and_degenerate_batches(kind):
    z_a, z_b, la, lb = toy_batch()
    z_a.requires_grad_(True)
    loss = within_group_loss(z_a, z_b, la, lb, kind=kind)
    loss.backward()
    assert torch.isfinite(z_a.grad).all() and z_a.grad.abs().sum() > 0
    # unlabeled cells and groups missing on the other side take no part
    assert z_a.grad[la == 2].abs().sum() == 0 and z_a.grad[la == -1].abs().sum() == 0
    none = within_group_loss(z_a, z_b, torch.full((11,), -1), lb, kind=kind)
    assert float(none.detach()) == 0.0 and none.requires_grad
    # permuting the batch leaves the value unchanged
    perm = torch.randperm(11, generator=torch.Generator().manual_seed(3))
    again = within_group_loss(z_a[perm], z_b, la[perm], lb, kind=kind)
    assert torch.isclose(again, loss, rtol=1e-5)


def test_within_group_bad_input():
    z_a, z_b, la, lb = toy_batch()
    with pytest.raises(ValueError, match="within_group must be one of"):
        within_group_loss(z_a, z_b, la, lb, kind="wasserstein")
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        within_group_loss(z_a, z_b, la, lb, epsilon=0.0)
    # an unknown similarity is refused, not read as another one
    with pytest.raises(ValueError, match=r"similarity must be one of.*'dot'"):
        within_group_loss(z_a, z_b, la, lb, kind="ot_clip", similarity="dot")


def test_model_trains_with_within_group_term(toy):
    gs.model.GROOVE.setup_mudata(
        toy, perturbation_key="perturbation", modalities=["rna", "prot"],
        layers={"rna": "counts"}, likelihoods={"rna": "nb", "prot": "normal"},
    )  # fmt: skip
    model = gs.model.GROOVE(toy, n_latent=4, n_hidden=16, within_group="ot_clip", gamma=2.0)
    model.train(max_epochs=3, enable_progress_bar=False, seed=0)
    hist = model.history["within_group_train"].to_numpy(dtype=float).ravel()
    assert np.isfinite(hist).all() and (hist > 0).all()
    assert model.module.gamma == 2.0
    z = model.get_latent_representation(modality="rna")
    assert z.shape == (toy["rna"].n_obs, 4)


def test_pseudo_labels_equal_prototype_softmax_by_hand():
    from groove_sc.module import pseudo_labels

    g = torch.Generator().manual_seed(5)
    z = {"a": torch.randn(6, 3, generator=g), "b": torch.randn(7, 3, generator=g)}
    lab = {"a": torch.tensor([-1, 0, -1, 1, -1, -1]), "b": torch.tensor([0, 0, 2, 2, -1, 2, 0])}
    out = pseudo_labels(z, lab, threshold=0.6, temperature=0.5)
    # by hand: prototypes of b's labeled groups, cosine softmax at tau 0.5
    zb, lb = z["b"].numpy(), lab["b"].numpy()
    groups = [0, 2]
    proto = np.stack([zb[lb == k].mean(0) for k in groups])
    za = z["a"].numpy()
    cos = (za / np.linalg.norm(za, axis=1, keepdims=True)) @ (
        proto / np.linalg.norm(proto, axis=1, keepdims=True)
    ).T
    p = np.exp(cos / 0.5) / np.exp(cos / 0.5).sum(1, keepdims=True)
    expected = np.where(p.max(1) >= 0.6, np.array(groups)[p.argmax(1)], -1)
    expected[[1, 3]] = [0, 1]  # labeled cells keep their label
    assert out["a"].tolist() == expected.tolist()
    # b's unlabeled cell is assigned from a's prototypes (groups 0 and 1)
    assert out["b"][:4].tolist() == [0, 0, 2, 2] and out["b"][4].item() in (-1, 0, 1)
    # threshold 1.0: only certain assignments (none here)
    assert (pseudo_labels(z, lab, threshold=1.0)["a"] == lab["a"]).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"within_group": "wasserstein"}, "within_group must be one of"),
        ({"within_group": "mmd", "gamma": -1.0}, "gamma must be a number >= 0"),
        ({"pseudo_label_threshold": 0.0}, r"pseudo_label_threshold must be a number in \(0, 1\]"),
        ({"pseudo_label_threshold": 1.5}, r"pseudo_label_threshold must be a number in \(0, 1\]"),
    ],
)
def test_within_group_model_arguments_are_validated(toy, kwargs, match):
    gs.model.GROOVE.setup_mudata(
        toy, perturbation_key="perturbation", modalities=["rna", "prot"],
        layers={"rna": "counts"}, likelihoods={"rna": "nb", "prot": "normal"},
    )  # fmt: skip
    with pytest.raises(ValueError, match=match):
        gs.model.GROOVE(toy, n_latent=4, **kwargs)
