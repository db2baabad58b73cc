# The two set-up commands of the README: `make demo` and `make test`. Both create (or reuse) .venv with Python 3.11.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install chromium

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
test: $(STAMP) chromium
	PATH="$(CURDIR)/$(BIN):$$PATH" bash tests/check.sh

## Debian's Chromium for the real-browser test (tests/test_browser.py) where apt-get can install it (as root, or by sudo without a
## password); never fails: without it that test is skipped. (Playwright drives it; `playwright install` is never run.)
APT := $(shell [ "$$(id -u)" = 0 ] && echo apt-get || { command -v sudo >/dev/null && echo 'sudo -n apt-get'; })
chromium:
	@test -x /usr/bin/chromium || { [ -n "$(APT)" ] && { $(APT) install -y -q chromium || { $(APT) update -q && $(APT) install -y -q chromium; }; }; } \
	  || echo "make: could not install chromium (needs apt-get as root or sudo); tests/test_browser.py will be skipped"
