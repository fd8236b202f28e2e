"""Argument validation of GROOVE(...) and GROOVE.train(...): one case per argument and value.

Every error must name the argument, the value received and the valid range (or names), and be
raised before any work starts.
"""

import re

import numpy as np
import pytest

import groove_sc as gs
from conftest import make_toy, strict_warnings
from groove_sc.model import GROOVE
from groove_sc.model._arguments import log_every_n_steps
from groove_sc.model._training import max_processes

SETUP = dict(
    perturbation_key="perturbation",
    modalities=["rna", "prot"],
    layers={"rna": "counts"},
    likelihoods={"rna": "nb", "prot": "normal"},
)


@pytest.fixture(scope="module")
def mdata():
    mdata = make_toy(n_groups=3, k=10, n_genes=12, n_prot=4)
    GROOVE.setup_mudata(mdata, **SETUP)
    return mdata


@pytest.fixture(scope="module")
def model(mdata):
    return GROOVE(mdata, n_latent=4, n_hidden=8)


def _expect(error, argument, value, valid):
    """``pytest.raises`` for a message naming the argument, the value and the valid range."""
    pattern = rf"{re.escape(argument)} must be {re.escape(valid)}.*got {re.escape(repr(value))}"
    return pytest.raises(error, match=pattern)


# (argument, invalid value, exception, valid range as the message states it)
MODEL_CASES = [
    ("n_latent", 0, ValueError, "an integer >= 1"),
    ("n_latent", 2.5, TypeError, "an integer >= 1"),
    ("n_hidden", 0, ValueError, "an integer >= 1"),
    ("n_layers", 0, ValueError, "an integer >= 1"),
    ("dropout_rate", 1.0, ValueError, "a number in [0, 1)"),
    ("dropout_rate", -0.1, ValueError, "a number in [0, 1)"),
    ("contrastive", "groupclp", ValueError, "one of 'groupclip', 'clip', 'supcon' or None"),
    ("backtranslation", "yes", TypeError, "True or False"),
    ("alpha", -1.0, ValueError, "a number >= 0"),
    ("beta", -0.5, ValueError, "a number >= 0"),
    ("temperature", -1, ValueError, "a number > 0"),
    ("temperature", 0.0, ValueError, "a number > 0"),
    ("temperature", float("nan"), ValueError, "a number > 0"),
    ("temperature", "0.1", TypeError, "a number > 0"),
    ("learn_temperature", None, TypeError, "True or False"),
    ("positives", "sum", ValueError, "one of 'sum_in_log', 'mean_log' or None"),
    ("similarity", "dot", ValueError, "one of 'cosine', 'neg_sqeuclidean'"),
    ("within_group", "ot", ValueError, "one of 'sinkhorn', 'mmd', 'ot_clip' or None"),
    ("gamma", -1.0, ValueError, "a number >= 0"),
]


@pytest.mark.parametrize(
    ("argument", "value", "error", "valid"),
    MODEL_CASES,
    ids=[f"{a}={v!r}" for a, v, _, _ in MODEL_CASES],
)
def test_model_hyperparameter_errors_name_argument_value_and_range(
    mdata, argument, value, error, valid
):
    with _expect(error, argument, value, valid):
        GROOVE(mdata, **{argument: value})


def test_model_hyperparameters_at_their_bounds_are_accepted(mdata):
    model = GROOVE(mdata, n_latent=1, n_hidden=1, dropout_rate=0.0, alpha=0.0, beta=0.0,
                   gamma=0.0, temperature=1e-3, contrastive=None)  # fmt: skip
    assert model.module.n_latent == 1


# (argument, invalid value, exception, valid range as the message states it)
TRAIN_CASES = [
    ("max_epochs", 0, ValueError, "an integer >= 1 or None"),
    ("max_epochs", -5, ValueError, "an integer >= 1 or None"),
    ("max_epochs", 10.0, TypeError, "an integer >= 1 or None"),
    ("lr", 0.0, ValueError, "a number > 0"),
    ("lr", -1e-3, ValueError, "a number > 0"),
    ("lr", float("inf"), ValueError, "a number > 0"),
    ("devices", 0, ValueError, "'auto', -1 (all), a count >= 1 or a list of device indices"),
    ("devices", [], ValueError, "'auto', -1 (all), a count >= 1 or a list of device indices"),
    ("devices", "two", ValueError, "'auto', -1 (all), a count >= 1 or a list of device indices"),
    ("train_size", 0.0, ValueError, "a number in (0, 1]"),
    ("train_size", 1.5, ValueError, "a number in (0, 1]"),
    ("validation_size", -0.1, ValueError, "a number in [0, 1) or None"),
    ("validation_size", 1.0, ValueError, "a number in [0, 1) or None"),
    ("batch_size", 0, ValueError, "an integer >= 1"),
    ("batch_size", 64.0, TypeError, "an integer >= 1"),
    ("groups_per_batch", 0, ValueError, "an integer >= 1 or None"),
    ("cells_per_group", 0, ValueError, "an integer >= 1 or None"),
    ("early_stopping", "yes", TypeError, "True or False"),
    ("early_stopping_patience", 0, ValueError, "an integer >= 1"),
    ("check_val_every_n_epoch", 0, ValueError, "an integer >= 1 or None"),
    ("n_epochs_kl_warmup", -1, ValueError, "an integer >= 0 or None"),
    ("seed", -1, ValueError, "an integer >= 0 or None"),
]


@pytest.mark.parametrize(
    ("argument", "value", "error", "valid"),
    TRAIN_CASES,
    ids=[f"{a}={v!r}" for a, v, _, _ in TRAIN_CASES],
)
def test_train_argument_errors_name_argument_value_and_range(model, argument, value, error, valid):
    with _expect(error, argument, value, valid):
        model.train(**{argument: value})
    assert not model.is_trained_  # nothing ran


def test_train_fractions_must_sum_to_at_most_one(model):
    with pytest.raises(ValueError, match=r"train_size \+ validation_size must be <= 1, got 0.8"):
        model.train(max_epochs=1, train_size=0.8, validation_size=0.3)


def test_one_epoch_and_no_kl_warmup_train(mdata):
    model = GROOVE(mdata, n_latent=4, n_hidden=8)
    with strict_warnings():  # also: no "smaller than the logging interval"
        model.train(max_epochs=1, n_epochs_kl_warmup=0, batch_size=1, enable_progress_bar=False)
    assert model.is_trained_
    assert len(model.history["elbo_train"]) == 1
    np.testing.assert_allclose(model.history["kl_weight"].to_numpy(dtype=float).ravel(), [1.0])


def test_log_every_n_steps_never_exceeds_the_batches_per_process():
    assert log_every_n_steps(1) == 1
    assert log_every_n_steps(9) == 9
    assert log_every_n_steps(500) == 10
    assert log_every_n_steps(9, n_processes=4) == 3  # ceil(9 / 4) batches per process


def test_max_processes_bounds_the_ddp_processes():
    assert max_processes(4, None) == 1 and max_processes(4, "auto") == 1
    assert max_processes(4, "ddp_find_unused_parameters_true") == 4
    assert max_processes([0, 2], "ddp", num_nodes=3) == 6
    assert max_processes("auto", "ddp") >= 1


def test_the_torch_module_checks_its_options_with_the_same_words():
    """GROOVEVAE built directly refuses what GROOVE(...) refuses, with the same message."""
    base = dict(n_input={"a": 3, "b": 3}, likelihoods={"a": "normal", "b": "normal"})
    for kwargs, match in [
        ({"similarity": "dot"}, "similarity must be one of 'cosine', 'neg_sqeuclidean', got 'dot'"),
        ({"positives": "all"}, "positives must be one of 'sum_in_log', 'mean_log' or None"),
        ({"gamma": -1.0}, "gamma must be a number >= 0, got -1.0"),
        ({"distrust_threshold": 0.0}, r"distrust_threshold must be a number in \(0, 1\] or None"),
    ]:
        with pytest.raises(ValueError, match=match):
            gs.module.GROOVEVAE(**base, **kwargs)
