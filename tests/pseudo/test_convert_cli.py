"""The converter CLI end to end: exit codes, determinism, atomic outputs, skip report."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, "tools", "convert_videocutler_png_to_json.py")


def _cli(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, TOOL, *args, "--no_progress"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def _args(vs, out_json, *extra):
    return ["--mask_root", vs["mask_root"], "--img_root", vs["img_root"], "--out_json", out_json,
            "--split_name", "train", *extra]


def test_help():
    r = subprocess.run([sys.executable, TOOL, "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    for flag in ("--mask_root", "--skip_list", "--min_coverage", "--skip_report", "--strict",
                 "--num_workers", "--category_name"):
        assert flag in r.stdout


def test_reruns_are_byte_identical_across_worker_counts(video_set):
    out1 = str(video_set["tmp"] / "a" / "tubes.json")
    out2 = str(video_set["tmp"] / "b" / "tubes.json")
    r1 = _cli(*_args(video_set, out1, "--num_workers", "1"))
    r2 = _cli(*_args(video_set, out2, "--num_workers", "2"))
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    assert "converted 3 videos / skipped 0; 6 instances, 15 frames" in r1.stdout
    with open(out1, "rb") as f1, open(out2, "rb") as f2:
        assert f1.read() == f2.read()
    ds = json.load(open(out1))
    assert ds["info"]["split"] == "train" and len(ds["videos"]) == 3
    report = json.load(open(str(video_set["tmp"] / "a" / "tubes.skipped.json")))
    assert report["summary"]["converted"] == 3 and report["out_json"] == os.path.abspath(out1)


def _listing(d):
    return sorted(os.listdir(d))


def test_nothing_converted_leaves_existing_output(video_set, tmp_path):
    out_dir = tmp_path / "out"
    os.makedirs(out_dir)
    out = out_dir / "tubes.json"
    out.write_text("PREVIOUS")
    r = _cli(*_args(video_set, str(out), "--min_masks", "100"))
    assert r.returncode == 1 and "no video converted" in r.stderr
    assert out.read_text() == "PREVIOUS"
    assert _listing(out_dir) == ["tubes.json", "tubes.skipped.json"]  # no temp files left
    report = json.load(open(out_dir / "tubes.skipped.json"))
    assert report["out_json"] is None
    assert [s["reason"] for s in report["skipped"]] == ["too_few_masks"] * 3


def test_strict_failure_names_file_and_writes_nothing(video_set, tmp_path):
    bad = os.path.join(video_set["mask_root"], "vid_c", "mask_00001.png")
    with open(bad, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n garbage")
    out_dir = tmp_path / "out"
    os.makedirs(out_dir)
    (out_dir / "tubes.json").write_text("PREVIOUS")
    report = str(tmp_path / "report.json")
    r = _cli(*_args(video_set, str(out_dir / "tubes.json"), "--strict", "--skip_report", report,
                    "--num_workers", "2"))
    assert r.returncode == 2 and bad in r.stderr and "vid_c" in r.stderr
    assert (out_dir / "tubes.json").read_text() == "PREVIOUS"
    assert _listing(out_dir) == ["tubes.json"] and not os.path.exists(report)
    # without --strict the video is skipped and the rest converted
    r = _cli(*_args(video_set, str(out_dir / "tubes.json"), "--skip_report", report))
    assert r.returncode == 0, r.stderr
    rep = json.load(open(report))
    assert rep["skipped"][0]["name"] == "vid_c" and rep["skipped"][0]["reason"] == "corrupt_png"
    assert rep["skipped"][0]["path"] == bad
    assert len(json.load(open(out_dir / "tubes.json"))["videos"]) == 2


@pytest.mark.parametrize("extra,msg", [
    (["--skip_list", "/nonexistent/skip.txt"], "skip list not found"),
    (["--ref_json", "/nonexistent/ref.json"], "reference JSON not found"),
    (["--category_id", "0"], "category_id"),
])
def test_bad_arguments_exit_2(video_set, extra, msg):
    r = _cli(*_args(video_set, str(video_set["tmp"] / "o.json"), *extra))
    assert r.returncode == 2 and msg in r.stderr
    assert not os.path.exists(video_set["tmp"] / "o.json")
