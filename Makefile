# Two commands matter: `make run` and `make test`. Both need only Python 3.11+ on the machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
# Test workers: pytest-xdist, one per core.
TEST_WORKERS ?= auto

# The browser tests drive Debian's chromium (Playwright, from requirements-dev.txt, uses it as is and
# downloads nothing). Installed here when missing and we are root; otherwise those tests say they were skipped.
CHROMIUM ?= /usr/bin/chromium

.PHONY: run test install lint bench clean chromium

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

chromium:
	@if [ ! -x "$(CHROMIUM)" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium for the browser tests"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
		|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "Could not install chromium: the browser tests will be skipped"; \
	fi

test: $(VENV)/.dev chromium
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
