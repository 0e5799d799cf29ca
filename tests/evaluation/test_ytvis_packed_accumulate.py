"""The compiled accumulate (``_ytvis_accumulate.h``) == the numpy accumulate, bit for bit.

``ytvis_accumulate.accumulate`` runs ``ytvis_packed.accumulate_kernel()`` when the kernels are
available and its vectorised numpy version with ``WSOVVIS_EVAL_KERNELS=0``: the same inputs must
give identical precision / recall / scores arrays (``-1`` cells included).
"""

import numpy as np
import pytest
from _packed_helpers import requires_kernels, scene
from _ytvis_cases import random_case

from wsovvis.evaluation import evaluate_ytvis, ytvis_accumulate, ytvis_eval
from wsovvis.evaluation.ytvis_match import AREA_LABELS, IOU_THRESHOLDS, MAX_DETS, REC_THRESHOLDS

pytestmark = requires_kernels


@pytest.fixture
def kernel_calls(monkeypatch):
    """Per ``accumulate`` call, whether the compiled kernel ran."""
    calls = []
    real = ytvis_accumulate.accumulate_kernel

    def spy():
        kernel = real()
        calls.append(kernel is not None)
        return kernel

    monkeypatch.setattr(ytvis_accumulate, "accumulate_kernel", spy)
    return calls


def _both(monkeypatch, kernel_calls, args, with_scores=True):
    """``accumulate(*args)`` with the kernels disabled, then enabled: both outputs."""
    out = []
    for env in ("0", "1"):
        with monkeypatch.context() as m:
            m.setenv("WSOVVIS_EVAL_KERNELS", env)
            copies = [np.array(a, copy=True) for a in args]
            out.append(ytvis_accumulate.accumulate(*copies, with_scores=with_scores))
            for a, c in zip(args, copies):  # inputs are not modified
                assert np.array_equal(a, c)
    assert kernel_calls[-2:] == [False, True]
    return out


def _assert_identical(numpy_out, kernel_out, num_k):
    shapes = [
        (len(IOU_THRESHOLDS), len(REC_THRESHOLDS), num_k, len(AREA_LABELS), len(MAX_DETS)),
        (len(IOU_THRESHOLDS), num_k, len(AREA_LABELS), len(MAX_DETS)),
    ]
    shapes.append(shapes[0])
    for name, x, y, shape in zip(("precision", "recall", "scores"), numpy_out, kernel_out, shapes):
        if x is None:
            assert y is None and name == "scores"
            continue
        assert x.shape == y.shape == shape and x.dtype == y.dtype == np.float64, name
        assert np.array_equal(x, y), name


def _random_inputs(seed, num_k, num_v, max_block=130, p_ignored=0.2, p_no_gt=0.3):
    """Detections of random (video, category) blocks sorted as the scorer does: scores with
    ties (one decimal), ranks past 100 in some blocks; random matches, ignored detections,
    categories / area ranges without GT, categories with GT but no detection."""
    rng = np.random.default_rng(seed)
    k, v, rank, score = [], [], [], []
    for vi in range(num_v):
        for ki in range(num_k):
            r = rng.random()
            if r < 0.25 and vi + ki > 0:
                n = 0
            elif r < 0.4 or vi + ki == 0:  # the first block always
                n = int(rng.integers(101, max_block + 1))
            else:
                n = int(rng.integers(1, 12))
            s = np.round(rng.random(n), 1)
            s = s[np.argsort(-s, kind="stable")]  # block order: score desc, stable
            k += [ki] * n
            v += [vi] * n
            rank += list(range(n))
            score += s.tolist()
    n = len(k)
    perm = rng.permutation(n)  # accumulate must not depend on the input order
    k, v, rank, score = (np.array(x)[perm] for x in (k, v, rank, score))
    num_a, num_t = len(AREA_LABELS), len(IOU_THRESHOLDS)
    # matches: a detection matched at threshold t is matched at every lower threshold
    quality = rng.integers(0, num_t + 1, size=(num_a, n))
    matched = np.arange(num_t)[None, :, None] < quality[:, None, :]
    ignored = rng.random((num_a, num_t, n)) < p_ignored
    ignored |= (rng.random((num_a, 1, n)) < p_ignored) & ~matched  # area-range outliers
    npig = rng.integers(0, 6, size=(num_k, num_a))
    npig[rng.random((num_k, num_a)) < p_no_gt] = 0
    npig[rng.random(num_k) < p_no_gt / 2] = 0
    npig[0, 0] = max(int(npig[0, 0]), 1)  # never no GT at all
    return (
        k.astype(np.int64),
        v.astype(np.int64),
        rank.astype(np.int64),
        score.astype(np.float64),
        matched,
        ignored,
        npig.astype(np.int64),
    )


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("class_agnostic", [False, True])
def test_random_inputs(monkeypatch, kernel_calls, seed, class_agnostic):
    num_k = 1 if class_agnostic else 2 + seed
    args = _random_inputs(seed, num_k, num_v=3 + seed % 3)
    k, _, rank, score, matched, ignored, npig = args
    assert (rank >= 100).any() and len(np.unique(score)) < len(score)
    assert ignored.any() and matched.any()
    if not class_agnostic:
        assert not npig.all() and npig.any()
    numpy_out, kernel_out = _both(monkeypatch, kernel_calls, args)
    _assert_identical(numpy_out, kernel_out, num_k)
    precision = kernel_out[0]
    assert (precision > 0).any() and (precision == -1).any() == (npig == 0).any()


def _dets(k, score, num_k, npig_value):
    """Detections of one video, rank = position in the category block, every area range."""
    k, score = np.array(k, np.int64), np.array(score, np.float64)
    rank = np.array([int((k[:i] == k[i]).sum()) for i in range(len(k))], np.int64)
    matched = np.zeros((len(AREA_LABELS), len(IOU_THRESHOLDS), len(k)), bool)
    npig = np.full((num_k, len(AREA_LABELS)), npig_value, np.int64)
    return k, np.zeros(len(k), np.int64), rank, score, matched, matched.copy(), npig


@pytest.mark.parametrize("with_scores", [False, True])
def test_degenerate_inputs(monkeypatch, kernel_calls, with_scores):
    no_dets = _dets([], [], 2, 3)  # categories with GT, no detection
    no_gt = _dets([0, 0, 1], [0.5, 0.5, 0.2], 2, 0)  # detections, no GT
    no_gt[4][:] = True
    one = _dets([0], [1.0], 1, 1)  # one detection, matched, ignored in 3 area ranges
    one[4][:] = True
    one[5][1:] = True
    all_ignored = _dets([0, 0], [0.3, 0.3], 1, 2)
    all_ignored[5][:] = True
    for args in (no_dets, no_gt, one, all_ignored):
        numpy_out, kernel_out = _both(monkeypatch, kernel_calls, args, with_scores)
        _assert_identical(numpy_out, kernel_out, args[-1].shape[0])
        assert (kernel_out[2] is None) == (not with_scores)
    assert kernel_out[1][:, 0, 0, :].tolist() == [[0.0, 0.0, 0.0]] * len(IOU_THRESHOLDS)


@pytest.mark.parametrize("class_agnostic", [False, True])
def test_inputs_of_real_evaluations(monkeypatch, kernel_calls, class_agnostic):
    # the arguments the scorer passes: > 100 detections in a block (many=150), categories
    # without GT, crowd / area-ignored GT and detections, score ties
    captured = []
    real = ytvis_eval.accumulate

    def capture(*args, **kwargs):
        captured.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(ytvis_eval, "accumulate", capture)
    for seed in (3, 11):
        evaluate_ytvis(*random_case(seed, num_videos=5, many=150), class_agnostic=class_agnostic)
    evaluate_ytvis(*scene(4, gt_counts="mixed", num_videos=6), class_agnostic=class_agnostic)
    assert len(captured) == 3
    rank_100 = False
    for args in captured:
        det_k, _, rank, score, matched, ignored, npig = args
        rank_100 |= int(rank.max(initial=0)) == 99
        numpy_out, kernel_out = _both(monkeypatch, kernel_calls, args)
        _assert_identical(numpy_out, kernel_out, npig.shape[0])
        assert (kernel_out[0] > 0).any()
    assert rank_100, "no block reached maxDets = 100"
