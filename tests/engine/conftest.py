"""Engine test fixtures; helpers live in ``engine_helpers.py``."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)  # spawned ranks inherit sys.path, so they can import tiny_arch


@pytest.fixture
def tiny_dataset(tiny_synthetic_dataset):
    return tiny_synthetic_dataset
