"""Grafana ↔ Kibana links: an exemplar opens its request in Kibana Discover, error/empty/slow panels open the matching
saved search for the panel's time range, and the Kibana dashboard links back to Grafana. Checked offline, by the
products' own rules at the pinned versions (Grafana, Kibana and Elastic are Docker-only here):

- Grafana provisioning (pkg/services/provisioning/values/values.go, interpolateValue): every string, jsonData included,
  is split on `$$` (a literal `$`) and each part goes through Go's os.ExpandEnv.
- Grafana exemplar links (packages/grafana-prometheus/src/result_transformer.ts, transformV2/getDataLinks): a
  destination whose `name` equals an exemplar label gets `{title: urlDisplayLabel, url, targetBlank}` on that field;
  `datasourceUid` would instead make an internal trace-query link, which is not what we want.
- Grafana data-link interpolation (packages/grafana-data/src/field/fieldOverrides.ts, getLinksSupplier): the URL is
  interpolated with the `uriencode` format unless a variable names its own; `${__value.raw}` is the label value and
  `${__value.time}` the exemplar's timestamp in ms (public/app/features/templating/dataMacros.ts); the `date:iso`
  format gives `dateTime(ms).toISOString()` (scenes formatRegistry, VariableFormatID.Date).
- Kibana URL state (kibana_utils .../state_management/url/parse.ts parseUrlHash + kbn_url_storage.ts
  getStatesFromKbnUrl): the hash is parsed as a URL, its query read with URLSearchParams, and `_g` / `_a` decoded with
  @kbn/rison. Discover reads the data view from `_a.dataSource` {type: dataView, dataViewId} (legacy `_a.index`;
  discover .../state_management/utils/cleanup_url_state.ts) and the time from `_g.time`, parsed by @kbn/datemath
  (src/platform/packages/shared/kbn-datemath/index.ts: `<ISO date>||<math>` anchors date math on that date).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import yaml

from tests.support import REPO, rison
from tests.support.logs import KIBANA_DIR, composed_mapping, leaf_types, load_ndjson, load_setup_script

pytestmark = pytest.mark.unit

setup = load_setup_script()
SETUP_PASSWORDS = {name: "x" for name in setup.REQUIRED}

DASHBOARD = REPO / "grafana/dashboards/llm-service.json"
DATASOURCES = REPO / "grafana/provisioning/datasources/datasources.yml"
GATEWAY_NDJSON = KIBANA_DIR / "saved-objects/llm-gateway.ndjson"
KIBANA = "https://kibana.example.com:8443"
EXEMPLAR_AT = datetime(2026, 11, 27, 14, 3, 7, 250000, tzinfo=UTC)
# What the gateway makes when the client sends no X-Request-Id (proxy.py) and for its warm-up requests (warmup.py).
GATEWAY_IDS = ["9f86d081884c7d659a2feaa0c55ad015", "warmup-a3f1c2d4e5b60718"]


def saved_objects() -> dict[str, dict[str, Any]]:
    return {obj["id"]: obj for obj in load_ndjson(GATEWAY_NDJSON)}


def gateway_data_view_id() -> str:
    views = [str(o["id"]) for o in saved_objects().values() if o["type"] == "index-pattern"]
    assert len(views) == 1, views
    assert saved_objects()[views[0]]["attributes"]["title"] == "logs-llm_gateway-*"
    return views[0]


def load_dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panel(title: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [p for p in load_dashboard()["panels"] if p.get("title") == title]
    assert len(found) == 1, title
    return found[0]


def env_default(name: str) -> str:
    values = dict(line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines() if "=" in line[:60]
                  and not line.startswith("#"))  # fmt: skip
    return values[name]


# --- The products' rules, reproduced ------------------------------------------------------------------------------
def grafana_provision(value: str, env: dict[str, str]) -> str:
    """values.go interpolateValue: split on `$$`, os.ExpandEnv each part (unset → ""), join with `$`."""

    def expand(part: str) -> str:
        return re.sub(r"\$\{([^}]*)\}|\$([A-Za-z0-9_]+)", lambda m: env.get(m.group(1) or m.group(2), ""), part)

    return "$".join(expand(part) for part in value.split("$$"))


def uriencode(value: str) -> str:
    """Grafana's `uriencode` format (encodeURIComponentStrict): also escapes ! ' ( ) *."""
    return quote(value, safe="-_.~")


def grafana_link(url: str, values: dict[str, str]) -> str:
    """Interpolate a data-link URL; a variable this test does not know fails rather than passing through."""

    def one(m: re.Match[str]) -> str:
        name, fmt = m.group(1), m.group(2)
        assert name in values, f"{name} is not a variable this link may use"
        if fmt == "date:iso":  # the value is epoch milliseconds
            return js_iso(datetime.fromtimestamp(int(values[name]) / 1000, UTC))
        assert fmt in (None, "raw"), f"format {fmt} is not reproduced here"
        return values[name] if fmt == "raw" else uriencode(values[name])

    out = re.sub(r"\$\{([\w.]+)(?::([\w:]+))?\}", one, url)
    assert "$" not in out, out
    return out


def js_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def epoch_ms(moment: datetime) -> str:
    return str(round(moment.timestamp() * 1000))


def kibana_url_state(url: str) -> tuple[str, dict[str, Any]]:
    """(hash path, {key: decoded rison}) the way Kibana's parseUrlHash + getStatesFromKbnUrl read a URL."""
    hash_url = urlsplit(urlsplit(url).fragment)
    query = parse_qs(hash_url.query, keep_blank_values=True, strict_parsing=True)
    return hash_url.path, {key: rison.decode(values[0]) for key, values in query.items()}


def datemath(text: str) -> datetime:
    """@kbn/datemath parse for an anchored date: `<ISO>||` then +N or -N units (only s, m, h, d are used here)."""
    anchor, _, math = text.partition("||")
    moment = datetime.fromisoformat(anchor)
    for sign, count, unit in re.findall(r"([+-])(\d+)([smhd])", math):
        step = timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: int(count)})
        moment = moment + step if sign == "+" else moment - step
    assert re.fullmatch(r"([+-]\d+[smhd])*", math), f"date math {math!r} is not reproduced here"
    return moment


# --- Grafana → Kibana: exemplars ----------------------------------------------------------------------------------
def exemplar_destination() -> dict[str, Any]:
    sources = {s["uid"]: s for s in yaml.safe_load(DATASOURCES.read_text())["datasources"]}
    destinations = sources["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert [d["name"] for d in destinations] == ["request_id"], "the gateway's exemplar label (gateway/recorder.py)"
    return dict(destinations[0])


def test_exemplar_destination_is_an_external_kibana_link() -> None:
    destination = exemplar_destination()
    assert "datasourceUid" not in destination, "an internal link would query a trace data source, not open Kibana"
    assert destination["urlDisplayLabel"] and destination["url"].startswith("${KIBANA_PUBLIC_BASE_URL}/app/discover#/")


@pytest.mark.parametrize("request_id", GATEWAY_IDS)
def test_exemplar_link_opens_the_request_in_the_gateway_data_view(request_id: str) -> None:
    provisioned = grafana_provision(exemplar_destination()["url"], {"KIBANA_PUBLIC_BASE_URL": KIBANA})
    url = grafana_link(provisioned, {"__value.raw": request_id, "__value.time": epoch_ms(EXEMPLAR_AT)})
    assert url.startswith(f"{KIBANA}/app/discover#/")
    path, state = kibana_url_state(url)
    assert path == "/"
    assert state["_a"]["dataSource"] == {"type": "dataView", "dataViewId": gateway_data_view_id()}
    assert state["_a"]["query"] == {"language": "kuery", "query": f'request_id:"{request_id}"'}
    time = state["_g"]["time"]
    assert datemath(time["from"]) == EXEMPLAR_AT - timedelta(minutes=5)
    assert datemath(time["to"]) == EXEMPLAR_AT + timedelta(minutes=5)


def test_exemplar_query_field_is_a_keyword_in_the_access_log_mapping() -> None:
    assert leaf_types(composed_mapping("logs-llm_gateway"))["request_id"] == "keyword"


def test_grafana_gets_the_kibana_url_kibana_itself_uses() -> None:
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    grafana, kibana = services["grafana"]["environment"], services["kibana"]["environment"]
    assert grafana["KIBANA_PUBLIC_BASE_URL"] == kibana["KIBANA_PUBLIC_BASE_URL"]
    assert grafana_provision("${KIBANA_PUBLIC_BASE_URL}", {}) == "", "unset means an empty URL: compose must set it"


@pytest.mark.parametrize(
    ("title", "metric"),
    [
        ("Request duration p50 / p95 / p99 by kind", "llmwatch_request_duration_seconds_bucket"),
        ("Time to first token by kind", "llmwatch_time_to_first_token_seconds_bucket"),
    ],
)
def test_latency_panels_ask_prometheus_for_exemplars(title: str, metric: str) -> None:
    found = panel(title)
    exemplar_targets = [t for t in found["targets"] if t.get("exemplar")]
    assert len(exemplar_targets) == 1, "one exemplar query per panel, else every dot is drawn twice"
    target = exemplar_targets[0]
    # Prometheus returns exemplars of the series an expression selects; recording rules carry none.
    assert f"{metric}{{" in target["expr"] and not target.get("hide")
    hidden = [o for o in found["fieldConfig"]["overrides"] if o["matcher"] == {"id": "byFrameRefID",
                                                                            "options": target["refId"]}]  # fmt: skip
    assert hidden and hidden[0]["properties"][0]["value"] == {"legend": True, "tooltip": True, "viz": True}
    assert sum(1 for t in found["targets"] if not t.get("exemplar")) >= 3, "p50/p95/p99 lines stay"


# --- Grafana → Kibana: saved searches for the panel's time range --------------------------------------------------
PANEL_SEARCHES = {
    "5xx ratio (all kinds)": ("llmwatch-gw-errors", "status >= 400"),
    "5xx ratio by kind": ("llmwatch-gw-errors", "status >= 400"),
    "Empty response ratio by kind": ("llmwatch-gw-empty-responses", 'tags : "empty_response"'),
    "Empty responses in the last 15 minutes": ("llmwatch-gw-empty-responses", 'tags : "empty_response"'),
    "p99 duration": ("llmwatch-gw-slow", 'tags : "slow"'),
    "Request duration p50 / p95 / p99 by kind": ("llmwatch-gw-slow", 'tags : "slow"'),
}


@pytest.mark.parametrize("title", sorted(PANEL_SEARCHES))
def test_panel_links_open_the_matching_saved_search_for_the_panel_range(title: str) -> None:
    search_id, kql = PANEL_SEARCHES[title]
    search = saved_objects()[search_id]
    assert search["type"] == "search"
    assert json.loads(search["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])["query"]["query"] == kql
    assert [r["id"] for r in search["references"]] == [gateway_data_view_id()]
    links = panel(title)["fieldConfig"]["defaults"]["links"]
    assert len(links) == 1 and links[0]["targetBlank"]
    start, end = EXEMPLAR_AT - timedelta(hours=6), EXEMPLAR_AT
    url = grafana_link(links[0]["url"], {"kibana": KIBANA, "__from": epoch_ms(start), "__to": epoch_ms(end)})
    assert url.startswith(f"{KIBANA}/app/discover#/view/")
    path, state = kibana_url_state(url)
    assert path == f"/view/{search_id}"
    assert state == {"_g": {"time": {"from": js_iso(start), "to": js_iso(end)}}}
    assert (datemath(state["_g"]["time"]["from"]), datemath(state["_g"]["time"]["to"])) == (start, end)


def test_dashboard_kibana_variable_defaults_to_the_compose_kibana_url() -> None:
    variables = {v["name"]: v for v in load_dashboard()["templating"]["list"]}
    kibana = variables["kibana"]
    # A textbox, so `?var-kibana=…` overrides it; hidden, since it is not a filter.
    assert kibana["type"] == "textbox" and kibana["hide"] == 2
    # .env.example leaves KIBANA_PUBLIC_BASE_URL empty, so compose's fallback applies (test_compose.py checks it).
    assert env_default("KIBANA_PUBLIC_BASE_URL") == ""
    assert kibana["query"] == kibana["current"]["value"] == f"http://localhost:{env_default('KIBANA_PORT')}"


# --- Kibana → Grafana ---------------------------------------------------------------------------------------------
def imported_overview(env: dict[str, str]) -> dict[str, Any]:
    """The overview dashboard as the setup job sends it to Kibana (GRAFANA_PUBLIC_URL filled in)."""
    cfg = setup.load_config(SETUP_PASSWORDS | env)
    body, _ = setup.multipart(GATEWAY_NDJSON, setup.kibana_saved_objects(cfg, GATEWAY_NDJSON))
    objects = [json.loads(line) for line in body.decode().splitlines() if line.startswith("{")]
    return next(o["attributes"] for o in objects if o["id"] == "llmwatch-gateway-overview")


@pytest.mark.parametrize(
    ("env", "grafana"),
    [
        ({}, "http://localhost:3000"),
        ({"GRAFANA_PUBLIC_URL": "https://grafana.example.com/"}, "https://grafana.example.com"),
    ],
)
def test_kibana_overview_links_to_the_grafana_llm_service_dashboard(env: dict[str, str], grafana: str) -> None:
    overview = imported_overview(env)
    panels = json.loads(overview["panelsJSON"])
    by_value = [p for p in panels if "savedVis" in p.get("embeddableConfig", {})]
    # Kibana reads a by-value visualization panel as type visualization with no id and no reference to resolve.
    assert [(p["type"], "id" in p, "panelRefName" in p) for p in by_value] == [("visualization", False, False)]
    markdown = [p["embeddableConfig"]["savedVis"] for p in by_value]
    assert [vis["type"] for vis in markdown] == ["markdown"]
    links = re.findall(r"\]\(([^)\s]+)\)", markdown[0]["params"]["markdown"])
    assert links == [f"{grafana}/d/{load_dashboard()['uid']}/llm-service?from=now-24h&to=now"]
    # Kibana's markdown cannot read the dashboard's time picker (URL drilldowns need a Gold licence): the link opens
    # Grafana on the range the Kibana dashboard opens with.
    assert parse_qs(urlsplit(links[0]).query) == {"from": [overview["timeFrom"]], "to": [overview["timeTo"]]}
    grid = [p["gridData"] for p in panels]
    cells = [(x, y) for g in grid for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])]
    assert len({g["i"] for g in grid}) == len(grid) and len(cells) == len(set(cells)), "panel ids clash or overlap"


def test_grafana_url_default_follows_the_grafana_port() -> None:
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    assert services["kibana-setup"]["environment"]["GRAFANA_PUBLIC_URL"] == (
        "${GRAFANA_PUBLIC_URL:-http://localhost:${GRAFANA_PORT:-3000}}"
    )
    assert env_default("GRAFANA_PORT") == "3000" and env_default("GRAFANA_PUBLIC_URL") == ""


@pytest.mark.parametrize("url", ["grafana.example.com", 'http://x/"a', "http://x/a)b", "http://x y"])
def test_a_grafana_url_that_would_break_the_link_is_refused(url: str) -> None:
    with pytest.raises(setup.ConfigError, match="GRAFANA_PUBLIC_URL"):
        setup.load_config(SETUP_PASSWORDS | {"GRAFANA_PUBLIC_URL": url})


# --- The decoder itself -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("(a:0,b:foo,c:'23skidoo')", {"a": 0, "b": "foo", "c": "23skidoo"}),
        ("!(!t,!f,!n,'')", [True, False, None, ""]),
        ("'wow!!'", "wow!"),
        ("'can!'t'", "can't"),
        ("(id:!n,type:/sparse/)", {"id": None, "type": "/sparse/"}),
        ("-1.5e3", -1500.0),
        ("()", {}),
    ],
)
def test_rison_decodes_the_reference_examples(text: str, value: Any) -> None:
    assert rison.decode(text) == value


@pytest.mark.parametrize("text", ["'open", "(a:1", "(a 1)", "!x", "'bad!escape'", "(1:a)", "a b", "(a:1)x"])
def test_rison_refuses_what_kibana_refuses(text: str) -> None:
    with pytest.raises(rison.RisonError):
        rison.decode(text)
