"""Readers for the logs-as-code files, shared by the tests of the logs-as-code files.

Everything is read from the repository as Logstash, Elasticsearch and Kibana would read it: the Logstash pipelines
through logstash-pipeline-parser's AST, the grok patterns file translated to Python regexes mechanically, the index
templates composed from their component templates.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import operator
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from logstash_pipeline_parser import Pipeline

from tests.support import REPO

SCHEMA_PATH = REPO / "services/llmwatch/gateway/access-log.schema.json"
ES_DIR = REPO / "elasticsearch"
LOGSTASH_DIR = REPO / "logstash"
KIBANA_DIR = REPO / "kibana"
PATTERNS_PATH = LOGSTASH_DIR / "patterns/llm_stack"
FILEBEAT_PATH = REPO / "filebeat/filebeat.yml"
FIXTURES = REPO / "tests/fixtures/vllm-logs"

FIELD_REF = re.compile(r"^(\[[^\[\]]+\])+$")
COMPARISONS = {"==", "!=", "<", ">", "<=", ">=", "=~", "!~", "in", "not in"}


def load_setup_script() -> ModuleType:
    """elasticsearch/setup/setup.py, a standalone script (not in the package), loaded as a module."""
    spec = importlib.util.spec_from_file_location("llmwatch_es_setup", ES_DIR / "setup/setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


def load_schema() -> dict[str, Any]:
    schema: dict[str, Any] = load_json(SCHEMA_PATH)
    return schema


def load_filebeat() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(FILEBEAT_PATH.read_text())
    return config


def is_field_ref(value: Any) -> bool:
    return isinstance(value, str) and FIELD_REF.match(value) is not None


def field_name(ref: str) -> str:
    """Logstash field reference ("[a][b]" or "a") to the dotted name Elasticsearch shows ("a.b")."""
    ref = str(ref)
    return ".".join(re.findall(r"\[([^\[\]]+)\]", ref)) if FIELD_REF.match(ref) else ref


def multiline_pattern() -> re.Pattern[str]:
    (stack_input,) = [i for i in load_filebeat()["filebeat.inputs"] if i["id"] == "llm-stack-containers"]
    (parser,) = [p["multiline"] for p in stack_input["parsers"] if "multiline" in p]
    assert (parser["negate"], parser["match"]) == (False, "after")
    # Go's $ (no flags) is the end of the text, Python's \Z.
    return re.compile(re.sub(r"(?<!\\)\$", r"\\Z", parser["pattern"]))


def container_events(path: Path) -> list[str]:
    """Docker json-file lines -> Filebeat events: a line matching the multiline pattern joins the one before."""
    pattern = multiline_pattern()
    events: list[list[str]] = []
    for line in path.read_text().splitlines():
        text = json.loads(line)["log"]
        if events and pattern.search(text):
            events[-1].append(text)
        else:
            events.append([text])
    return ["\n".join(lines) for lines in events]


# ---------------------------------------------------------------- Elasticsearch templates


def _merge(into: dict[str, Any], properties: dict[str, Any]) -> None:
    # Objects merge field by field, as Elasticsearch merges component templates; a leaf is replaced.
    for name, spec in properties.items():
        if "properties" in spec and "properties" in into.get(name, {}):
            _merge(into[name]["properties"], spec["properties"])
        else:
            into[name] = copy.deepcopy(spec)


def composed_mapping(index_template: str) -> dict[str, Any]:
    """The mappings an index template ends up with: its component templates merged in order."""
    template = load_json(ES_DIR / f"index-templates/{index_template}.json")
    merged: dict[str, Any] = {"properties": {}}
    for name in template["composed_of"]:
        component = load_json(ES_DIR / f"component-templates/{name}.json")
        _merge(merged["properties"], component["template"].get("mappings", {}).get("properties", {}))
    _merge(merged["properties"], template.get("template", {}).get("mappings", {}).get("properties", {}))
    return merged


def leaf_types(mapping: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Dotted field name -> mapping type, multi-fields included ("error_message.keyword")."""
    leaves: dict[str, str] = {}
    for name, spec in mapping.get("properties", {}).items():
        path = f"{prefix}{name}"
        if "properties" in spec:
            leaves.update(leaf_types(spec, f"{path}."))
            continue
        leaves[path] = spec["type"]
        for sub, sub_spec in spec.get("fields", {}).items():
            leaves[f"{path}.{sub}"] = sub_spec["type"]
    return leaves


# ---------------------------------------------------------------- Logstash pipelines


@dataclass
class Plugin:
    section: str
    name: str
    options: dict[str, Any]


@dataclass
class Comparison:
    left: str
    op: str
    right: Any


@dataclass
class LogstashConfig:
    plugins: list[Plugin] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    truthy: list[str] = field(default_factory=list)


def _value(raw: Any) -> Any:
    # logstash-pipeline-parser wraps every option value in a one-element list; hashes are lists of [key, [value]].
    value = raw[0] if isinstance(raw, list) and len(raw) == 1 else raw
    if isinstance(value, list) and value and all(isinstance(i, list) and len(i) == 2 for i in value):
        return {str(k): _value(v) for k, v in value}
    return value


def _condition(node: Any, out: LogstashConfig) -> None:
    if isinstance(node, str):
        if is_field_ref(node):
            out.truthy.append(field_name(node))
        return
    if not isinstance(node, list):
        return
    if len(node) == 3 and isinstance(node[1], str) and node[1] in COMPARISONS:
        out.comparisons.append(Comparison(*node))
        return
    for child in node:
        _condition(child, out)


def _block(section: str, items: list[Any], out: LogstashConfig) -> None:
    for item in items:
        name, body = item[0], item[1]
        if name in ("if", "else if"):
            for condition in body[:-1]:
                _condition(condition, out)
            _block(section, body[-1][0], out)
        elif name == "else":
            _block(section, body, out)
        else:
            out.plugins.append(Plugin(section, name, {str(k): _value(v) for k, v in body}))


# ---------------------------------------------------------------- Logstash string semantics
#
# logstash-pipeline-parser turns "\n" into a newline whatever the settings say, which is more lenient than Logstash.
# These follow Logstash's own source instead:
# - logstash-core/lib/logstash/compiler/lscl.rb, class String: a quoted value is the text between the quotes; only
#   with config.support_escapes does it go through StringEscape.process_escapes (regex literals /.../ never do).
# - logstash-core/lib/logstash/config/string_escape.rb: gsub(/\\./) maps \" \' \\ \n \r \t \0; any other
#   backslash pair stays as it is. Ruby's `.` does not match a newline.
# - logstash-filter-mutate's gsub calls Ruby's String#gsub(Regexp.new(pattern), replacement): in the replacement,
#   \0 \& \1..\9 \k<name> refer to the match and \\ is one backslash; any other backslash pair is kept as is.

LOGSTASH_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"|\'((?:[^\'\\]|\\.)*)\'', re.DOTALL)
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "0": "\0"}


def logstash_settings() -> dict[str, Any]:
    settings: dict[str, Any] = yaml.safe_load((LOGSTASH_DIR / "config/logstash.yml").read_text())
    return settings


def logstash_string(raw: str, support_escapes: bool) -> str:
    """The value Logstash gives a quoted string whose text between the quotes is ``raw``."""
    if not support_escapes:
        return raw
    return re.sub(r"\\.", lambda m: _ESCAPES.get(m[0][1], m[0]), raw)


def ruby_gsub(pattern: str, replacement: str, text: str) -> str:
    """Ruby's String#gsub(Regexp.new(pattern), replacement) for the patterns used here (Python's re.sub would
    turn a backslash-n replacement into a newline; Ruby keeps the two characters)."""

    def expand(found: re.Match[str]) -> str:
        def one(ref: re.Match[str]) -> str:
            token = ref[0][1:]
            if token in ("0", "&"):
                return found[0]
            if token.isdigit():
                return found[int(token)] or ""
            if token.startswith("k<"):
                return found[token[2:-1]] or ""
            return "\\" if token == "\\" else ref[0]

        return re.sub(r"\\(k<\w+>|.)", one, replacement)

    return re.sub(pattern, expand, text)


def raw_option_strings(conf: Path, plugin_id: str, option: str) -> list[str]:
    """The quoted strings of one option of the plugin with ``id => "plugin_id"``, as written (escapes untouched)."""
    text = conf.read_text()
    start = text.index(f'id => "{plugin_id}"')
    found = re.compile(rf"\b{option}\s*=>\s*\[(.*?)\]", re.DOTALL).search(text, start)
    assert found, f"{conf.name}: no {option} list in {plugin_id}"
    return [a or b for a, b in LOGSTASH_QUOTED.findall(found[1])]


def parse_pipeline(path: Path) -> list[Any]:
    pipeline = Pipeline(path.read_text())
    for type_name in list(pipeline.get_types()):  # keep every value a plain string (no Path objects)
        pipeline.remove_type(type_name)
    ast: list[Any] = pipeline.parse()
    return ast


def load_pipeline(path: Path) -> LogstashConfig:
    out = LogstashConfig()
    for section, items in parse_pipeline(path):
        _block(section, items, out)
    return out


def comparison_fields(config: LogstashConfig) -> Iterator[tuple[str, str, Any]]:
    """(field, operator, other side) for each side of a comparison that is a field (a regex is never a field)."""
    for c in config.comparisons:
        if is_field_ref(c.left):
            yield field_name(c.left), c.op, c.right
        if c.op not in ("=~", "!~") and is_field_ref(c.right):
            yield field_name(c.right), c.op, c.left


def ruby_fields(code: str, verb: str) -> list[str]:
    return [field_name(f) for f in re.findall(rf"event\.{verb}\(['\"]([^'\"]+)['\"]", code)]


def added_tags(config: LogstashConfig) -> set[str]:
    tags: set[str] = set()
    for plugin in config.plugins:
        for key in ("add_tag", "tag_on_failure"):
            value = plugin.options.get(key, [])
            tags.update([value] if isinstance(value, str) else value)
    return tags


# ---------------------------------------------------------------- grok


GROK_REF = re.compile(r"%\{(\w+)(?::([^:}]+))?(?::(int|float))?\}")


def load_patterns(path: Path = PATTERNS_PATH) -> dict[str, str]:
    patterns: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, regex = line.partition(" ")
            patterns[name] = regex
    return patterns


@dataclass
class Grok:
    """A grok expression translated to a Python regex: group gN captures into captures[gN] = (field, type)."""

    regex: re.Pattern[str]
    captures: dict[str, tuple[str, str | None]]

    def match(self, text: str) -> dict[str, Any] | None:
        found = self.regex.search(text)
        if found is None:
            return None
        result: dict[str, Any] = {}
        for group, value in found.groupdict().items():
            if value is None:
                continue
            target, kind = self.captures[group]
            result[target] = int(value) if kind == "int" else float(value) if kind == "float" else value
        return result


def compile_grok(expression: str, patterns: dict[str, str]) -> Grok:
    captures: dict[str, tuple[str, str | None]] = {}

    def expand(text: str, depth: int = 0) -> str:
        if depth > 20:
            raise ValueError(f"grok patterns nest too deep near {text[:60]!r}")
        if re.search(r"\(\?<[A-Za-z\[]", text):
            raise ValueError(f"named group outside %{{}} in {text!r}: use %{{PATTERN:field}}")

        def one(ref: re.Match[str]) -> str:
            name, target, kind = ref.groups()
            if name not in patterns:
                raise KeyError(f"grok pattern {name} is not defined in {PATTERNS_PATH.name}")
            inner = expand(patterns[name], depth + 1)
            if target is None:
                return f"(?:{inner})"
            group = f"g{len(captures)}"
            captures[group] = (field_name(target), kind)
            return f"(?P<{group}>{inner})"

        return GROK_REF.sub(one, text)

    # Oniguruma (Logstash) anchors ^ and $ at every line, as Python does with MULTILINE.
    return Grok(re.compile(expand(expression), re.MULTILINE), captures)


def grok_filters(config: LogstashConfig) -> dict[str, tuple[str, list[Grok]]]:
    """Grok filter id -> (source field, compiled patterns in match order)."""
    patterns = load_patterns()
    found: dict[str, tuple[str, list[Grok]]] = {}
    for plugin in config.plugins:
        if plugin.name != "grok":
            continue
        ((source, expressions),) = plugin.options["match"].items()
        expressions = [expressions] if isinstance(expressions, str) else expressions
        found[plugin.options["id"]] = (field_name(source), [compile_grok(e, patterns) for e in expressions])
    return found


# ---------------------------------------------------------------- Kibana


def load_ndjson(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


KQL_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
KQL_CLAUSE = re.compile(r"(?<![\w.@*])([A-Za-z_@][\w.@]*)\s*(:|<=|>=|<|>)\s*(\(?[^\s()]*)")


def kql_clauses(query: str) -> list[tuple[str, str, str]]:
    """(field, operator, value) for each field clause of a KQL query; a quoted value reads as "~"."""
    masked = KQL_STRINGS.sub('"~"', query)
    return [(f, op, value) for f, op, value in KQL_CLAUSE.findall(masked)]


def kql_strings(query: str) -> list[str]:
    return [json.loads(s) for s in KQL_STRINGS.findall(query)]


def _get(event: dict[str, Any], ref: str) -> Any:
    value: Any = event
    for part in re.findall(r"\[([^\[\]]+)\]", ref) or [ref]:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _set(event: dict[str, Any], ref: str, value: Any) -> None:
    *parents, last = re.findall(r"\[([^\[\]]+)\]", ref) or [ref]
    for part in parents:
        event = event.setdefault(part, {})
    event[last] = value


_COMPARE = {"==": operator.eq, "!=": operator.ne, ">": operator.gt, ">=": operator.ge, "<": operator.lt,
            "<=": operator.le}  # fmt: skip


def _holds(condition: list[Any], event: dict[str, Any]) -> bool:
    """A truthy field test, `and`/`or` of conditions, a comparison, or an `in` test (list membership, or substring
    for a string); others are refused. A comparison with a missing field is false, as Logstash's (nil) is."""
    if len(condition) == 1 and is_field_ref(condition[0]):
        return bool(_get(event, condition[0]))
    if len(condition) == 3 and condition[1] in ("and", "or"):
        left, right = _holds(condition[0], event), _holds(condition[2], event)
        return (left and right) if condition[1] == "and" else (left or right)
    if len(condition) == 3 and condition[1] in _COMPARE:
        a, b = (_get(event, x) if is_field_ref(x) else x for x in (condition[0], condition[2]))
        if a is None or b is None:
            return condition[1] == "!=" and a is not b
        return bool(_COMPARE[condition[1]](a, b))
    if len(condition) == 3 and condition[1] == "in":
        left, _, right = condition
        needle = _get(event, left) if is_field_ref(left) else left
        haystack = _get(event, right) if is_field_ref(right) else right
        return haystack is not None and needle is not None and needle in haystack
    raise ValueError(f"this evaluator follows truthy-field and `in` conditions only, not {condition}: extend _holds")


def run_copies(items: list[Any], event: dict[str, Any]) -> dict[str, Any]:
    """Logstash's if / else if / else, running only mutate's copy: enough to follow how a pipeline routes an event
    by its fields. A kind of condition it does not know is refused, not guessed."""
    taken = False
    for item in items:
        name, body = item[0], item[1]
        if name in ("if", "else if", "else"):
            if name == "if":
                taken = False
            if taken:
                continue
            if name != "else":
                (condition,) = body[:-1]
                if not _holds(condition, event):
                    continue
            taken = True
            run_copies(body[-1][0] if name != "else" else body, event)
        elif name == "mutate":
            options = {str(k): _value(v) for k, v in body}
            for source, target in (options.get("copy") or {}).items():
                if _get(event, source) is not None:
                    _set(event, target, _get(event, source))
    return event


def holds(condition: list[Any], event: dict[str, Any]) -> bool:
    """Whether a Logstash `if` condition (as parse_pipeline gives it) holds for ``event``."""
    return _holds(condition, event)


def condition_guarding(items: list[Any], plugin_id: str) -> list[Any]:
    """The condition of the `if` whose block holds the plugin with ``id => plugin_id`` (any depth, any section)."""
    for item in items:
        name, body = item[0], item[1]
        if name in ("if", "else if"):
            plugins = body[-1][0]
            if any(p[0] != "if" and _value(dict((str(k), v) for k, v in p[1]).get("id", [""])) == plugin_id
                   for p in plugins if isinstance(p, list) and len(p) == 2):  # fmt: skip
                parts = body[:-1]  # one condition, or `a or b` / `a and b` as three parts
                return list(parts[0]) if len(parts) == 1 else list(parts)
            inner = plugins
        elif name in ("filter", "input", "output", "else"):
            inner = body
        else:
            continue
        try:
            return condition_guarding(inner, plugin_id)
        except KeyError:
            continue
    raise KeyError(f"no `if` guards a plugin with id {plugin_id!r}")
