"""End-to-end CPU demo (``make demo`` -> ``tools/run_demo.py``): the whole weakly-supervised path.

1. generate the synthetic dataset (GT + VideoCutLER-style pseudo mask PNGs);
2. convert the train split's pseudo PNGs to YTVIS pseudo tubes (:mod:`wsovvis.pseudo`);
3. make the class-agnostic val GT;
4. score the untrained model, train VidEoMT on the pseudo tubes, score it again (class-agnostic AP);
5. render a val video's predictions (GIF + PNG);
6. open-vocabulary naming: train a tiny CLIP (open_clip architecture, random init) on object
   crops of the synthetic *train* split captioned with the category names
   (its image side the mask-pooled embedding naming reads, at the naming scale 2x), save it in
   open_clip's format, and name the trained VidEoMT's val tubes with it through the path a
   user's CLIP takes (``open_clip.create_model(name, pretrained=file)``); open-vocab AP/APb/APn
   with it and with the untrained CLIP (chance), next to class-agnostic and oracle-label AP of
   the same tubes.

Every step is a library call of the real tool; outputs go under one folder.
"""
import logging
import os
import time
from typing import Callable, Dict, List, Optional, Sequence

from wsovvis.utils.io import atomic_write_json, read_json

from .runner import run_experiment
from .setup import build_cfg, normalize_config, seed_process
from .trainer import Trainer, flat_metrics

__all__ = ["DEMO_CONFIG", "prepare_demo_data", "evaluate_untrained", "run_demo", "format_table",
           "demo_open_vocab"]

logger = logging.getLogger(__name__)

DEMO_CONFIG = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "configs", "demo", "videomt_synthetic.yaml",
)
TABLE_KEYS = ("AP", "AP50", "AP75", "AR1", "AR10")


def prepare_demo_data(root: str, preset: str = "demo", seed: int = 0) -> Dict[str, str]:
    """Steps 1-3: synthetic data, pseudo tubes for train, class-agnostic GT for val (cached).

    Returns:
        ``{"train_json", "train_img_root", "val_json", "val_img_root", "val_gt_json"}``.
    """
    from wsovvis.data.synthetic import generate_synthetic_dataset
    from wsovvis.pseudo import ConvertOptions, convert_videocutler_pngs, make_class_agnostic
    from wsovvis.pseudo import write_outputs

    import dataclasses
    import shutil

    from wsovvis.data.synthetic import PRESETS

    data_root = os.path.join(root, "data")
    summary = os.path.join(root, "data_summary.json")
    pseudo_dir = os.path.join(root, "pseudo")
    agnostic_json = os.path.join(root, "val_class_agnostic.json")
    # the cache is keyed on (preset, seed, preset parameters): stale data is never reused
    key = {"preset": preset, "seed": seed,
           "spec": dataclasses.asdict(PRESETS[preset]) if preset in PRESETS else None}
    info = read_json(summary, "demo data summary") if os.path.isfile(summary) else None
    if info is None or info.get("cache_key") != key:
        for stale in (summary, agnostic_json):
            if os.path.isfile(stale):
                os.remove(stale)
        shutil.rmtree(pseudo_dir, ignore_errors=True)
        info = generate_synthetic_dataset(data_root, preset=preset, seed=seed, overwrite=True)
        info["cache_key"] = key
        atomic_write_json(info, summary, indent=1, default=str)
    train, val = info["splits"]["train"], info["splits"]["val"]
    pseudo_json = os.path.join(pseudo_dir, "train_pseudo_tubes.json")
    if not os.path.isfile(pseudo_json):
        result = convert_videocutler_pngs(ConvertOptions(
            mask_root=train["pseudo_mask_root"], img_root=train["img_root"], split_name="train",
            progress=False,
        ))
        if not write_outputs(result, pseudo_json, os.path.join(pseudo_dir, "skip_report.json")):
            raise RuntimeError("the VideoCutLER converter produced no pseudo tubes")
        logger.info(f"pseudo tubes: {result.report['summary']}")
    if not os.path.isfile(agnostic_json):
        atomic_write_json(make_class_agnostic(read_json(val["gt_json"], "val GT")), agnostic_json)
    return {
        "train_json": pseudo_json, "train_img_root": train["img_root"],
        "val_json": agnostic_json, "val_img_root": val["img_root"], "val_gt_json": val["gt_json"],
    }


def evaluate_untrained(config: Dict) -> Dict[str, float]:
    """Score the model exactly as training initialises it (same seed), in this process."""
    config = normalize_config(config)
    cfg = build_cfg(config, check=False)
    cfg.defrost()
    cfg.OUTPUT_DIR = os.path.join(os.path.dirname(cfg.OUTPUT_DIR), "untrained")
    cfg.freeze()
    seed_process(cfg)  # as setup_process seeds training
    model = Trainer.build_model(cfg)
    return flat_metrics(Trainer.test(cfg, model))


def format_table(rows: Dict[str, Dict[str, float]], keys: Sequence[str] = TABLE_KEYS) -> str:
    """A plain-text table: one row per model, class-agnostic ``segm/<key>`` columns."""
    head = f"{'model':<12}" + "".join(f"{k:>8}" for k in keys)
    lines = [head, "-" * len(head)]
    for name, metrics in rows.items():
        lines.append(f"{name:<12}" + "".join(f"{metrics.get('segm/' + k, float('nan')):>8.1f}"
                                               for k in keys))
    return "\n".join(lines)


def demo_open_vocab(root: str, results_json: str, val_gt_json: str, val_img_root: str, *,
                    clip_steps: int = 600, scale: float = 2.0, crop: int = 96, lr: float = 3e-3,
                    seed: int = 0) -> Dict:
    """Step 6: train the tiny CLIP, name the val tubes with it and with an untrained one, score.

    Args:
        root: the demo folder (its ``data_summary.json`` gives the train split's GT and frames).
        results_json: the trained model's class-agnostic val results.
        val_gt_json: the labelled val GT (categories with LV-VIS-style ``partition``).
        val_img_root: val frames.
        clip_steps: tiny-CLIP training steps.
        scale: frames are named at this scale (and the crops are cut at it): 2 puts 8 x 12 cells
            of the stride-32 map on a 128 x 192 frame, 2-4 cells across an object (at 1, an
            object shares 1-2 cells with the background and the per-tube accuracy was at chance).
        crop: training crop side at ``scale`` (the tiny CLIP is trained on mask-pooled crops).
        lr: tiny-CLIP learning rate.
        seed: seed of the CLIP training / initialisation.

    Returns:
        ``{"rows": {name: stats}, "table", "clip_training", "seconds": {...}}``.
    """
    import open_clip
    import torch

    from wsovvis.open_vocab import (DenseClip, TubeClassifier, build_text_bank, diagnostics,
                                    format_diagnostics, load_clip, load_tubes,
                                    name_tubes_in_results, videos_from_document,
                                    vocabulary_from_categories)
    from wsovvis.open_vocab.tiny_clip import TINY_CLIP_MODEL, train_tiny_clip
    from wsovvis.utils.io import atomic_write

    train = read_json(os.path.join(root, "data_summary.json"), "demo data summary")["splits"]["train"]
    clip_dir = os.path.join(root, "clip")
    os.makedirs(clip_dir, exist_ok=True)
    t0 = time.time()
    trained_pt = os.path.join(clip_dir, "tiny_clip_trained.pt")
    # mask-pooled crops at the naming scale, channels not permuted (the data gives each category
    # a typical hue; with channel permutation the demo's val tubes were named at chance, 12.3 vs
    # 13.2 untrained AP)
    stats = train_tiny_clip(train["gt_json"], train["img_root"], trained_pt, steps=clip_steps,
                            scale=scale, crop=crop, lr=lr, per_track=12, seed=seed)
    stats.update(scale=scale, crop=crop, lr=lr)
    train_s = time.time() - t0
    torch.manual_seed(seed)
    untrained_pt = os.path.join(clip_dir, "tiny_clip_untrained.pt")
    untrained = open_clip.create_model(TINY_CLIP_MODEL, pretrained=None)
    atomic_write(untrained_pt, lambda f: torch.save(untrained.state_dict(), f), mode="wb")

    gt = read_json(val_gt_json, "val GT")
    vocab = vocabulary_from_categories(gt["categories"], val_gt_json)
    agnostic = read_json(results_json, "class-agnostic val results")
    tubes = load_tubes(agnostic, results_json)
    videos = videos_from_document(gt)
    rows, gt_rows, t1, named_files = {}, {}, time.time(), {}
    for name, weights in (("untrained", untrained_pt), ("trained", trained_pt)):
        model, tokenizer = load_clip(TINY_CLIP_MODEL, weights)  # the user's loading path
        clip = DenseClip(model, input_size=int(round(min(gt["videos"][0]["height"],
                                                         gt["videos"][0]["width"]) * scale)))
        text, owner = build_text_bank(clip, tokenizer, vocab, model_name=TINY_CLIP_MODEL,
                                      weights=weights, cache_dir=clip_dir)
        clf = TubeClassifier(clip=clip, vocabulary=vocab, text_embeddings=text, owner=owner)
        named = name_tubes_in_results(clf, tubes, videos, val_img_root, progress=False)
        named_files[name] = os.path.join(clip_dir, f"val_named_{name}_clip.json")
        atomic_write_json(named, named_files[name])
        diag = diagnostics(val_gt_json, agnostic, named, oracle=(name == "trained"))
        rows[f"{name} CLIP"] = diag["open-vocab"]
        # the same CLIP naming the GT tubes: naming quality without segmentation errors
        named_gt = name_tubes_in_results(clf, load_tubes(gt, val_gt_json), videos, val_img_root,
                                         progress=False)
        gt_tubes = [dict(a, score=1.0) for a in gt["annotations"]]
        gt_rows[f"{name} CLIP, GT tubes"] = diagnostics(val_gt_json, gt_tubes, named_gt,
                                                        oracle=False)["open-vocab"]
        if name == "trained":
            rows = {"class-agnostic": diag["class-agnostic"], **rows,
                    "oracle-label": diag["oracle-label"]}
    rows.update(gt_rows)
    name_s = time.time() - t1
    return {"rows": rows, "table": format_diagnostics(rows), "clip_training": stats,
            "named_results": named_files,
            "seconds": {"clip_training": round(train_s, 1), "naming_and_scoring": round(name_s, 1)}}


def run_demo(
    output_dir: str = "demo_output",
    *,
    preset: str = "demo",
    d2_cfg_path: str = DEMO_CONFIG,
    max_iter: Optional[int] = None,
    d2_opts: Sequence = (),
    seed: int = 0,
    num_gpus: int = 1,
    clip_steps: int = 600,
    echo: Callable[[str], None] = print,
) -> Dict:
    """Run the whole demo; returns (and writes ``demo_summary.json``) the AP table and paths.

    Args:
        output_dir: everything is written below this folder (data is reused when present).
        preset: synthetic preset ("demo"; "tiny" for the test).
        d2_cfg_path: detectron2 config of the model.
        max_iter: override ``SOLVER.MAX_ITER``.
        d2_opts: extra detectron2 overrides.
        seed: data and training seed.
        num_gpus: training processes.
        clip_steps: training steps of the tiny CLIP that names the tubes (0: skip naming).
        echo: where progress lines and the table go.
    """
    start = time.time()
    output_dir = os.path.abspath(output_dir)
    echo(f"[demo] 1-3/6 synthetic data ({preset}), pseudo tubes, class-agnostic val GT ...")
    data = prepare_demo_data(output_dir, preset=preset, seed=seed)
    opts: List = list(d2_opts) + (["SOLVER.MAX_ITER", int(max_iter)] if max_iter else [])
    config = {
        "d2_cfg_path": d2_cfg_path,
        "d2_opts": opts,
        "data": {k: v for k, v in data.items() if k != "val_gt_json"},
        "output_dir": os.path.join(output_dir, "train"),
        "seed": seed,
        "num_gpus": num_gpus,
    }
    echo("[demo] 4/6 scoring the untrained model (same seed / initialisation as training) ...")
    t_untrained = time.time()
    untrained = evaluate_untrained(config)
    untrained_s = time.time() - t_untrained
    echo("[demo] 4/6 training on the noisy pseudo tubes (never on GT) ...")
    t_train = time.time()
    trained = run_experiment(config)["metrics"]
    train_s = time.time() - t_train
    table = format_table({"untrained": untrained, "trained": trained})

    echo("[demo] 5/6 visualisation ...")
    from wsovvis.visualization import visualize_ytvis

    results = os.path.join(config["output_dir"], "inference", "results.json")
    vis = visualize_ytvis(data["val_json"], data["val_img_root"], os.path.join(output_dir, "vis"),
                          results_file=results, max_videos=1, score_thresh=0.5, top_k=5)
    open_vocab = None
    if clip_steps > 0:
        echo("[demo] 6/6 open-vocabulary naming: training a tiny CLIP on train-split crops + "
             "category-name captions, naming the val tubes ...")
        open_vocab = demo_open_vocab(output_dir, results, data["val_gt_json"], data["val_img_root"],
                                     clip_steps=clip_steps, seed=seed)
    total_s = time.time() - start
    summary = {
        "open_vocab": open_vocab,
        "untrained": untrained, "trained": trained, "table": table, "visualization": vis,
        "untrained_eval_seconds": round(untrained_s, 1), "train_seconds": round(train_s, 1),
        "total_seconds": round(total_s, 1), "output_dir": output_dir,
    }
    atomic_write_json(summary, os.path.join(output_dir, "demo_summary.json"), indent=1)
    rule = "=" * 60
    lines = [
        rule,
        "[demo] class-agnostic video AP on the synthetic val GT "
        "(trained on VideoCutLER-style pseudo tubes only):",
        table,
        f"wall time: {total_s:.0f} s in all (training + its evaluation {train_s:.0f} s, "
        f"untrained evaluation {untrained_s:.0f} s)",
    ]
    if open_vocab is not None:
        secs = open_vocab["seconds"]
        lines += [
            "[demo] open-vocabulary naming of the trained model's val tubes (tiny CLIP, "
            "labels from the category names; APb: disc/square/cross, APn: triangle/ring):",
            open_vocab["table"],
            f"tiny CLIP training {secs['clip_training']:.0f} s, naming + scoring "
            f"{secs['naming_and_scoring']:.0f} s",
        ]
    lines += [f"{'GIF' if p.endswith('.gif') else 'PNG'}: {p}" for p in vis]
    lines += [f"summary: {os.path.join(output_dir, 'demo_summary.json')}", rule]
    echo("\n".join(lines))
    return summary
