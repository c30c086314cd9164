#!/usr/bin/env bash
# Installs the real Open WebUI, headless Chromium and playwright-core for tests/integration/test_open_webui.py.
# Everything lands outside the clone (Open WebUI's venv alone is ~3 GB) and a second run is a fast no-op.
set -euo pipefail

# Open WebUI matches OPEN_WEBUI_VERSION in .env.example; torch (CPU build) goes in first so that pip does not
# pull the multi-GB CUDA build in as an Open WebUI dependency.
OPEN_WEBUI_VERSION="0.12.4"
TORCH_VERSION="2.13.0"
PLAYWRIGHT_CORE_VERSION="1.65.1"

cache="${LLMWATCH_CACHE:-$HOME/.cache/llmwatch}"
venv="$cache/open-webui-venv"
node_prefix="$cache/e2e-node"
mkdir -p "$cache"
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

# Headless Chromium from Debian: Playwright drives it by executablePath; its own browser download is never used.
apt_install chromium:chromium,fonts-dejavu-core

# The stamp names the pinned versions, so bumping one of them reinstalls.
stamp="$venv/.llmwatch-open-webui-$OPEN_WEBUI_VERSION-torch-$TORCH_VERSION"
if [ ! -f "$stamp" ] || [ ! -x "$venv/bin/open-webui" ]; then
  say "Open WebUI $OPEN_WEBUI_VERSION in $venv (a few minutes the first time)"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q "torch==$TORCH_VERSION"
  "$venv/bin/pip" install -q "open-webui==$OPEN_WEBUI_VERSION"
  rm -f "$venv"/.llmwatch-open-webui-*
  touch "$stamp"
fi

pkg="$node_prefix/node_modules/playwright-core/package.json"
if [ ! -f "$pkg" ] || ! grep -q "\"version\": \"$PLAYWRIGHT_CORE_VERSION\"" "$pkg"; then
  # playwright-core 1.65 declares engines node>=20 (Debian 12's own nodejs is 18).
  node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
  if ! command -v npm >/dev/null 2>&1 || [ "$node_major" -lt 20 ]; then
    echo "Node.js 20+ with npm is needed for playwright-core -- install it and run again" >&2
    exit 1
  fi
  say "playwright-core $PLAYWRIGHT_CORE_VERSION in $node_prefix"
  # playwright-core never downloads a browser on install (that is the `playwright` package's postinstall).
  npm install --prefix "$node_prefix" --no-save --no-audit --no-fund --silent \
    "playwright-core@$PLAYWRIGHT_CORE_VERSION"
fi
say "open-webui e2e install done"
