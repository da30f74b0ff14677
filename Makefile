# tagloop developer commands. Everything runs in ./.venv, created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(DEV_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@ $(STAMP)

run: $(STAMP)  ## start the server on the embedded default with the demo classifier
	$(BIN)/tagloop serve --demo --host $(HOST) --port $(PORT)

# the web UI's tests drive Debian's Chromium (Playwright never downloads a browser)
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(CHROMIUM):
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium \
	  || ($(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium)

test: $(DEV_STAMP) $(CHROMIUM)  ## run the whole test suite (needs the local PostgreSQL server)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(DEV_STAMP)  ## ruff (style, imports) and mypy (types of src/)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

format: $(DEV_STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: $(DEV_STAMP)  ## print measured figures (reads ../shared/data; jobs figures need PostgreSQL)
	$(BIN)/python benchmarks/train_eval.py --repeats 3
	$(BIN)/python benchmarks/jobs_overhead.py
	$(BIN)/python benchmarks/batch.py
	$(BIN)/python benchmarks/serve.py

clean:
	rm -rf $(VENV) tagloop-data .pytest_cache .ruff_cache
