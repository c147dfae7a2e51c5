"""Fixtures shared by unit and integration tests: a small generated data set in the dog-breed layout."""

from __future__ import annotations

import os
from pathlib import Path

# smdebug's protobuf files need the pure-Python protobuf backend, chosen when protobuf is first imported
# (the SDK and torch import it early): set before any test module loads (as the training image does).
os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")

import pytest

from classifier_host.data import samples as sample_set


@pytest.fixture(scope="session", autouse=True)
def tracking_store(tmp_path_factory) -> str:
    """Every job a test runs is tracked (the launchers always track): into a store of the run's own, never
    the checkout's build/mlflow/. Subprocesses inherit it."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    return uri


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """5 classes x (12 train, 4 valid, 4 test) small JPEGs: enough to exercise every code path fast."""
    return sample_set.make(tmp_path_factory.mktemp("tiny"), per_class=(12, 4, 4), width=96, height=80)
