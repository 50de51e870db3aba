# Two commands: `make dev` runs the local stack, `make test` runs every test and lint.
PYTHON ?= python3
VENV := .venv
UV_VERSION := 0.13.9
UV := $(VENV)/bin/uv

.PHONY: setup dev test lint format bench

# Create or refresh .venv from the lock file; nothing else.
setup:
	@test -x $(UV) || { $(PYTHON) -m venv $(VENV) && $(VENV)/bin/pip install --quiet uv==$(UV_VERSION); }
	@$(UV) sync --frozen --all-extras --quiet

dev: setup
	$(VENV)/bin/nexus dev

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(VENV)/bin/pytest

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup
	$(VENV)/bin/python bench/proxy_overhead.py
