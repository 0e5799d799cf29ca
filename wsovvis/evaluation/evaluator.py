"""detectron2 ``DatasetEvaluator`` for YouTube-VIS / LV-VIS video instance segmentation.

Consumes the model output contract of ``docs/CONTRACTS.md`` (one dict per video with
``pred_scores``, ``pred_labels`` (contiguous ids), ``pred_segmentations``), gathers predictions
from every rank, drops videos seen twice (padding samplers), writes ``results.json`` in the
official submission format and, when the GT JSON has annotations, scores it with
:func:`wsovvis.evaluation.evaluate_ytvis`.
"""

import logging
import math
import os
from collections import OrderedDict
from typing import Dict, List, Optional

from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

from wsovvis.data.datasets.ytvis import ensure_ytvis_metadata
from wsovvis.utils.io import atomic_write_json

from .ytvis_data import load_ground_truth, read_categories
from .ytvis_eval import evaluate_ytvis, format_summary

__all__ = ["YTVISEvaluator"]

_REPORTED = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10"]


def _category_mapping(dataset_name: str, json_file: str) -> Dict[int, int]:
    """Contiguous id -> dataset category id, from the metadata (filled from the JSON if needed)."""
    meta = MetadataCatalog.get(dataset_name)
    if meta.get("thing_dataset_id_to_contiguous_id") is None:
        # only the categories are built (masks are skipped by the typed parser), and this runs at
        # every evaluation
        ensure_ytvis_metadata(dataset_name, read_categories(json_file))
    return {int(v): int(k) for k, v in meta.thing_dataset_id_to_contiguous_id.items()}


def _json_rle(seg):
    """A per-frame prediction as JSON-ready compressed RLE (str counts) or None."""
    if seg is None:
        return None
    counts = seg["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    return {"size": [int(seg["size"][0]), int(seg["size"][1])], "counts": counts}


class YTVISEvaluator(DatasetEvaluator):
    """Video instance segmentation AP (official YTVIS / LV-VIS semantics).

    Args:
        dataset_name: a registered dataset whose metadata has ``json_file``.
        output_dir: where ``results.json`` is written (the trainer passes OUTPUT_DIR/inference);
            None writes nothing.
        class_agnostic: pool categories (official ``useCats = 0``); None means False.
        distributed: gather predictions from all ranks and evaluate on the main process.
        num_workers: ignored (kept for configs of earlier versions).
    """

    def __init__(self, dataset_name: str, output_dir: Optional[str] = None,
                 class_agnostic: Optional[bool] = None, distributed: bool = True,
                 num_workers: int = 0):
        del num_workers
        self._logger = logging.getLogger(__name__)
        self._dataset_name = dataset_name
        self._output_dir = output_dir
        self._class_agnostic = bool(class_agnostic) if class_agnostic is not None else False
        self._distributed = distributed
        meta = MetadataCatalog.get(dataset_name)
        self._json_file = meta.get("json_file")
        if self._json_file is None:
            raise KeyError(
                f"dataset '{dataset_name}' has no 'json_file' in its metadata; register "
                "it with wsovvis.data.datasets.ytvis.register_ytvis_instances"
            )
        self._to_dataset_id = _category_mapping(dataset_name, self._json_file)
        self._fallback_id = min(self._to_dataset_id.values()) if self._to_dataset_id else 1
        self.reset()

    def reset(self):
        self._predictions: List[tuple] = []

    def process(self, inputs, outputs):
        """Convert each video's predictions to official result entries.

        Args:
            inputs: the batched inputs (used for ``video_id`` when an output lacks it).
            outputs: one dict per video, see ``docs/CONTRACTS.md``.

        Raises:
            ValueError: lengths that do not match, a non-finite score, or (per-category mode)
                a label that is not a contiguous id of the dataset; the message names the video.
        """
        for inp, out in zip(inputs, outputs):
            vid = out.get("video_id", inp.get("video_id"))
            if vid is None:
                raise ValueError("a model output and its input both lack 'video_id'")
            vid = int(vid)
            scores, labels = out["pred_scores"], out["pred_labels"]
            segs = out["pred_segmentations"]
            if not (len(scores) == len(labels) == len(segs)):
                raise ValueError(
                    f"video {vid}: {len(scores)} scores, {len(labels)} labels and "
                    f"{len(segs)} segmentation tracks; they must match"
                )
            results = []
            for i, (score, label, track) in enumerate(zip(scores, labels, segs)):
                if not math.isfinite(float(score)):
                    # would be written as NaN (invalid JSON) and only refused by the scorer
                    raise ValueError(f"video {vid}: track {i} has a non-finite score {score!r}")
                cat = self._to_dataset_id.get(int(label))
                if cat is None:
                    if not self._class_agnostic:
                        raise ValueError(
                            f"video {vid}: predicted label {int(label)} is not a "
                            f"contiguous id of dataset '{self._dataset_name}'"
                        )
                    cat = self._fallback_id  # any GT category is pooled in class-agnostic mode
                results.append(
                    {
                        "video_id": vid,
                        "score": float(score),
                        "category_id": cat,
                        "segmentations": [_json_rle(s) for s in track],
                    }
                )
            self._predictions.append((vid, results))

    def _collect(self) -> Optional[List[tuple]]:
        if not self._distributed or comm.get_world_size() == 1:
            return self._predictions
        comm.synchronize()
        gathered = comm.gather(self._predictions, dst=0)
        if not comm.is_main_process():
            return None
        return [p for part in gathered for p in part]

    def evaluate(self):
        """Gather, de-duplicate, save and score; returns ``{"segm": {...}}`` in percent."""
        predictions = self._collect()
        if predictions is None:
            return {}
        seen, results, duplicates = set(), [], 0
        for vid, res in sorted(predictions, key=lambda p: p[0]):
            if vid in seen:
                duplicates += 1
                continue
            seen.add(vid)
            results.extend(res)
        if duplicates:
            self._logger.info(
                "Dropped %d duplicated video predictions (padded sampler).", duplicates
            )
        if self._output_dir:
            path = os.path.join(self._output_dir, "results.json")
            atomic_write_json(results, path)
            self._logger.info(
                "Saved %d predictions of %d videos to %s", len(results), len(seen), path
            )
        gt = load_ground_truth(self._json_file)
        if len(gt.ann_ids) == 0:
            self._logger.warning(
                "%s has no annotations (test/submission split?) or none of a listed video and "
                "category: predictions are saved "
                "for the server, no metrics are computed.",
                self._json_file,
            )
            return {}
        missing = sorted(set(gt.video_ids.tolist()) - seen)
        if missing:
            self._logger.warning(
                "%d GT videos have no predictions (e.g. %s); they count as misses.",
                len(missing),
                missing[:5],
            )
        res = evaluate_ytvis(gt, path if self._output_dir else results,
                             class_agnostic=self._class_agnostic)
        mode = "class-agnostic" if self._class_agnostic else "per-category"
        self._logger.info(
            "YTVIS %s evaluation of '%s':\n%s", mode, self._dataset_name, format_summary(res)
        )
        stats = res.as_dict()
        keys = _REPORTED + [k for k in ("APb", "APn") if k in stats]
        segm = OrderedDict((k, stats[k] * 100 if stats[k] >= 0 else math.nan) for k in keys)
        return OrderedDict(segm=segm)
