import numpy as np

from groove_sc.data import GroupBalancedSampler


def _sampler(**kw):
    codes = {
        "a": np.array([0] * 50 + [1] * 3 + [2] * 20 + [-1] * 10 + [4] * 5),  # 4 only in a
        "b": np.array([0] * 7 + [1] * 30 + [2] * 2 + [3] * 8 + [-1] * 4),  # 3 only in b
    }
    cells = {m: np.arange(len(c)) + 1000 for m, c in codes.items()}  # local ids != positions
    return codes, cells, GroupBalancedSampler(codes, cells, **kw)


def test_same_groups_and_k_cells_per_group_in_every_modality():
    codes, cells, s = _sampler(groups_per_batch=2, cells_per_group=5, seed=0)
    assert sorted(s.shared_groups.tolist()) == [0, 1, 2]
    for batch in s:
        per_mod = {}
        for m, idx in batch.items():
            c = codes[m][idx - 1000]
            shared = c[np.isin(c, [0, 1, 2])]
            groups, counts = np.unique(shared, return_counts=True)
            assert set(counts.tolist()) <= {5, 10}  # k per group (twice if drawn twice)
            per_mod[m] = set(groups.tolist())
        assert per_mod["a"] == per_mod["b"]


def test_small_groups_cycle_and_large_groups_are_undersampled_without_repeats():
    codes, cells, s = _sampler(groups_per_batch=3, cells_per_group=6, n_batches=1, seed=1)
    batch = next(iter(s))
    a = batch["a"]
    ca = codes["a"][a - 1000]
    g0 = a[ca == 0]
    assert len(g0) == 6 and len(np.unique(g0)) == 6  # 50 cells: no repeats
    g1 = a[ca == 1]
    assert len(g1) == 6 and len(np.unique(g1)) == 3  # 3 cells: each used twice


def test_non_contrastive_cells_seen_once_per_epoch():
    codes, cells, s = _sampler(groups_per_batch=3, cells_per_group=4, seed=2)
    seen = np.concatenate([b["a"] for b in s])
    ca = codes["a"][seen - 1000]
    extra = seen[(ca == -1) | (ca == 4)]
    assert len(extra) == 15 and len(np.unique(extra)) == 15


def test_epochs_differ_unless_fixed():
    _, _, s = _sampler(groups_per_batch=2, cells_per_group=4, seed=3)
    e1 = np.concatenate([b["a"] for b in s])
    e2 = np.concatenate([b["a"] for b in s])
    assert not np.array_equal(e1, e2)
    _, _, f = _sampler(groups_per_batch=2, cells_per_group=4, seed=3, fixed=True)
    assert np.array_equal(np.concatenate([b["a"] for b in f]), np.concatenate([b["a"] for b in f]))
