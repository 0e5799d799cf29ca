# wsovvis entry points. Every target first creates/reuses the virtual environment (.venv).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: env demo test bench clean-env

env:
	VENV=$(VENV) bash scripts/setup_env.sh

## The main job: synthetic data -> pseudo tubes -> train VidEoMT on CPU -> class-agnostic AP -> GIF
## -> open-vocabulary naming of the val tubes by a tiny CLIP trained on the fly (AP/APb/APn)
demo: env
	$(PY) tools/run_demo.py --output-dir demo_output

## The whole test suite
test: env
	$(PY) -m pytest -q tests

bench: env
	$(PY) benchmarks/eval_speed.py --scale 0.1
	$(PY) benchmarks/pseudo_convert_speed.py

clean-env:
	rm -rf $(VENV)
