# One command to run it, one to test it. Everything is installed into .venv by these targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test lint bench chaos install clean docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	$(BIN)/journeys dev

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Lint, format and type checks; `make test` fails on any finding.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy journeys/domain workflows

# The settings tables of README.md and docs/configuration.md, regenerated from journeys/config.py.
docs: $(STAMP)
	$(BIN)/python -m journeys.settings_doc README.md docs/configuration.md

# Benchmarks against raw Temporal on the embedded stack; writes BENCHMARKS.md and appends to
# bench/results.jsonl. BENCH_SIZES=smoke|default, BENCH_LARGE=1 (100k waiting), BENCH_ONLY=a,b.
bench: $(STAMP)
	$(BIN)/python -m bench

# The crash test: contacts through tag → email → delay → email while workers are SIGKILLed at
# random moments and mid-send; prints contacts, kills, emails, duplicates, missing, uncertain.
# CHAOS_ARGS="--contacts 300 --kills 6 --mid-send-kills 3 --workers 2 --seed N" (see --help).
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) .journeys .pytest_cache
