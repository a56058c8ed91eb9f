# make run   — install what is needed, then start the bot (terminal console without BOT_TOKEN)
# make test  — install what is needed, then lint, type-check and run the whole suite
# make bench — benchmarks (not part of the test run)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench migrate sandbox clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(PY) -m bot

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	@eval "$$($(PY) -m tests.services)" && $(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	@eval "$$($(PY) -m tests.services)" && $(PY) -m bench

migrate: $(STAMP)
	$(PY) -m bot migrate

sandbox: $(STAMP)
	$(PY) -m sandbox

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
