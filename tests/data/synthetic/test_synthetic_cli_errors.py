"""tools/make_synthetic_dataset.py bad input: one `error:` line naming the flag, exit status 2."""
import os
import subprocess
import sys

import pytest

from wsovvis.data.synthetic import generate_synthetic_dataset

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
_TOOL = os.path.join(_REPO, "tools", "make_synthetic_dataset.py")


def test_num_videos_zero_is_one_error_line(tmp_path):
    """--num-videos 0 used to set val to 0 as well and fail with a dump of the preset."""
    out = tmp_path / "ds"
    r = subprocess.run([sys.executable, _TOOL, "--out", str(out), "--num-videos", "0"],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.startswith("error:")]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0] == "error: --num-videos must be >= 1, got 0"
    assert not out.exists()


@pytest.mark.parametrize("name", ["num_videos", "num_frames", "height", "width"])
def test_zero_override_is_an_error_not_the_preset(tmp_path, name):
    """0 frames / height / width used to fall back to the preset silently."""
    out = tmp_path / "ds"
    with pytest.raises(ValueError, match=f"{name} must be >= 1, got 0"):
        generate_synthetic_dataset(str(out), "tiny", **{name: 0})
    assert not out.exists()
