"""WSSeqFormer end to end on tiny models: overfitting, inference format, ResNet path, VNext YAML."""
import numpy as np
import pytest
import torch

from detectron2.config import get_cfg
from detectron2.modeling import META_ARCH_REGISTRY, build_model
from detectron2.structures import BitMasks, Instances

from wsovvis.config import add_wsovvis_config
from wsovvis.modeling.seqformer.meta_arch import WSSeqFormer
from wsovvis.utils.rle import decode_segmentation

TINY_CFG = "configs/seqformer/tiny_test.yaml"


def _cfg(path=TINY_CFG):
    cfg = get_cfg()
    add_wsovvis_config(cfg)
    cfg.merge_from_file(path)
    cfg.MODEL.DEVICE = "cpu"
    return cfg


def _clip(h=37, w=53, t=2, absent_last=False):
    """Two moving rectangles; with ``absent_last`` track 2 is missing on the last frame."""
    frames, insts = [], []
    for i in range(t):
        img = torch.full((3, h, w), 30, dtype=torch.uint8)
        m = torch.zeros(2, h, w, dtype=torch.bool)
        m[0, 4 + i:18 + i, 6:28] = True
        m[1, 21:34, 30 + i:50] = True
        ids = torch.tensor([1, 2])
        if absent_last and i == t - 1:
            m[1] = False
            ids = torch.tensor([1, -1])
        img[:, m[0]] = 220
        img[0, m[1]] = 250
        frames.append(img)
        inst = Instances((h, w))
        inst.gt_ids = ids
        inst.gt_classes = torch.tensor([0, 0])
        inst.gt_masks = BitMasks(m)
        boxes = BitMasks(m).get_bounding_boxes()
        boxes.tensor[ids < 0] = 0
        inst.gt_boxes = boxes
        insts.append(inst)
    return {"image": frames, "instances": insts, "height": h, "width": w, "video_id": 3}


def test_tiny_seqformer_overfits_one_clip():
    torch.manual_seed(0)
    model = build_model(_cfg())
    assert isinstance(model, WSSeqFormer)
    data = [_clip(absent_last=True)]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    model.train()
    first = None
    for _ in range(40):
        losses = model(data)
        loss = sum(losses.values())
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert {"loss_ce", "loss_bbox", "loss_giou", "loss_mask", "loss_dice", "loss_dice_0"} <= set(
        losses)
    assert loss.item() < 0.5 * first, (first, loss.item())
    # the frozen ViT neither trains nor leaves eval mode
    vit = model.backbone.body.vit
    assert not vit.training and all(p.grad is None for p in vit.parameters())


def test_inference_output_contract_at_original_size():
    torch.manual_seed(0)
    model = build_model(_cfg()).eval()
    # 5 frames in chunks of 2 (last chunk of one frame); 70x90 so the stride-64 map is 2x2
    # (GroupNorm with one channel per group rejects a single 1x1 map at hidden dim 32)
    video = {"image": _clip(h=70, w=90, t=5)["image"], "height": 74, "width": 106,
             "video_id": 11}
    (out,) = model([video])
    assert out["video_id"] == 11 and (out["height"], out["width"]) == (74, 106)
    n = len(out["pred_scores"])
    assert 0 < n <= 3 and len(out["pred_labels"]) == len(out["pred_segmentations"]) == n
    assert out["pred_scores"] == sorted(out["pred_scores"], reverse=True)
    for track in out["pred_segmentations"]:
        assert len(track) == 5
        for rle in track:
            assert isinstance(rle["counts"], str) and list(rle["size"]) == [74, 106]
            assert decode_segmentation(rle, 74, 106).shape == (74, 106)
    # chunked inference (2 frames per chunk) equals one-shot inference
    model.infer_frame_chunk = 0
    (whole,) = model([video])
    assert whole["pred_scores"] == pytest.approx(out["pred_scores"])
    assert whole["pred_segmentations"] == out["pred_segmentations"]


def test_lr_multipliers_exclude_frozen_vit():
    model = build_model(_cfg())
    mult = model.lr_multipliers(0.1)
    assert not any(k.startswith("backbone.body.vit.") for k in mult)
    assert mult["backbone.body.neck.stages.res3.0.weight"] == 1.0
    assert mult["transformer.level_embed"] == 1.0


def _resnet_cfg():
    cfg = _cfg()
    cfg.MODEL.BACKBONE.NAME = "build_resnet_backbone"
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.RESNETS.NORM = "FrozenBN"
    return cfg


def test_resnet_backbone_path():
    torch.manual_seed(0)
    model = build_model(_resnet_cfg())
    model.train()
    losses = model([_clip(h=45, w=61)])
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    mult = model.lr_multipliers(0.1)
    assert mult["backbone.body.res3.0.conv1.weight"] == 0.1
    model.eval()
    (out,) = model([{"image": _clip(h=45, w=61)["image"], "height": 45, "width": 61,
                     "video_id": 1}])
    assert list(out["pred_segmentations"][0][0]["size"]) == [45, 61]


def test_vnext_style_yaml_merges_and_builds(tmp_path):
    yaml = tmp_path / "vnext_seqformer.yaml"
    yaml.write_text(
        "MODEL:\n"
        "  META_ARCHITECTURE: \"SeqFormer\"\n"
        "  PIXEL_MEAN: [123.675, 116.280, 103.530]\n"
        "  PIXEL_STD: [58.395, 57.120, 57.375]\n"
        "  MASK_ON: True\n"
        "  RESNETS:\n    DEPTH: 18\n    RES2_OUT_CHANNELS: 64\n    STRIDE_IN_1X1: False\n"
        "    OUT_FEATURES: [\"res2\", \"res3\", \"res4\", \"res5\"]\n"
        "  SeqFormer:\n    NUM_CLASSES: 40\n    MULTI_CLS_ON: True\n    HIDDEN_DIM: 32\n"
        "    NHEADS: 2\n    ENC_LAYERS: 1\n    DEC_LAYERS: 2\n    NUM_OBJECT_QUERIES: 4\n"
        "    DIM_FEEDFORWARD: 64\n    SET_COST_BOX: 5\n    CLIP_MATCHING: False\n"
        "    MERGE_ON_CPU: True\n    APPLY_CLS_THRES: 0.05\n"
        "SOLVER:\n  OPTIMIZER: \"ADAMW\"\n  BACKBONE_MULTIPLIER: 0.1\n"
        "INPUT:\n  SAMPLING_FRAME_NUM: 5\n  SAMPLING_FRAME_RANGE: 10\n"
        "  MIN_SIZE_TRAIN_SAMPLING: \"choice_by_clip\"\n  RANDOM_FLIP: \"flip_by_clip\"\n"
        "  PRETRAIN_TYPE: 'v1'\n  COCO_PRETRAIN: False\n  FORMAT: \"RGB\"\n"
        "FIND_UNUSED_PARAMETERS: True\n"
    )
    cfg = get_cfg()
    add_wsovvis_config(cfg)
    cfg.merge_from_file(str(yaml))
    cfg.MODEL.DEVICE = "cpu"
    assert cfg.MODEL.SeqFormer.NUM_CLASSES == 40 and cfg.MODEL.SeqFormer.SET_COST_BOX == 5
    assert META_ARCH_REGISTRY.get("SeqFormer") is WSSeqFormer
    model = build_model(cfg)
    assert isinstance(model, WSSeqFormer) and model.class_embed[0].out_features == 40


def test_odd_sizes_give_matching_mask_and_target_resolution():
    from wsovvis.modeling.seqformer import pad_frames, prepare_video_targets

    model = build_model(_cfg())
    model.train()
    for h, w in ((37, 53), (33, 95), (64, 70)):
        clip = _clip(h=h, w=w)
        images, pad, _ = pad_frames(clip["image"], model.pixel_mean, model.pixel_std,
                                    model.size_divisibility)
        tgt = prepare_video_targets(clip["instances"], images.shape[-2:], 4, "cpu")
        *_, mask_feats = model.encode_frames(images, pad)
        logits = model.mask_head(torch.randn(2, 32), mask_feats, torch.rand(2, 2, 2),
                                 tgt["image_size"])
        assert logits.shape[-2:] == tgt["masks"].shape[-2:] == (images.shape[-2] // 4,
                                                                 images.shape[-1] // 4)
        losses = model([clip])
        assert np.isfinite(float(sum(losses.values()).detach()))


def test_all_seqformer_configs_merge_and_r50_builds():
    import glob

    files = sorted(glob.glob("configs/seqformer/*.yaml"))
    assert len(files) >= 5
    for f in files:
        cfg = _cfg(f)
        assert cfg.MODEL.META_ARCHITECTURE in ("WSSeqFormer", "SeqFormer")
    cfg = _cfg("configs/seqformer/seqformer_R50_lvvis_pseudo.yaml")
    cfg.MODEL.SeqFormer.ENC_LAYERS = cfg.MODEL.SeqFormer.DEC_LAYERS = 1
    model = build_model(cfg)
    assert model.num_queries == 300 and model.backbone.strides == [4, 8, 16, 32]


def test_autocast_forward_backward():
    torch.manual_seed(0)
    model = build_model(_cfg())
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model([_clip()])
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    loss.backward()


def test_clips_without_instances_train():
    model = build_model(_cfg())
    model.train()
    absent = _clip()
    for inst in absent["instances"]:  # both slots absent on every frame -> dropped
        inst.gt_ids = torch.tensor([-1, -1])
    empty = _clip()
    for t in range(2):
        inst = Instances((37, 53))
        inst.gt_ids = torch.zeros(0, dtype=torch.long)
        inst.gt_classes = torch.zeros(0, dtype=torch.long)
        inst.gt_masks = BitMasks(torch.zeros(0, 37, 53, dtype=torch.bool))
        inst.gt_boxes = BitMasks(inst.gt_masks.tensor).get_bounding_boxes()
        empty["instances"][t] = inst
    losses = model([absent, empty])
    loss = sum(losses.values())
    assert torch.isfinite(loss) and losses["loss_bbox"] == 0
    loss.backward()


def test_dinov2_without_res2_matches_level_layout():
    cfg = _cfg()
    cfg.MODEL.DINOV2.OUT_FEATURES = ["res3", "res4", "res5"]
    model = build_model(cfg)
    assert model.level_ids == [0, 1, 2] and len(model.input_proj) == 4
    model.train()
    losses = model([_clip()])
    assert torch.isfinite(sum(losses.values()))
    cfg.MODEL.DINOV2.OUT_FEATURES = ["res4", "res5"]
    with pytest.raises(ValueError, match="stride-8"):
        build_model(cfg)


def test_label_outside_num_classes_fails_before_matching_with_clear_error():
    torch.manual_seed(0)
    model = build_model(_cfg())  # NUM_CLASSES 1
    clip = _clip()
    for inst in clip["instances"]:
        inst.gt_classes = torch.tensor([0, 3])
    with pytest.raises(ValueError, match=r"NUM_CLASSES \(1\).*class-agnostic"):
        model([clip])
