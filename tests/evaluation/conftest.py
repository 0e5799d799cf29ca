"""Fixtures of the evaluation tests."""

import pytest
from _packed_helpers import install_spy


@pytest.fixture
def spy(monkeypatch):
    """Outputs of the packed IoU kernel and of ``run_videos`` during the test (route checks)."""
    return install_spy(monkeypatch)
