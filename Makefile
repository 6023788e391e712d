# llama-entra developer commands. `make` alone lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

# uv: the one on PATH, else the one pip installs as a module.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
# Python 3.12: pyenv's on machines that have it, else uv's own lookup.
PYENV_PY312 := $(shell pyenv root 2>/dev/null)/versions/3.12.1/bin/python3.12
export UV_PYTHON ?= $(if $(wildcard $(PYENV_PY312)),$(PYENV_PY312),3.12)
# BACKEND=llama-stack (llama-stack 0.7.3, in .venv) or BACKEND=ogx (OGX 1.5, in .venv-ogx).
BACKEND ?= llama-stack
ifeq ($(filter $(BACKEND),llama-stack ogx),)
$(error BACKEND must be llama-stack or ogx, not '$(BACKEND)')
endif
VENV_DIR := $(if $(filter ogx,$(BACKEND)),.venv-ogx,.venv)
export UV_PROJECT_ENVIRONMENT := $(VENV_DIR)
VENV := $(VENV_DIR)/.installed
RUN := $(UV) run --frozen --no-sync
# Tests run in parallel processes, one per core up to 4 (`make test TEST_WORKERS=0` runs them
# in this process); each test file stays on one worker so its servers start once.
TEST_WORKERS ?= auto
PYTEST := $(RUN) pytest -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile --durations 15

# Material for MkDocs prints its end-of-life notice (May 2027; Zensical succeeds it) on every
# build; the docs build is quiet otherwise.
export NO_MKDOCS_2_WARNING := 1

CONFIG ?= run-configs/llama-entra-azure.yaml
IMAGE ?= localhost/llama-entra:0.1.0
# The image's base: empty for the Containerfile's default (python:3.12-slim-bookworm);
# `make base-image` makes BASE_IMAGE for machines that cannot pull (make image PYTHON_IMAGE=...).
PYTHON_IMAGE ?=
BASE_IMAGE ?= localhost/llama-entra-base:trixie
RUN_CONFIG ?= run-configs/azure.yaml

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(VENV): pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 \
		|| python3 -m pip install --quiet uv
	$(UV) sync --frozen --compile-bytecode --extra $(BACKEND)
	@touch $@

.PHONY: install
install: $(VENV) ## create the venv from uv.lock (.venv; .venv-ogx with BACKEND=ogx)

.PHONY: run
run: $(VENV) ## run the service against real Azure (CONFIG=..., env vars in README)
	$(RUN) llama-entra serve -c $(CONFIG)

.PHONY: demo
demo: $(VENV) ## emulator + service in library mode on loopback; no Azure needed (Ctrl-C stops)
	$(RUN) scripts/demo.sh

.PHONY: run-llama-stack
run-llama-stack: $(VENV) ## enrich RUN_CONFIG and run a Llama Stack server on it
	$(RUN) scripts/llama-stack-entrypoint.sh $(CONFIG) $(RUN_CONFIG)

.PHONY: test-tools
test-tools: ## install the system programs the tests drive (chromium, promtool, PostgreSQL)
	scripts/install-test-tools.sh

# Each test process starts servers; without cached bytecode (PYTHONDONTWRITEBYTECODE is set on
# some machines) every start compiles the project again.
.PHONY: compile
compile: $(VENV)
	@$(RUN) python -m compileall -q src >/dev/null

.PHONY: test
test: $(VENV) test-tools compile ## every unit and end-to-end test, in parallel (what CI runs)
	$(PYTEST)

.PHONY: test-fast
test-fast: $(VENV) test-tools compile ## unit tests and the end-to-end tests that start no Llama Stack
	$(PYTEST) -m "not slow"

.PHONY: test-unit
test-unit: $(VENV) test-tools compile ## unit tests only
	$(PYTEST) tests/unit

.PHONY: test-e2e
test-e2e: $(VENV) test-tools compile ## end-to-end tests (real servers on loopback)
	$(PYTEST) tests/e2e

.PHONY: lint
lint: $(VENV) ## ruff, mypy strict, import layers, hadolint, the docs site built strictly
	$(RUN) ruff check src tests
	$(RUN) ruff format --check src tests
	$(RUN) mypy
	$(RUN) lint-imports --no-cache
	$(RUN) hadolint --no-color Containerfile
	$(RUN) mkdocs build --strict --quiet --site-dir "$$(mktemp -d)"

.PHONY: docs
docs: $(VENV) ## build the documentation site into site/ (strict: a broken link fails)
	$(RUN) mkdocs build --strict

.PHONY: config-reference
config-reference: $(VENV) ## regenerate docs/reference/configuration.md from the config models
	$(RUN) python scripts/config_reference.py

.PHONY: docs-serve
docs-serve: $(VENV) ## preview the documentation site at http://127.0.0.1:8000
	$(RUN) mkdocs serve

.PHONY: format
format: $(VENV) ## apply ruff's fixes and formatting
	$(RUN) ruff check --fix src tests
	$(RUN) ruff format src tests

.PHONY: test-reliability
test-reliability: $(VENV) ## soak: 3 minutes of load with 20 s tokens, 0 failed requests (SOAK_SECONDS=...)
	BENCH_REFRESH_SECONDS=$${SOAK_SECONDS:-180} $(RUN) pytest tests/benchmarks/test_bench_refresh.py \
		-k refresh_under_load -p no:cacheprovider -s --timeout 1800

.PHONY: image
image: ## build the image with podman, docker or buildah (IMAGE, ENGINE, PYTHON_IMAGE, CA_BUNDLE)
	IMAGE=$(IMAGE) BACKEND=$(BACKEND) PYTHON_IMAGE=$(PYTHON_IMAGE) scripts/image.sh build

.PHONY: base-image
base-image: ## a local Debian 13 base (Python 3.13) for machines that cannot pull (mmdebstrap)
	BASE_IMAGE=$(BASE_IMAGE) scripts/image.sh base

.PHONY: test-image
test-image: $(VENV) ## build the image on BASE_IMAGE and run its three roles with buildah (~3 min)
	scripts/install-test-tools.sh image
	BASE_IMAGE=$(BASE_IMAGE) $(RUN) pytest tests/image -m image -p no:cacheprovider --timeout 900

.PHONY: bench
bench: $(VENV) ## benchmarks against the emulator; results in bench-results/
	$(RUN) pytest tests/benchmarks -p no:cacheprovider -s --timeout 1800

.PHONY: clean
clean: ## remove the venv, caches and local state
	rm -rf .venv .venv-ogx .pytest_cache .mypy_cache .ruff_cache .llama-entra bench-results
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
