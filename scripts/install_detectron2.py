#!/usr/bin/env python
"""Install detectron2 for wsovvis from a package registry, reproducibly.

detectron2 is not on PyPI under its own name. This script

1. leaves an existing detectron2 alone if it has its compiled ops (an official build from source),
   or if it is already the build made by this script with the current patch set;
2. otherwise downloads the pinned ``pb1-detectron2==0.6`` sdist (the detectron2 v0.6 Python package,
   no C++ sources) with hash checking, applies ``patches/detectron2/*.patch`` in order, and installs
   the result as a pure-Python package.

Run it with the interpreter of the target environment::

    .venv/bin/python scripts/install_detectron2.py [--force]

torch must already be installed (the sdist's original setup.py imports it to produce metadata).
"""
import argparse
import glob
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATCH_DIR = os.path.join(ROOT, "patches", "detectron2")
SDIST_REQUIREMENTS = os.path.join(PATCH_DIR, "requirements-sdist.txt")
# pip >= 26 refuses to download any PyPI sdist whose metadata names a direct-URL dependency, and
# pb1-detectron2 declares one in an optional extra ("panopticapi @ https://..."), so the download
# runs with this pip, installed into a temporary directory (the environment's own pip is untouched).
DOWNLOAD_PIP = "pip==25.3"


def log(msg):
    print(f"[install_detectron2] {msg}", flush=True)


def patchset_digest():
    """sha256 over the pinned requirement and every patch file, in order."""
    h = hashlib.sha256()
    for path in [SDIST_REQUIREMENTS] + sorted(glob.glob(os.path.join(PATCH_DIR, "*.patch"))):
        h.update(os.path.basename(path).encode())
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def existing_install():
    """Describe the detectron2 currently importable: None, 'compiled', 'wsovvis:<digest>' or 'other'."""
    spec = importlib.util.find_spec("detectron2")
    if spec is None or not spec.submodule_search_locations:
        return None, None
    pkg_dir = list(spec.submodule_search_locations)[0]
    if glob.glob(os.path.join(pkg_dir, "_C*.so")) or glob.glob(os.path.join(pkg_dir, "_C*.pyd")):
        return "compiled", pkg_dir
    marker = os.path.join(pkg_dir, "_wsovvis_patchset.py")
    if os.path.isfile(marker):
        with open(marker) as f:
            for line in f:
                if line.startswith("DIGEST"):
                    return "wsovvis:" + line.split("=")[1].strip().strip('"'), pkg_dir
    return "other", pkg_dir


def run(cmd, **kw):
    log("$ " + " ".join(cmd))
    subprocess.run(cmd, check=True, **kw)


def apply_patches(src_dir):
    patches = sorted(glob.glob(os.path.join(PATCH_DIR, "*.patch")))
    for p in patches:
        if shutil.which("patch"):
            run(["patch", "-p1", "--batch", "--forward", "-s", "-i", p], cwd=src_dir)
        else:
            run(["git", "apply", "-p1", p], cwd=src_dir)
    return [os.path.basename(p) for p in patches]


def build_and_install(work):
    pip_dir = os.path.join(work, "pip")
    run([sys.executable, "-m", "pip", "install", "-q", "--target", pip_dir, DOWNLOAD_PIP])
    env = dict(os.environ, PYTHONPATH=pip_dir + os.pathsep + os.environ.get("PYTHONPATH", ""))
    dl = os.path.join(work, "dl")
    run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-build-isolation",
         "--no-binary", ":all:", "--require-hashes", "-r", SDIST_REQUIREMENTS, "-d", dl],
        env=env,
    )
    (archive,) = glob.glob(os.path.join(dl, "*.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    (src,) = [d for d in glob.glob(os.path.join(work, "pb1-detectron2-*")) if os.path.isdir(d)]
    shutil.rmtree(os.path.join(src, "pb1_detectron2.egg-info"), ignore_errors=True)
    applied = apply_patches(src)
    with open(os.path.join(src, "detectron2", "_wsovvis_patchset.py"), "w") as f:
        f.write('"""Written by wsovvis scripts/install_detectron2.py: patches applied to this build."""\n')
        f.write(f"PATCHES = {applied!r}\n")
        f.write(f'DIGEST = "{patchset_digest()}"\n')
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", src])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help="reinstall even if a detectron2 is present")
    args = parser.parse_args(argv)

    kind, where = existing_install()
    digest = patchset_digest()
    if not args.force:
        if kind == "compiled":
            log(f"found a compiled detectron2 at {where}; leaving it alone")
            return 0
        if kind == f"wsovvis:{digest}":
            log(f"detectron2 (registry build, patch set {digest[:12]}) already installed at {where}")
            return 0
        if kind == "other":
            log(f"found a detectron2 without compiled ops at {where} (not installed by wsovvis); "
                "leaving it alone (pass --force to replace it with the wsovvis registry build)")
            return 0
    if importlib.util.find_spec("torch") is None:
        log("torch must be installed first (pip install -r requirements.txt)")
        return 1
    with tempfile.TemporaryDirectory(prefix="wsovvis-d2-") as work:
        build_and_install(work)
    log(f"installed detectron2 v0.6 registry build with patch set {digest[:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
