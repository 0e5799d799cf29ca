"""Vocabulary loading, prompt-name normalisation and bad-input errors."""
import json

import pytest

from wsovvis.open_vocab import load_vocabulary, prompt_names


def test_prompt_names_normalise_lvis_style_names():
    assert prompt_names("bat_(animal)") == ["bat (animal)", "bat"]
    assert prompt_names("traffic_light") == ["traffic light"]
    assert prompt_names("shaver_(electric)") == ["shaver (electric)", "shaver"]


def test_json_vocabulary_keeps_ids_partitions_synonyms(tmp_path):
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"categories": [
        {"id": 7, "name": "bat_(animal)", "partition": 2, "synonyms": ["flying fox"]},
        {"id": 3, "name": "person", "partition": 0},
    ]}))
    vocab = load_vocabulary(str(path))
    assert vocab.ids == [7, 3] and vocab.names == ["bat_(animal)", "person"]
    assert vocab.categories[0].partition == 2
    assert vocab.prompt_lists()[0] == ["bat (animal)", "bat", "flying fox"]


def test_names_file_with_synonyms_and_comments(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("# my vocabulary\ncat, kitty\n\ndog\n")
    vocab = load_vocabulary(str(path))
    assert vocab.ids == [1, 2] and vocab.names == ["cat", "dog"]
    assert vocab.prompt_lists() == [["cat", "kitty"], ["dog"]]
    assert load_vocabulary(["a", "b"]).ids == [1, 2]


@pytest.mark.parametrize("content, message", [
    ("cat\ndog\ncat\n", "duplicate category name 'cat'"),
    ("cat\n , kitty\n", "line 2 has an empty name"),
    ("# nothing\n\n", "no categories"),
])
def test_bad_names_files(tmp_path, content, message):
    path = tmp_path / "names.txt"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_vocabulary(str(path))


@pytest.mark.parametrize("cats, message", [
    ([], "no categories"),
    ([{"id": 1, "name": "cat"}, {"id": 1, "name": "dog"}], "duplicate category id 1"),
    ([{"id": 1, "name": "  "}], "category 0 \\(id 1\\) has an empty name"),
    ([{"id": 1, "name": "Cat"}, {"id": 2, "name": "cat"}], "duplicate category name 'cat'"),
    ([{"name": "cat"}], "categories\\[0\\] needs"),
])
def test_bad_json_vocabularies(tmp_path, cats, message):
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"categories": cats}))
    with pytest.raises(ValueError, match=message):
        load_vocabulary(str(path))


def test_missing_file_and_json_without_categories(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocabulary file not found"):
        load_vocabulary(str(tmp_path / "nope.txt"))
    path = tmp_path / "x.json"
    path.write_text("[]")
    with pytest.raises(ValueError, match="needs a 'categories' list"):
        load_vocabulary(str(path))
