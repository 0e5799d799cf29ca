"""The scorer reproduces the figures the official youtubevos/cocoapi evaluator printed.

``data/ytvis_official/caseN`` holds a GT, a results file and the 12 stats of the official
``ytvoseval.py`` in both modes (see its README): an oracle independent of this code.
"""

import json
import os

import numpy as np
import pytest

from wsovvis.evaluation import STAT_NAMES, evaluate_ytvis

DATA = os.path.join(os.path.dirname(__file__), "data", "ytvis_official")
CASES = sorted(d for d in os.listdir(DATA) if d.startswith("case"))


def _expected(case, name):
    with open(os.path.join(DATA, case, name)) as f:
        stats = json.load(f)["stats"]
    return np.array([stats[k] for k in STAT_NAMES], dtype=np.float64)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(
    "class_agnostic, name", [(False, "expected_percat.json"), (True, "expected_agnostic.json")]
)
def test_all_12_stats_equal_the_official_ones(case, class_agnostic, name):
    gt, res = (os.path.join(DATA, case, f) for f in ("gt.json", "results.json"))
    r = evaluate_ytvis(gt, res, class_agnostic=class_agnostic)
    expected = _expected(case, name)
    assert r.stats.tolist() == expected.tolist()  # exactly, every bit


def test_there_are_four_cases():
    assert CASES == ["case1", "case2", "case3", "case4"]
