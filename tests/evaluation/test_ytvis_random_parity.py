"""Randomised parity: fast scorer == slow reference transcription (always) == official (opt-in).

Set ``WSOVVIS_OFFICIAL_YTVIS`` to an unmodified youtubevos/cocoapi checkout (its
``PythonAPI/pycocotools`` holds ``ytvos.py`` / ``ytvoseval.py``; the NumPy/import fixes are applied
in memory by :func:`wsovvis.evaluation.official.load_official`) to also compare against the
official implementation. Without it, CI checks the reference transcription and the official figures
of ``test_ytvis_official_figures.py``.
"""

import contextlib
import copy
import io
import os

import numpy as np
import pytest
from _ytvis_cases import random_case
from _ytvis_reference import reference_evaluate

from wsovvis.evaluation import evaluate_ytvis
from wsovvis.evaluation.official import load_official

OFFICIAL_DIR = os.environ.get("WSOVVIS_OFFICIAL_YTVIS")


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("class_agnostic", [False, True])
def test_matches_reference_transcription(seed, class_agnostic):
    gt, res = random_case(seed, num_videos=4, big=seed % 4 == 0, many=110 * (seed == 3))
    stats, precision, recall = reference_evaluate(gt, res, class_agnostic)
    r = evaluate_ytvis(gt, res, class_agnostic=class_agnostic)
    assert np.array_equal(r.precision, precision)
    assert np.array_equal(r.recall, recall)
    assert np.array_equal(r.stats, stats)


def test_inputs_are_not_modified():
    gt, res = random_case(5, num_videos=4)
    gt0, res0 = copy.deepcopy(gt), copy.deepcopy(res)
    first = evaluate_ytvis(gt, res)
    evaluate_ytvis(gt, res, class_agnostic=True)
    assert gt == gt0 and res == res0
    assert np.array_equal(evaluate_ytvis(gt, res).precision, first.precision)


def _official(gt, res, class_agnostic):
    YTVOS, YTVOSeval = load_official(OFFICIAL_DIR)
    with contextlib.redirect_stdout(io.StringIO()):
        g = YTVOS()
        g.dataset = copy.deepcopy(gt)
        g.createIndex()
        ev = YTVOSeval(g, g.loadRes(copy.deepcopy(res)), "segm")
        ev.params.useCats = 0 if class_agnostic else 1
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.mark.skipif(not OFFICIAL_DIR, reason="set WSOVVIS_OFFICIAL_YTVIS to the official code dir")
@pytest.mark.parametrize("class_agnostic", [False, True])
def test_matches_official(class_agnostic):
    for seed in range(100, 140):
        gt, res = random_case(seed, num_videos=8, big=seed % 5 == 0, many=130 * (seed % 7 == 0))
        if not res:  # the official loadRes cannot read an empty list
            continue
        ev = _official(gt, res, class_agnostic)
        r = evaluate_ytvis(gt, res, class_agnostic=class_agnostic, with_scores=True)
        np.testing.assert_allclose(r.stats, ev.stats, rtol=0, atol=1e-12)
        np.testing.assert_allclose(r.precision, ev.eval["precision"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(r.recall, ev.eval["recall"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(r.scores, ev.eval["scores"], rtol=0, atol=1e-12)


def test_official_loader_says_what_to_do(tmp_path):
    with pytest.raises(ValueError, match=r"no ytvos.py/ytvoseval.py.*youtubevos/cocoapi"):
        load_official(str(tmp_path))
    (tmp_path / "ytvos.py").write_text("raise ImportError('no such module')\n")
    (tmp_path / "ytvoseval.py").write_text("")
    with pytest.raises(ValueError, match=r"cannot load the official .*ytvos.py \(ImportError"):
        load_official(str(tmp_path))
