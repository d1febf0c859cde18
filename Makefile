# The two set-up commands of the README: `make run` and `make test`. Everything else here serves them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.run-installed
TEST_STAMP := $(VENV)/.test-installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format worker

$(PY):
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11 or newer is needed" or 0)'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUN_STAMP): requirements.txt | $(PY)
	$(PY) -m pip install -r requirements.txt
	touch $@

$(TEST_STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install -r requirements-dev.txt
	touch $@ $(RUN_STAMP)

# Serve the product on its embedded defaults (SQLite, local media, analyses in-process) at http://$(HOST):$(PORT).
# The first run trains the starter model (a few minutes, with a progress bar) when no detector model is active.
run: $(RUN_STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py ensure_active_model
	$(PY) manage.py sweep_analyses
	$(PY) manage.py runserver $(HOST):$(PORT)

# Lint, check formatting, run the whole test suite. With CI=true the suite uses the real PostgreSQL and Redis
# and requires the browser; without it, it runs on SQLite and skips what it cannot reach, saying why.
ifeq ($(CI),true)
test: export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/deepfake
endif
test: $(TEST_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(TEST_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(TEST_STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .
