"""The registry build of detectron2 imports on current torch/NumPy/Pillow and fails late, clearly."""
import importlib
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _is_registry_build():
    return importlib.util.find_spec("detectron2._wsovvis_patchset") is not None


@pytest.mark.parametrize(
    "module",
    ["detectron2.layers", "detectron2.structures", "detectron2.data", "detectron2.engine",
     "detectron2.modeling", "detectron2.checkpoint", "detectron2.evaluation", "detectron2.model_zoo",
     # projects installed with detectron2 (setup.py PROJECTS) that wsovvis imports
     "detectron2.projects.point_rend.point_features", "detectron2.projects.deeplab.lr_scheduler"],
)
def test_detectron2_subpackages_import(module):
    importlib.import_module(module)


@pytest.mark.skipif(not _is_registry_build(), reason="a compiled detectron2 is installed")
def test_missing_compiled_ops_raise_clear_error_only_when_called():
    from detectron2.layers.rotated_boxes import pairwise_iou_rotated

    with pytest.raises(RuntimeError, match=r"without its compiled ops.*box_iou_rotated"):
        pairwise_iou_rotated(torch.zeros(1, 5), torch.zeros(1, 5))


def test_patched_numpy_and_pillow_paths_run():
    from detectron2.data import transforms as T
    from detectron2.structures.masks import polygons_to_bitmask

    m = polygons_to_bitmask([np.array([0, 0, 4, 0, 4, 4, 0, 4], dtype=np.float64)], 6, 6)
    assert m.dtype == bool and m.sum() > 0
    t = T.ExtentTransform((0, 0, 4, 4), (8, 8))  # default interp used Image.LINEAR before the patch
    out = t.apply_image(np.zeros((4, 4, 3), dtype=np.uint8))
    assert out.shape[:2] == (8, 8)


def test_class_histogram_path_of_data_build():
    from detectron2.data.build import print_instances_class_histogram

    dicts = [{"annotations": [{"category_id": 0}, {"category_id": 1, "iscrowd": 0}]}]
    print_instances_class_histogram(dicts, ["a", "b"])


@pytest.mark.skipif(not _is_registry_build(), reason="a compiled detectron2 is installed")
def test_installer_is_idempotent_and_reports_existing_build():
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "install_detectron2.py")],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "already installed" in out


@pytest.mark.parametrize("kind,expected", [("compiled", "found a compiled detectron2"),
                                           ("other", "not installed by wsovvis")])
def test_installer_leaves_foreign_detectron2_alone(tmp_path, kind, expected):
    pkg = tmp_path / "detectron2"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("__version__ = '0.6'\n")
    if kind == "compiled":
        (pkg / "_C.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "install_detectron2.py")],
        capture_output=True, text=True, check=True, env=env,
    ).stdout
    assert expected in out and "installed detectron2 v0.6" not in out
