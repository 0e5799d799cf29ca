"""Converter output format and the GT -> id PNGs -> converter round trip."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from wsovvis.pseudo import ConvertOptions, convert_videocutler_pngs, render_ytvis_to_id_pngs
from wsovvis.pseudo.tubes import tubes_to_results
from wsovvis.utils.rle import decode_segmentation, rle_area, rle_bbox

from pseudo_testdata import default_gt, make_gt_video, write_frames


def _convert(vs, **kw):
    kw.setdefault("progress", False)
    return convert_videocutler_pngs(ConvertOptions(mask_root=vs["mask_root"],
                                                   img_root=vs["img_root"], **kw))


def _masks_by_frame(dataset, video_id):
    """{frame t: sorted list of mask bytes} for one video (instance order does not matter)."""
    video = next(v for v in dataset["videos"] if v["id"] == video_id)
    out = {t: [] for t in range(video["length"])}
    for a in dataset["annotations"]:
        if a["video_id"] != video_id:
            continue
        for t, seg in enumerate(a["segmentations"]):
            if seg is not None:
                out[t].append(decode_segmentation(seg, video["height"], video["width"]).tobytes())
    return {t: sorted(m) for t, m in out.items()}


@pytest.mark.parametrize("palette", [True, False])
def test_roundtrip_gt_to_pngs_to_tubes(video_set, palette, tmp_path):
    gt = video_set["gt"]
    if not palette:  # 8-bit grey id PNGs instead of palette PNGs
        video_set["mask_root"] = str(tmp_path / "grey_masks")
        render_ytvis_to_id_pngs(gt, video_set["mask_root"], palette=False)
    res = _convert(video_set)
    ds = res.dataset
    assert res.num_converted == 3 and res.report["summary"]["skipped"] == 0
    assert len(ds["annotations"]) == len(gt["annotations"])
    for v_gt, v in zip(gt["videos"], ds["videos"]):
        assert v == v_gt  # ids from sorted folder names, relative forward-slash file names
        assert _masks_by_frame(ds, v["id"]) == _masks_by_frame(gt, v["id"])
    # tubes follow the GT annotation order (png ids 1..N), so the per-frame None pattern matches too
    for a_gt, a in zip(gt["annotations"], ds["annotations"]):
        assert [s is None for s in a["segmentations"]] == [s is None for s in a_gt["segmentations"]]
        assert a["bboxes"] == a_gt["bboxes"] and a["areas"] == a_gt["areas"]


def test_record_format(video_set):
    ds = _convert(video_set, category_id=3, category_name="thing").dataset
    assert ds["categories"] == [{"id": 3, "name": "thing", "supercategory": "thing"}]
    ids = [a["id"] for a in ds["annotations"]]
    assert ids == list(range(1, len(ids) + 1))
    for a in ds["annotations"]:
        v = ds["videos"][a["video_id"] - 1]
        assert a["category_id"] == 3 and a["iscrowd"] == 0
        assert (a["height"], a["width"], a["length"]) == (v["height"], v["width"], v["length"])
        for key in ("segmentations", "bboxes", "areas"):
            assert len(a[key]) == v["length"]
        for seg, box, area in zip(a["segmentations"], a["bboxes"], a["areas"]):
            assert (seg is None) == (box is None) == (area is None)
            if seg is not None:
                assert isinstance(seg["counts"], str) and seg["size"] == [v["height"], v["width"]]
                assert area == rle_area(seg) > 0 and box == rle_bbox(seg)
    json.dumps(ds)  # serialisable as is


def test_frames_without_mask_are_null_and_empty_ids_dropped(tmp_path):
    tracks = [[(0, 0, 3, 3)] * 6, [(5, 5, 9, 9)] * 6]
    v, anns = make_gt_video(1, "v", 6, 12, 12, tracks)
    gt = {"videos": [v], "annotations": anns, "categories": [{"id": 1, "name": "x"}]}
    img_root, mask_root = str(tmp_path / "img"), str(tmp_path / "m")
    write_frames(img_root, v)
    render_ytvis_to_id_pngs(gt, mask_root)
    for t in (1, 4):
        os.remove(os.path.join(mask_root, "v", f"mask_{t:05d}.png"))
    # instance 2 is renamed to id 5 on every frame: ids 2..4 never appear and give no tube
    for t in (0, 2, 3, 5):
        p = os.path.join(mask_root, "v", f"mask_{t:05d}.png")
        im = Image.open(p)
        arr = np.array(im)
        arr[arr == 2] = 5
        out = Image.fromarray(arr, mode="P")
        out.putpalette(im.getpalette())
        out.save(p)
    ds = convert_videocutler_pngs(ConvertOptions(mask_root, img_root, progress=False)).dataset
    assert [a["png_id"] for a in ds["annotations"]] == [1, 5]
    for a in ds["annotations"]:
        assert [s is None for s in a["segmentations"]] == [False, True, False, False, True, False]
        assert a["areas"][1] is None and a["bboxes"][4] is None


def test_png_frames_and_16bit_ids(tmp_path):
    v, anns = make_gt_video(1, "v", 3, 10, 10, [[(0, 0, 4, 4)] * 3], ext=".png")
    img_root, mask_root = str(tmp_path / "img"), str(tmp_path / "m")
    write_frames(img_root, v)
    os.makedirs(os.path.join(mask_root, "v"))
    for t in range(3):
        arr = np.zeros((10, 10), np.uint16)
        arr[:4, :4] = 300
        Image.fromarray(arr).save(os.path.join(mask_root, "v", f"mask_{t:05d}.png"))
    ds = convert_videocutler_pngs(ConvertOptions(mask_root, img_root, progress=False)).dataset
    assert [a["png_id"] for a in ds["annotations"]] == [300]
    assert ds["videos"][0]["file_names"][0] == "v/00000.png"
    assert ds["annotations"][0]["areas"] == [16, 16, 16]


def test_ref_json_ids_and_results(video_set, tmp_path):
    gt = default_gt()
    for v in gt["videos"]:
        v["id"] += 40
        v["file_names"] = [f.replace("/", "\\") for f in v["file_names"]]  # LV-VIS backslashes
    for a in gt["annotations"]:
        a["video_id"] += 40
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps(gt))
    ds = _convert(video_set, ref_json=str(ref)).dataset
    assert [v["id"] for v in ds["videos"]] == [41, 42, 43]
    res = tubes_to_results(ds, score=0.5, category_id=9)
    assert len(res) == len(ds["annotations"])
    assert {r["video_id"] for r in res} == {41, 42, 43}
    assert all(r["score"] == 0.5 and r["category_id"] == 9 for r in res)
