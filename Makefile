# Two commands matter: `make run` and `make test`. Both need only Python 3.11+ on the machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
# Test workers: pytest-xdist, one per core.
TEST_WORKERS ?= auto

.PHONY: run test install lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(VENV)/.runtime $@

install: $(VENV)/.runtime

run: $(VENV)/.runtime
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demo_setup
	$(BIN)/python manage.py serve --port $(PORT)

test: $(VENV)/.dev
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -q $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(VENV)/.dev
	$(BIN)/python manage.py benchmark_ingestion
	$(BIN)/python manage.py benchmark_identity
	$(BIN)/python manage.py benchmark_segments
	$(BIN)/python manage.py benchmark_activations

clean:
	rm -rf $(VENV) var
