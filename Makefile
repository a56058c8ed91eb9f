# make run   — install what running needs, then start the bot (terminal console without BOT_TOKEN)
# make test  — install what testing needs, then lint, type-check and run the whole suite on
#              databases of its own (tests/services.py: never one holding other data), in two
#              processes when each can have its own
# Installs take the exact versions of constraints.txt.
# make bench — benchmarks (not part of the test run), sized to end within ~10 minutes on 2 cores,
#              then one summary of the ratios; make bench-burst — the burst at full size (10 000
#              residents); make bench-plans — query plans on production-size PostgreSQL (seeds
#              once, ~1 minute, then reuses the seed)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
PIP := $(PY) -m pip install --quiet -c constraints.txt

.PHONY: run test lint bench bench-burst bench-plans migrate sandbox clean

$(RUN_STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -e .
	@touch $(RUN_STAMP)

# Everything running needs and the tools: the run stamp is then up to date as well.
$(DEV_STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -e '.[dev]'
	@touch $(DEV_STAMP) $(RUN_STAMP)

run: $(RUN_STAMP)
	$(PY) -m bot

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# tests.services prints the exports, or one line and exit code 2 (the exit must stop make: an
# `eval "$$(...)"` alone would hide it).
# Two test processes (pytest-xdist) when tests/services.py could give the second its own
# databases (TEST_PROCESSES); one otherwise. TEST_WORKERS=1 make test: one process.
TEST_WORKERS ?= 2

test: lint
	@services="$$(TEST_WORKERS=$(TEST_WORKERS) $(PY) -m tests.services)" && eval "$$services" && \
		$(PY) -m pytest $${TEST_PROCESSES:+-n $$TEST_PROCESSES} $(PYTEST_ARGS)

# The outbox is measured at a Bot API 50 ms away (about the distance to Telegram).
BENCH_ARGS ?= --notifications 1500 --latency-ms 50 --fault-free-latencies-ms 50,100 --autopays 2000 --burst-residents 1000

bench: $(DEV_STAMP)
	@services="$$($(PY) -m tests.services)" && eval "$$services" && $(PY) -m bench all $(BENCH_ARGS)

bench-burst: $(DEV_STAMP)
	@services="$$($(PY) -m tests.services)" && eval "$$services" && $(PY) -m bench burst

bench-plans: $(DEV_STAMP)
	@services="$$($(PY) -m tests.services)" && eval "$$services" && $(PY) -m bench plans

migrate: $(RUN_STAMP)
	$(PY) -m bot migrate

sandbox: $(RUN_STAMP)
	$(PY) -m sandbox

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
