"""The memory benchmarks' measuring children still run against the current library.

Benchmarks are not part of the package, so an API change can break them unnoticed (the
open-vocab keep-all baseline once called a private helper with an old signature). Each child is
run at the smallest size and its JSON line checked.
"""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _child(script, *args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", script), *args],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_open_vocab_keep_all_baseline_child():
    """The baseline path (the streaming one is the library's, tested in tests/open_vocab)."""
    r = _child("open_vocab_speed.py", "--child", "keep_all", "2", "--size", "128", "192",
               "--memory-input", "256")
    assert r["mode"] == "keep_all" and r["frames"] == 2 and r["peak_rss_mib"] > 0
    assert r["dense_maps_held_mib"] > 0


def test_videomt_memory_child_spills_codes():
    r = _child("videomt_memory.py", "--child", "--path", "wsovvis", "--frames", "3",
               "--size", "64", "64", "--orig", "72", "60", "--code-memory-mb", "0")
    assert r["frames"] == 3 and r["spilled"] and r["stored_mb"] > 0 and r["output_mb"] > 0
