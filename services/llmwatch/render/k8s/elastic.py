"""The Elastic side on ECK: the setup job's files (index templates, ILM, roles, Kibana objects) and the version."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from llmwatch.render.k8s.images import pin
from llmwatch.render.k8s.objects import LOGS_NAMESPACE, PART_OF, dump, rel

# Folders the setup job reads (elasticsearch/setup/setup.py); their configs (elasticsearch.yml, kibana.yml) are ECK's.
SETUP_DIRS = (
    "elasticsearch/component-templates",
    "elasticsearch/ilm",
    "elasticsearch/index-templates",
    "elasticsearch/security",
    "elasticsearch/setup",
    "kibana/rules",
    "kibana/saved-objects",
)
# (apiVersion, kind, name, namespace) of each ECK resource; a patch names the namespace of an object outside llmwatch.
ECK_RESOURCES = (
    ("elasticsearch.k8s.elastic.co/v1", "Elasticsearch", "elasticsearch", None),
    ("kibana.k8s.elastic.co/v1", "Kibana", "kibana", None),
    ("logstash.k8s.elastic.co/v1alpha1", "Logstash", "logstash", None),
    ("beat.k8s.elastic.co/v1beta1", "Beat", "filebeat", LOGS_NAMESPACE),
)


def _setup_files(repo: Path) -> Iterator[tuple[str, Path]]:
    """(ConfigMap key, file) for every file the setup job reads; keys allow only [-._a-zA-Z0-9]."""
    for folder in SETUP_DIRS:
        for path in sorted((repo / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                yield rel(path, repo).replace("/", ".").replace("@", "-at-"), path


def setup_config(repo: Path) -> str:
    """elasticsearch/ and kibana/ files for the setup job, in one ConfigMap."""
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "setup-config", "labels": PART_OF},
        "data": {key: path.read_text() for key, path in _setup_files(repo)},
    }
    return dump([configmap], ", ".join(SETUP_DIRS))


def setup_job_config(repo: Path) -> str:
    """A patch of the setup job: the volume that lays setup-config out as elasticsearch/ and kibana/ in the repo."""
    items = [{"key": key, "path": rel(path, repo)} for key, path in _setup_files(repo)]
    volume = {"name": "config", "configMap": {"name": "setup-config", "items": items}}
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "setup"},
        "spec": {"template": {"spec": {"volumes": [volume]}}},
    }
    return dump([job], ", ".join(SETUP_DIRS))


def elastic_version(repo: Path) -> str:
    """A patch giving every ECK resource .env.example's ELASTIC_VERSION, as compose runs them in step."""
    version = pin(repo, "ELASTIC_VERSION")
    patches = [
        {
            "apiVersion": api,
            "kind": kind,
            "metadata": {"name": name, **({"namespace": namespace} if namespace else {})},
            "spec": {"version": version},
        }
        for api, kind, name, namespace in ECK_RESOURCES
    ]
    return dump(patches, ".env.example (ELASTIC_VERSION)")
