# Duty Ledger — every target bootstraps .venv itself; only Python 3.11+ and make are needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATABASE_URL ?= sqlite:///./var/ledger.sqlite
HOST ?= 127.0.0.1
PORT ?= 8000
TEST_WORKERS ?= auto

.PHONY: run test lint bench demo clean help

help:
	@echo "make run    install into .venv, load the demo ledger into ./var/ledger.sqlite, serve it"
	@echo "make test   install with dev extras and run the whole suite (PostgreSQL tests need a server)"
	@echo "make lint   ruff and mypy"
	@echo "make bench  the benchmarks under bench/ (never part of the test suite)"

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	DUTYLEDGER_DATABASE_URL=$(DATABASE_URL) $(BIN)/dutyledger init
	DUTYLEDGER_DATABASE_URL=$(DATABASE_URL) $(BIN)/dutyledger demo --if-empty
	DUTYLEDGER_DATABASE_URL=$(DATABASE_URL) $(BIN)/dutyledger serve --host $(HOST) --port $(PORT)

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check domain projections api tests bench
	$(BIN)/ruff format --check domain projections api tests bench
	$(BIN)/mypy

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
