# The two commands of the README: `make run` and `make test`. Both set up
# everything from a fresh clone (virtualenv, pinned packages, migrations).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export DEBUG ?= 1

.PHONY: run prod test lint format bench bench-bounds bench-prod bench-search bench-upload chaos migrate venv superuser

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

migrate: $(STAMP)
	$(PY) manage.py migrate --noinput

run: migrate
	exec bash scripts/run.sh

# The production layout on one machine (docs/OPERATIONS.md): nginx on
# 127.0.0.1:PROD_PORT, PROD_DAPHNE Daphne processes, PROD_WORKERS task workers
# under supervisord; needs DATABASE_URL (PostgreSQL), REDIS_URL, SECRET_KEY.
prod: $(STAMP)
	exec bash scripts/prod.sh

# Django's createsuperuser with the same defaults as `make run` (DEBUG on unless set).
superuser: migrate
	$(PY) manage.py createsuperuser $(SUPERUSER_ARGS)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP)
	$(PY) -m bench.run

# Section 0b of `make bench` alone (what the largest input costs), about a minute.
bench-bounds: $(STAMP)
	$(PY) -m bench.bounds

# Replies per second and CPU per reply through `make prod`'s layout with 1, 2
# and 4 Daphne processes (docs/SCALING.md); its own database; about 4 minutes.
bench-prod: $(STAMP)
	$(PY) -m bench.prod_capacity

# Section 3b of `make bench` alone (search among 10,000 messages), about a minute.
bench-search: $(STAMP)
	$(PY) -m bench.search_only

# The upload figure of `make bench` alone: a 10 MiB file, time and the server's
# peak extra memory (bench/uploads.py), under a minute.
bench-upload: $(STAMP)
	$(PY) -m bench.uploads

# The fault test (docs/RELIABILITY.md): its own PostgreSQL and Redis on private
# ports; about 9 minutes, or under 3 with CHAOS_SHORT=1. Not part of `make test`.
chaos: $(STAMP)
	$(PY) -m chaos.run
