#!/bin/sh
# Alertmanager entrypoint for llmwatch: fills the generic webhook URL from the environment, then runs Alertmanager.
# Departs from upstream (the image runs alertmanager directly): Alertmanager 0.25 expands no env vars and has no url_file.
#
#   entrypoint.sh [alertmanager flags...]   render to $LLMWATCH_ALERTMANAGER_RENDERED and exec alertmanager
#   entrypoint.sh render                    print the rendered config (tests, `amtool check-config`; `make demo`
#                                           runs it too, so these markers are read here only)
#
# LLMWATCH_ALERT_WEBHOOK_URL  generic webhook (http/https); unset or empty: that receiver config is dropped.
set -eu

src="${LLMWATCH_ALERTMANAGER_CONFIG:-/etc/alertmanager/alertmanager.yml}"
out="${LLMWATCH_ALERTMANAGER_RENDERED:-/tmp/alertmanager.yml}"
url="${LLMWATCH_ALERT_WEBHOOK_URL:-}"

case "$url" in
  "" | http://* | https://*) ;;
  *) echo "entrypoint.sh: LLMWATCH_ALERT_WEBHOOK_URL must start with http:// or https://" >&2; exit 2 ;;
esac

render() {
  # ENVIRON, not -v, so that backslashes in the URL are not taken as escapes; the URL is never echoed.
  LLMWATCH_ALERT_WEBHOOK_URL="$url" awk -v q="'" '
    /# BEGIN generic-webhook/ { block = 1; print; next }
    /# END generic-webhook/ { block = 0; print; next }
    block && ENVIRON["LLMWATCH_ALERT_WEBHOOK_URL"] == "" && $0 !~ /^[ ]*#/ { next }
    block && /url:/ {
      value = ENVIRON["LLMWATCH_ALERT_WEBHOOK_URL"]
      gsub(q, q q, value)
      print substr($0, 1, index($0, "url:") - 1) "url: " q value q
      next
    }
    { print }
  ' "$src"
}

if [ "${1:-}" = render ]; then
  render
  exit 0
fi

if [ -z "$url" ]; then
  echo "entrypoint.sh: LLMWATCH_ALERT_WEBHOOK_URL is unset: alerts go to the relay only" >&2
fi
render > "$out"
exec /bin/alertmanager --config.file="$out" --storage.path=/alertmanager "$@"
