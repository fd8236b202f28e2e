"""Child script of tests/test_distributed.py: GROOVE on CPU DDP, 2 processes (gloo).

Lightning's DDP launcher starts the other processes by re-running this script, so it cannot run
inside pytest; the test runs it with ``subprocess``. Usage::

    python tests/_ddp_train.py OUT_DIR

Run it from a scratch directory: under DDP scvi-tools writes ``lightning_logs/`` into the
working directory (do not ``os.chdir`` here: Lightning re-runs ``sys.argv[0]`` from the new
working directory). Every process writes ``OUT_DIR/rank<r>.json``: optimizer steps, the
sampler's share, a checksum of the latents; rank 0 adds the loss history and the latent
shapes. A second training with early stopping checks that all processes stop after the same
epoch.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # conftest.make_toy

import numpy as np  # noqa: E402
import scvi  # noqa: E402
import torch  # noqa: E402

import groove_sc as gs  # noqa: E402
from conftest import make_toy  # noqa: E402
from groove_sc.model import GROOVE  # noqa: E402

SETUP = dict(
    perturbation_key="perturbation",
    modalities=["rna", "prot"],
    layers={"rna": "counts"},
    likelihoods={"rna": "nb", "prot": "normal"},
)
# 6 groups of 27 training cells, 3 groups x 9 cells per batch: 6 batches per epoch
TRAIN = dict(
    groups_per_batch=3,
    cells_per_group=9,
    accelerator="cpu",
    devices=2,
    strategy="ddp_find_unused_parameters_true",
    enable_progress_bar=False,
    enable_model_summary=False,
)


def main(out: Path) -> None:
    torch.set_num_threads(1)
    scvi.settings.seed = 0
    mdata = make_toy(seed=1)
    GROOVE.setup_mudata(mdata, **SETUP)
    model = GROOVE(mdata, n_latent=6, n_hidden=32)
    model.train(max_epochs=5, check_val_every_n_epoch=1, **TRAIN)
    trainer = model.trainer
    rank = trainer.global_rank
    sampler = trainer.train_dataloader.sampler
    z = model.get_latent_representation()
    res = {
        "rank": rank,
        "world_size": trainer.world_size,
        "global_step": trainer.global_step,
        "sampler": [sampler.num_replicas, sampler.rank, len(sampler)],
        "first_batch": {m: v.tolist() for m, v in next(iter(sampler)).items()},
        "latent_sum": float(sum(v.astype(np.float64).sum() for v in z.values())),
    }
    if rank == 0:
        gs.tl.embed(mdata, model, key_added="X_groove")
        res["train_loss"] = model.history["train_loss"].to_numpy(dtype=float).ravel().tolist()
        res["validation_loss"] = (
            model.history["validation_loss"].to_numpy(dtype=float).ravel().tolist()
        )
        res["latent_shapes"] = {m: list(v.shape) for m, v in z.items()}
        res["embed_shapes"] = {
            "rna": list(mdata["rna"].obsm["X_groove"].shape),
            "joint": list(mdata.obsm["X_groove"].shape),
        }
    # early stopping under DDP: the temperature is fixed, so the monitored value never improves
    # and every process must stop after epoch 1 (validation at epochs 0 and 1, patience 1)
    stopper = GROOVE(mdata, n_latent=6, n_hidden=32)
    stopper.train(
        max_epochs=6,
        early_stopping=True,
        early_stopping_monitor="temperature_validation",
        early_stopping_patience=1,
        **TRAIN,
    )
    res["early_stop_epoch"] = stopper.trainer.current_epoch
    res["early_stop_step"] = stopper.trainer.global_step
    (out / f"rank{rank}.json").write_text(json.dumps(res))


if __name__ == "__main__":
    out = Path(sys.argv[1]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    main(out)
