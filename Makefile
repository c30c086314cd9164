# The verbs. `make demo` and `make test` are the two a newcomer needs.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test lint typecheck unit bench clean k8s acceptance

install:
	scripts/install.sh test

demo:
	scripts/install.sh demo
	$(VENV)/bin/llmwatch demo

lint:
	$(VENV)/bin/ruff check services tests bench elasticsearch
	$(VENV)/bin/ruff format --check services tests bench elasticsearch
	$(VENV)/bin/ruff check deploy/k8s && $(VENV)/bin/ruff format --check deploy/k8s

typecheck:
	$(VENV)/bin/mypy

test: install lint typecheck
	scripts/pytest.sh tests

unit:
	scripts/pytest.sh tests -m unit

# Refresh deploy/k8s's copies of the rules, dashboards, pipelines and setup files after changing any of them.
k8s:
	$(PY) deploy/k8s/generate.py

# On a new Docker host, first: the sim-profile stack as its own project, end to end (scripts/acceptance.sh --help).
acceptance:
	scripts/acceptance.sh

bench:
	scripts/install.sh bench
	$(PY) bench/overhead.py --out bench/out

clean:
	rm -rf run bench/out .pytest_cache .mypy_cache .ruff_cache
