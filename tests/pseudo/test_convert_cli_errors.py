"""Converter CLI bad input: one `error:` line naming the item, exit status 2, nothing written."""
import importlib.util
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, "tools", "convert_videocutler_png_to_json.py")


def _main():
    spec = importlib.util.spec_from_file_location("convert_tool", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def _one_error(code, out, err, *needles):
    assert code == 2, out + err
    lines = [ln for ln in (out + err).splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in out + err, out + err
    for n in needles:
        assert n in lines[0], lines[0]


def _args(vs, out_json, *extra):
    return ["--mask_root", vs["mask_root"], "--img_root", vs["img_root"], "--out_json", out_json,
            "--no_progress", *extra]


@pytest.mark.parametrize(
    "case, needles",
    [
        ("out_json_folder", ["--out_json", "is a folder"]),
        ("out_json_under_file", ["--out_json", "is a file, not a folder"]),
        ("workers_0", ["--num_workers must be >= 1, got 0"]),
        ("workers_negative", ["--num_workers must be >= 1, got -3"]),
        ("report_is_out_json", ["same file"]),
    ],
)
def test_bad_outputs_and_workers(video_set, tmp_path, capsys, case, needles):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out_json, extra = str(out_dir / "tubes.json"), []
    if case == "out_json_folder":
        out_json = str(out_dir)
    elif case == "out_json_under_file":
        (tmp_path / "plain").write_text("x")
        out_json = str(tmp_path / "plain" / "tubes.json")
    elif case == "workers_0":
        extra = ["--num_workers", "0"]
    elif case == "workers_negative":
        extra = ["--num_workers", "-3"]
    elif case == "report_is_out_json":
        extra = ["--skip_report", out_json]
    code = _main()(_args(video_set, out_json, *extra))
    cap = capsys.readouterr()
    _one_error(code, cap.out, cap.err, *needles)
    assert os.listdir(out_dir) == []  # nothing written


def test_subprocess_out_json_folder(video_set, tmp_path):
    """The real command line: exit 2, one `error:` line, no traceback, before any work."""
    r = subprocess.run([sys.executable, TOOL, *_args(video_set, str(tmp_path))],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    _one_error(r.returncode, r.stdout, r.stderr, str(tmp_path), "is a folder")
