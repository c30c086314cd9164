"""Filebeat keeps the container logs of every engine of every compose profile, in compose and on Kubernetes.

An engine is a compose service with the network alias `engine` (the name the gateway's --upstream uses), so an engine
service a new profile adds is covered here without a list to update. Filebeat's `regexp` condition is a Go regexp
that may match anywhere in the value; the filters anchor theirs, and Python's `re.search` reads them the same way.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.support import REPO
from tests.support.k8s import build, find

pytestmark = pytest.mark.unit

COMPOSE_SERVICE = "container.labels.com_docker_compose_service"
# The UI's logs are kept too; the gateway's access log has its own input (a file in compose, stdout on Kubernetes).
ALSO_KEPT = {"open-webui"}


def compose_services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    return services


def engines_by_profile() -> dict[str, set[str]]:
    """{profile: its engine services}, from compose's profiles and the `engine` network alias."""
    out: dict[str, set[str]] = {}
    for name, service in compose_services().items():
        aliases = (service.get("networks") or {}).get("default", {}) or {}
        if "engine" in aliases.get("aliases", []):
            for profile in service.get("profiles", ["(default)"]):
                out.setdefault(profile, set()).add(name)
    return out


def compose_filter() -> str:
    config = yaml.safe_load((REPO / "filebeat/filebeat.yml").read_text())
    [stack] = [i for i in config["filebeat.inputs"] if i["id"] == "llm-stack-containers"]
    [drop] = [p["drop_event"] for p in stack["processors"] if "drop_event" in p]
    regexp: str = drop["when"]["not"]["regexp"][COMPOSE_SERVICE]
    return regexp


def kubernetes_filter() -> str:
    beat = find(build("overlays/observability"), "Beat", "filebeat")
    [provider] = beat["spec"]["config"]["filebeat.autodiscover"]["providers"]
    found = [
        c["regexp"]["kubernetes.container.name"]
        for template in provider["templates"]
        for c in template["condition"]["and"]
        if "regexp" in c
    ]
    [regexp] = found
    return str(regexp)


def test_every_profile_has_an_engine() -> None:
    profiles = engines_by_profile()
    assert {"gpu", "sim", "cpu"} <= set(profiles), f"engine services by profile: {profiles}"
    assert "(default)" not in profiles, "an engine outside every profile would run beside the profile's engine"


@pytest.mark.parametrize("where", ["compose", "kubernetes"])
def test_filter_keeps_every_engine_and_the_ui_and_drops_the_rest(where: str) -> None:
    regexp = compose_filter() if where == "compose" else kubernetes_filter()
    engines = set().union(*engines_by_profile().values())
    kept = engines | ALSO_KEPT
    for name in sorted(kept):
        assert re.search(regexp, name), f"{where}: Filebeat drops {name}'s logs ({regexp!r})"
    for name in sorted(set(compose_services()) - kept):
        assert not re.search(regexp, name), f"{where}: Filebeat ships {name}'s container logs ({regexp!r})"
