# promptops — the README's two commands are `make serve` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help venv serving browser postgres k8s-tools serve test test-fast test-slow lint bench tour clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)  ## the app virtualenv (.venv)

serving: venv  ## the model-server virtualenv (.venv-serve) and the embedded model's weights
	bash scripts/setup-serving.sh

browser:  ## Debian's chromium for the browser tests
	bash scripts/setup-browser.sh

postgres:  ## Debian's PostgreSQL server binaries for the state-store tests (tests/state)
	bash scripts/setup-postgres.sh

k8s-tools:  ## helm, kubectl, kubernetes-validate, checkov and the CRD validators in .tools/ (tests/deploy)
	bash scripts/setup-k8s-tools.sh

serve: serving  ## run the product: Triton + vLLM + gateway + UI on http://localhost:7070
	$(BIN)/promptops serve

test: serving browser postgres k8s-tools  ## the full suite (what CI runs)
	$(BIN)/python -m pytest -m "not slow" -q

test-fast: venv  ## unit and CLI tests only (no Triton, no browser)
	PROMPTOPS_SKIP_SERVING=1 $(BIN)/python -m pytest -q tests/core tests/prompt tests/store tests/evaluation tests/config tests/cli

test-slow: serving browser  ## soak, fuzz and load runs
	$(BIN)/python -m pytest -m slow -q

lint: venv  ## ruff + validate the example prompts
	$(BIN)/ruff check promptops gateway tests benchmarks
	$(BIN)/promptops validate --strict

bench: serving  ## every benchmark table
	for b in benchmarks/*.py; do $(BIN)/python $$b; done

tour: venv  ## a short CLI tour on the example prompts
	$(BIN)/promptops list
	$(BIN)/promptops validate
	$(BIN)/promptops render chat --var user="What is the capital of Germany?"

clean:  ## remove virtualenvs and runtime state
	rm -rf $(VENV) .venv-serve .promptops .tools
