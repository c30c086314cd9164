#!/usr/bin/env bash
# Acceptance check for a new Docker host: brings the whole stack up (sim profile) as its own compose project and
# checks the paths end to end with real queries. See `scripts/acceptance.sh --help` and docs/compose.md.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/acceptance.sh [--keep]      (or: make acceptance)

The first thing to run on a new server. Starts the llmwatch stack with the simulator (`--profile sim`, no GPU
needed) as its own compose project `llmwatch-acceptance`, with a throw-away env file (random secrets) and its own
free ports on 127.0.0.1, then prints one PASS/FAIL line per check:

  healthy        every service with a healthcheck is healthy; setup and kibana-setup exited 0
  es-empty       gateway traffic reaches Elasticsearch, the injected empty answer tagged empty_response
  kibana         Kibana has every saved object in kibana/saved-objects (data view, saved searches)
  grafana        Grafana lists every dashboard in grafana/dashboards, and one panel's query returns data
  prometheus     every Prometheus target is up
  alert-drill    simulator faults (empty answers) fire GatewayEmptyResponses, and it reaches the relay

It never touches your own stack: other project name, other volumes, other ports. At the end it removes only its
own project's containers and volumes (docker compose -p llmwatch-acceptance down -v); --keep leaves them running
for a look (remove them later with the command it prints). Exit status: 0 if every check passed, 1 otherwise,
2 if it cannot run. It needs a Docker daemon with Compose v2.24+, curl and python3: it cannot run on a machine
without Docker (the development machine has none). It takes about 5-10 minutes (image pulls not counted).
EOF
}

KEEP=false
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  --keep) KEEP=true ;;
  "") ;;
  *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
esac

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PROJECT=llmwatch-acceptance
DEADLINE_S=${ACCEPTANCE_TIMEOUT_S:-600}  # per wait; the whole run stays under 15 minutes once images are pulled

for tool in docker curl python3; do
  command -v "$tool" >/dev/null || { echo "cannot run: $tool is not installed" >&2; exit 2; }
done
docker info >/dev/null 2>&1 || { echo "cannot run: no Docker daemon answers (docker info)" >&2; exit 2; }

WORK="$(mktemp -d)"
ENV_FILE="$WORK/acceptance.env"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
secret() { python3 -c 'import secrets; print(secrets.token_hex(32))'; }

# .env.example with every empty required secret filled, the sim profile, and ports nobody else uses.
{
  grep -v -E '^(COMPOSE_PROFILES|UI_BIND_ADDRESS|[A-Z_]+_PORT|KIBANA_PUBLIC_BASE_URL|GATEWAY_FORWARD_HEADERS)=' "$REPO/.env.example" |
    while IFS= read -r line; do
      case "$line" in
        *_KEY= | *_PASSWORD=) echo "${line}$(secret)" ;;
        *) echo "$line" ;;
      esac
    done
  echo "COMPOSE_PROFILES=sim"
  echo "GATEWAY_FORWARD_HEADERS=X-Sim-Fault"  # the drill forces empty answers through the gateway
  echo "UI_BIND_ADDRESS=127.0.0.1"
  for name in OPEN_WEBUI GRAFANA KIBANA GATEWAY PROMETHEUS ALERTMANAGER; do echo "${name}_PORT=$(free_port)"; done
} >"$ENV_FILE"
# The env file is compose's, not shell: read single values from it rather than sourcing it.
val() { grep -m1 "^$1=" "$ENV_FILE" | cut -d= -f2-; }
echo "KIBANA_PUBLIC_BASE_URL=http://127.0.0.1:$(val KIBANA_PORT)" >>"$ENV_FILE"

dc() { docker compose -p "$PROJECT" --project-directory "$REPO" -f "$REPO/docker-compose.yml" --env-file "$ENV_FILE" --profile sim "$@"; }

cleanup() {
  if $KEEP; then
    echo "kept: docker compose -p $PROJECT --env-file $ENV_FILE --profile sim down -v   # removes it"
  else
    dc down -v --remove-orphans >/dev/null 2>&1 || true
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

FAILED=0
result() {  # result NAME OK DETAIL
  if [ "$2" = 0 ]; then echo "PASS $1: $3"; else echo "FAIL $1: $3"; FAILED=1; fi
}
# wait_for SECONDS COMMAND...: polls every 5 s until COMMAND succeeds; 1 after SECONDS.
wait_for() {
  local until=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -ge "$until" ] && return 1
    sleep 5
  done
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }

echo "== starting $PROJECT (sim profile) with $ENV_FILE"
dc up -d --build

# ---- healthy ---------------------------------------------------------------------------------------------------
all_healthy() {
  dc ps -a --format json | python3 -c '
import json, sys
rows = [json.loads(line) for line in sys.stdin if line.strip()]
rows = [r for row in rows for r in (row if isinstance(row, list) else [row])]  # older compose: one JSON list
bad = []
for r in rows:
    if r["Service"] in ("setup", "kibana-setup"):
        ok = r["State"] == "exited" and r.get("ExitCode") == 0
    else:
        ok = r["State"] == "running" and r.get("Health") in ("healthy", "")
    if not ok:
        bad.append("%s=%s/%s" % (r["Service"], r["State"], r.get("Health") or r.get("ExitCode")))
print(" ".join(bad))
sys.exit(1 if bad or not rows else 0)'
}
if wait_for "$DEADLINE_S" all_healthy; then
  result healthy 0 "$(dc ps --format '{{.Service}}' | wc -l) services up, setup jobs done"
else
  result healthy 1 "not healthy after ${DEADLINE_S}s: $(all_healthy || true)"
fi

# ---- traffic: one chat and eight empty answers forced by the simulator ----------------------------------------
gateway="http://127.0.0.1:$(val GATEWAY_PORT)"
chat() {
  curl -fsS -o /dev/null "$gateway/v1/chat/completions" -H "Authorization: Bearer $(val GATEWAY_API_KEY)" \
    -H 'Content-Type: application/json' "$@" \
    -d "{\"model\": \"$(val MODEL_NAME)\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 32}"
}
chat || true
for _ in 1 2 3 4 5 6 7 8; do chat -H 'X-Sim-Fault: empty' 2>/dev/null || true; done

# ---- es-empty ----------------------------------------------------------------------------------------------------
es_empty_count() {
  dc exec -T elasticsearch curl -fsS -u "elastic:$(val ELASTIC_PASSWORD)" \
    'http://127.0.0.1:9200/logs-llm_gateway-default/_count?q=tags:empty_response' | json 'print(d["count"])'
}
es_has_empty() { [ "$(es_empty_count)" -ge 1 ]; }
if wait_for "$DEADLINE_S" es_has_empty; then
  result es-empty 0 "$(es_empty_count) documents tagged empty_response in logs-llm_gateway-default"
else
  result es-empty 1 "no document tagged empty_response in logs-llm_gateway-default (check filebeat and logstash logs)"
fi

# ---- kibana ------------------------------------------------------------------------------------------------------
missing_objects() {
  python3 - "$REPO/kibana/saved-objects" "http://127.0.0.1:$(val KIBANA_PORT)" "$(val ELASTIC_PASSWORD)" <<'PY'
import base64, json, pathlib, sys, urllib.error, urllib.request
folder, base, password = sys.argv[1:]
auth = base64.b64encode(f"elastic:{password}".encode()).decode()
missing = []
for path in sorted(pathlib.Path(folder).glob("*.ndjson")):
    for line in path.read_text().splitlines():
        obj = json.loads(line) if line.strip() else None
        if not obj or "type" not in obj:
            continue
        request = urllib.request.Request(f"{base}/api/saved_objects/{obj['type']}/{obj['id']}",
                                         headers={"Authorization": f"Basic {auth}"})
        try:
            urllib.request.urlopen(request, timeout=10)
        except (urllib.error.URLError, OSError):
            missing.append(f"{obj['type']}/{obj['id']}")
print(" ".join(missing))
sys.exit(1 if missing else 0)
PY
}
if wait_for 120 missing_objects; then
  result kibana 0 "every saved object of kibana/saved-objects is in Kibana"
else
  result kibana 1 "missing in Kibana: $(missing_objects || true)"
fi

# ---- grafana -------------------------------------------------------------------------------------------------------
grafana_check() {
  python3 - "$REPO/grafana/dashboards" "http://127.0.0.1:$(val GRAFANA_PORT)" "$(val GRAFANA_ADMIN_USER)" \
    "$(val GRAFANA_ADMIN_PASSWORD)" <<'PY'
import base64, json, pathlib, re, sys, urllib.request
folder, base, user, password = sys.argv[1:]
auth = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode(),
        "Content-Type": "application/json"}
def call(path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(base + path, data=data, headers=auth), timeout=30) as r:
        return json.load(r)
listed = {d["uid"] for d in call("/api/search?type=dash-db")}
wanted = {json.loads(p.read_text())["uid"]: p.name for p in sorted(pathlib.Path(folder).glob("*.json"))}
missing = [name for uid, name in wanted.items() if uid not in listed]
if missing:
    sys.exit(f"dashboards not listed: {missing}")
# One panel's query through Grafana's own query API: the first gateway request-rate panel of the dashboards.
for path in sorted(pathlib.Path(folder).glob("*.json")):
    for panel in json.loads(path.read_text()).get("panels", []):
        for target in panel.get("targets", []):
            expr = target.get("expr", "")
            if "llmwatch_requests_total" not in expr:
                continue
            expr = re.sub(r"\$__(rate_interval|interval|range)", "5m", expr)
            expr = re.sub(r"\$\{?\w+\}?", ".*", expr)
            answer = call("/api/ds/query", {"from": "now-15m", "to": "now", "queries": [
                {"refId": "A", "datasource": {"type": "prometheus", "uid": "prometheus"}, "expr": expr,
                 "instant": True}]})
            frames = answer["results"]["A"].get("frames", [])
            if any(f["data"]["values"] and f["data"]["values"][-1] for f in frames):
                print(f"{len(wanted)} dashboards listed; '{panel.get('title')}' ({path.name}) returns data")
                sys.exit(0)
            sys.exit(f"'{panel.get('title')}' ({path.name}) returned no data for {expr}")
sys.exit("no panel reads llmwatch_requests_total")
PY
}
if wait_for 120 grafana_check; then
  result grafana 0 "$(grafana_check)"
else
  result grafana 1 "$(grafana_check 2>&1 | tail -1)"
fi

# ---- prometheus ----------------------------------------------------------------------------------------------------
targets_down() {
  curl -fsS "http://127.0.0.1:$(val PROMETHEUS_PORT)/api/v1/targets?state=active" | json '
down = [t["labels"]["job"] + "=" + t["health"] for t in d["data"]["activeTargets"] if t["health"] != "up"]
print(" ".join(down) or str(len(d["data"]["activeTargets"])) + " targets up")
sys.exit(1 if down or not d["data"]["activeTargets"] else 0)'
}
if wait_for 120 targets_down; then
  result prometheus 0 "$(targets_down)"
else
  result prometheus 1 "down: $(targets_down || true)"
fi

# ---- alert-drill ---------------------------------------------------------------------------------------------------
# GatewayEmptyResponses has no `for:`; Alertmanager waits group_wait (30 s) before it notifies the relay, whose
# log target writes the message to its log.
# grep reads to the end (not -q): an early exit would kill `dc logs` with SIGPIPE, a failure under pipefail.
relay_got_it() { dc logs --no-color relay 2>/dev/null | grep 'FIRING.*GatewayEmptyResponses' >/dev/null; }
if wait_for 300 relay_got_it; then
  result alert-drill 0 "GatewayEmptyResponses reached the relay (docker compose logs relay)"
else
  result alert-drill 1 "GatewayEmptyResponses did not reach the relay within 300s (Prometheus alerts page, Alertmanager)"
fi

[ "$FAILED" = 0 ] && echo "== all checks passed" || echo "== some checks failed (logs: docker compose -p $PROJECT logs SERVICE; rerun with --keep to look)"
exit "$FAILED"
