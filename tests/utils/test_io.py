"""Atomic writes and JSON reading (wsovvis.utils.io)."""
import argparse
import json
import logging
import os
import pickle
import stat

import pytest

from wsovvis.utils.io import (
    UntrustedCheckpointError,
    atomic_write,
    atomic_write_json,
    pickle_load_restricted,
    read_json,
    torch_load_trusted,
)


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


class _RunsCode:
    """Unpickling this runs ``touch <marker>`` (what a malicious checkpoint would do)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_torch_load_trusted_allows_checkpoint_types_and_refuses_code(tmp_path, caplog):
    import numpy as np
    import torch

    plain, meta = str(tmp_path / "plain.pth"), str(tmp_path / "meta.pth")
    torch.save({"model": {"w": torch.ones(2)}}, plain)
    # what official / trainer checkpoints carry: numpy scalars and dtypes, argparse options
    torch.save({"model": {"w": torch.ones(2)}, "args": argparse.Namespace(lr=1),
                "iteration": np.int64(7), "dtype": np.dtype("float32")}, meta)
    with caplog.at_level(logging.WARNING, logger="wsovvis.utils.io"):
        assert torch.equal(torch_load_trusted(plain)["model"]["w"], torch.ones(2))
        loaded = torch_load_trusted(meta)
    assert loaded["args"].lr == 1 and loaded["iteration"] == 7
    assert not caplog.records  # no full pickle needed
    marker = tmp_path / "code_ran"
    evil = str(tmp_path / "evil.pth")
    torch.save({"model": {"w": torch.ones(2)}, "x": _RunsCode(marker)}, evil)
    with pytest.raises(UntrustedCheckpointError, match=r"evil\.pth.*system.*TRUSTED_CHECKPOINTS"):
        torch_load_trusted(evil)
    assert not marker.exists()
    with caplog.at_level(logging.WARNING, logger="wsovvis.utils.io"):  # explicit opt-in only
        torch_load_trusted(evil, trusted=[str(tmp_path / "." / "evil.pth")])
    assert marker.exists() and "listed as trusted" in caplog.text
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(pickle.UnpicklingError):  # not a refusal: callers name the file
        torch_load_trusted(str(tmp_path / "broken.pth"))


def test_pickle_load_restricted_refuses_code(tmp_path):
    import numpy as np

    ok, evil = tmp_path / "ok.pkl", tmp_path / "evil.pkl"
    with open(ok, "wb") as f:
        pickle.dump({"model": {"w": np.ones(3, np.float32)}, "__author__": "me"}, f)
    assert pickle_load_restricted(str(ok))["model"]["w"].sum() == 3
    marker = tmp_path / "code_ran"
    with open(evil, "wb") as f:
        pickle.dump({"blobs": {"x": _RunsCode(marker)}}, f)
    with pytest.raises(UntrustedCheckpointError, match=r"evil\.pkl.*system"):
        pickle_load_restricted(str(evil))
    assert not marker.exists()
