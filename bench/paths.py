"""The request paths under test, all in front of the same upstream: direct, llmwatch gateway, LiteLLM, nginx.

Each path is started as a child process with a fresh port; ``start_all`` launches them together and then waits,
so LiteLLM's slow import overlaps the others' start-up. A path that cannot run here is skipped with a reason,
never silently.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement

from bench.machine import installed_version
from bench.procs import pinned
from llmwatch.processes import Child, free_port

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
ORDER = ("direct", "gateway", "litellm", "nginx")


@dataclass
class Target:
    """One path: where the load generator sends requests, and the proxy process whose CPU we count (None: direct)."""

    name: str
    url: str
    proc: Child | None = None
    ready_url: str = ""
    ready_timeout: float = 30.0
    spread: tuple[str, ...] = ()  # direct to several engines: the load generator spreads its streams over these

    @property
    def urls(self) -> tuple[str, ...]:
        return self.spread or (self.url,)


def render(template: Path, dest: Path, values: dict[str, str]) -> Path:
    """Fill ``{{name}}`` placeholders (``$`` is nginx's, so string.Template will not do)."""
    text = template.read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    if "{{" in text:
        raise ValueError(f"{template.name}: unfilled placeholder in\n{text}")
    dest.write_text(text)
    return dest


def litellm_venv() -> Path:
    cache = Path(os.environ.get("LLMWATCH_CACHE", Path.home() / ".cache" / "llmwatch"))
    return cache / "litellm-venv"


def why_unavailable(name: str) -> str | None:
    """None if ``name`` can run on this machine, else what is missing and how to get it."""
    if name == "gateway" and importlib.util.find_spec("llmwatch.gateway.main") is None:
        return "llmwatch.gateway.main is not importable (gateway not built yet, or package not installed: make install)"
    if name == "litellm" and not (litellm_venv() / "bin" / "litellm").exists():
        return f"no LiteLLM venv at {litellm_venv()} (scripts/install.sh test creates it)"
    if name == "nginx" and shutil.which("nginx") is None:
        return "nginx not on PATH (Debian: apt-get install nginx-light)"
    return None


def why_skipped(name: str, paced: bool, engines: int) -> str | None:
    """None if path ``name`` can take a workload of this shape, else why it sits that workload out."""
    if name == "litellm" and paced:
        return (
            "LiteLLM forwards about 2,000 tokens/s here (see sse-c64), a tenth of the paced workloads' offered rate: "
            "the run would measure its queue, for minutes"
        )
    if name == "litellm" and engines > 1:
        return "bench/litellm.yaml maps the model to one engine"
    return None


def baseline_source(rev: str, work: Path) -> Path:
    """The gateway's code at ``rev`` (git archive of services/), to run beside today's in the same benchmark."""
    dest = work / "baseline"
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "services"], capture_output=True, check=False)
    if archive.returncode != 0:
        raise ValueError(f"--baseline {rev}: {archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    missing = missing_requirements(rev)
    if missing:
        raise ValueError(f"--baseline {rev}: its gateway needs {', '.join(missing)}, which this environment lacks: "
                         f"{shlex.join([sys.executable, '-m', 'pip', 'install', *missing])}")  # fmt: skip
    return dest / "services"


def missing_requirements(rev: str) -> list[str]:
    """The dependencies of the project at ``rev`` (its pyproject.toml) that are not installed here."""
    shown = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:pyproject.toml"], capture_output=True, check=True)
    return not_installed(tomllib.loads(shown.stdout.decode())["project"]["dependencies"])


def not_installed(requirements: Sequence[str]) -> list[str]:
    """Those of ``requirements`` (PEP 508 strings) that apply here and have no installed distribution."""
    missing = []
    for req in map(Requirement, requirements):
        if (req.marker is None or req.marker.evaluate()) and installed_version(req.name) is None:
            missing.append(str(req))
    return missing


def _gateway(upstreams: Sequence[str], work: Path, cpus: Sequence[int] | None, name: str, tag: str) -> Target:
    """Today's gateway, or (``gateway@REV``) the one at a git revision, importing its own code first."""
    port = free_port()
    stem = name.replace("@", "-") + tag
    env = {"PYTHONPATH": str(work / "baseline" / "services")} if "@" in name else None
    args = [
        sys.executable,
        "-m",
        "llmwatch.cli",
        "gateway",
        "--upstream",
        ",".join(upstreams),  # several: least-in-flight over them
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-file",
        str(work / f"{stem}-access.log"),
    ]
    proc = Child(pinned(args, cpus), work / f"{stem}.log", env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    return Target(name, url, proc, f"{url}/readyz", 30.0)


def _litellm(upstream: str, work: Path, cpus: Sequence[int] | None) -> Target:
    port = free_port()
    config = render(BENCH / "litellm.yaml", work / "litellm.yaml", {"api_base": f"{upstream}/v1"})
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY_DISABLED": "True"}
    args = [
        str(litellm_venv() / "bin" / "litellm"),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    proc = Child(pinned(args, cpus), work / "litellm.log", env=env, cwd=work)
    url = f"http://127.0.0.1:{port}"
    return Target("litellm", url, proc, f"{url}/health/liveliness", 120.0)


def _nginx(upstream_ports: Sequence[int], work: Path, cpus: Sequence[int] | None, tag: str) -> Target:
    port = free_port()
    prefix = work / f"nginx{tag}"
    prefix.mkdir(exist_ok=True)
    # As root, nginx drops its worker to `nobody`, who could not write under our tmp prefix.
    user = "user root;" if os.geteuid() == 0 else ""
    servers = [f"server 127.0.0.1:{p};" for p in upstream_ports]
    if len(servers) > 1:
        servers.insert(0, "least_conn;")  # as the gateway picks the engine with the fewest requests in flight
    conf = render(
        BENCH / "nginx.conf.template",
        prefix / "nginx.conf",
        {"user": user, "prefix": str(prefix), "port": str(port), "servers": "\n        ".join(servers)},
    )
    nginx = shutil.which("nginx") or "nginx"
    args = [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log"), "-g", "daemon off;"]
    proc = Child(pinned(args, cpus), work / f"nginx{tag}.log")
    url = f"http://127.0.0.1:{port}"
    return Target("nginx", url, proc, f"{url}/health", 15.0)


def start_all(
    names: Sequence[str], upstream_ports: Sequence[int], work: Path, cpus: Sequence[int] | None
) -> list[Target]:
    """Start every named path in front of the engines on ``upstream_ports`` (direct needs nothing), then wait until
    each answers; stops them all on failure. With several engines, file names get an ``-xN`` tag."""
    upstreams = [f"http://127.0.0.1:{p}" for p in upstream_ports]
    tag = f"-x{len(upstreams)}" if len(upstreams) > 1 else ""
    targets: list[Target] = []
    try:
        for name in names:
            if name == "direct":
                targets.append(Target("direct", upstreams[0], spread=tuple(upstreams) if tag else ()))
            elif name == "gateway" or name.startswith("gateway@"):
                targets.append(_gateway(upstreams, work, cpus, name, tag))
            elif name == "litellm":
                if tag:
                    raise ValueError(why_skipped(name, False, len(upstreams)))
                targets.append(_litellm(upstreams[0], work, cpus))
            elif name == "nginx":
                targets.append(_nginx(upstream_ports, work, cpus, tag))
            else:
                raise ValueError(f"unknown path {name!r}; choose from {', '.join(ORDER)}")
        for target in targets:
            if target.proc is not None:
                target.proc.wait_http(target.ready_url, target.ready_timeout)
    except BaseException:
        stop_all(targets)
        raise
    return targets


def stop_all(targets: Sequence[Target]) -> None:
    for target in targets:
        if target.proc is not None:
            target.proc.stop()
