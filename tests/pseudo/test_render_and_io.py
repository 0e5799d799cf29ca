"""render_ytvis_to_id_pngs, id-PNG reading and TubeBuilder details."""
import os

import numpy as np
import pytest
from PIL import Image

from wsovvis.pseudo import (
    TubeBuilder,
    VideoSkipped,
    read_id_mask,
    render_ytvis_to_id_pngs,
    save_id_png,
)
from wsovvis.pseudo.png_io import list_frames, list_masks

from pseudo_testdata import make_gt_video


def test_render_palette_pngs_and_overlap_order(tmp_path):
    # two overlapping instances: the later annotation wins, like VideoCutLER's painter
    tracks = [[(0, 0, 5, 5), None], [(3, 3, 8, 8), (3, 3, 8, 8)]]
    v, anns = make_gt_video(3, "clip", 2, 8, 8, tracks)
    mapping = render_ytvis_to_id_pngs({"videos": [v], "annotations": anns}, str(tmp_path))
    assert mapping == {3: {301: 1, 302: 2}}
    assert sorted(os.listdir(tmp_path / "clip")) == ["mask_00000.png", "mask_00001.png"]
    im = Image.open(tmp_path / "clip" / "mask_00000.png")
    assert im.mode == "P"
    arr = np.array(im)
    assert arr[4, 4] == 2 and arr[0, 0] == 1 and (arr == 1).sum() == 25 - 4
    arr1 = read_id_mask(str(tmp_path / "clip" / "mask_00001.png"))
    assert set(np.unique(arr1)) == {0, 2}

    # custom palette colours change the look, not the ids
    colours = [0, 0, 0, 255, 0, 0, 0, 255, 0]
    save_id_png(arr1, str(tmp_path / "custom.png"), colors=colours)
    im = Image.open(tmp_path / "custom.png")
    assert im.getpalette()[:9] == colours
    assert np.array_equal(read_id_mask(str(tmp_path / "custom.png")), arr1)


def test_render_rejects_wrong_segmentation_count_naming_ids(tmp_path):
    v, anns = make_gt_video(4, "clip", 2, 8, 8, [[(0, 0, 2, 2), None]])
    anns[0]["segmentations"].append(None)
    with pytest.raises(ValueError, match=r"annotation id 401 \(video id 4\).*3 segmentations"):
        render_ytvis_to_id_pngs({"videos": [v], "annotations": anns}, str(tmp_path))


def test_read_id_mask_modes(tmp_path):
    ids = np.array([[0, 1], [2, 3]], np.uint8)
    save_id_png(ids, str(tmp_path / "p.png"))
    save_id_png(ids, str(tmp_path / "l.png"), palette=False)
    save_id_png(ids.astype(np.uint16) * 200, str(tmp_path / "i16.png"), palette=False)
    Image.fromarray(ids > 0).save(tmp_path / "b.png")
    assert (read_id_mask(str(tmp_path / "p.png")) == ids).all()
    assert (read_id_mask(str(tmp_path / "l.png")) == ids).all()
    assert (read_id_mask(str(tmp_path / "i16.png")) == ids.astype(np.uint16) * 200).all()
    assert (read_id_mask(str(tmp_path / "b.png")) == (ids > 0)).all()
    Image.open(tmp_path / "p.png").convert("RGBA").save(tmp_path / "rgba.png")
    with pytest.raises(VideoSkipped) as e:
        read_id_mask(str(tmp_path / "rgba.png"))
    assert e.value.reason == "rgb_mask" and "cv2" in e.value.detail
    with pytest.raises(ValueError, match="palette PNGs hold ids <= 255"):
        save_id_png(np.full((2, 2), 256), str(tmp_path / "x.png"))


def test_listing_ignores_demo_side_files(tmp_path):
    d = tmp_path / "v"
    os.makedirs(d)
    for n in ("00001.jpg", "00000.jpg", "mask_00000.png", "mask_00001.png", "notes.txt"):
        (d / n).write_bytes(b"")
    # VideoCutLER writes visualisation frames next to the masks: frames are listed, masks are not
    assert list_frames(str(d)) == ["00000.jpg", "00001.jpg"]
    assert list_masks(str(d)) == {"00000": "mask_00000.png", "00001": "mask_00001.png"}
    assert list_masks(str(tmp_path / "missing")) == {}


def test_tube_builder_checks():
    b = TubeBuilder(3, 4, 4)
    with pytest.raises(ValueError, match="shape"):
        b.add_frame(0, np.zeros((4, 5), np.uint8))
    with pytest.raises(IndexError):
        b.add_frame(3, np.zeros((4, 4), np.uint8))
    m = np.zeros((4, 4), np.uint8)
    m[1:3, 1:4] = 2
    b.add_frame(1, m)
    (tube,) = b.tubes()
    assert tube["png_id"] == 2 and tube["areas"] == [None, 6, None]
    assert tube["bboxes"][1] == [1.0, 1.0, 3.0, 2.0]
