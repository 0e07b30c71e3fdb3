# One command to run it, one to test it. Everything is installed into .venv by these targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	$(BIN)/journeys dev

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Benchmarks against raw Temporal on the embedded stack; writes BENCHMARKS.md and appends to
# bench/results.jsonl. BENCH_SIZES=smoke|default, BENCH_LARGE=1 (100k waiting), BENCH_ONLY=a,b.
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .journeys .pytest_cache
