# Two commands a new user needs: `make demo` and `make test`. Each sets up its own virtual
# environment (.venv) from the project's files on first use, so a fresh machine needs only
# Python 3.10+ with venv and pip.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint venv clean

$(STAMP): setup.py setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	# sam2 (in [test]) is an sdist that builds against the installed torch: torch first, then
	# the rest without build isolation and without SAM 2's optional CUDA extension.
	$(BIN)/python -m pip install --quiet -e '.[torch]'
	SAM2_BUILD_CUDA=0 $(BIN)/python -m pip install --quiet --no-build-isolation -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/mlesam demo

clean:
	rm -rf $(VENV) build *.egg-info mlesam_demo
