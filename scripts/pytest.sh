#!/usr/bin/env bash
# Runs pytest from the venv; "no tests collected" (exit 5) is a failure only when nothing at all ran.
set -uo pipefail
cd "$(dirname "$0")/.."
"${VENV:-.venv}/bin/python" -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest: no tests were collected for: $*" >&2
fi
exit "$rc"
