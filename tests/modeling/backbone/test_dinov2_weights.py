"""DINOv2 weight files are read without running code and errors name the config key and file."""
import os

import pytest
import timm
import torch

from wsovvis.modeling.backbone.dinov2_weights import load_dinov2_weights


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_dinov2_weights_with_code_are_refused(tmp_path):
    vit = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0,
                            img_size=28, depth=1, embed_dim=32, num_heads=2)
    marker = tmp_path / "code_ran"
    path = tmp_path / "dinov2_evil.pth"
    torch.save({"model": vit.state_dict(), "x": _RunsCode(marker)}, path)
    with pytest.raises(ValueError, match=r"MODEL.DINOV2.WEIGHTS .*dinov2_evil\.pth.*system"):
        load_dinov2_weights(vit, str(path), "dinov2_vits14")
    assert not marker.exists()
