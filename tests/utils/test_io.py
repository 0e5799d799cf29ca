"""Atomic writes and JSON reading (wsovvis.utils.io)."""
import argparse
import json
import logging
import os
import pickle
import stat

import pytest

from wsovvis.utils.io import atomic_write, atomic_write_json, read_json, torch_load_trusted


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_file_follows_umask_not_tempfile_mode(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "sub" / "out.json"
        atomic_write_json({"a": 1}, str(path))
    finally:
        os.umask(old)
    assert json.loads(path.read_text()) == {"a": 1}
    assert _mode(path) == 0o644  # readable by the group / others like any other output


def test_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    os.chmod(path, 0o640)
    atomic_write(str(path), lambda f: f.write("new"))
    assert path.read_text() == "new"
    assert _mode(path) == 0o640


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    path = tmp_path / "out.json"
    atomic_write_json([1], str(path))

    def boom(f):
        f.write("partial")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_write(str(path), boom)
    assert json.loads(path.read_text()) == [1]
    assert sorted(os.listdir(tmp_path)) == ["out.json"]


def test_read_json_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="results file .*bad.json"):
        read_json(str(bad), "results file")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        read_json(str(tmp_path / "missing.json"))


def test_torch_load_trusted_falls_back_to_a_full_pickle_with_a_warning(tmp_path, caplog):
    import torch

    plain, full = str(tmp_path / "plain.pth"), str(tmp_path / "full.pth")
    torch.save({"model": {"w": torch.ones(2)}}, plain)
    torch.save({"model": {"w": torch.ones(2)}, "args": argparse.Namespace(lr=1)}, full)
    with caplog.at_level(logging.WARNING, logger="wsovvis.utils.io"):
        assert torch.equal(torch_load_trusted(plain)["model"]["w"], torch.ones(2))
        assert not caplog.records
        assert torch_load_trusted(full)["args"].lr == 1
    assert "full.pth holds non-tensor Python objects" in caplog.text
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(pickle.UnpicklingError):  # both attempts refuse it; callers name the file
        torch_load_trusted(str(tmp_path / "broken.pth"))
