"""Class-agnostic copies of YTVIS / LV-VIS annotation files (one "object" category).

Used to score pseudo tubes or models class-agnostically and to train on GT tubes without labels.

Decisions:
    * Every annotation gets ``category_id``; its original id is kept as ``orig_category_id`` and
      the original category list as the top-level ``orig_categories``, so nothing is lost.
      Re-running on an already class-agnostic file keeps the first originals (idempotent).
    * ``videos``, ``info``, ``licenses`` and every other key are copied unchanged.
    * The single category gets ``"partition": 0`` **only when the input categories carry a
      partition** (LV-VIS). 0 is a base partition in LV-VIS, so partition-aware code (open-vocabulary
      filters) treats "object" as a seen class instead of dropping it. Plain YTVIS inputs get no
      ``partition`` key.
    * Base / novel AP of such a file: the scorer reads each track's original partition from
      ``orig_category_id`` and ``orig_categories`` and reports the class-agnostic AP with the other
      partition's tracks ignored (not a base line of one category and a meaningless novel -1).
"""
import copy
from typing import Any, Dict

__all__ = ["make_class_agnostic"]


def make_class_agnostic(
    dataset: Dict[str, Any], category_id: int = 1, category_name: str = "object"
) -> Dict[str, Any]:
    """Return a copy of a YTVIS dataset dict whose annotations all belong to one category.

    Args:
        dataset: YTVIS / LV-VIS dict with ``videos``, ``annotations`` and ``categories``.
        category_id: id of the single category (> 0).
        category_name: its name.

    Returns:
        A new dict (the input is not modified).

    Raises:
        ValueError: missing ``annotations`` / ``categories`` or a bad ``category_id``.
    """
    if not isinstance(dataset, dict):
        raise ValueError(
            f"expected a YTVIS dataset dict, got {type(dataset).__name__} "
            "(a results/predictions list is not an annotation file)"
        )
    for key in ("videos", "annotations", "categories"):
        if key not in dataset:
            raise ValueError(f"not a YTVIS annotation file: no {key!r} key")
    if int(category_id) <= 0:
        raise ValueError(f"category_id must be > 0, got {category_id}")
    out = {k: v for k, v in dataset.items() if k not in ("annotations", "categories")}
    had_partition = any("partition" in c for c in dataset["categories"])
    category = {"id": int(category_id), "name": category_name, "supercategory": category_name}
    if had_partition:
        category["partition"] = 0
    out["categories"] = [category]
    if "orig_categories" not in dataset:
        out["orig_categories"] = copy.deepcopy(dataset["categories"])
    annotations = []
    for ann in dataset["annotations"]:
        new = dict(ann)
        new.setdefault("orig_category_id", ann.get("category_id"))
        new["category_id"] = int(category_id)
        annotations.append(new)
    out["annotations"] = annotations
    return out
