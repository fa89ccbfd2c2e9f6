# Every target sets up what it needs: `make test` and `make run` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000
EMULATOR_PORT ?= 8102
LINTED := fastapi_stack_auth example_app tests $(wildcard bench)

.PHONY: install test lint pytest run bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy --strict fastapi_stack_auth

pytest: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint pytest

# Against your project when STACK_PROJECT_ID and STACK_SECRET_SERVER_KEY are set (environment or
# .env); otherwise against the local Stack Auth emulator on 127.0.0.1:$(EMULATOR_PORT).
run: $(STAMP)
	$(BIN)/python -m example_app.dev --host $(HOST) --port $(PORT) --emulator-port $(EMULATOR_PORT)

bench: $(STAMP)
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
