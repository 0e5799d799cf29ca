"""detectron2 evaluator that names a model's class-agnostic tubes with CLIP before scoring.

Used by ``train_net.py eval_only=True`` when ``MODEL.OPEN_VOCAB.ENABLED``: each rank names the
tubes of its videos as they arrive (frames read from the dataset dicts' ``file_names``), the main
process gathers them, writes ``results_class_agnostic.json`` and ``results.json`` (named) and
reports open-vocabulary AP / APb / APn next to the class-agnostic and oracle-label AP of the
same tubes (:mod:`wsovvis.open_vocab.diagnostics`).
"""
import logging
import math
import os
from collections import OrderedDict

from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

from wsovvis.data.video_utils import read_video_frame
from wsovvis.utils.io import atomic_write_json, read_json

from .diagnostics import diagnostics, format_diagnostics
from .tube_classifier import TubeClassifier
from .vocabulary import load_vocabulary, vocabulary_from_categories

__all__ = ["OpenVocabEvaluator", "build_open_vocab_evaluator"]

logger = logging.getLogger(__name__)


def _rle(seg):
    if seg is None:
        return None
    counts = seg["counts"]
    return {"size": [int(seg["size"][0]), int(seg["size"][1])],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


class OpenVocabEvaluator(DatasetEvaluator):
    """Name class-agnostic predictions with a :class:`TubeClassifier`, then score three ways.

    Args:
        classifier: the CLIP tube classifier (its vocabulary's ids are the GT category ids).
        gt_json: the labelled GT of the evaluated split.
        output_dir: where the two results files go (None: nowhere).
        oracle: also report oracle-label AP.
    """

    def __init__(self, classifier: TubeClassifier, gt_json: str, output_dir=None, oracle: bool = True):
        self.classifier = classifier
        self.gt_json = gt_json
        self.output_dir = output_dir
        self.oracle = oracle
        self.reset()

    def reset(self):
        self._agnostic, self._named = [], []

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            vid = int(out.get("video_id", inp.get("video_id")))
            tubes = [[_rle(s) for s in track] for track in out["pred_segmentations"]]
            scores = [float(s) for s in out["pred_scores"]]
            height, width = int(out.get("height", inp["height"])), int(out.get("width", inp["width"]))
            files = inp["file_names"]
            for track, score in zip(tubes, scores):
                self._agnostic.append({"video_id": vid, "score": score, "category_id": 1,
                                       "segmentations": track})

            def read(t):
                return read_video_frame(files[t], height, width, "RGB")

            for i, cat, score in self.classifier.name_tubes(read, tubes, scores, height, width):
                self._named.append({"video_id": vid, "score": float(score), "category_id": int(cat),
                                    "segmentations": tubes[i]})

    def evaluate(self):
        """Gather, save both results files, score; ``{"segm": open-vocab, "class_agnostic": .., "oracle": ..}``."""
        if comm.get_world_size() > 1:
            comm.synchronize()
            parts = comm.gather((self._agnostic, self._named), dst=0)
            if not comm.is_main_process():
                return {}
            agnostic = [r for a, _ in parts for r in a]
            named = [r for _, n in parts for r in n]
        else:
            agnostic, named = self._agnostic, self._named
        if self.output_dir:
            atomic_write_json(agnostic, os.path.join(self.output_dir, "results_class_agnostic.json"))
            atomic_write_json(named, os.path.join(self.output_dir, "results.json"))
        rows = diagnostics(self.gt_json, agnostic, named, oracle=self.oracle)
        logger.info("open-vocabulary evaluation of %s:\n%s", self.gt_json, format_diagnostics(rows))
        print(format_diagnostics(rows, title=f"open-vocabulary naming of the tubes ({self.gt_json})"))
        out = OrderedDict()
        out["segm"] = OrderedDict((k, v) for k, v in rows["open-vocab"].items() if not math.isnan(v))
        out["class_agnostic"] = OrderedDict((k, v) for k, v in rows["class-agnostic"].items()
                                            if not math.isnan(v))
        if "oracle-label" in rows:
            out["oracle"] = OrderedDict((k, v) for k, v in rows["oracle-label"].items() if not math.isnan(v))
        return out


def build_open_vocab_evaluator(cfg, dataset_name: str, output_folder=None) -> OpenVocabEvaluator:
    """The evaluator for ``cfg.MODEL.OPEN_VOCAB.ENABLED`` on a labelled split.

    The vocabulary is the split's GT categories, or ``MODEL.OPEN_VOCAB.VOCABULARY`` whose names
    must all be GT category names of the split (their ids are then the GT ids).

    Raises:
        ValueError: the split has no GT JSON / categories, or a vocabulary name is not a GT category.
    """
    meta = MetadataCatalog.get(dataset_name)
    gt_json = meta.get("json_file")
    if not gt_json or not os.path.isfile(gt_json):
        raise ValueError(f"dataset '{dataset_name}' has no ground-truth JSON to score open-vocabulary AP")
    gt_cats = read_json(gt_json, "ground-truth file").get("categories") or []
    gt_vocab = vocabulary_from_categories(gt_cats, gt_json)
    vocab = gt_vocab
    if cfg.MODEL.OPEN_VOCAB.VOCABULARY:
        user = load_vocabulary(cfg.MODEL.OPEN_VOCAB.VOCABULARY)
        by_name = {c.name.lower(): c for c in gt_vocab.categories}
        missing = [c.name for c in user.categories if c.name.lower() not in by_name]
        if missing:
            raise ValueError(f"MODEL.OPEN_VOCAB.VOCABULARY {user.source}: names not among the GT "
                             f"categories of '{dataset_name}': {', '.join(missing[:10])}")
        import dataclasses

        vocab = dataclasses.replace(user, categories=tuple(
            dataclasses.replace(c, id=by_name[c.name.lower()].id,
                                partition=by_name[c.name.lower()].partition) for c in user.categories))
    cfg = cfg.clone()
    cfg.defrost()
    if not cfg.MODEL.OPEN_VOCAB.CACHE_DIR:
        cfg.MODEL.OPEN_VOCAB.CACHE_DIR = os.path.join(cfg.OUTPUT_DIR, "open_vocab_cache")
    classifier = TubeClassifier(cfg, vocabulary=vocab)
    if output_folder is None:
        output_folder = os.path.join(cfg.OUTPUT_DIR, "inference")
    return OpenVocabEvaluator(classifier, gt_json, output_dir=output_folder)
