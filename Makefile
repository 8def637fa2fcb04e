# The two commands of the README: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: run test test-sqlite test-postgres bench soak load lint

PIP := $(PY) -m pip install --quiet --disable-pip-version-check

# What the service needs (make run), and on top of it what the tests and benchmarks need.
$(VENV)/.installed-run: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements.txt
	touch $@

$(VENV)/.installed: $(VENV)/.installed-run requirements-dev.txt
	$(PIP) -r requirements-dev.txt
	touch $@

# Start the service (Daphne + runner) on SQLite with the stub provider, printing a key and a curl line.
run: $(VENV)/.installed-run
	PORT=$(PORT) bash scripts/run.sh

# The whole suite on SQLite, then on a throwaway PostgreSQL cluster.
test: $(VENV)/.installed
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-postgres

test-sqlite: $(VENV)/.installed
	env -u DATABASE_URL $(PY) -m pytest -q $(PYTEST_ARGS)

test-postgres: $(VENV)/.installed
	$(PY) scripts/pgcluster.py -- $(PY) -m pytest -q $(PYTEST_ARGS)

# Every benchmark, writing docs/benchmarks.md. One scenario, shortened: make bench BENCH_ARGS="--quick --only fanout"
bench: $(VENV)/.installed
	$(PY) scripts/pgcluster.py -- $(PY) -m benchmarks.run $(BENCH_ARGS)

soak: $(VENV)/.installed
	$(PY) scripts/pgcluster.py -- $(PY) -m pytest -q -m soak tests

# 200 SSE clients + 20 run creations/s for 5 minutes (ARKLOOP_LOAD_SECONDS to shorten); writes docs/load.md.
load: $(VENV)/.installed
	$(PY) scripts/pgcluster.py -- $(PY) -m benchmarks.load

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
