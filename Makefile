# One entry point for people and CI. Works on a machine with only Python 3.11, npm and the
# package registries: `make run` sets everything up and runs the demo, `make test` runs the tests.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .local/tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PROJECT_ENVIRONMENT := $(VENV)
# checkov lives in a virtualenv of its own: its dependencies are not the project's.
CHECKOV_VENV := .local/checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
CHECKOV_REQUIREMENTS := infra/checkov/requirements.txt

.PHONY: help setup run stack test lint typecheck checkov checkov-lock unit bench bench-compare package db-install db-stop clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(UV):
	@echo "» bootstrapping uv $(UV_VERSION) into $(TOOLS)"
	@$(PYTHON) -m venv $(TOOLS)
	@$(TOOLS)/bin/pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"

$(BIN)/messagedb-agent: $(UV) pyproject.toml uv.lock
	@echo "» installing the locked dependencies into $(VENV)"
	@$(UV) sync --frozen --all-extras --quiet
	@touch $@

setup: $(BIN)/messagedb-agent ## Create the virtualenv from uv.lock

run: setup ## Set everything up and run the demo on the embedded defaults
	@$(BIN)/messagedb-agent db install --quiet
	@$(BIN)/messagedb-agent demo

stack: setup ## Run everything locally (functions + Pub/Sub emulator); Ctrl-C stops it
	@$(BIN)/messagedb-agent stack

lint: setup ## ruff (lint + format check)
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .

typecheck: setup ## mypy --strict on the library
	@$(BIN)/mypy

$(CHECKOV): $(UV) $(CHECKOV_REQUIREMENTS)
	@echo "» installing checkov ($(CHECKOV_REQUIREMENTS): pinned, every file hashed) into $(CHECKOV_VENV)"
	@$(UV) venv --quiet --allow-existing --python 3.11 $(CHECKOV_VENV)
	@$(UV) pip install --quiet --require-hashes --python $(CHECKOV_VENV)/bin/python -r $(CHECKOV_REQUIREMENTS)
	@touch $@

checkov: $(CHECKOV) ## checkov on infra/ (the findings accepted, and why: .checkov.yaml)
	@$(CHECKOV) --config-file .checkov.yaml

checkov-lock: $(UV) ## Re-pin checkov's requirements from infra/checkov/requirements.in
	@cd infra/checkov && ../../$(UV) pip compile --quiet --universal --python-version 3.11 \
		--generate-hashes --custom-compile-command "make checkov-lock" requirements.in -o requirements.txt

unit: setup ## pytest against the real Message DB
	@$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck checkov unit ## Everything CI checks

bench: setup ## Benchmarks: store, step, end to end, cold start, long thread, scale, live streams, chat channels (ratios against baselines run alongside; not part of `make test`)
	@$(BIN)/python bench/store.py
	@$(BIN)/python bench/step.py
	@$(BIN)/python bench/e2e.py
	@$(BIN)/python bench/coldstart.py
	@$(BIN)/python bench/long_thread.py
	@$(BIN)/python bench/scale.py
	@$(BIN)/python bench/stream.py
	@$(BIN)/python bench/channels.py

bench-compare: setup ## The step benchmark beside LangGraph and ADK (runs ../shared/peers/run_all.sh)
	@$(BIN)/python bench/compare.py

package: setup ## Build build/<function>/ and build/<function>.zip for Cloud Functions
	@$(BIN)/python -m messagedb_agent.deploy.packaging build --out build --uv $(UV)

db-install: setup ## Install Message DB into DATABASE_URL or the embedded server
	@$(BIN)/messagedb-agent db install

db-stop: setup ## Stop the embedded PostgreSQL
	@$(BIN)/messagedb-agent db stop

clean: ## Remove the virtualenv and local state (database included)
	-@$(BIN)/messagedb-agent db stop 2>/dev/null
	rm -rf $(VENV) .local
