"""Vocabularies of category names for open-vocabulary naming.

A vocabulary comes from a YTVIS / LV-VIS JSON's ``categories`` (``id``, ``name``, optional
``partition`` and ``synonyms``) or from a plain text file with one category per line (synonyms
comma-separated, the first name is the category's name; blank lines and ``#`` comments skipped).
Names are normalised for prompts: ``bat_(animal)`` gives the prompt names ``"bat (animal)"`` and
``"bat"`` (the parenthesised part as context, and the bare name as a synonym).
"""
import dataclasses
import os
import re
from typing import Dict, List, Optional, Sequence

from wsovvis.utils.io import read_json

__all__ = ["Category", "Vocabulary", "load_vocabulary", "prompt_names"]

_PAREN = re.compile(r"\s*\(([^)]*)\)\s*")


def prompt_names(name: str) -> List[str]:
    """Prompt forms of one raw category name (underscores to spaces, disambiguator split off).

    Args:
        name: raw name, e.g. ``"bat_(animal)"`` or ``"traffic light"``.

    Returns:
        Distinct non-empty forms, the full normalised name first: ``["bat (animal)", "bat"]``.
    """
    full = " ".join(name.replace("_", " ").split())
    forms = [full]
    bare = " ".join(_PAREN.sub(" ", full).split())
    if bare and bare != full:
        forms.append(bare)
    return forms


@dataclasses.dataclass(frozen=True)
class Category:
    """One vocabulary entry: dataset id, raw name, LV-VIS partition (or None), synonyms."""

    id: int
    name: str
    partition: Optional[int] = None
    synonyms: tuple = ()

    def prompts(self) -> List[str]:
        """All prompt names of the category: normalised name forms, then synonyms' forms."""
        out: List[str] = []
        for raw in (self.name,) + tuple(self.synonyms):
            for form in prompt_names(raw):
                if form not in out:
                    out.append(form)
        return out


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """An ordered list of categories (position = class index of the classifier)."""

    categories: tuple
    source: str = ""

    def __len__(self) -> int:
        return len(self.categories)

    @property
    def ids(self) -> List[int]:
        return [c.id for c in self.categories]

    @property
    def names(self) -> List[str]:
        return [c.name for c in self.categories]

    def prompt_lists(self) -> List[List[str]]:
        """Per category, its prompt names (max over these synonyms at classification time)."""
        return [c.prompts() for c in self.categories]

    def as_ytvis_categories(self) -> List[Dict]:
        """``categories`` entries for a YTVIS JSON (``partition``/``synonyms`` when known)."""
        out = []
        for c in self.categories:
            d = {"id": c.id, "name": c.name}
            if c.partition is not None:
                d["partition"] = c.partition
            if c.synonyms:
                d["synonyms"] = list(c.synonyms)
            out.append(d)
        return out


def _check(categories: Sequence[Category], source: str) -> Vocabulary:
    if not categories:
        raise ValueError(f"vocabulary {source}: no categories")
    seen_ids, seen_names = {}, {}
    for i, c in enumerate(categories):
        if not c.name.strip() or not prompt_names(c.name)[0]:
            raise ValueError(f"vocabulary {source}: category {i} (id {c.id}) has an empty name")
        if c.id in seen_ids:
            raise ValueError(f"vocabulary {source}: duplicate category id {c.id} "
                             f"('{seen_ids[c.id]}' and '{c.name}')")
        key = prompt_names(c.name)[0].lower()
        if key in seen_names:
            raise ValueError(f"vocabulary {source}: duplicate category name '{c.name}' "
                             f"(ids {seen_names[key]} and {c.id})")
        seen_ids[c.id], seen_names[key] = c.name, c.id
        for s in c.synonyms:
            if not isinstance(s, str) or not s.strip():
                raise ValueError(f"vocabulary {source}: category '{c.name}' has an empty synonym")
    return Vocabulary(tuple(categories), source)


def vocabulary_from_categories(cats, source: str = "categories") -> Vocabulary:
    """Build a vocabulary from YTVIS ``categories`` entries (validated, order kept)."""
    if not isinstance(cats, list):
        raise ValueError(f"vocabulary {source}: 'categories' is not a list")
    out = []
    for i, c in enumerate(cats):
        if not isinstance(c, dict) or "id" not in c or not isinstance(c.get("name"), str):
            raise ValueError(f"vocabulary {source}: categories[{i}] needs an int 'id' and a str 'name'")
        try:
            cid = int(c["id"])
        except (TypeError, ValueError):
            raise ValueError(f"vocabulary {source}: categories[{i}].id is not an integer") from None
        part = c.get("partition")
        syn = c.get("synonyms") or ()
        if isinstance(syn, str) or not isinstance(syn, (list, tuple)):
            raise ValueError(f"vocabulary {source}: categories[{i}].synonyms is not a list")
        out.append(Category(cid, c["name"], None if part is None else int(part), tuple(syn)))
    return _check(out, source)


def _from_names_file(path: str) -> Vocabulary:
    cats = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            names = [n.strip() for n in line.split(",")]
            if not all(names):
                raise ValueError(f"vocabulary {path}: line {lineno} has an empty name")
            cats.append(Category(len(cats) + 1, names[0], None, tuple(names[1:])))
    return _check(cats, path)


def load_vocabulary(source) -> Vocabulary:
    """Load a vocabulary from a YTVIS/LV-VIS JSON, a names file, or a list of names.

    Args:
        source: path to a ``.json`` (its ``categories``), path to a text file (one category per
            line, synonyms comma-separated; ids 1..N in file order), or a sequence of names.

    Returns:
        The validated :class:`Vocabulary`.

    Raises:
        ValueError: no categories, an empty or duplicate name, a duplicate id (names the item).
        FileNotFoundError: ``source`` is a path that does not exist.
    """
    if isinstance(source, (list, tuple)):
        return _check([Category(i + 1, str(n)) for i, n in enumerate(source)], "names list")
    path = str(source)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"vocabulary file not found: {path}")
    if path.lower().endswith(".json"):
        doc = read_json(path, "vocabulary JSON")
        if not isinstance(doc, dict) or "categories" not in doc:
            raise ValueError(f"vocabulary {path}: a JSON vocabulary needs a 'categories' list")
        return vocabulary_from_categories(doc["categories"], path)
    return _from_names_file(path)
