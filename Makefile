# Every target that runs code creates .venv on first use and installs the
# project into it, so a fresh clone needs only Python 3.11+ and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-busy lint format bench schemas docker-check clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "factory-twin needs Python 3.11 or newer, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

run: $(STAMP)
	$(BIN)/factory-twin up --demo

# docker-check first, so that pytest's summary stays the last line of the run.
test: $(STAMP) docker-check
	$(BIN)/python -m pytest

# The whole suite with both cores kept busy by two other CPU-bound processes: a
# test must assert what the system guarantees, not how fast a busy machine runs.
test-busy: $(STAMP) docker-check
	@$(BIN)/python tests/busy.py -- $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	@set -e; found=0; for script in bench/*.py; do \
		[ -f "$$script" ] || continue; case "$$script" in bench/_*) continue;; esac; found=1; \
		echo "== $$script"; $(BIN)/python "$$script"; \
	done; [ $$found = 1 ] || echo "no benchmarks in bench/ yet"

schemas: $(STAMP)
	$(BIN)/factory-twin schemas --out docs/schemas

docker-check: $(STAMP)
	$(BIN)/python docker/check.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
