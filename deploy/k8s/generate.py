"""Write the committed renderings of the stack's configs: `python deploy/k8s/generate.py` (or `make k8s`).

kustomize refuses files outside its folder, so the Prometheus rules, Grafana dashboards, Logstash pipelines, Filebeat
inputs, Alertmanager routes and the Elasticsearch/Kibana setup files are rendered into Kubernetes objects under
deploy/k8s/overlays/observability/generated/, and .env.example's image pins into deploy/k8s/base/generated/; the
engine-sizing template of docker-compose.yml at its defaults into prometheus/defaults/ (what the promtool tests load
from a checkout). The renderers are llmwatch.render; this file is the list of outputs. The sources stay the truth:
run this after changing any of them (`--check` exits 1 and names each stale file instead of writing;
tests/unit/test_k8s_manifests.py runs it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from llmwatch.render import alertmanager, engine_sizing
from llmwatch.render.k8s import elastic, images, logs, monitoring
from llmwatch.render.k8s.objects import SourceError, rel
from llmwatch.thresholds import ENGINE_SIZING_DEFAULTS

REPO = Path(__file__).resolve().parents[2]
# Where the outputs are written (a test points it elsewhere); the sources are always read from REPO.
OUT = REPO
GENERATED = "deploy/k8s/overlays/observability/generated"
OUTPUTS: dict[str, Callable[[Path], str]] = {
    "deploy/k8s/base/generated/images.yaml": images.images,
    f"{GENERATED}/images.yaml": images.images,
    f"{GENERATED}/alertmanagerconfig.yaml": alertmanager.operator_config,
    f"{GENERATED}/elastic-version.yaml": elastic.elastic_version,
    f"{GENERATED}/prometheusrules.yaml": monitoring.prometheus_rules,
    f"{GENERATED}/dashboards.yaml": monitoring.dashboards,
    f"{GENERATED}/logstash.yaml": logs.logstash,
    f"{GENERATED}/logstash-settings.yaml": logs.logstash_settings,
    f"{GENERATED}/filebeat.yaml": logs.filebeat,
    f"{GENERATED}/setup-config.yaml": elastic.setup_config,
    f"{GENERATED}/setup-job-config.yaml": elastic.setup_job_config,
    ENGINE_SIZING_DEFAULTS: engine_sizing.defaults,
}


def rendered() -> dict[Path, str]:
    """Every generated file's path and the text it must hold."""
    return {OUT / name: render(REPO) for name, render in OUTPUTS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated file is stale")
    args = parser.parse_args(argv)
    try:
        files = rendered()
    except SourceError as exc:
        print(f"generate.py: {exc}", file=sys.stderr)
        return 1
    stale = [path for path, text in files.items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{rel(path, OUT)} is stale: run `make k8s` (deploy/k8s/generate.py) and commit it", file=sys.stderr)
        return 1 if stale else 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"wrote {len(OUTPUTS)} files under {OUT} ({len(stale)} changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
