# The verbs. `make demo` and `make test` are the two a newcomer needs.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test lint typecheck unit bench clean acceptance

install:
	scripts/install.sh test

demo:
	scripts/install.sh demo
	$(VENV)/bin/llmwatch demo

lint:
	$(VENV)/bin/ruff check services tests bench elasticsearch
	$(VENV)/bin/ruff format --check services tests bench elasticsearch

typecheck:
	$(VENV)/bin/mypy

test: install lint typecheck
	scripts/pytest.sh tests

unit:
	scripts/pytest.sh tests -m unit

# On a new Docker host, first: the sim-profile stack as its own project, end to end (scripts/acceptance.sh --help).
acceptance:
	scripts/acceptance.sh

bench:
	scripts/install.sh bench
	$(PY) bench/overhead.py --out bench/out

clean:
	rm -rf run bench/out .pytest_cache .mypy_cache .ruff_cache
