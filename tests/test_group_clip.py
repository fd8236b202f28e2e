"""GroupCLIP against hand-written references (CLIP InfoNCE, SupCon, a loop over anchors)."""

import math

import pytest
import torch
import torch.nn.functional as F

from groove_sc.module import group_clip_loss, pseudo_pair_indices


def _clip_reference(za, zb, tau):
    logits = F.normalize(za, dim=1) @ F.normalize(zb, dim=1).T / tau
    target = torch.arange(len(za))
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def _supcon_reference(z, labels, tau):
    """SupCon L_out (Khosla et al. 2020, eq. 2), written as explicit loops."""
    zn = F.normalize(z, dim=1)
    n = len(z)
    losses = []
    for i in range(n):
        others = [a for a in range(n) if a != i]
        pos = [p for p in others if labels[p] == labels[i]]
        if not pos:
            continue
        denom = sum(math.exp(float(zn[i] @ zn[a]) / tau) for a in others)
        li = -sum(math.log(math.exp(float(zn[i] @ zn[p]) / tau) / denom) for p in pos) / len(pos)
        losses.append(li)
    return sum(losses) / len(losses)


def _loop_reference(za, zb, la, lb, tau, sim="cosine"):
    """The DESIGN.md formula (sum_in_log), anchor by anchor, both directions averaged."""

    def s(x, y):
        if sim == "cosine":
            return float(F.normalize(x, dim=0) @ F.normalize(y, dim=0))
        return -float(((x - y) ** 2).sum())

    def one_way(zx, zy, lx, ly):
        vals = []
        for i in range(len(zx)):
            if lx[i] < 0:
                continue
            js = [j for j in range(len(zy)) if ly[j] >= 0]
            pos = [j for j in js if ly[j] == lx[i]]
            if not pos:
                continue
            num = sum(math.exp(s(zx[i], zy[j]) / tau) for j in pos)
            den = sum(math.exp(s(zx[i], zy[j]) / tau) for j in js)
            vals.append(-math.log(num / den))
        return sum(vals) / len(vals)

    return 0.5 * (one_way(za, zb, la, lb) + one_way(zb, za, lb, la))


@pytest.mark.parametrize("tau", [0.07, 0.5, 1.0])
def test_reduces_to_clip_with_singleton_groups(tau):
    g = torch.Generator().manual_seed(0)
    za, zb = torch.randn(16, 8, generator=g), torch.randn(16, 8, generator=g)
    labels = torch.arange(16)
    got = group_clip_loss(za, zb, labels, labels, temperature=tau)
    assert torch.allclose(got, _clip_reference(za, zb, tau), atol=1e-5)
    # the mean_log form is the same when every group has one positive
    got2 = group_clip_loss(za, zb, labels, labels, temperature=tau, positives="mean_log")
    assert torch.allclose(got2, got, atol=1e-5)


def test_reduces_to_supcon_on_one_modality():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(20, 6, generator=g)
    labels = torch.randint(0, 4, (20,), generator=g)
    got = group_clip_loss(z, z, labels, labels, temperature=0.2, positives="mean_log")
    assert got.item() == pytest.approx(_supcon_reference(z, labels.tolist(), 0.2), rel=1e-5)


@pytest.mark.parametrize("sim", ["cosine", "neg_sqeuclidean"])
def test_matches_anchor_loop_with_unlabeled_and_missing_groups(sim):
    g = torch.Generator().manual_seed(2)
    za, zb = torch.randn(15, 5, generator=g), torch.randn(11, 5, generator=g)
    la = torch.tensor([0, 0, 1, 1, 2, 2, 3, -1, -1, 0, 5, 5, 1, 2, 3])  # 5 absent from b
    lb = torch.tensor([0, 1, 1, 2, 3, -1, 4, 4, 0, 2, 3])  # 4 absent from a
    got = group_clip_loss(za, zb, la, lb, temperature=0.3, similarity=sim)
    ref = _loop_reference(za, zb, la.tolist(), lb.tolist(), 0.3, sim)
    assert got.item() == pytest.approx(ref, rel=1e-5)


def test_gradients_finite_and_permutation_invariant():
    g = torch.Generator().manual_seed(3)
    za = (torch.randn(32, 4, generator=g) * 30).requires_grad_()
    zb = (torch.randn(24, 4, generator=g) * 30).requires_grad_()
    la, lb = torch.randint(0, 5, (32,), generator=g), torch.randint(0, 5, (24,), generator=g)
    tau = torch.tensor(0.01, requires_grad=True)  # tiny temperature: logsumexp must stay stable
    loss = group_clip_loss(za, zb, la, lb, temperature=tau)
    loss.backward()
    assert torch.isfinite(loss)
    for t in (za.grad, zb.grad, tau.grad):
        assert torch.isfinite(t).all()
    pa, pb = torch.randperm(32, generator=g), torch.randperm(24, generator=g)
    loss_perm = group_clip_loss(za[pa], zb[pb], la[pa], lb[pb], temperature=tau)
    assert torch.allclose(loss, loss_perm, atol=1e-5)


def test_no_anchor_gives_attached_zero():
    za = torch.randn(4, 3, requires_grad=True)
    zb = torch.randn(4, 3)
    loss = group_clip_loss(za, zb, torch.tensor([0, 0, -1, 1]), torch.tensor([2, 2, 3, -1]))
    assert loss.item() == 0.0
    loss.backward()
    assert za.grad is not None


def test_bad_arguments():
    z = torch.randn(3, 2)
    lab = torch.zeros(3, dtype=torch.long)
    with pytest.raises(ValueError, match="positives"):
        group_clip_loss(z, z, lab, lab, positives="bogus")
    with pytest.raises(ValueError, match="similarity"):
        group_clip_loss(z, z, lab, lab, similarity="dot")
    with pytest.raises(ValueError, match="temperature"):
        group_clip_loss(z, z, lab, lab, temperature=0.0)
    with pytest.raises(ValueError, match="width"):
        group_clip_loss(z, torch.randn(3, 5), lab, lab)


def test_pseudo_pairs_share_groups():
    la = torch.tensor([0, 1, 1, 2, -1, 3])
    lb = torch.tensor([1, 0, 0, 2, 1, 2])
    ia, ib = pseudo_pair_indices(la, lb, torch.Generator().manual_seed(0))
    assert ia.tolist() == [0, 1, 2, 3]  # unlabeled and group 3 (absent in b) left out
    assert (la[ia] == lb[ib]).all()
