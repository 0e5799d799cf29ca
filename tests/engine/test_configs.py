"""Every shipped Sacred config resolves to a valid detectron2 config."""
import glob
import os

import pytest
import yaml

from engine_helpers import REPO
from wsovvis.engine.setup import DEFAULT_CONFIG, build_cfg

SACRED = sorted(glob.glob(os.path.join(REPO, "configs", "sacred", "*.yaml")))


def test_expected_configs_exist():
    names = {os.path.basename(p)[:-5] for p in SACRED}
    for model in ("videomt_vit", "seqformer_dinov2_vit"):
        for size in "sbl":
            assert f"{model}{size}_lvvis_pseudo" in names
    assert "seqformer_r50_lvvis_pseudo" in names


@pytest.mark.parametrize("path", SACRED, ids=os.path.basename)
def test_sacred_config_resolves(path, monkeypatch):
    monkeypatch.chdir(REPO)
    with open(path) as f:
        config = yaml.safe_load(f)
    assert set(config) <= set(DEFAULT_CONFIG), set(config) - set(DEFAULT_CONFIG)
    config.pop("data", None)  # the demo config's files exist only after `make demo`
    cfg = build_cfg(config, check=False)
    assert cfg.MODEL.META_ARCHITECTURE in ("WSVidEoMT", "WSSeqFormer")
    assert cfg.OUTPUT_DIR == config["output_dir"]
