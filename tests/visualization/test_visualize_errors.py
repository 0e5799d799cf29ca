"""tools/visualize_ytvis.py on LV-VIS quirks and bad input: one `error:` line, exit status 2."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from wsovvis.utils.rle import encode_mask

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, "tools", "visualize_ytvis.py")
H, W = 12, 16


def _dataset(tmp_path, sep="\\"):
    root = tmp_path / "JPEGImages"
    (root / "00007").mkdir(parents=True)
    names = []
    for t in range(2):
        Image.fromarray(np.full((H, W, 3), 40 * t, np.uint8)).save(root / "00007" / f"{t:05d}.jpg")
        names.append(f"00007{sep}{t:05d}.jpg")
    mask = np.zeros((H, W), np.uint8)
    mask[2:8, 3:9] = 1
    gt = {
        "videos": [{"id": 7, "file_names": names, "length": 2, "height": H, "width": W}],
        "categories": [{"id": 1, "name": "object"}],
        "annotations": [{"id": 3, "video_id": 7, "category_id": 1,
                         "segmentations": [encode_mask(mask), None]}],
    }
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    return str(path), str(root), mask


def _subprocess(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))


def _tool():
    spec = importlib.util.spec_from_file_location("visualize_ytvis_tool", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def run_tool(capsys):
    """The tool's main() in this process (a subprocess costs a torch import per case)."""
    main = _tool().main

    def run(*args):
        code = main(list(args))
        out = capsys.readouterr()
        return _Result(code, out.out, out.err)

    return run


def _assert_one_error(proc, *needles):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_windows_backslashes_in_file_names(tmp_path, run_tool):
    gt, root, _ = _dataset(tmp_path, sep="\\")
    proc = run_tool("--json", gt, "--image-root", root, "--out", str(tmp_path / "vis"))
    assert proc.returncode == 0, proc.stderr
    assert Image.open(tmp_path / "vis" / "video_7.gif").n_frames == 2


def test_result_mask_of_wrong_size_names_entry_video_and_sizes(tmp_path, run_tool):
    gt, root, mask = _dataset(tmp_path, sep="/")
    small = encode_mask(mask[:, :10])
    results = [{"video_id": 7, "score": 0.9, "category_id": 1,
                "segmentations": [encode_mask(mask), None]},
               {"video_id": 7, "score": 0.8, "category_id": 1, "segmentations": [None, small]}]
    res = tmp_path / "results.json"
    res.write_text(json.dumps(results))
    out = tmp_path / "vis"
    proc = run_tool("--json", gt, "--image-root", root, "--out", str(out), "--results", str(res))
    _assert_one_error(proc, "results[1]", "video id 7", "frame 1", "12 x 10", "12 x 16")
    assert not out.exists() or not os.listdir(out)  # checked before anything is written


@pytest.mark.parametrize(
    "case, needles",
    [
        ("corrupt_gt", ["annotation id 3", "video id 7", "frame 0", "sum to 100"]),
        ("missing_json", ["not found"]),
        ("unknown_video", ["video ids [99]"]),
        ("short_track", ["annotation id 3", "1 segmentations", "2 frames"]),
        ("missing_frame", ["video 7", "00001.jpg"]),
        ("bad_top_k", ["--top-k"]),
    ],
)
def test_bad_input_is_one_error_line(tmp_path, run_tool, case, needles):
    gt, root, _ = _dataset(tmp_path, sep="/")
    data = json.load(open(gt))
    args = []
    if case == "corrupt_gt":
        data["annotations"][0]["segmentations"][0] = {"size": [H, W], "counts": [90, 10]}
    elif case == "missing_json":
        gt = str(tmp_path / "nope.json")
    elif case == "unknown_video":
        data["annotations"][0]["video_id"] = 99
    elif case == "short_track":
        data["annotations"][0]["segmentations"].pop()
    elif case == "missing_frame":
        os.remove(os.path.join(root, "00007", "00001.jpg"))
    elif case == "bad_top_k":
        args = ["--top-k", "0"]
    if case != "missing_json":
        with open(gt, "w") as f:
            json.dump(data, f)
    proc = run_tool("--json", gt, "--image-root", root, "--out", str(tmp_path / "vis"), *args)
    _assert_one_error(proc, *needles)


def test_subprocess_corrupt_mask_one_error_line_exit_2(tmp_path):
    """The real command line: exit status 2, one `error:` line, no traceback."""
    gt, root, _ = _dataset(tmp_path, sep="/")
    data = json.load(open(gt))
    data["annotations"][0]["segmentations"][0] = {"size": [H, W], "counts": [400, 20, 400]}
    with open(gt, "w") as f:
        json.dump(data, f)
    proc = _subprocess("--json", gt, "--image-root", root, "--out", str(tmp_path / "vis"))
    _assert_one_error(proc, "annotation id 3", "video id 7", "frame 0", "sum to 820")
