"""Fixtures the unit tests of several packages share."""

from __future__ import annotations

import pytest

from tests.unit import small_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A small real artifact (tests/unit/small_model.py), one per test module."""
    return small_model.save(tmp_path_factory.mktemp("model"))
