#!/usr/bin/env bash
# Installs what `make demo` and `make test` need on a fresh Debian machine; safe to run again.
# Usage: scripts/install.sh [demo|test|bench]   (test and bench imply demo)
set -euo pipefail
cd "$(dirname "$0")/.."

what="${1:-test}"
venv="${LLMWATCH_VENV:-.venv}"
cache="${LLMWATCH_CACHE:-$HOME/.cache/llmwatch}"
mkdir -p "$cache"

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

apt_install prometheus:prometheus promtool:prometheus prometheus-alertmanager:prometheus-alertmanager \
  amtool:prometheus-alertmanager
if [ "$what" != demo ]; then
  apt_install prometheus-node-exporter:prometheus-node-exporter nginx:nginx-light perf:linux-perf \
    prometheus-process-exporter:prometheus-process-exporter
fi

if [ ! -x "$venv/bin/python" ]; then
  say "python venv in $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
fi
extras=""
[ "$what" != demo ] && extras="[test]"
# Skip pip when pyproject.toml has not changed since the last install into this venv.
stamp="$venv/.llmwatch-install-$what"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "pip install -e .$extras"
  "$venv/bin/pip" install -q -e ".$extras"
  touch "$stamp"
fi

if [ "$what" != demo ]; then
  # LiteLLM pins its own FastAPI/pydantic stack: it lives in its own venv, cached outside the clone.
  litellm_venv="$cache/litellm-venv"
  if [ ! -x "$litellm_venv/bin/litellm" ]; then
    say "LiteLLM proxy (benchmark comparison) in $litellm_venv"
    python3 -m venv "$litellm_venv"
    "$litellm_venv/bin/pip" install -q --upgrade pip
    # --no-deps: the frozen set is complete; the resolver would chase litellm[proxy]'s unpublished pins.
    "$litellm_venv/bin/pip" install -q --no-deps -r bench/litellm-requirements.txt
  fi
fi
if [ "$what" = test ]; then
  # kubectl (kustomize), kubernetes-validate and prometheus-operator schemas for the offline Kubernetes checks.
  scripts/install-k8s-tools.sh
  # The real Open WebUI for the end-to-end test (a ~3 GB venv, cached outside the clone; a no-op once there).
  scripts/install-open-webui.sh
  # A real llama.cpp server for tests/integration/test_llamacpp.py (built from source once, cached outside the clone).
  scripts/install-llama-cpp.sh
fi
say "install ($what) done"
