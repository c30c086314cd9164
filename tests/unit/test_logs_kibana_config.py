"""kibana/ read the way Kibana reads it: its `${VAR}` substitution rule applied to every string in kibana.yml, with
the environment docker-compose.yml gives the container, and the keys a restart must not lose."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import yaml

from tests.support import REPO
from tests.support.logs import KIBANA_DIR, load_setup_script

pytestmark = pytest.mark.unit

KIBANA_YML = KIBANA_DIR / "config/kibana.yml"
# kbn-config (src/platform/packages/shared/kbn-config/src/raw/utils.ts, replaceEnvVarRefs; called on every string
# value by raw/read_config.ts): /\$\{(\w+)(:(\w+))?\}/g, JavaScript's ASCII \w. A set variable wins, then the
# default; a reference without either throws "Unknown environment variable referenced in config". A `${...}`
# the regex does not match (a default with `:` or `/`, e.g. a URL) is left in the value as it is.
KIBANA_ENV_REF = re.compile(r"\$\{(\w+)(:(\w+))?\}", re.ASCII)


class UnknownVariable(Exception):
    pass


def kibana_substitute(value: str, env: Mapping[str, str]) -> str:
    def one(found: re.Match[str]) -> str:
        if found[1] in env:
            return env[found[1]]
        if found[3] is not None:
            return found[3]
        raise UnknownVariable(found[1])

    return KIBANA_ENV_REF.sub(one, value)


def strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from strings(value, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def compose_kibana_env() -> dict[str, str]:
    service = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["kibana"]
    return {name: f"value-of-{name}" for name in service.get("environment") or {}}


def unresolved(config: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """Settings Kibana would start with a literal `${` in, or refuse to start over."""
    found = []
    for path, value in strings(config):
        try:
            if "${" in kibana_substitute(value, env):
                found.append(f"{path}: {value!r} stays literal (Kibana only takes \\w+ defaults)")
        except UnknownVariable as exc:
            found.append(f"{path}: ${{{exc}}} is not set in the container and has no default")
    return found


def test_every_reference_in_kibana_yml_resolves_as_kibana_resolves_it() -> None:
    assert unresolved(yaml.safe_load(KIBANA_YML.read_text()), compose_kibana_env()) == []


def test_the_rule_rejects_what_once_kept_kibana_from_starting() -> None:
    old = {
        "server.publicBaseUrl": "${KIBANA_PUBLIC_BASE_URL:http://localhost:5601}",
        "elasticsearch.hosts": ["${ELASTICSEARCH_HOSTS:http://elasticsearch:9200}"],
        "elasticsearch.password": "${NOT_SET}",
        "fine": "${NOT_SET:word}",
    }
    # Even with the variable set, a URL default keeps the whole reference literal.
    problems = unresolved(old, {"KIBANA_PUBLIC_BASE_URL": "https://logs.example.com"})
    assert [p.split(":")[0] for p in problems] == [
        "server.publicBaseUrl",
        "elasticsearch.hosts[0]",
        "elasticsearch.password",
    ]


def test_no_other_file_in_kibana_relies_on_substitution() -> None:
    """Only kibana.yml goes through Kibana's config loader; saved objects and rules are sent as they are, but for the
    Grafana URL the setup job fills into the saved objects."""
    filled = load_setup_script().GRAFANA_URL_PLACEHOLDER
    for path in KIBANA_DIR.rglob("*"):
        if path.is_file() and path != KIBANA_YML:
            text = path.read_text()
            if path.parent.name == "saved-objects":
                text = text.replace(filled, "")
            assert "${" not in text, f"{path.relative_to(REPO)}: nothing substitutes ${{...}} here"


def test_encryption_keys_survive_restarts() -> None:
    """Without fixed keys Kibana makes up new ones at each start: sessions end, saved objects stop decrypting."""
    config = yaml.safe_load(KIBANA_YML.read_text())
    for key in ("xpack.encryptedSavedObjects", "xpack.security", "xpack.reporting"):
        assert config[f"{key}.encryptionKey"] == "${KIBANA_ENCRYPTION_KEY}", key
