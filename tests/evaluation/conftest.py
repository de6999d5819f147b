"""A store with the counting RNN of ``cells_support`` and the dataset it reads."""

from __future__ import annotations

import pytest
from cells_support import counting_store


@pytest.fixture(scope="session")
def counter_store(tmp_path_factory):
    return counting_store(tmp_path_factory.mktemp("counter-store"))
