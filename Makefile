# The verbs. `make demo` and `make test` are the two a newcomer needs.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo check test lint typecheck unit bench load gpu-check clean k8s acceptance

install:
	scripts/install.sh test

demo:
	scripts/install.sh demo
	$(VENV)/bin/llmwatch demo

lint:
	$(VENV)/bin/ruff check services tests bench elasticsearch loadtest
	$(VENV)/bin/ruff format --check services tests bench elasticsearch loadtest
	$(VENV)/bin/ruff check deploy/k8s && $(VENV)/bin/ruff format --check deploy/k8s

typecheck:
	$(VENV)/bin/mypy

# Integration tests mostly wait on child processes, so more workers than this machine's 2 cores pay off. Each module
# runs whole on one worker, in file order (--dist loadscope), so a module's shared processes start once; modules go
# out in collection order, slowest first (tests/conftest.py), not by test count. (loadgroup's xdist_group marks are
# ignored with pytest 9.2: pytest-xdist issue 1386.)
PYTEST_WORKERS ?= 4

# The quick path: lint, types and the unit tests (no processes, no sockets).
check: lint typecheck unit

test: install lint typecheck
	scripts/pytest.sh tests -n $(PYTEST_WORKERS) --dist loadscope --no-loadscope-reorder

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

# The load test against a running gateway (default: the compose stack's or `make demo`'s, on 127.0.0.1:4000), judged
# by loadtest/slo.yml: open loop at the operator's 4 req/s target. `make load LOAD_HOST=http://host:4000
# LOAD_ARGS="--processes 4"`; the gateway's `loadtest` key comes from LOADTEST_API_KEY. docs/loadtest.md.
LOAD_HOST ?= http://127.0.0.1:4000
LOAD_RATE ?= 4
LOAD_USERS ?= 64
LOAD_TIME ?= 2m
LOAD_OUT ?= run/loadtest
LOAD_ARGS ?=

$(VENV)/.llmwatch-install-load: pyproject.toml
	scripts/install.sh demo
	$(VENV)/bin/pip install -q -e '.[load]'
	touch $@

load: $(VENV)/.llmwatch-install-load
	$(VENV)/bin/locust -f loadtest/locustfile.py --host $(LOAD_HOST) --headless -u $(LOAD_USERS) -r $(LOAD_USERS) \
		-t $(LOAD_TIME) --rate $(LOAD_RATE) --stop-timeout 120 --report-dir $(LOAD_OUT) \
		--html $(LOAD_OUT)/locust.html --csv $(LOAD_OUT)/locust $(LOAD_ARGS)

# On a CUDA host with `pip install vllm` done: the real engine with compose's flags and random weights of the exact
# architecture, behind the gateway: correctness, KPI sweep, load-test gate, /metrics (docs/gpu-check.md).
# `make gpu-check GPU_CHECK_ARGS="--set VLLM_MAX_NUM_SEQS=256"`; the report lands in run/gpu-check/REPORT.md.
GPU_CHECK_ARGS ?=

gpu-check:
	scripts/install.sh test
	$(PY) -m bench.gpu_check --out run/gpu-check $(GPU_CHECK_ARGS)

clean:
	rm -rf run bench/out .pytest_cache .mypy_cache .ruff_cache
