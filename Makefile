# One command to run it, one to test it. Everything is installed into .venv by these targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test lint bench chaos install clean docs fuzz replay-record capacity

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	$(BIN)/journeys dev

# Two processes, each with its own Postgres and Temporal, a test file at a time (a file's tests
# keep their order): the long acceptance tests mostly wait on timers and run beside the rest.
# Schemathesis runs on its own: under xdist its per-operation cases collapse into one item that
# reports a pass without running them all.
SERIAL_TESTS := tests/integration/test_schemathesis.py
test: lint
	$(BIN)/python -m pytest -n 2 --dist loadfile --ignore=$(SERIAL_TESTS) $(PYTEST_ARGS)
	$(BIN)/python -m pytest $(SERIAL_TESTS) $(PYTEST_ARGS)

# Lint, format and type checks; `make test` fails on any finding.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy journeys/domain workflows

# Schemathesis against the real app with many examples and a random seed (not part of make test,
# which runs the same test small with a fixed seed). FUZZ_EXAMPLES / FUZZ_SEED override.
fuzz: $(STAMP)
	@seed=$${FUZZ_SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; \
	echo "fuzz seed: $$seed (FUZZ_SEED=$$seed reproduces this run)"; \
	FUZZ_SEED=$$seed FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-200} $(BIN)/python -m pytest -o timeout=3600 \
		-p no:cacheprovider tests/integration/test_schemathesis.py

# The settings tables of README.md and docs/configuration.md, regenerated from journeys/config.py.
docs: $(STAMP)
	$(BIN)/python -m journeys.settings_doc README.md docs/configuration.md

# Benchmarks against raw Temporal on the embedded stack; writes BENCHMARKS.md and appends to
# bench/results.jsonl. BENCH_SIZES=smoke|default, BENCH_LARGE=1 (100k waiting), BENCH_ONLY=a,b.
bench: $(STAMP)
	$(BIN)/python -m bench

# docs/capacity.md, computed from the measured per-contact figures in bench/results.jsonl.
capacity: $(STAMP)
	$(BIN)/python -m bench.capacity

# The crash test: contacts through tag → email → delay → email while workers are SIGKILLed at
# random moments and mid-send; prints contacts, kills, emails, duplicates, missing, uncertain.
# CHAOS_ARGS="--contacts 300 --kills 6 --mid-send-kills 3 --workers 2 --seed N" (see --help).
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) .journeys .pytest_cache

# Records real histories of every step type and example flow into tests/replay/histories/, which
# `make test` replays through the current workflow code (see docs/operations.md).
replay-record: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/replay/record_histories.py
