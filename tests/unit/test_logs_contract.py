"""The access-log schema is the one contract: the index template, the Logstash pipelines, the Kibana saved objects and
the alert rule must name only fields that exist, with compatible types. Each check returns its problems, so the
negative tests can show that a renamed or retyped field is caught."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.support.logs import (
    ES_DIR,
    KIBANA_DIR,
    LOGSTASH_DIR,
    LogstashConfig,
    added_tags,
    comparison_fields,
    composed_mapping,
    field_name,
    grok_filters,
    kql_clauses,
    kql_strings,
    leaf_types,
    load_filebeat,
    load_json,
    load_ndjson,
    load_pipeline,
    load_schema,
    ruby_fields,
)

pytestmark = pytest.mark.unit

NUMERIC = {"integer", "long", "short", "float", "double", "half_float", "scaled_float"}
STRINGISH = {"keyword", "text", "ip", "wildcard", "match_only_text", "constant_keyword"}
ES_TYPES_FOR_SCHEMA = {
    "integer": {"integer", "long", "short"},
    "number": {"float", "double", "half_float", "scaled_float"},
    "boolean": {"boolean"},
    "date-time": {"date"},
    "string": STRINGISH,
}
AGG_TYPES = {
    "date_histogram": {"date"},
    "terms": NUMERIC | {"keyword", "boolean", "ip", "constant_keyword"},
    "percentiles": NUMERIC,
    "sum": NUMERIC,
    "avg": NUMERIC,
    "max": NUMERIC,
    "min": NUMERIC,
}
GRANT = {"int": {"integer", "long", "short"}, "float": {"float", "double"}, None: {"keyword", "text"}}

GATEWAY = LOGSTASH_DIR / "pipeline/llm_gateway.conf"
STACK = LOGSTASH_DIR / "pipeline/llm_stack.conf"


def schema_type(spec: dict[str, Any]) -> str:
    types = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    (kind,) = [t for t in types if t != "null"]
    if kind == "array":  # Elasticsearch has no array type: a field holds one value or many of its items' type
        return schema_type(spec["items"])
    return "date-time" if kind == "string" and spec.get("format") == "date-time" else str(kind)


def own_fields(component: str) -> dict[str, str]:
    """Leaves one component template defines itself, multi-fields left out."""
    mapping = load_json(ES_DIR / f"component-templates/{component}.json")["template"]["mappings"]
    return {name: kind for name, kind in leaf_types(mapping).items() if not name.endswith(".keyword")}


def mapped(name: str, leaves: dict[str, str]) -> bool:
    """Mapped itself, or inside a flattened field (container.labels.*)."""
    parts = name.split(".")
    return name in leaves or any(leaves.get(".".join(parts[:i])) == "flattened" for i in range(1, len(parts)))


def renames(config: LogstashConfig) -> dict[str, str]:
    return {
        field_name(src): field_name(dst)
        for plugin in config.plugins
        for src, dst in plugin.options.get("rename", {}).items()
    }


def writes(config: LogstashConfig) -> dict[str, str | None]:
    """Field written -> the field it was copied from (None: computed, e.g. by ruby or date)."""
    written: dict[str, str | None] = {}
    for plugin in config.plugins:
        for key in ("copy", "rename"):
            written.update({field_name(d): field_name(s) for s, d in plugin.options.get(key, {}).items()})
        written.update({field_name(f): None for f in plugin.options.get("add_field", {})})
        if plugin.name == "date":
            written[field_name(plugin.options.get("target", "@timestamp"))] = None
        if plugin.name == "ruby":
            written.update({f: None for f in ruby_fields(plugin.options["code"], "set")})
    return written


def schema_problems(schema: dict[str, Any], leaves: dict[str, str], config: LogstashConfig) -> list[str]:
    """Every schema field is mapped with a compatible type, and the gateway's own mapping has nothing stale."""
    problems = []
    moved = renames(config)
    props = schema["properties"]
    for name, spec in props.items():
        where = moved.get(name, name)
        if where not in leaves:
            problems.append(f"schema field {name!r} has no mapping at {where!r} in logs-llm_gateway")
        elif leaves[where] not in ES_TYPES_FOR_SCHEMA[schema_type(spec)]:
            problems.append(f"schema field {name!r} is {schema_type(spec)} but {where!r} is mapped as {leaves[where]}")
    expected = {moved.get(name, name) for name in props} | set(writes(config))
    problems += [
        f"mapped field {f!r} is neither a schema field nor written by Logstash"
        for f in own_fields("llm_gateway@mappings")
        if f not in expected
    ]
    return problems


def pipeline_problems(schema: dict[str, Any], leaves: dict[str, str], config: LogstashConfig) -> list[str]:
    """The gateway pipeline reads schema (or Filebeat) fields with the types it assumes, and writes mapped ones."""
    problems = []
    props = schema["properties"]
    beats = own_fields("llmwatch-beats@mappings")
    written = writes(config)

    def known(name: str) -> bool:
        return name in props or name in beats or name in written

    for name, op, other in comparison_fields(config):
        if not known(name):
            problems.append(f"pipeline compares {name!r}, which is not in the schema")
        elif (
            name in props
            and (op in ("<", ">", "<=", ">=") or isinstance(other, int | float))
            and schema_type(props[name]) not in ("integer", "number")
        ):
            problems.append(f"pipeline compares {name!r} as a number; the schema says {schema_type(props[name])}")
    problems += [f"pipeline tests {n!r}, which is not in the schema" for n in config.truthy if not known(n)]
    for plugin in config.plugins:
        if plugin.name == "date":
            source = field_name(plugin.options["match"][0])
            if source not in props or schema_type(props[source]) != "date-time":
                problems.append(f"date filter reads {source!r}, which is not a date-time field of the schema")
        if plugin.name == "ruby":
            problems += [
                f"ruby reads {f!r}, not in the schema"
                for f in ruby_fields(plugin.options["code"], "get")
                if f not in props
            ]
    for target, source in written.items():
        if target.startswith("@metadata."):
            continue
        if source is not None and source not in props:
            problems.append(f"pipeline copies {source!r}, which is not in the schema")
        if target not in leaves:
            problems.append(f"pipeline writes {target!r}, which logs-llm_gateway does not map")
        elif source in props and leaves[target] not in ES_TYPES_FOR_SCHEMA[schema_type(props[source])]:
            problems.append(f"{source!r} ({schema_type(props[source])}) lands in {target!r} mapped as {leaves[target]}")
    return problems


def _kql_problems(query: str, leaves: dict[str, str], tags: set[str], where: str) -> list[str]:
    problems = []
    for name, op, value in kql_clauses(query):
        kind = leaves.get(name)
        if kind is None:
            problems.append(f"{where}: query uses {name!r}, which is not mapped")
        elif op in ("<", ">", "<=", ">=") or value.replace(".", "", 1).isdigit():
            if kind not in NUMERIC:
                problems.append(f"{where}: {name!r} compared with a number but mapped as {kind}")
        elif value in ("true", "false") and kind != "boolean":
            problems.append(f"{where}: {name!r} compared with {value} but mapped as {kind}")
        elif value.lstrip("(").startswith('"') and kind not in STRINGISH:
            problems.append(f"{where}: {name!r} compared with a string but mapped as {kind}")
        if name == "tags":
            problems += [f"{where}: no pipeline adds tag {t!r}" for t in kql_strings(query) if t not in tags]
    return problems


def _walk(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        return [node, *[d for v in node.values() for d in _walk(v)]]
    if isinstance(node, list):
        return [d for v in node for d in _walk(v)]
    return []


def saved_object_problems(
    objects: list[dict[str, Any]], mappings: dict[str, dict[str, str]], tags: set[str]
) -> list[str]:
    """Fields in queries, columns, sorts and aggregations exist in the data view's mapping with a usable type."""
    problems = []
    for obj in objects:
        if obj["type"] == "index-pattern":
            continue
        views = [r["id"] for r in obj["references"] if r["type"] == "index-pattern"]
        if obj["type"] == "dashboard":
            continue  # its panels are checked as objects of their own; its own query is empty
        leaves = mappings[views[0]]
        where = f"{obj['type']} {obj['id']}"
        attrs = obj["attributes"]
        source = json.loads(attrs["kibanaSavedObjectMeta"]["searchSourceJSON"])
        problems += _kql_problems(source.get("query", {}).get("query", ""), leaves, tags, where)
        used: list[tuple[str, set[str] | None]] = [(c, None) for c in attrs.get("columns", [])]
        used += [(s[0], NUMERIC | {"keyword", "date", "boolean"}) for s in attrs.get("sort", [])]
        if obj["type"] == "visualization":
            state = json.loads(attrs["visState"])
            used += [(a["params"]["field"], AGG_TYPES[a["type"]]) for a in state["aggs"] if "field" in a["params"]]
            for node in _walk(state["params"]):
                if node.get("language") == "kuery":
                    problems += _kql_problems(node["query"], leaves, tags, where)
                if "time_field" in node:
                    used.append((node["time_field"], {"date"}))
                if node.get("type") in AGG_TYPES and "field" in node:
                    used.append((node["field"], AGG_TYPES[node["type"]]))
        for name, allowed in used:
            if name not in leaves:
                problems.append(f"{where}: uses {name!r}, which is not mapped")
            elif allowed is not None and leaves[name] not in allowed:
                problems.append(f"{where}: {name!r} is mapped as {leaves[name]}, unusable here")
    return problems


def rule_problems(rule: dict[str, Any], leaves: dict[str, str], tags: set[str]) -> list[str]:
    params = rule["params"]
    problems = [] if leaves.get(params["timeField"]) == "date" else [f"rule timeField {params['timeField']!r}"]
    for node in _walk(json.loads(params["esQuery"])):
        for clause in ("term", "terms", "range", "match", "match_phrase", "prefix", "wildcard"):
            for name, value in node.get(clause, {}).items():
                if name not in leaves:
                    problems.append(f"rule queries {name!r}, which is not mapped")
                elif name == "tags" and value not in tags:
                    problems.append(f"rule looks for tag {value!r}, which no pipeline adds")
    return problems


def stack_problems(config: LogstashConfig, leaves: dict[str, str]) -> list[str]:
    """Every field the llm_stack pipeline parses or reads is mapped, numbers as numbers."""
    problems = []
    for _, (_, groks) in grok_filters(config).items():
        for grok in groks:
            for target, kind in grok.captures.values():
                if target.startswith("@metadata."):
                    continue
                if target not in leaves:
                    problems.append(f"grok captures {target!r}, which logs-llm_stack does not map")
                elif leaves[target] not in GRANT[kind]:
                    problems.append(f"grok captures {target!r} as {kind or 'string'}; it is mapped as {leaves[target]}")
    read = [f for f, _, _ in comparison_fields(config)] + config.truthy + list(writes(config))
    for plugin in config.plugins:
        for key in ("lowercase", "strip", "split"):
            read += [field_name(f) for f in plugin.options.get(key, [])]
    problems += [
        f"pipeline uses {f!r}, which logs-llm_stack does not map"
        for f in read
        if not f.startswith("@metadata.") and not mapped(f, leaves)
    ]
    return problems


# ---------------------------------------------------------------- the real files


@pytest.fixture(scope="module")
def gateway() -> LogstashConfig:
    return load_pipeline(GATEWAY)


@pytest.fixture(scope="module")
def tags() -> set[str]:
    from_filebeat = {t for i in load_filebeat()["filebeat.inputs"] for t in i.get("tags", [])}
    return added_tags(load_pipeline(GATEWAY)) | added_tags(load_pipeline(STACK)) | from_filebeat


@pytest.fixture(scope="module")
def mappings() -> dict[str, dict[str, str]]:
    return {
        "llmwatch-gateway": leaf_types(composed_mapping("logs-llm_gateway")),
        "llmwatch-stack": leaf_types(composed_mapping("logs-llm_stack")),
    }


def saved_objects() -> list[dict[str, Any]]:
    return [o for p in sorted((KIBANA_DIR / "saved-objects").glob("*.ndjson")) for o in load_ndjson(p)]


def test_index_template_maps_every_schema_field_and_nothing_stale(gateway: LogstashConfig, mappings: Any) -> None:
    assert schema_problems(load_schema(), mappings["llmwatch-gateway"], gateway) == []


def test_mapping_types_follow_the_brief(mappings: dict[str, dict[str, str]]) -> None:
    leaves = mappings["llmwatch-gateway"]
    schema = load_schema()["properties"]
    for name, spec in schema.items():
        if name.endswith("_tokens") or name == "status":
            assert leaves[name] in {"integer", "long"}, name
        if name.endswith("_ms") or name == "tokens_per_s":
            assert leaves[name] in {"float", "double"}, name
        if schema_type(spec) == "boolean":
            assert leaves[name] == "boolean", name
    for name in ("user_agent", "error_message"):
        assert (leaves[name], leaves[f"{name}.keyword"]) == ("text", "keyword")
    assert leaves["client.ip"] == "ip" and leaves["client_ip"] == "keyword"  # the raw value may be no address


def test_gateway_pipeline_uses_schema_fields_with_their_types(gateway: LogstashConfig, mappings: Any) -> None:
    assert pipeline_problems(load_schema(), mappings["llmwatch-gateway"], gateway) == []


def test_saved_objects_use_mapped_fields_and_known_tags(mappings: Any, tags: set[str]) -> None:
    objects = saved_objects()
    assert {o["type"] for o in objects} >= {"index-pattern", "search", "visualization", "dashboard"}
    assert saved_object_problems(objects, mappings, tags) == []


def test_alert_rule_uses_mapped_fields_and_known_tags(mappings: Any, tags: set[str]) -> None:
    for path in (KIBANA_DIR / "rules").glob("*.json"):
        rule = load_json(path)
        assert rule["rule_type_id"] == ".es-query"
        assert rule["params"]["index"] == ["logs-llm_gateway-*"]
        assert rule_problems(rule, mappings["llmwatch-gateway"], tags) == []


def test_alert_rules_leave_the_gateways_warm_up_out() -> None:
    """As the Prometheus rules do: a cold engine's warm-up requests (kind: warmup) page no one."""
    kinds = load_schema()
    assert "warmup" in kinds["properties"]["kind"]["enum"]
    for path in (KIBANA_DIR / "rules").glob("*.json"):
        query = json.loads(load_json(path)["params"]["esQuery"])["query"]["bool"]
        assert {"term": {"kind": "warmup"}} in query.get("must_not", []), path.name


def test_stack_pipeline_fields_are_mapped(mappings: dict[str, dict[str, str]]) -> None:
    assert stack_problems(load_pipeline(STACK), mappings["llmwatch-stack"]) == []


# ---------------------------------------------------------------- the checks can fail


def test_a_renamed_schema_field_is_caught(gateway: LogstashConfig, mappings: Any) -> None:
    schema = copy.deepcopy(load_schema())
    schema["properties"]["output_tokens"] = schema["properties"].pop("completion_tokens")
    problems = schema_problems(schema, mappings["llmwatch-gateway"], gateway)
    assert any("'output_tokens' has no mapping" in p for p in problems)
    assert any("'completion_tokens' is neither a schema field" in p for p in problems)
    assert any("'completion_tokens'" in p for p in pipeline_problems(schema, mappings["llmwatch-gateway"], gateway))


def test_a_retyped_schema_field_is_caught(gateway: LogstashConfig, mappings: Any) -> None:
    schema = copy.deepcopy(load_schema())
    schema["properties"]["status"]["type"] = "string"
    assert any("'status' is string" in p for p in schema_problems(schema, mappings["llmwatch-gateway"], gateway))
    assert any(
        "compares 'status' as a number" in p for p in pipeline_problems(schema, mappings["llmwatch-gateway"], gateway)
    )


def test_a_field_renamed_in_the_template_breaks_kibana_and_the_rule(mappings: Any, tags: set[str]) -> None:
    renamed = copy.deepcopy(mappings)
    gateway_leaves = renamed["llmwatch-gateway"]
    gateway_leaves["output_tokens"] = gateway_leaves.pop("completion_tokens")
    gateway_leaves["labels"] = gateway_leaves.pop("tags")
    problems = saved_object_problems(saved_objects(), renamed, tags)
    assert any("'completion_tokens'" in p for p in problems)
    assert any("'tags'" in p for p in problems)
    rule = load_json(next((KIBANA_DIR / "rules").glob("*.json")))
    assert rule_problems(rule, gateway_leaves, tags) == ["rule queries 'tags', which is not mapped"]


def edit_queries(objects: list[dict[str, Any]], old: str, new: str) -> list[dict[str, Any]]:
    edited = copy.deepcopy(objects)
    for obj in edited:
        meta = obj["attributes"].get("kibanaSavedObjectMeta", {})
        if "searchSourceJSON" in meta:
            source = json.loads(meta["searchSourceJSON"])
            if "query" in source:
                source["query"]["query"] = source["query"]["query"].replace(old, new)
            meta["searchSourceJSON"] = json.dumps(source)
    return edited


def test_an_unknown_tag_or_wrong_value_type_is_caught(mappings: Any, tags: set[str]) -> None:
    objects = edit_queries(saved_objects(), 'tags : "slow"', 'tags : "too_slow"')
    objects = edit_queries(objects, "status >= 400", 'status : "error"')
    problems = saved_object_problems(objects, mappings, tags)
    assert any("no pipeline adds tag 'too_slow'" in p for p in problems)
    assert any("'status' compared with a string" in p for p in problems)


def test_an_unmapped_vllm_field_is_caught(mappings: dict[str, dict[str, str]]) -> None:
    leaves = dict(mappings["llmwatch-stack"])
    del leaves["vllm.stats.running"]
    leaves["vllm.stats.waiting"] = "keyword"
    problems = stack_problems(load_pipeline(STACK), leaves)
    assert any("'vllm.stats.running', which logs-llm_stack does not map" in p for p in problems)
    assert any("'vllm.stats.waiting' as int; it is mapped as keyword" in p for p in problems)
