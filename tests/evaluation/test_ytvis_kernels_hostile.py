"""The compiled kernels refuse inconsistent or hostile buffers instead of crashing or hanging.

The scorer always passes consistent tables, but the module functions are callable directly; each
case below crashed, hung or read out of bounds before its check existed (found by fuzzing an
AddressSanitizer build).
"""

import numpy as np
import pytest
from _packed_helpers import requires_kernels

from wsovvis.evaluation import ytvis_packed

pytestmark = requires_kernels

_DOC = b'{"segmentations": [{"size": [2, 2], "counts": [0, 4]}]}'  # one full 2x2 mask


def _i64(*values):
    return np.array(values, dtype=np.int64)


def _tables():
    """Writable copies of the tables of one one-frame track."""
    return [np.array(t) for t in ytvis_packed.pack(_DOC)[1].tables]


def _video_iou(dt, gt, hw=(2, 2), v_d=(0, 1)):
    return ytvis_packed._kernels.video_iou(
        tuple(dt), tuple(gt), _i64(*hw), _i64(*v_d), _i64(0), _i64(0), _i64(0, 1), _i64(0), _i64(0)
    )


def _status(out):
    return np.frombuffer(out[2], dtype=np.int8).tolist()


def test_consistent_tables_are_scored():
    out = _video_iou(_tables(), _tables())
    assert _status(out) == [0] and np.frombuffer(out[0]).tolist() == [1.0]


@pytest.mark.parametrize(
    "off, length",
    [(2**62 + 2**40, 2**62 - 2**40 + 1), (0, 2**62), (0, -10), (-1, 1), (3, 0)],
    ids=["sum-wraps", "huge-length", "negative-length", "negative-offset", "past-the-end"],
)
def test_frame_slices_outside_the_tables_are_left_to_pycocotools(off, length):
    dt = _tables()
    dt[4][0], dt[5][0] = off, length
    assert _status(_video_iou(dt, _tables())) == [1]


def test_non_monotone_track_start_is_refused():
    dt = _tables()
    dt[0][1] = 5  # past the frame table
    with pytest.raises(ValueError, match="track_start"):
        _video_iou(dt, _tables())


@pytest.mark.parametrize(
    "hw, v_d, message",
    [
        ((2, 2), (0, 2**63 - 1), "inconsistent"),
        ((2**32 + 2, 2), (0, 1), "video size"),
        ((-1, 2), (0, 1), "video size"),
    ],
)
def test_bad_video_arrays_are_refused(hw, v_d, message):
    with pytest.raises(ValueError, match=message):
        _video_iou(_tables(), _tables(), hw=hw, v_d=v_d)


def test_misaligned_tables_are_refused():
    dt = _tables()
    raw = np.zeros(dt[0].nbytes + 1, np.uint8)
    raw[1:] = dt[0].view(np.uint8)
    dt[0] = memoryview(raw)[1:]  # int64 data at an odd address
    with pytest.raises(ValueError, match="misaligned"):
        _video_iou(dt, _tables())


def _accumulate(num_t=1, rec=(0.0, 0.5), n=2):
    k = np.zeros(n, np.int64)
    out = np.zeros(len(rec) * num_t if num_t < 2**20 else 1)
    return ytvis_packed._kernels.accumulate(
        1,
        1,
        num_t,
        k,
        k.copy(),
        np.linspace(0.9, 0.8, n),
        np.ones(n * min(num_t, 4), np.uint8),
        np.zeros(n * min(num_t, 4), np.uint8),
        _i64(1),
        np.array(rec),
        _i64(100),
        out,
        np.zeros(num_t if num_t < 2**20 else 1),
        None,
    )


def test_accumulate_runs_on_consistent_buffers():
    assert _accumulate() is None


@pytest.mark.parametrize("kwargs", [dict(num_t=2**61, n=8), dict(rec=(0.5, 0.0))])
def test_accumulate_refuses_overflowing_shapes_and_unsorted_thresholds(kwargs):
    with pytest.raises(ValueError, match="inconsistent"):
        _accumulate(**kwargs)


def test_escaped_keys_and_deep_documents_are_not_packed():
    # "segm\u0065ntations" decodes to "segmentations": a user string could pass for a marker
    assert ytvis_packed.pack(b'[{"segmentations": [null]}, {"segm\\u0065ntations": "#0"}]') is None
    # replacing the lists makes a document shallower: one too deep for the parser must stay so
    deep = b"[" * 999 + _DOC + b"]" * 999
    assert ytvis_packed.pack(deep) is None
    assert ytvis_packed.pack(b"[" * 900 + _DOC + b"]" * 900) is not None
