"""Every skip reason and every bad-input case of the converter, with and without --strict."""
import json
import os
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from wsovvis.pseudo import (
    ERROR_REASONS,
    ConversionError,
    ConvertOptions,
    convert_videocutler_pngs,
    read_skip_list,
)

from pseudo_testdata import default_gt


def _run(vs, **kw):
    kw.setdefault("progress", False)
    return convert_videocutler_pngs(ConvertOptions(mask_root=vs["mask_root"],
                                                   img_root=vs["img_root"], **kw))


def _skipped(result):
    return {r["name"]: r for r in result.report["skipped"]}


def _mask(vs, video, t):
    return os.path.join(vs["mask_root"], video, f"mask_{t:05d}.png")


def _frame(vs, video, t, ext=".jpg"):
    return os.path.join(vs["img_root"], video, f"{t:05d}{ext}")


def _break_corrupt(vs):
    with open(_mask(vs, "vid_b", 2), "r+b") as f:  # truncate the PNG mid-stream
        f.truncate(60)
    return "vid_b", "corrupt_png", _mask(vs, "vid_b", 2)


def _break_rgb(vs):
    p = _mask(vs, "vid_b", 1)
    Image.open(p).convert("RGB").save(p)  # what cv2.imread + imwrite does to a palette PNG
    return "vid_b", "rgb_mask", p


def _break_mode(vs):
    p = _mask(vs, "vid_b", 0)
    Image.open(p).convert("LA").save(p)
    return "vid_b", "unsupported_mask", p


def _break_size(vs):
    p = _mask(vs, "vid_c", 3)
    Image.open(p).resize((10, 10), Image.NEAREST).save(p)
    return "vid_c", "size_mismatch", p


def _break_orphan(vs):
    p = os.path.join(vs["mask_root"], "vid_a", "mask_00099.png")
    shutil.copy(_mask(vs, "vid_a", 0), p)
    return "vid_a", "orphan_mask", p


def _break_frame(vs):
    p = _frame(vs, "vid_c", 2)
    with open(p, "wb") as f:
        f.write(b"not an image")
    return "vid_c", "unreadable_frame", p


def _break_frame_size(vs):
    p = _frame(vs, "vid_a", 3)
    Image.new("RGB", (8, 8)).save(p)
    return "vid_a", "frame_size_varies", p


def _break_duplicate(vs):
    p = _frame(vs, "vid_b", 1, ".png")
    Image.new("RGB", (16, 20)).save(p)
    return "vid_b", "duplicate_frame", p


BREAKERS = [_break_corrupt, _break_rgb, _break_mode, _break_size, _break_orphan, _break_frame,
            _break_frame_size, _break_duplicate]


@pytest.mark.parametrize("breaker", BREAKERS, ids=lambda b: b.__name__[7:])
def test_broken_input_is_skipped_or_fails_strict(video_set, breaker):
    video, reason, path = breaker(video_set)
    assert reason in ERROR_REASONS
    res = _run(video_set)
    skipped = _skipped(res)
    assert list(skipped) == [video] and skipped[video]["reason"] == reason
    assert skipped[video]["path"] == path and video in skipped[video]["detail"]
    assert res.num_converted == 2 and res.report["summary"]["skipped_by_reason"] == {reason: 1}
    with pytest.raises(ConversionError) as e:
        _run(video_set, strict=True)
    assert video in str(e.value) and path in str(e.value) and reason in str(e.value)


def test_policy_skips(video_set):
    vs = video_set
    # vid_a: 5 frames, keep 2 masks -> too few (min_masks 3)
    for t in (0, 1, 2):
        os.remove(_mask(vs, "vid_a", t))
    # vid_c: 6 frames, keep 3 masks -> coverage 0.5 < 0.6
    for t in (0, 2, 4):
        os.remove(_mask(vs, "vid_c", t))
    # vid_d: frames but no mask folder (VideoCutLER crashed on 0 instances)
    shutil.copytree(os.path.join(vs["img_root"], "vid_b"), os.path.join(vs["img_root"], "vid_d"))
    # vid_e: masks but no frame folder; vid_f: an empty frame folder with masks
    for name in ("vid_e", "vid_f"):
        shutil.copytree(os.path.join(vs["mask_root"], "vid_b"), os.path.join(vs["mask_root"], name))
    os.makedirs(os.path.join(vs["img_root"], "vid_f"))
    # vid_g: all-background masks
    shutil.copytree(os.path.join(vs["img_root"], "vid_b"), os.path.join(vs["img_root"], "vid_g"))
    os.makedirs(os.path.join(vs["mask_root"], "vid_g"))
    for t in range(4):
        Image.fromarray(np.zeros((20, 16), np.uint8), mode="P").save(_mask(vs, "vid_g", t))
    res = _run(vs, min_coverage=0.6, strict=True)  # policy skips never fail in strict mode
    got = {n: r["reason"] for n, r in _skipped(res).items()}
    assert got == {"vid_a": "too_few_masks", "vid_c": "low_coverage", "vid_d": "no_masks",
                   "vid_e": "no_frames", "vid_f": "no_frames", "vid_g": "no_instances"}
    assert [v["file_names"][0].split("/")[0] for v in res.dataset["videos"]] == ["vid_b"]
    # ids come from the sorted frame folders, whatever gets skipped: vid_b is 2nd
    assert res.dataset["videos"][0]["id"] == 2
    assert _skipped(res)["vid_e"]["video_id"] is None
    assert set(res.report["reasons"]) == set(got.values())
    line = res.summary_line()
    assert "converted 1 videos / skipped 6" in line and "too_few_masks 1" in line


def test_skip_list_by_name_and_id(video_set, tmp_path):
    lst = tmp_path / "skip.txt"
    lst.write_text("# header\nvid_a\n\n3  # vid_c by id\nnot_a_video\n")
    res = _run(video_set, skip_list=read_skip_list(str(lst)))
    assert {n: r["reason"] for n, r in _skipped(res).items()} == {
        "vid_a": "in_skip_list", "vid_c": "in_skip_list"}
    assert res.report["unmatched_skip_list"] == ["not_a_video"]
    assert [v["id"] for v in res.dataset["videos"]] == [2]
    with pytest.raises(ConversionError, match="skip list not found"):
        read_skip_list(str(tmp_path / "missing.txt"))


def test_reference_json_skips(video_set, tmp_path):
    gt = default_gt()
    gt["videos"] = gt["videos"][:2]
    gt["videos"][1]["length"] = 7
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps(gt))
    res = _run(video_set, ref_json=str(ref))
    assert {n: r["reason"] for n, r in _skipped(res).items()} == {
        "vid_b": "reference_mismatch", "vid_c": "not_in_reference"}
    assert "7 in --ref_json" in _skipped(res)["vid_b"]["detail"]
    gt["videos"][1]["length"] = 4
    gt["videos"][1]["height"] = 21  # LV-VIS train has videos whose JSON size is wrong
    ref.write_text(json.dumps(gt))
    res = _run(video_set, ref_json=str(ref))
    assert "--ref_json says 21x16" in _skipped(res)["vid_b"]["detail"]


def test_bad_arguments(video_set, tmp_path):
    with pytest.raises(ConversionError, match="--mask_root is not a folder"):
        _run(dict(video_set, mask_root=str(tmp_path / "nope")))
    with pytest.raises(ConversionError, match="min_coverage"):
        _run(video_set, min_coverage=1.5)
    # --mask_root one level too high (VideoCutLER output root instead of its masks/ folder)
    parent = tmp_path / "vc"
    os.makedirs(parent)
    shutil.move(video_set["mask_root"], str(parent / "masks"))
    with pytest.raises(ConversionError, match="did you mean"):
        _run(dict(video_set, mask_root=str(parent)))
    empty = tmp_path / "empty"
    os.makedirs(empty)
    with pytest.raises(ConversionError, match="no video folders"):
        _run(dict(video_set, mask_root=str(parent / "masks"), img_root=str(empty)))


def test_random_corruption_never_crashes(video_set):
    """Flip bytes all over one mask PNG: every variant converts or is skipped, nothing raises."""
    path = _mask(video_set, "vid_a", 1)
    original = open(path, "rb").read()
    rng = np.random.default_rng(0)
    outcomes = set()
    for trial in range(25):
        data = bytearray(original)
        for pos in rng.integers(0, len(data), size=1 + trial % 4):
            data[pos] = (data[pos] + int(rng.integers(1, 256))) % 256
        with open(path, "wb") as f:
            f.write(bytes(data[: len(data) - (trial % 3) * 7]))
        res = _run(video_set)
        skipped = _skipped(res)
        assert set(skipped) <= {"vid_a"}
        outcomes.add(skipped["vid_a"]["reason"] if skipped else "converted")
    assert "corrupt_png" in outcomes


@pytest.mark.parametrize("ref,msg", [
    ([], "no 'videos' list"),
    ({"videos": [{"id": 1}]}, "videos[0] is malformed"),
    ({"videos": [{"id": 1, "file_names": ["a.jpg"]}]}, "have no folder"),
    ({"videos": [{"id": 1, "file_names": ["a/1.jpg"]}, {"id": 2, "file_names": ["a/1.jpg"]}]},
     "used by videos 1 and 2"),
])
def test_bad_reference_json(video_set, tmp_path, ref, msg):
    path = tmp_path / "ref.json"
    path.write_text(json.dumps(ref))
    with pytest.raises(ConversionError, match=re.escape(msg)) as e:
        _run(video_set, ref_json=str(path))
    assert str(path) in str(e.value)
