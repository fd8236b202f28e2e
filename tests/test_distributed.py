"""Distributed training: the sampler's share per process, CPU DDP end to end, bad input."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist

from conftest import make_toy
from groove_sc.data import GroupBalancedSampler
from groove_sc.data import _sampler as sampler_module
from groove_sc.model import GROOVE

HERE = Path(__file__).parent
SETUP = dict(
    perturbation_key="perturbation",
    modalities=["rna", "prot"],
    layers={"rna": "counts"},
    likelihoods={"rna": "nb", "prot": "normal"},
)

# ------------------------------------------------------------------ sampler


def _codes():
    rng = np.random.default_rng(0)
    codes = {
        "a": np.concatenate([np.repeat(np.arange(5), 12), [-1] * 9]),
        "b": np.concatenate([np.repeat(np.arange(5), [3, 20, 8, 8, 8]), [-1] * 4]),
    }
    return {m: rng.permutation(c) for m, c in codes.items()}


def _shares(n_batches, world, **kw):
    codes = _codes()
    cells = {m: np.arange(len(c)) for m, c in codes.items()}
    kw = dict(groups_per_batch=2, cells_per_group=4, seed=5, n_batches=n_batches, **kw)
    single = GroupBalancedSampler(codes, cells, **kw)
    ranks = [
        GroupBalancedSampler(codes, cells, num_replicas=world, rank=r, **kw) for r in range(world)
    ]
    return codes, single, ranks


def test_ranks_split_one_epoch_of_the_single_process_batches():
    codes, single, ranks = _shares(n_batches=8, world=2)
    assert len(single) == 8 and [len(s) for s in ranks] == [4, 4]
    full = list(single)
    parts = [list(s) for s in ranks]
    for i, batch in enumerate(full):  # rank r takes batches r, r + 2, ...
        other = parts[i % 2][i // 2]
        for m in batch:
            np.testing.assert_array_equal(batch[m], other[m])
    for b0, b1 in zip(*parts):
        assert any(not np.array_equal(b0[m], b1[m]) for m in b0)
        for batch in (b0, b1):  # each batch keeps the same groups in every modality
            groups = [set(codes[m][batch[m]]) - {-1} for m in batch]
            assert groups[0] == groups[1]


def test_every_rank_takes_the_same_number_of_batches_and_extras_are_seen_once():
    codes, single, ranks = _shares(n_batches=7, world=2)
    assert [len(s) for s in ranks] == [4, 4]  # 7 batches rounded up to 8
    seen = np.concatenate([b["a"] for s in ranks for b in s])
    extra = seen[codes["a"][seen] == -1]
    assert len(extra) == 9 and len(np.unique(extra)) == 9


def test_set_epoch_makes_the_ranks_draw_the_same_epoch():
    _, _, (r0, r1) = _shares(n_batches=4, world=2)
    list(r0)  # rank 0 ran one epoch more, e.g. after a restart
    r0.set_epoch(3)
    r1.set_epoch(3)
    a = np.concatenate([b["a"] for b in r0] + [b["a"] for b in r1])
    _, single, _ = _shares(n_batches=4, world=1)
    single.set_epoch(3)
    b = np.concatenate([x["a"] for x in single])
    assert sorted(a.tolist()) == sorted(b.tolist())


def test_sampler_reads_rank_and_world_size_from_torch_distributed(monkeypatch):
    monkeypatch.setattr(sampler_module.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(sampler_module.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(sampler_module.dist, "get_rank", lambda: 1)
    codes = _codes()
    s = GroupBalancedSampler(codes, {m: np.arange(len(c)) for m, c in codes.items()}, 2, 4)
    assert (s.num_replicas, s.rank) == (2, 1)
    with pytest.raises(ValueError, match="rank must be in"):
        GroupBalancedSampler(codes, {m: np.arange(len(c)) for m, c in codes.items()}, 2, 4, rank=2)


# ------------------------------------------------------------- CPU DDP (gloo)


def _single_process_reference():
    import scvi

    scvi.settings.seed = 0
    mdata = make_toy(seed=1)
    GROOVE.setup_mudata(mdata, **SETUP)
    model = GROOVE(mdata, n_latent=6, n_hidden=32)
    model.train(
        max_epochs=5,
        check_val_every_n_epoch=1,
        groups_per_batch=3,
        cells_per_group=9,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
    )
    z = model.get_latent_representation()
    return model.trainer.global_step, {m: v.shape for m, v in z.items()}


@pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()) or (os.cpu_count() or 1) < 2,
    reason="needs torch.distributed with gloo and 2 CPU cores",
)
def test_cpu_ddp_two_processes(tmp_path):
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    for key in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "GLOBAL_RANK", "MASTER_PORT"):
        env.pop(key, None)
    src = str(HERE.parent / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [sys.executable, str(HERE / "_ddp_train.py"), str(out)],
        cwd=tmp_path,  # scvi-tools writes lightning_logs/ here under DDP
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    single_steps, single_shapes = _single_process_reference()
    epochs = 5
    per_rank = math.ceil(single_steps / epochs / 2) * epochs
    for r, rr in enumerate(res):
        assert rr["world_size"] == 2 and rr["sampler"] == [2, r, per_rank // epochs]
        assert rr["global_step"] == per_rank  # about half the single-process steps
        assert abs(rr["global_step"] - single_steps / 2) <= epochs
        assert rr["early_stop_epoch"] == 2 and rr["early_stop_step"] == 2 * per_rank // epochs
    # different batches on the two ranks, the same groups in both modalities of each
    assert res[0]["first_batch"] != res[1]["first_batch"]
    # the processes end with the same weights
    assert res[0]["latent_sum"] == pytest.approx(res[1]["latent_sum"], rel=1e-6)
    loss = res[0]["train_loss"]
    assert len(loss) == epochs and np.isfinite(loss).all() and loss[-1] < loss[0]
    assert len(res[0]["validation_loss"]) == epochs
    assert {m: tuple(s) for m, s in res[0]["latent_shapes"].items()} == single_shapes
    assert res[0]["embed_shapes"] == {"rna": [180, 6], "joint": [360, 6]}


# --------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def untrained():
    mdata = make_toy(n_groups=2, k=10, seed=2)
    GROOVE.setup_mudata(mdata, **SETUP)
    return GROOVE(mdata, n_latent=4, n_hidden=16)


def test_more_cpu_devices_than_cores_is_refused(untrained):
    n = (os.cpu_count() or 1) + 1
    with pytest.raises(ValueError, match=rf"devices={n} asks for {n} CPU processes.*CPU cores"):
        untrained.train(max_epochs=1, accelerator="cpu", devices=n, strategy="ddp")


def test_more_gpu_devices_than_gpus_is_refused(untrained, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"devices=2 with accelerator='gpu'.*only 1 GPU"):
        untrained.train(max_epochs=1, accelerator="gpu", devices=2, strategy="ddp")


def test_notebook_strategy_outside_a_notebook_is_refused(untrained, monkeypatch):
    monkeypatch.delattr(sys, "ps1", raising=False)
    match = "strategy='ddp_notebook'.*use strategy='ddp_find_unused_parameters_true'"
    with pytest.raises(ValueError, match=match):
        untrained.train(max_epochs=1, accelerator="cpu", devices=1, strategy="ddp_notebook")


def test_script_ddp_strategy_inside_a_notebook_is_refused(untrained, monkeypatch):
    monkeypatch.setattr(sys, "ps1", ">>> ", raising=False)
    match = "strategy='ddp'.*use strategy='ddp_notebook_find_unused_parameters_true'"
    with pytest.raises(ValueError, match=match):
        untrained.train(max_epochs=1, accelerator="cpu", devices=1, strategy="ddp")


def test_lightning_distributed_sampler_is_refused(untrained):
    with pytest.raises(ValueError, match="use_distributed_sampler=True"):
        untrained.train(max_epochs=1, use_distributed_sampler=True)
