# Every target that runs code creates .venv on first use and installs the
# project into it, so a fresh clone needs only Python 3.11+ and make.
# Two stamps: `make run` installs the runtime dependencies only; `make test`,
# `make lint` and the benchmarks add the dev tools ([dev] in pyproject.toml) on
# top, without installing the rest again.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime
STAMP  := $(VENV)/.installed

.PHONY: run test test-busy mutation lint format bench soak figures schemas docker-check vendor-docs clean

$(RUNTIME_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "factory-twin needs Python 3.11 or newer, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

# The dev tools alone: the [dev] list read from pyproject.toml, so that the
# project itself is not installed a second time.
$(STAMP): $(RUNTIME_STAMP)
	$(BIN)/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["dev"]))' > $(VENV)/dev-requirements.txt
	$(BIN)/python -m pip install --quiet -r $(VENV)/dev-requirements.txt
	@touch $@

run: $(RUNTIME_STAMP)
	$(BIN)/factory-twin up --demo

# docker-check first, so that pytest's summary stays the last line of the run.
test: $(STAMP) docker-check
	$(BIN)/python -m pytest

# The whole suite with both cores kept busy by two other CPU-bound processes: a
# test must assert what the system guarantees, not how fast a busy machine runs.
test-busy: $(STAMP) docker-check
	@$(BIN)/python tests/busy.py -- $(BIN)/python -m pytest

# Mutation testing of the core logic, one module at a time with its fast unit
# tests (not part of `make test`): tests/mutation/run.py, docs/testing.md.
# `make mutation MODULES="kpi codec"` runs only those.
mutation: $(STAMP)
	$(BIN)/python tests/mutation/run.py $(MODULES)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Every benchmark but the soak, which takes half an hour: `make soak`.
bench: $(STAMP)
	@set -e; found=0; for script in bench/*.py; do \
		[ -f "$$script" ] || continue; case "$$script" in bench/_*|bench/soak.py) continue;; esac; found=1; \
		echo "== $$script"; $(BIN)/python "$$script"; \
	done; [ $$found = 1 ] || echo "no benchmarks in bench/ yet"

# `factory-twin up` for 30 minutes at the highest sustained factor: memory flat, the
# store linear, latencies and lag not growing (docs/testing.md). SOAK_ARGS=--quick: 2 minutes.
soak: $(STAMP)
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

# Re-runs every benchmark whose results docs/figures.toml quotes or whose tables
# bench/_tables.py renders into the documents (those rewrite their tables), then
# checks the documents against the new results (they name what to update). The
# soak's figures take half an hour: `make soak` rewrites them.
figures: $(STAMP)
	@set -e; for name in $$($(BIN)/python -c 'import sys, tomllib; sys.path.insert(0, "bench"); import _tables; quoted = {f["file"].rsplit("/", 1)[1][:-5] for f in tomllib.load(open("docs/figures.toml", "rb"))["figure"] if f["file"].startswith("bench/results/")}; print(" ".join(sorted((quoted | {stem for stem, _ in _tables.TABLES.values()}) - {"soak"})))'); do \
		echo "== bench/$$name.py"; $(BIN)/python "bench/$$name.py"; \
	done
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_figures.py

schemas: $(RUNTIME_STAMP)
	$(BIN)/factory-twin schemas --out docs/schemas

# Swagger UI and Redoc for /docs and /redoc, fetched again from npm (needs npm): docs/api.md.
vendor-docs: $(RUNTIME_STAMP)
	$(BIN)/python scripts/vendor_docs_ui.py

docker-check: $(RUNTIME_STAMP)
	$(BIN)/python docker/check.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
