"""VNext's own SeqFormer YAML (projects/SeqFormer/configs/base_ytvis.yaml) trains through
train_net.py: every key merges, full-model gradient clipping builds, VNext's by-clip size sampling
is accepted. Only what a CPU test cannot afford is overridden (depth, sizes, data, iterations)."""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from engine_helpers import REPO, run_train_net  # noqa: E402

VNEXT_YAML = os.path.join(REPO, "tests", "modeling", "seqformer", "data", "vnext_base_ytvis.yaml")


def test_vnext_base_ytvis_yaml_trains_through_train_net(tiny_synthetic_dataset, tmp_path):
    train = tiny_synthetic_dataset["splits"]["train"]
    with open(train["gt_json"]) as f:
        num_classes = len(json.load(f)["categories"])
    out = tmp_path / "out"
    d2_opts = [
        "MODEL.WEIGHTS", "", "MODEL.RESNETS.ALLOW_RANDOM_INIT", True,
        "MODEL.RESNETS.DEPTH", 18, "MODEL.RESNETS.RES2_OUT_CHANNELS", 64,
        "MODEL.SeqFormer.NUM_CLASSES", num_classes, "MODEL.SeqFormer.ENC_LAYERS", 1,
        "MODEL.SeqFormer.DEC_LAYERS", 1, "MODEL.SeqFormer.NUM_OBJECT_QUERIES", 10,
        "INPUT.MIN_SIZE_TRAIN", (48, 64), "INPUT.MAX_SIZE_TRAIN", 96,
        "INPUT.SAMPLING_FRAME_NUM", 2, "SOLVER.IMS_PER_BATCH", 1, "SOLVER.MAX_ITER", 2,
        "SOLVER.CHECKPOINT_PERIOD", 100, "DATALOADER.NUM_WORKERS", 0, "TEST.EVAL_PERIOD", 0,
        "MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(out), "DATASETS.TEST", "()",
    ]
    proc = run_train_net(
        ["-C", "no", "with", f"d2_cfg_path={VNEXT_YAML}", f"d2_opts={d2_opts!r}",
         f"data.train_json={train['gt_json']}", f"data.train_img_root={train['img_root']}"],
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "config.yaml") as f:
        text = f.read()
    assert "CLIP_TYPE: full_model" in text and "choice_by_clip" in text
    iters = [json.loads(line)["iteration"] for line in open(out / "metrics.json")]
    assert iters and max(iters) == 1  # two iterations (0 and 1) ran
    assert os.path.isfile(out / "model_final.pth")
