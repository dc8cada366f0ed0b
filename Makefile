# Two commands a new user needs: `make demo` and `make test`. Each sets up the virtual
# environment (.venv) from the project's files on first use, so a fresh machine needs only
# Python 3.10+ with venv and pip.
#
# Two install levels share one .venv, each with its own stamp file:
#   runtime  `pip install -e .`: ONNX Runtime, OpenCV, numba, rosbags (~0.4 GB). Enough for
#            `mlesam demo`, `mlesam replay` and the shipped model.
#   full     runtime + torch, segment-anything, SAM 2, cyclonedds and the test tools
#            (~6 GB with torch's CUDA wheels). Needed by `make test` and `make lint`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.installed-runtime
FULL_STAMP := $(VENV)/.installed-full

.PHONY: demo test lint venv venv-runtime clean

$(RUNTIME_STAMP): setup.py setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	# --no-compile: Python compiles the modules it imports on first use instead of every
	# module of every dependency now (halves the install time).
	$(BIN)/python -m pip install --quiet --no-compile -e .
	touch $(RUNTIME_STAMP)

$(FULL_STAMP): $(RUNTIME_STAMP)
	# sam2 (in [test]) is an sdist that builds against the installed torch: torch first, then
	# the rest without build isolation and without SAM 2's optional CUDA extension.
	$(BIN)/python -m pip install --quiet -e '.[torch]'
	SAM2_BUILD_CUDA=0 $(BIN)/python -m pip install --quiet --no-build-isolation -e '.[test]'
	touch $(FULL_STAMP)

venv-runtime: $(RUNTIME_STAMP)

venv: $(FULL_STAMP)

lint: $(FULL_STAMP)
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest -q

demo: $(RUNTIME_STAMP)
	$(BIN)/mlesam demo

clean:
	rm -rf $(VENV) build *.egg-info mlesam_demo
