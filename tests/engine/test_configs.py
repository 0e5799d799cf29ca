"""Every shipped Sacred config resolves to a valid detectron2 config."""
import glob
import os

import pytest
import yaml

from engine_helpers import REPO
from wsovvis.engine.setup import DEFAULT_CONFIG, build_cfg

SACRED = sorted(glob.glob(os.path.join(REPO, "configs", "sacred", "*.yaml")))


@pytest.mark.parametrize("path", SACRED or [None], ids=lambda p: os.path.basename(p or "none"))
def test_sacred_config_resolves(path, monkeypatch):
    assert path is not None, "no configs/sacred/*.yaml found"  # an empty glob must not pass
    monkeypatch.chdir(REPO)
    with open(path) as f:
        config = yaml.safe_load(f)
    assert set(config) <= set(DEFAULT_CONFIG), set(config) - set(DEFAULT_CONFIG)
    config.pop("data", None)  # the demo config's files exist only after `make demo`
    cfg = build_cfg(config, check=False)
    assert cfg.MODEL.META_ARCHITECTURE in ("WSVidEoMT", "WSSeqFormer")
    assert cfg.OUTPUT_DIR == config["output_dir"]


def test_training_loader_reads_builtin_splits_under_datasets_root(tmp_path):
    """``DATASETS.ROOT`` re-roots the builtin splits for the engine's training loader too."""
    from detectron2.config import get_cfg

    from wsovvis.config import add_wsovvis_config
    from wsovvis.data.datasets import builtin
    from wsovvis.data.synthetic import generate_synthetic_dataset
    from wsovvis.engine.trainer import Trainer

    # the synthetic generator writes the LV-VIS layout: <root>/lvvis/train/{JPEGImages, train_instances.json}
    generate_synthetic_dataset(str(tmp_path / "lvvis"), preset="tiny", seed=0)
    original = builtin._REGISTERED_ROOT
    cfg = get_cfg()
    add_wsovvis_config(cfg)
    cfg.merge_from_list([
        "DATASETS.ROOT", str(tmp_path), "DATASETS.TRAIN", ("lvvis_train",), "SEED", 0,
        "DATALOADER.NUM_WORKERS", 0, "SOLVER.IMS_PER_BATCH", 1, "INPUT.SAMPLING_FRAME_NUM", 2,
        "INPUT.MIN_SIZE_TRAIN", (64,), "INPUT.MAX_SIZE_TRAIN", 96, "INPUT.CROP.ENABLED", False,
    ])
    try:
        (clip,) = next(iter(Trainer.build_train_loader(cfg)))
        assert clip["file_names"][0].startswith(str(tmp_path / "lvvis" / "train" / "JPEGImages"))
    finally:
        builtin.register_all_builtin(original)
