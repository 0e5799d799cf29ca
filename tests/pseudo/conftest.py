"""Fixtures for the pseudo-tube tests (helpers live in ``pseudo_testdata.py``)."""
import pytest
from pseudo_testdata import default_gt, write_frames


@pytest.fixture
def video_set(tmp_path):
    """Frames + palette id PNGs rendered from :func:`default_gt`: a dict of paths and the GT."""
    from wsovvis.pseudo.render import render_ytvis_to_id_pngs

    gt = default_gt()
    img_root = str(tmp_path / "JPEGImages")
    mask_root = str(tmp_path / "masks")
    for v in gt["videos"]:
        write_frames(img_root, v)
    render_ytvis_to_id_pngs(gt, mask_root)
    return {"gt": gt, "img_root": img_root, "mask_root": mask_root, "tmp": tmp_path,
            "out_json": str(tmp_path / "out" / "tubes.json")}
