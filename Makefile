# Every target sets up what it needs: `make test` and `make run` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000
EMULATOR_PORT ?= 8102
LINTED := fastapi_stack_auth example_app tests $(wildcard bench)
# make test: nox sessions run this many at a time (each writes .nox/logs/<session>.log).
JOBS   ?= 2
# make test SESSIONS="tests-3.12 lint": a subset of the nox sessions (default: all, see nox -l).
SESSIONS ?=

# root (CI, containers) installs packages directly; anyone else through sudo.
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install test lint docs pytest redis-server chromium run doctor bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy --strict fastapi_stack_auth

# The shared-cache tests start their own Redis on a free loopback port: Debian's redis-server,
# installed here when it is missing.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  command -v apt-get >/dev/null 2>&1 || { \
	    echo "The tests need redis-server on PATH: install Redis (e.g. brew install redis)" >&2; \
	    exit 1; }; \
	  echo "Installing Debian's redis-server for the shared-cache tests"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

# The browser tests (tests/test_browser.py) drive Chromium through Playwright, which cannot
# download a browser of its own here: Debian's chromium, installed when it is missing. CHROMIUM
# names another binary (a Chrome or Chromium elsewhere); the tests read it too.
chromium:
	@if [ -n "$$CHROMIUM" ]; then \
	  command -v "$$CHROMIUM" >/dev/null 2>&1 || { \
	    echo "CHROMIUM=$$CHROMIUM is not an executable" >&2; exit 1; }; \
	elif ! command -v chromium >/dev/null 2>&1; then \
	  command -v apt-get >/dev/null 2>&1 || { \
	    echo "The browser tests need Chromium: install it, or set CHROMIUM to a Chrome binary" >&2; \
	    exit 1; }; \
	  echo "Installing Debian's chromium for the browser tests"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

docs: $(STAMP)
	$(BIN)/mkdocs build --strict

# The suite once, on the default interpreter (the .venv): a quick local run.
pytest: $(STAMP) redis-server chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Everything, through nox (noxfile.py): the suite on Python 3.10, 3.11, 3.12 and 3.13 (found on
# PATH or under pyenv; a missing one fails), the built wheel tested in a clean venv, lint and
# the docs build, $(JOBS) sessions at a time. Venvs in .nox/ are reused locally, fresh on CI.
# PYTEST_ARGS go to every pytest run, e.g. make test PYTEST_ARGS="-k settings".
test: $(STAMP) redis-server chromium
	$(BIN)/python scripts/nox_sessions.py --jobs $(JOBS) $(SESSIONS) -- $(PYTEST_ARGS)

# Against your project when STACK_PROJECT_ID and STACK_SECRET_SERVER_KEY are set (environment or
# .env); otherwise against the local Stack Auth emulator on 127.0.0.1:$(EMULATOR_PORT).
run: $(STAMP)
	$(BIN)/python -m example_app.dev --host $(HOST) --port $(PORT) --emulator-port $(EMULATOR_PORT)

# Checks the settings (STACK_*, .env) against Stack Auth, one line per check: docs/doctor.md
doctor: $(STAMP)
	$(BIN)/python -m fastapi_stack_auth doctor

# Per-request overhead in process, then the load test (example app under uvicorn, 127.0.0.1,
# about 4 minutes on 2 cores); BENCH_ARGS goes to the load test, e.g. BENCH_ARGS=--quick.
bench: $(STAMP)
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/load.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .nox build dist .pytest_cache .mypy_cache .ruff_cache
