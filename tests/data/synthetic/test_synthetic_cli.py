"""tools/make_synthetic_dataset.py: --help and a tiny run."""
import importlib.util
import os

import pytest

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
_TOOL = os.path.join(_REPO, "tools", "make_synthetic_dataset.py")


def _load_tool():
    spec = importlib.util.spec_from_file_location("make_synthetic_dataset", _TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_help(capsys):
    with pytest.raises(SystemExit) as e:
        _load_tool().main(["--help"])
    assert e.value.code == 0
    assert "--preset" in capsys.readouterr().out


def test_run_prints_summary(tmp_path, capsys):
    out = str(tmp_path / "cli")
    args = ["--out", out, "--preset", "tiny", "--num-videos", "2", "--num-frames", "2",
            "--height", "16", "--width", "24"]
    assert _load_tool().main(args) == 0
    text = capsys.readouterr().out
    assert "train: 2 videos, 4 frames" in text and out in text
    assert os.path.isfile(os.path.join(out, "val", "val_instances.json"))
    # an existing dataset is not overwritten without --overwrite: exit 2, no traceback
    assert _load_tool().main(args) == 2
    assert "exists and is not empty" in capsys.readouterr().err
