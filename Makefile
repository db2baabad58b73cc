# The two set-up commands of the README: `make demo` and `make test`. Both create (or reuse) .venv with Python 3.11.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python setup.py settings.ini
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## installs everything and runs the main job on the built-in scene dataset
demo: $(STAMP)
	$(BIN)/wsss_nb demo

## installs and runs the checks: notebooks clean, library exported from them, then pytest
test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash tests/check.sh
