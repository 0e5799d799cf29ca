#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install everything wsovvis needs:
# requirements.txt, detectron2 (registry build, see patches/README.md) and wsovvis itself (editable).
# A stamp file records a digest of the inputs, so a second run reuses the environment untouched.
#   VENV=path/to/venv  PYTHON=python3.11  bash scripts/setup_env.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
cd "$ROOT"

digest="$(cat requirements.txt pyproject.toml setup.py wsovvis/evaluation/_ytvis_rle.c \
          patches/detectron2/* scripts/install_detectron2.py \
          scripts/setup_env.sh | sha256sum | cut -c1-16)"
stamp="$VENV/.wsovvis-env-$digest"
if [[ -f "$stamp" ]]; then
    echo "[setup_env] reusing $VENV (inputs unchanged)"
    exit 0
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "[setup_env] creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade "pip>=23" wheel "setuptools<82"
echo "[setup_env] installing requirements.txt"
"$PY" -m pip install -q -r requirements.txt
echo "[setup_env] installing detectron2"
"$PY" scripts/install_detectron2.py
"$PY" -m pip install -q --no-deps --no-build-isolation -e .
"$PY" - <<'PY'
import detectron2, torch, wsovvis
print(f"[setup_env] torch {torch.__version__}, detectron2 {detectron2.__version__}, wsovvis {wsovvis.__version__}")
PY
rm -f "$VENV"/.wsovvis-env-*
touch "$stamp"
