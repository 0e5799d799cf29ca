"""load_ytvis_json / register_ytvis_instances: accepted JSON quirks and rejected inputs."""
import copy
import json

import numpy as np
import pycocotools.mask as mask_util
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from wsovvis.data.datasets import (
    load_ytvis_json,
    register_ytvis_instances,
    unregister_ytvis_instances,
)
from wsovvis.data.datasets.ytvis import _frame_objects
from wsovvis.utils.rle import decode_segmentation, encode_mask

H, W = 8, 10


def _mask(x0, y0, x1, y1):
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def _base_json():
    m0, m1 = _mask(1, 1, 4, 5), _mask(5, 2, 9, 7)
    return {
        "videos": [
            {"id": 3, "file_names": ["v3/0.jpg", "v3/1.jpg", "v3/2.jpg"], "length": 3,
             "height": H, "width": W},
            {"id": 8, "file_names": ["v8/0.jpg"], "length": 1, "height": H, "width": W},
        ],
        "categories": [{"id": 7, "name": "cat", "partition": 2},
                       {"id": 2, "name": "dog", "partition": 0}],
        "annotations": [
            {"id": 11, "video_id": 3, "category_id": 7, "iscrowd": 0,
             "segmentations": [encode_mask(m0), None, encode_mask(m1)],
             "bboxes": [[1, 1, 3, 4], None, [5, 2, 4, 5]], "areas": [12, None, 20]},
            {"id": 12, "video_id": 8, "category_id": 2, "iscrowd": 0,
             "segmentations": [encode_mask(m1)]},
        ],
    }


def _write(tmp_path, data, name="ann.json"):
    (tmp_path / "imgs").mkdir(exist_ok=True)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path), str(tmp_path / "imgs")


def test_basic_dicts_follow_contract(tmp_path):
    path, root = _write(tmp_path, _base_json())
    dicts = load_ytvis_json(path, root)
    assert [d["video_id"] for d in dicts] == [3, 8]
    v = dicts[0]
    assert v["length"] == 3 and v["height"] == H and v["width"] == W
    assert v["file_names"][1] == f"{root}/v3/1.jpg"
    assert [len(a) for a in v["annotations"]] == [1, 0, 1]
    obj = v["annotations"][2][0]
    assert obj["id"] == 11 and obj["iscrowd"] == 0 and obj["bbox_mode"] == BoxMode.XYWH_ABS
    assert obj["category_id"] == 1  # dataset id 7 -> contiguous 1 (sorted ids 2, 7)
    assert obj["bbox"] == [5.0, 2.0, 4.0, 5.0]
    assert isinstance(obj["segmentation"]["counts"], str)
    np.testing.assert_array_equal(decode_segmentation(obj["segmentation"], H, W), _mask(5, 2, 9, 7))
    assert dicts[1]["annotations"][0][0]["category_id"] == 0


def test_missing_bboxes_and_areas_derived_from_rle(tmp_path):
    path, root = _write(tmp_path, _base_json())
    obj = load_ytvis_json(path, root)[1]["annotations"][0][0]
    assert obj["bbox"] == [5.0, 2.0, 4.0, 5.0]  # no 'bboxes'/'areas' keys on annotation 12


def test_partial_null_bboxes_are_derived(tmp_path):
    data = _base_json()
    data["annotations"][0]["bboxes"][0] = None
    path, root = _write(tmp_path, data)
    assert load_ytvis_json(path, root)[0]["annotations"][0][0]["bbox"] == [1.0, 1.0, 3.0, 4.0]


def test_uncompressed_rle_and_polygons(tmp_path):
    data = _base_json()
    m = _mask(2, 3, 6, 8)
    unc = mask_util.encode(np.asfortranarray(m))
    # uncompressed RLE: run lengths in column-major order starting with zeros
    flat = m.flatten(order="F")
    runs, cur, n = [], 0, 0
    for px in flat:
        if px == cur:
            n += 1
        else:
            runs.append(n)
            cur, n = px, 1
    runs.append(n)
    data["annotations"][0]["segmentations"][0] = {"size": [H, W], "counts": runs}
    data["annotations"][0]["segmentations"][2] = [[2, 2, 7, 2, 7, 6, 2, 6]]  # polygon
    data["annotations"][0].pop("bboxes")
    path, root = _write(tmp_path, data)
    objs = load_ytvis_json(path, root)[0]["annotations"]
    got0 = decode_segmentation(objs[0][0]["segmentation"], H, W)
    np.testing.assert_array_equal(got0, mask_util.decode(unc))
    assert objs[0][0]["bbox"] == [2.0, 3.0, 4.0, 5.0]
    poly = decode_segmentation(objs[2][0]["segmentation"], H, W)
    assert poly[3, 4] == 1 and poly[0, 0] == 0 and 15 <= poly.sum() <= 30


def test_bytes_counts_accepted():
    rle = encode_mask(_mask(0, 0, 2, 2))
    ann = {"id": 5, "category_id": 1, "segmentations": [{"size": [H, W],
                                                         "counts": rle["counts"].encode()}]}
    objs = _frame_objects(ann, {"id": 1, "height": H, "width": W, "length": 1}, "x.json",
                          {1: 0}, [])
    assert objs[0][1]["segmentation"]["counts"] == rle["counts"]
    assert objs[0][1]["bbox"] == [0.0, 0.0, 2.0, 2.0]


def test_windows_backslashes_in_file_names(tmp_path):
    data = _base_json()
    data["videos"][0]["file_names"] = ["v3\\0.jpg", "v3\\1.jpg", "v3\\2.jpg"]
    path, root = _write(tmp_path, data)
    assert load_ytvis_json(path, root)[0]["file_names"][2] == f"{root}/v3/2.jpg"


def test_images_only_json_has_no_annotations(tmp_path):
    data = _base_json()
    del data["annotations"]
    path, root = _write(tmp_path, data)
    dicts = load_ytvis_json(path, root)
    assert len(dicts) == 2 and all("annotations" not in d for d in dicts)


def test_extra_annotation_keys(tmp_path):
    data = _base_json()
    data["annotations"][0]["score"] = 0.75
    path, root = _write(tmp_path, data)
    obj = load_ytvis_json(path, root, extra_annotation_keys=["score"])[0]["annotations"][0][0]
    assert obj["score"] == 0.75


def test_metadata_with_partitions_and_conflict(tmp_path):
    path, root = _write(tmp_path, _base_json())
    name = "wsovvis_test_meta_partitions"
    load_ytvis_json(path, root, dataset_name=name)
    load_ytvis_json(path, root, dataset_name=name)  # same values again: no assertion
    meta = MetadataCatalog.get(name)
    assert meta.thing_classes == ["dog", "cat"]
    assert meta.thing_dataset_id_to_contiguous_id == {2: 0, 7: 1}
    assert meta.thing_partitions == [0, 2]
    other = _base_json()
    other["categories"][0]["name"] = "lion"
    path2, _ = _write(tmp_path, other, "other.json")
    with pytest.raises(ValueError, match="thing_classes.*other.json"):
        load_ytvis_json(path2, root, dataset_name=name)
    MetadataCatalog.remove(name)


def test_no_partition_no_thing_partitions(tmp_path):
    data = _base_json()
    for c in data["categories"]:
        del c["partition"]
    path, root = _write(tmp_path, data)
    name = "wsovvis_test_meta_nopart"
    load_ytvis_json(path, root, dataset_name=name)
    assert MetadataCatalog.get(name).get("thing_partitions") is None
    MetadataCatalog.remove(name)


def _bad(mutate):
    data = _base_json()
    mutate(data)
    return data


@pytest.mark.parametrize(
    "mutate, error, pattern",
    [
        (lambda d: d["annotations"][0]["segmentations"].pop(), ValueError,
         r"annotation id 11 \(video id 3\): 2 segmentations for a video of length 3"),
        (lambda d: d["annotations"][0].__setitem__("video_id", 99), ValueError,
         "annotation id 11 refers to unknown video id 99"),
        (lambda d: d["videos"][0].__setitem__("length", 4), ValueError,
         "video id 3 has 3 file_names but length 4"),
        (lambda d: d["annotations"][0]["segmentations"][0].__setitem__("size", [H, W + 1]),
         ValueError, r"annotation id 11 \(video id 3\): frame 0 RLE size \[8, 11\]"),
        (lambda d: d["videos"][1].pop("height"), KeyError, r"video id 8 .*\['height'\]"),
        (lambda d: d["annotations"][1].pop("segmentations"), KeyError,
         r"annotation id 12 .*\['segmentations'\]"),
        (lambda d: d.pop("videos"), KeyError, "top-level object"),
        (lambda d: d["annotations"][1].__setitem__("category_id", 5), ValueError,
         "annotation id 12 .*category_id 5"),
        (lambda d: d["annotations"][1].__setitem__("id", 11), ValueError,
         "duplicate annotation id 11"),
        (lambda d: d["annotations"][0]["bboxes"].pop(), ValueError,
         "annotation id 11 .*2 bboxes"),
        (lambda d: d["videos"][1].__setitem__("id", 3), ValueError, "duplicate video id 3"),
    ],
)
def test_bad_json_errors_name_file_and_ids(tmp_path, mutate, error, pattern):
    path, root = _write(tmp_path, _bad(mutate))
    with pytest.raises(error, match=pattern) as exc:
        load_ytvis_json(path, root)
    assert "ann.json" in str(exc.value)


def test_missing_files(tmp_path):
    path, root = _write(tmp_path, _base_json())
    with pytest.raises(FileNotFoundError, match="image root .*nowhere.*ann.json"):
        load_ytvis_json(path, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_ytvis_json(str(tmp_path / "missing.json"), root)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        load_ytvis_json(str(tmp_path / "broken.json"), root)


def test_register_is_lazy_and_idempotent(tmp_path):
    path, root = _write(tmp_path, _base_json())
    name = "wsovvis_test_register"
    register_ytvis_instances(name, {}, path, root)
    register_ytvis_instances(name, {}, path, root)  # same args: harmless
    with pytest.raises(ValueError, match="already registered"):
        register_ytvis_instances(name, {}, str(tmp_path / "other.json"), root)
    meta = MetadataCatalog.get(name)
    assert meta.evaluator_type == "ytvis" and meta.json_file == path and meta.image_root == root
    assert meta.get("thing_classes") is None  # not read yet
    assert len(DatasetCatalog.get(name)) == 2
    assert MetadataCatalog.get(name).thing_classes == ["dog", "cat"]
    unregister_ytvis_instances(name)
    assert name not in DatasetCatalog.list()

    lazy = "wsovvis_test_register_missing"
    register_ytvis_instances(lazy, {}, str(tmp_path / "absent.json"), root)  # no file needed
    with pytest.raises(FileNotFoundError, match="absent.json"):
        DatasetCatalog.get(lazy)
    unregister_ytvis_instances(lazy)


def test_input_json_not_modified(tmp_path):
    data = _base_json()
    snapshot = copy.deepcopy(data)
    path, root = _write(tmp_path, data)
    load_ytvis_json(path, root)
    assert json.loads(open(path).read()) == snapshot


def test_ensure_metadata_without_loading(tmp_path):
    from wsovvis.data.datasets import ensure_ytvis_metadata

    path, root = _write(tmp_path, _base_json())
    name = "wsovvis_test_ensure_meta"
    register_ytvis_instances(name, {}, path, root)
    ensure_ytvis_metadata(name)
    assert MetadataCatalog.get(name).thing_dataset_id_to_contiguous_id == {2: 0, 7: 1}
    ensure_ytvis_metadata(name)  # second call: nothing changes, no assertion
    unregister_ytvis_instances(name)
