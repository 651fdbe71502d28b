# satsr: every target creates .venv when missing and reuses it while the lock is unchanged.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
LOCK_HASH := $(shell cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)
UV_VERSION := 0.13.9
RUN := PATH="$(BIN):$$PATH" VIRTUAL_ENV="$(CURDIR)/$(VENV)" TF_CPP_MIN_LOG_LEVEL=2

.PHONY: setup demo test test-fast bench lint dag clean-data help

help:
	@echo "make setup   create .venv and install the locked dependencies (idempotent)"
	@echo "make demo    run the whole pipeline offline on the embedded demo data (dvc repro)"
	@echo "make test    run the test suite"
	@echo "make bench   run the benchmarks (see benchmarks/README.md)"
	@echo "make lint    ruff + hadolint"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

setup: $(VENV)/bin/python
	@if [ "$$(cat $(STAMP) 2>/dev/null)" != "$(LOCK_HASH)" ]; then \
	  set -e; \
	  echo "installing locked dependencies into $(VENV) (lock $(LOCK_HASH))"; \
	  $(BIN)/python -m pip install -q "uv==$(UV_VERSION)"; \
	  $(BIN)/uv pip sync -q --python $(BIN)/python requirements.lock; \
	  $(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .; \
	  echo "$(LOCK_HASH)" > $(STAMP); \
	else echo "$(VENV) is up to date with requirements.lock"; fi

# params first: dvc repro deletes a stage's outputs before the stage could reject bad parameters
demo: setup
	$(RUN) satsr params --check
	$(RUN) dvc repro
	@$(RUN) dvc metrics show

test: setup
	$(RUN) python -m pytest

test-fast: setup
	$(RUN) python -m pytest -m "not slow"

bench: setup
	$(RUN) python benchmarks/bench_data.py

lint: setup
	$(RUN) ruff check src tests stages benchmarks
	$(RUN) hadolint docker/Dockerfile

dag: setup
	@$(RUN) dvc dag

clean-data:
	rm -rf data/raw data/filter data/split data/png
