"""Hugging Face VidEoMT (transformers VideomtForUniversalSegmentation) checkpoints, both ways:
a random model built by transformers itself gives the same logits as wsovvis after conversion."""

import pytest
import torch
import transformers  # requirements.txt: these tests must run, never skip
from videomt_testutils import REPO, TINY_CONFIG, tiny_cfg, tiny_model

from wsovvis.engine.checkpoint import CheckpointError, VideoCheckpointer
from wsovvis.modeling.videomt.hf_checkpoint import (
    export_hf_checkpoint,
    hf_to_wsovvis,
    hf_weights_file,
    wsovvis_to_hf,
)

# max |diff| relative to the largest logit (mask logits reach O(100) with these weights): the two
# implementations only differ in the order of float32 operations (q/k/v split vs fused matmul,
# attention kernels), measured ~3e-7; a wrong name or layout gives O(1)
RTOL = 1e-5


def _hf_model(seed=0):
    config = transformers.VideomtConfig(
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        mlp_ratio=4,
        image_size=64,
        patch_size=16,
        num_blocks=2,
        num_queries=6,
        num_labels=3,
        num_register_tokens=4,
    )
    torch.manual_seed(seed)
    model = transformers.VideomtForUniversalSegmentation(config).eval()
    with torch.no_grad():  # away from the init (zero biases, unit norms, tiny std)
        for name, p in model.named_parameters():
            p.add_(torch.randn_like(p) * (0.5 if "weight" in name else 0.1))
    return model


def _video(seed=0, frames=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, frames, 3, 64, 64, generator=g)


def _compare(hf, net, x):
    with torch.no_grad():
        ref = hf(pixel_values_videos=x)
        ours = net(x[0], num_frames=x.shape[1])
    frames = x.shape[1]
    d_cls = (ours["pred_logits"][0] - ref.class_queries_logits.reshape(frames, 6, 4)).abs().max()
    d_mask = (ours["pred_masks"][0] - ref.masks_queries_logits).abs().max()
    scale = ref.masks_queries_logits.abs().max()
    assert scale > 1  # non-trivial outputs
    return float(d_cls / ref.class_queries_logits.abs().max()), float(d_mask / scale)


def test_hf_folder_loads_as_model_weights_and_matches_transformers(tmp_path):
    hf = _hf_model()
    folder = tmp_path / "hf_videomt"
    hf.save_pretrained(folder)
    assert hf_weights_file(str(folder)) == str(folder / "model.safetensors")
    model = tiny_model(1).eval()
    VideoCheckpointer(model, cfg=tiny_cfg(), mode="eval").load(str(folder))
    d_cls, d_mask = _compare(hf, model.backbone, _video())
    assert d_cls < RTOL and d_mask < RTOL, (d_cls, d_mask)


def test_wsovvis_exports_a_checkpoint_transformers_loads(tmp_path):
    model = tiny_model(2).eval()
    with torch.no_grad():
        for name, p in model.backbone.named_parameters():
            if name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    folder = tmp_path / "exported"
    export_hf_checkpoint(model, str(folder))
    hf = transformers.VideomtForUniversalSegmentation.from_pretrained(str(folder)).eval()
    d_cls, d_mask = _compare(hf, model.backbone, _video(1, frames=4))
    assert d_cls < RTOL and d_mask < RTOL, (d_cls, d_mask)
    # names round-trip exactly
    sd = model.state_dict()
    back, report = hf_to_wsovvis(wsovvis_to_hf(sd))
    assert set(report.ignored) == {"embeddings.mask_token"}
    assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)


def test_cli_to_hf_and_bad_inputs(tmp_path, capsys):
    import importlib.util
    import os

    spec = importlib.util.spec_from_file_location(
        "convert_videomt_checkpoint", os.path.join(REPO, "tools", "convert_videomt_checkpoint.py")
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    model = tiny_model(3).eval()
    src = tmp_path / "wsovvis.pth"
    torch.save({"model": model.state_dict()}, src)
    out = tmp_path / "hf_out"
    info = tool.main(
        ["--config-file", TINY_CONFIG, "--input", str(src), "--output", str(out), "--to", "hf"]
    )
    assert info == {"img_size": 64, "num_classes": 3}
    hf = transformers.VideomtForUniversalSegmentation.from_pretrained(str(out)).eval()
    assert _compare(hf, model.backbone, _video(2))[1] < RTOL
    capsys.readouterr()  # drop transformers' progress output
    with pytest.raises(SystemExit) as e:
        tool.main(
            [
                "--config-file",
                TINY_CONFIG,
                "--input",
                str(tmp_path / "nope.pth"),
                "--output",
                str(out),
                "--to",
                "hf",
            ]
        )
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1
    dinov3 = tiny_model(0, MODEL_NAME="custom_dinov3")
    with pytest.raises(ValueError, match="DINOv3"):
        export_hf_checkpoint(dinov3, str(tmp_path / "x"))


def test_not_a_videomt_folder_is_one_checkpoint_error(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "eomt"}')
    (tmp_path / "model.safetensors").write_bytes(b"")
    model = tiny_model(0).eval()
    with pytest.raises(CheckpointError, match="not 'videomt'"):
        VideoCheckpointer(model, cfg=tiny_cfg(), mode="eval").load(str(tmp_path))
    assert hf_weights_file(str(tmp_path / "model.safetensors")) is None
    assert hf_weights_file("output/model_final.pth") is None  # a missing file, not a hub id
    with pytest.raises(CheckpointError, match="cannot download Hugging Face checkpoint"):
        VideoCheckpointer(model, cfg=tiny_cfg(), mode="eval").load("hf://nobody/no-such-model")
