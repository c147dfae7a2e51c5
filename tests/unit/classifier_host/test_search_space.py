"""The one search space: its shape, that every value it yields passes the trainer's schema, and its
conversions (SageMaker SDK parameter ranges, Optuna distributions)."""

import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from classifier.contract import hyperparams
from classifier.contract.hyperparams import SEARCH_SPACE, Categorical, Continuous, Integer
from classifier_host.tuning import cloud, results, search
from classifier_host.tuning import jobs as tuning_jobs


def test_space_tunes_what_the_issue_asks_for():
    assert SEARCH_SPACE["lr"] == Continuous(1e-5, 1e-2, log=True)
    assert SEARCH_SPACE["batch-size"] == Categorical((32, 64, 128))
    assert set(SEARCH_SPACE["fine-tune"].values) == set(hyperparams.BY_NAME["fine-tune"].choices)
    assert {"weight-decay", "label-smoothing"} <= set(SEARCH_SPACE)
    assert set(SEARCH_SPACE) <= set(hyperparams.BY_NAME)


def _edge_values(rng):
    if isinstance(rng, Categorical):
        return list(rng.values)
    if isinstance(rng, Integer):
        return list(range(rng.min, rng.max + 1))
    middle = math.sqrt(rng.min * rng.max) if rng.log else (rng.min + rng.max) / 2
    return [rng.min, middle, rng.max]


@pytest.mark.parametrize("name", sorted(SEARCH_SPACE))
def test_every_bound_and_choice_passes_the_schema(name):
    param = hyperparams.BY_NAME[name]
    for value in _edge_values(SEARCH_SPACE[name]):
        # As a job receives it: a string in hyperparameters.json.
        assert param.parse(results.as_hp_string(value)) == value


def test_values_the_local_sampler_draws_pass_the_schema():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=3, n_startup_trials=5))
    dists = search.distributions(SEARCH_SPACE)
    for step in range(30):
        trial = study.ask(fixed_distributions=dists)
        parsed = hyperparams.parse({k: results.as_hp_string(v) for k, v in trial.params.items()})
        assert parsed.lr == trial.params["lr"] and parsed.batch_size in (32, 64, 128)
        study.tell(trial, step % 7 / 7)  # some objective, so TPE (not only random) gets to sample too


def test_conversion_to_optuna_distributions():
    dists = search.distributions(SEARCH_SPACE)
    assert dists["lr"] == FloatDistribution(1e-5, 1e-2, log=True)
    assert dists["batch-size"] == CategoricalDistribution((32, 64, 128))
    assert dists["warmup-epochs"] == IntDistribution(0, 2)
    assert dists["label-smoothing"] == FloatDistribution(0.0, 0.2)


def test_conversion_to_sagemaker_parameter_ranges():
    from sagemaker.core.utils.utils import serialize  # what resources send

    from classifier_host.sagemaker import tuning

    described = serialize(tuning.parameter_ranges(SEARCH_SPACE))  # as the request carries them
    ranges = {r["Name"]: r for kind in described.values() for r in kind}
    assert ranges["lr"] == {"Name": "lr", "MinValue": "1e-05", "MaxValue": "0.01", "ScalingType": "Logarithmic"}
    assert ranges["batch-size"] == {"Name": "batch-size", "Values": ["32", "64", "128"]}
    assert ranges["warmup-epochs"] == {
        "Name": "warmup-epochs",
        "MinValue": "0",
        "MaxValue": "2",
        "ScalingType": "Linear",
    }
    # ...and back: what DescribeHyperParameterTuningJob returns becomes the same space again.
    back = cloud.space_from_ranges(described)
    assert back["lr"] == SEARCH_SPACE["lr"] and back["warmup-epochs"] == SEARCH_SPACE["warmup-epochs"]
    assert back["batch-size"] == Categorical(("32", "64", "128"))  # AWS keeps categorical values as strings


def test_fixed_values_leave_the_search():
    space = tuning_jobs.search_space({"batch-size": "32", "epochs": "3"})
    assert "batch-size" not in space and set(space) == set(SEARCH_SPACE) - {"batch-size"}


def test_unknown_range_kind_is_refused():
    with pytest.raises(TypeError, match="'lr'"):
        search.distributions({"lr": (1e-5, 1e-2)})
