"""Builtin LV-VIS / YTVIS splits: registered on import, without touching the files."""
import os

from detectron2.data import DatasetCatalog, MetadataCatalog

from wsovvis.data.datasets import builtin
from wsovvis.data.datasets.builtin import _PREDEFINED_SPLITS, register_all_builtin


def test_splits_registered_on_import_with_download_layout():
    for name in _PREDEFINED_SPLITS:
        assert name in DatasetCatalog.list()
        assert MetadataCatalog.get(name).evaluator_type == "ytvis"
    root = builtin._REGISTERED_ROOT
    meta = MetadataCatalog.get("lvvis_val_class_agnostic")
    assert meta.json_file == os.path.join(root, "lvvis/val/val_instances_class_agnostic.json")
    assert meta.image_root == os.path.join(root, "lvvis/val/JPEGImages")
    assert MetadataCatalog.get("lvvis_train").json_file.endswith("lvvis/train/train_instances.json")
    assert MetadataCatalog.get("ytvis_2019_val").json_file.endswith("ytvis_2019/valid.json")
    ytvis21 = MetadataCatalog.get("ytvis_2021_train")
    assert ytvis21.image_root.endswith("ytvis_2021/train/JPEGImages")


def test_register_all_builtin_idempotent_and_movable(tmp_path):
    original = builtin._REGISTERED_ROOT
    try:
        assert register_all_builtin(original) == original  # same root: no-op
        new = register_all_builtin(str(tmp_path))  # files need not exist
        assert new == str(tmp_path)
        expected = str(tmp_path / "lvvis/val/val_instances.json")
        assert MetadataCatalog.get("lvvis_val").json_file == expected
        try:
            DatasetCatalog.get("lvvis_val")
            raise AssertionError("loading a missing split must fail")
        except FileNotFoundError as e:
            assert "val_instances.json" in str(e)
    finally:
        register_all_builtin(original)
    assert MetadataCatalog.get("lvvis_val").json_file.startswith(original)
