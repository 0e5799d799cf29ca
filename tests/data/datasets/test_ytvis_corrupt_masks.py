"""load_ytvis_json refuses masks that pycocotools would decode outside its buffer.

An uncompressed RLE whose runs sum to 820 for a 48x64 frame used to load, and decoding it gave
"areas" of tens of thousands of pixels for a 3,072-pixel frame (uninitialised memory).
"""
import json

import numpy as np
import pycocotools.mask as mask_util
import pytest

from wsovvis.data.datasets import load_ytvis_json
from wsovvis.utils.rle import encode_mask

H, W = 48, 64


def _json(seg_frame1):
    good = np.zeros((H, W), np.uint8)
    good[10:20, 5:30] = 1
    return {
        "videos": [{"id": 5, "file_names": ["v/0.jpg", "v/1.jpg", "v/2.jpg"], "length": 3,
                    "height": H, "width": W}],
        "categories": [{"id": 1, "name": "object"}],
        "annotations": [
            {"id": 21, "video_id": 5, "category_id": 1, "iscrowd": 0,
             "segmentations": [encode_mask(good), encode_mask(good), None]},
            {"id": 22, "video_id": 5, "category_id": 1, "iscrowd": 0,
             "segmentations": [None, seg_frame1, encode_mask(good)]},
        ],
    }


def _load(tmp_path, seg):
    (tmp_path / "imgs").mkdir(exist_ok=True)
    path = tmp_path / "tubes.json"
    path.write_text(json.dumps(_json(seg)))
    return load_ytvis_json(str(path), str(tmp_path / "imgs"))


def _compressed(counts):
    """The compressed string pycocotools makes of (possibly corrupt) run lengths."""
    rle = mask_util.frPyObjects({"size": [H, W], "counts": counts}, H, W)
    return {"size": [H, W], "counts": rle["counts"].decode("ascii")}


CORRUPT = {
    "uncompressed sum 820": {"size": [H, W], "counts": [400, 20, 400]},
    "uncompressed sum too large": {"size": [H, W], "counts": [3000, 100]},
    "uncompressed negative run": {"size": [H, W], "counts": [3100, -28]},
    "uncompressed float run": {"size": [H, W], "counts": [3000.0, 72.0]},
    "compressed sum 820": _compressed([400, 20, 400]),
    "compressed sum too large": _compressed([3000, 100]),
    "compressed truncated": {"size": [H, W], "counts": "0P"},
    "compressed bad char": {"size": [H, W], "counts": "0 1"},
}


@pytest.mark.parametrize("name", sorted(CORRUPT))
def test_corrupt_mask_named_by_file_video_annotation_frame(tmp_path, name):
    with pytest.raises(ValueError) as exc:
        _load(tmp_path, CORRUPT[name])
    msg = str(exc.value)
    assert "tubes.json" in msg and "annotation id 22" in msg and "video id 5" in msg
    assert "frame 1" in msg
    if "sum" in name:
        assert "height x width = 48 x 64" in msg


def test_valid_uncompressed_and_compressed_still_load(tmp_path):
    counts = [400, 20, 3072 - 420]
    for seg in ({"size": [H, W], "counts": counts}, _compressed(counts)):
        dicts = _load(tmp_path, seg)
        obj = [o for o in dicts[0]["annotations"][1] if o["id"] == 22][0]
        assert mask_util.area({"size": [H, W], "counts": obj["segmentation"]["counts"]}) == 20


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("height", 0, "height 0"),
        ("width", -64, "width -64"),
        ("height", "48", "height '48'"),
        ("file_names", ["v/0.jpg", None, "v/2.jpg"], "file_names that are not paths"),
    ],
)
def test_bad_video_record_named(tmp_path, key, value, message):
    data = _json(None)
    data["videos"][0][key] = value
    (tmp_path / "imgs").mkdir()
    path = tmp_path / "tubes.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message) as exc:
        load_ytvis_json(str(path), str(tmp_path / "imgs"))
    assert "tubes.json" in str(exc.value) and "video id 5" in str(exc.value)


def test_malformed_bbox_named(tmp_path):
    data = _json(None)
    data["annotations"][0]["bboxes"] = [[1, 2, 3, 4], [1, 2], None]
    (tmp_path / "imgs").mkdir()
    path = tmp_path / "tubes.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"annotation id 21 \(video id 5\): frame 1 bbox"):
        load_ytvis_json(str(path), str(tmp_path / "imgs"))
