"""VNext SeqFormer checkpoints load into WSSeqFormer: every tensor arrives, outputs are equal.

The VNext-format file is written by the test itself (VNext's names, random values): the state
dict of a tiny wsovvis model renamed with ``wsovvis_to_vnext``, plus VNext's unused extras (each
encoder layer's ``self_attn.output_proj_box`` and the duplicated top-level ``bbox_embed``).
"""
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model

import wsovvis.modeling  # noqa: F401  (registers WSSeqFormer)
from wsovvis.checkpoint import FORMAT_CONVERTERS, vnext_to_wsovvis, wsovvis_to_vnext
from wsovvis.config import add_wsovvis_config
from wsovvis.engine.checkpoint import VideoCheckpointer

TINY_CFG = "configs/seqformer/tiny_test.yaml"


def _model(seed):
    cfg = get_cfg()
    add_wsovvis_config(cfg)
    cfg.merge_from_file(TINY_CFG)
    cfg.MODEL.DEVICE = "cpu"
    torch.manual_seed(seed)
    return build_model(cfg).eval(), cfg


def _video():
    g = torch.Generator().manual_seed(0)
    frames = [torch.randint(0, 255, (3, 70, 90), generator=g, dtype=torch.uint8)
              for _ in range(3)]
    return {"image": frames, "height": 70, "width": 90, "video_id": 1}


def _randomise(model, seed=1):
    """Non-default values everywhere (FrozenBN-like defaults must not pass as loaded)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in model.state_dict(keep_vars=True).values():
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g) * 0.05 + t)


def test_vnext_checkpoint_loads_every_tensor_and_matches_outputs(tmp_path):
    source, cfg = _model(0)
    _randomise(source)
    vnext = wsovvis_to_vnext(source.state_dict(), generator=torch.Generator().manual_seed(2))
    enc, dec = cfg.MODEL.SeqFormer.ENC_LAYERS, cfg.MODEL.SeqFormer.DEC_LAYERS
    expected_extras = 2 * enc + 2 * 3 * dec  # encoder output_proj_box; duplicated bbox_embed
    needed = [k for k in source.state_dict() if not k.startswith("criterion.")]
    assert len(vnext) == len(needed) + expected_extras
    assert not set(vnext) & set(source.state_dict())  # 0 names in common before conversion
    path = tmp_path / "vnext_seqformer.pth"
    torch.save({"model": vnext, "iteration": 11}, path)

    target, _ = _model(5)  # other random weights
    ckpt = VideoCheckpointer(target, cfg=cfg, mode="eval")
    ckpt.load(str(path))
    rep = ckpt.last_report
    assert rep.format == "VNext SeqFormer"
    assert sorted(rep.loaded) == sorted(needed) and not rep.missing and not rep.unexpected
    assert len(rep.ignored) == expected_extras
    assert all(k.endswith(("output_proj_box.weight", "output_proj_box.bias"))
               or k.startswith("detr.detr.bbox_embed.") for k in rep.ignored)
    loaded = target.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items()
               if k in needed)
    with torch.no_grad():
        (a,), (b,) = source([_video()]), target([_video()])
    assert a["pred_scores"] == b["pred_scores"] and a["pred_segmentations"] == b[
        "pred_segmentations"]


def test_vnext_round_trip_and_detection():
    model, _ = _model(0)
    sd = {k: v for k, v in model.state_dict().items() if not k.startswith("criterion.")}
    vnext = wsovvis_to_vnext(sd, with_extras=True)
    conv = next(c for c in FORMAT_CONVERTERS if c.name == "VNext SeqFormer")
    assert conv.detect(vnext) and not conv.detect(sd)
    back, report = vnext_to_wsovvis(vnext)
    assert back.keys() == sd.keys() and all(torch.equal(back[k], sd[k]) for k in sd)
    assert report.converted == len(sd)
    assert wsovvis_to_vnext(back, with_extras=False).keys() == wsovvis_to_vnext(
        sd, with_extras=False).keys()


def test_vnext_checkpoint_with_inconsistent_duplicates_is_refused(tmp_path):
    import pytest

    from wsovvis.engine.checkpoint import CheckpointError

    model, cfg = _model(0)
    vnext = wsovvis_to_vnext(model.state_dict())
    key = next(k for k in vnext if k.startswith("detr.detr.bbox_embed."))
    vnext[key] = vnext[key] + 1
    path = tmp_path / "bad.pth"
    torch.save({"model": vnext}, path)
    with pytest.raises(CheckpointError, match="bbox_embed"):
        VideoCheckpointer(model, cfg=cfg, mode="eval").load(str(path))
