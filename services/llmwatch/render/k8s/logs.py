"""Logstash's pipelines and settings and Filebeat's inputs, as the ECK objects and ConfigMaps the overlay mounts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from llmwatch.render.k8s.objects import LOGS_NAMESPACE, NAMESPACE, SourceError, dump, files_configmap

# Filebeat inputs of filebeat/filebeat.yml that autodiscover reproduces per container.
GATEWAY_INPUT = "llm-gateway-access-log"
STACK_INPUT = "llm-stack-containers"
COMPOSE_SERVICE = "container.labels.com_docker_compose_service"


def logstash(repo: Path) -> str:
    """The pipelines and grok patterns as ConfigMaps the Logstash pods mount where compose mounts them."""
    objects = [
        files_configmap("logstash-pipeline", repo / "logstash/pipeline", repo),
        files_configmap("logstash-patterns", repo / "logstash/patterns", repo),
    ]
    return dump(objects, "logstash/pipeline, logstash/patterns")


def logstash_settings(repo: Path) -> str:
    """A patch of the ECK Logstash: logstash.yml as its config, pipelines.yml as its pipelines."""
    settings = {
        "apiVersion": "logstash.k8s.elastic.co/v1alpha1",
        "kind": "Logstash",
        "metadata": {"name": "logstash"},
        "spec": {
            "config": yaml.safe_load((repo / "logstash/config/logstash.yml").read_text()),
            "pipelines": yaml.safe_load((repo / "logstash/config/pipelines.yml").read_text()),
        },
    }
    return dump([settings], "logstash/config")


def _filebeat_input(inputs: list[dict[str, Any]], input_id: str) -> dict[str, Any]:
    for item in inputs:
        if item.get("id") == input_id:
            return item
    raise SourceError(f"filebeat/filebeat.yml has no input with id {input_id!r}; update llmwatch/render/k8s/logs.py")


def _container_name_regexp(stack: dict[str, Any]) -> str:
    """The compose service names the Docker input keeps, reused as Kubernetes container names."""
    for processor in stack.get("processors", []):
        if "drop_event" in processor:
            regexp: str = processor["drop_event"]["when"]["not"]["regexp"][COMPOSE_SERVICE]
            return regexp
    raise SourceError(f"filebeat input {STACK_INPUT!r} lost its drop_event on compose service; update logs.py")


def _container_input(source: dict[str, Any], stream: str, parsers: list[dict[str, Any]]) -> dict[str, Any]:
    """The compose input's settings (identity, scanner, close/clean), read from one container's log instead."""
    kept = {k: v for k, v in source.items() if k not in ("id", "paths", "parsers", "processors")}
    return {
        "type": "filestream",
        "id": f"{source['id']}-${{data.kubernetes.container.id}}",
        "paths": ["/var/log/containers/*-${data.kubernetes.container.id}.log"],
        **kept,
        # /var/log/containers holds symlinks into /var/log/pods.
        "prospector.scanner.symlinks": True,
        "parsers": [{"container": {"stream": stream, "format": "auto"}}, *parsers],
    }


def filebeat(repo: Path) -> str:
    """The ECK Beat's config: filebeat.yml's two inputs, as autodiscover templates over Kubernetes container logs."""
    source = yaml.safe_load((repo / "filebeat/filebeat.yml").read_text())
    gateway = _filebeat_input(source["filebeat.inputs"], GATEWAY_INPUT)
    stack = _filebeat_input(source["filebeat.inputs"], STACK_INPUT)
    ndjson = [p for p in gateway["parsers"] if "ndjson" in p]
    multiline = [p for p in stack["parsers"] if "multiline" in p]
    in_namespace = {"equals": {"kubernetes.namespace": NAMESPACE}}
    config = {
        "filebeat.autodiscover": {
            "providers": [
                {
                    "type": "kubernetes",
                    "node": "${NODE_NAME}",
                    "hints.enabled": False,
                    "templates": [
                        {
                            # The gateway writes only access-log lines to stdout; its own logging goes to stderr.
                            "condition": {"and": [in_namespace, {"equals": {"kubernetes.container.name": "gateway"}}]},
                            "config": [_container_input(gateway, "stdout", ndjson)],
                        },
                        {
                            "condition": {
                                "and": [
                                    in_namespace,
                                    {"regexp": {"kubernetes.container.name": _container_name_regexp(stack)}},
                                ]
                            },
                            "config": [_container_input(stack, "all", multiline)],
                        },
                    ],
                }
            ]
        },
        "filebeat.registry.path": source["filebeat.registry.path"],
        # From Filebeat's namespace to Logstash's (the Service ECK names <name>-ls-<service>).
        "output.logstash": {"hosts": [f"logstash-ls-beats.{NAMESPACE}.svc:5044"]},
        "setup.template.enabled": source["setup.template.enabled"],
        "setup.ilm.enabled": source["setup.ilm.enabled"],
        "logging.level": source["logging.level"],
        "logging.metrics.enabled": source["logging.metrics.enabled"],
    }
    beat = {
        "apiVersion": "beat.k8s.elastic.co/v1beta1",
        "kind": "Beat",
        "metadata": {"name": "filebeat", "namespace": LOGS_NAMESPACE},
        "spec": {"config": config},
    }
    return dump([beat], "filebeat/filebeat.yml")
