# Two commands: `make dev` runs the local stack, `make test` runs every test and lint.
PYTHON ?= python3
VENV := .venv
UV_VERSION := 0.13.9
UV := $(VENV)/bin/uv
# The CDK CLI and a supported Node (for jsii) come from package.json, not from the machine.
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: setup dev test lint format bench bench-proxy bench-analysis bench-tracking bench-dashboard bench-gateway bench-gateway-relay bench-cold-start bench-budgets bench-memory bench-faults bench-soak bench-ingest-cache synth

# Create or refresh .venv and node_modules from the lock files; nothing else. Bytecode is compiled at
# install: every process the suite starts (stacks, CLIs, uvicorn children) imports without compiling.
setup: node_modules/.installed
	@test -x $(UV) || { $(PYTHON) -m venv $(VENV) && $(VENV)/bin/pip install --quiet uv==$(UV_VERSION); }
	@$(UV) sync --frozen --all-extras --quiet --compile-bytecode

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

dev: setup
	$(VENV)/bin/nexus dev

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy layers/shared/python/nexus functions cli infra app.py

test: lint
	$(VENV)/bin/pytest

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Benchmarks, run by hand (never part of `make test`); see bench/README.md. Options go through ARGS,
# e.g. `make bench-gateway ARGS=--quick`. `make bench` is the proxy's.
ARGS ?=

bench: bench-proxy

bench-proxy: setup
	$(VENV)/bin/python bench/proxy_overhead.py $(ARGS)

bench-analysis: setup
	$(VENV)/bin/python bench/analysis.py $(ARGS)

bench-tracking: setup
	$(VENV)/bin/python bench/tracking.py $(ARGS)

bench-dashboard: setup
	$(VENV)/bin/python bench/dashboard.py $(ARGS)

bench-gateway: setup
	$(VENV)/bin/python bench/gateway.py $(ARGS)

bench-gateway-relay: setup
	$(VENV)/bin/python bench/gateway_relay.py $(ARGS)

bench-cold-start: setup
	$(VENV)/bin/python bench/cold_start.py $(ARGS)

bench-budgets: setup
	$(VENV)/bin/python bench/budget_overrun.py $(ARGS)

bench-memory: setup
	$(VENV)/bin/python bench/memory.py $(ARGS)

bench-faults: setup
	$(VENV)/bin/python bench/faults.py $(ARGS)

bench-soak: setup
	$(VENV)/bin/python bench/soak.py $(ARGS)

bench-ingest-cache: setup
	$(VENV)/bin/python bench/ingest_cache.py $(ARGS)

# Synthesize both stages with the real CDK CLI (cdk-nag runs as part of synth).
synth: setup
	cdk synth -c stage=staging --quiet
	cdk synth -c stage=prod --quiet
