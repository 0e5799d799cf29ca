"""Engine test fixtures; helpers live in ``engine_helpers.py``."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)  # spawned ranks inherit sys.path (engine_helpers.ddp_worker)

from engine_helpers import class_agnostic_dataset  # noqa: E402


@pytest.fixture(scope="session")
def agnostic_dataset(tiny_synthetic_dataset, tmp_path_factory):
    """The tiny synthetic dataset with class-agnostic GT tubes (one "object" category)."""
    return class_agnostic_dataset(tiny_synthetic_dataset, tmp_path_factory.mktemp("agnostic"))
