"""The docs against what they describe: compose services, .env variables, flags, markdown tables, links, numbers.

- every `docker compose <verb> <service>` in the docs, the README, the alert text and the doctor's advice names a
  service of docker-compose.yml (an alias such as `engine` is not one);
- every .env variable the docs mention reaches the rendered compose config, and every one a mounted config file
  reads as `${NAME}` is in that service's environment;
- no table cell is split by an unescaped `|` inside a code span;
- every flag in a docs table is in the `--help` of its command;
- relative links and anchors resolve; the README's benchmark numbers are RESULTS.md's.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from llmwatch.cli import SUBCOMMANDS
from llmwatch.duration import seconds  # compose renders `20m0s`, which Prometheus reads too
from llmwatch.gateway.settings import GatewaySettings
from tests.support import REPO
from tests.support.compose import ALL_PROFILES, COMPOSE_OWN, compose, filled_env_text, parse_env_example

pytestmark = pytest.mark.unit

DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [REPO / "README.md", *DOCS]


# ---- markdown helpers ---------------------------------------------------------------------------------------------


def blocks(text: str) -> tuple[list[str], str]:
    """(fenced code blocks' lines with `\\` continuations joined, the prose with fences blanked out)."""
    commands: list[str] = []
    prose: list[str] = []
    fence = False
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
            prose.append("")
            continue
        if fence:
            joined = pending + line
            if joined.rstrip().endswith("\\"):
                pending = joined.rstrip()[:-1] + " "
            else:
                commands.append(joined)
                pending = ""
            prose.append("")
        else:
            prose.append(line)
    return commands, "\n".join(prose)


CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.DOTALL)


def code_spans(prose: str) -> list[str]:
    """Inline code spans of markdown prose; a span may wrap onto the next line (joined with a space)."""
    return [" ".join(m.group(2).split()) for m in CODE_SPAN.finditer(prose)]


# ---- docker compose commands ----------------------------------------------------------------------------------------

# Compose's global options that take a value, and per verb the options that do (the rest are switches).
GLOBAL_VALUE = {"-p", "--project-name", "-f", "--file", "--profile", "--project-directory", "--env-file", "--ansi",
                "--progress", "--parallel"}  # fmt: skip
VERB_VALUE = {
    "run": {"--entrypoint", "-e", "--env", "-u", "--user", "-w", "--workdir", "-l", "--label", "--name", "-v",
            "--volume", "-p", "--publish", "--cap-add", "--cap-drop", "--pull"},
    "exec": {"-u", "--user", "-e", "--env", "-w", "--workdir", "--index"},
    "logs": {"-n", "--tail", "--since", "--until", "--index"},
    "ps": {"--format", "--filter", "--status"},
    "config": {"--format", "-o", "--output", "--hash"},
    "up": {"--scale", "-t", "--timeout", "--wait-timeout", "--exit-code-from", "--attach", "--no-attach", "--pull"},
    "down": {"--rmi", "-t", "--timeout"},
    "stop": {"-t", "--timeout"},
    "restart": {"-t", "--timeout"},
    "build": {"--build-arg", "--progress", "--ssh", "--builder"},
}  # fmt: skip
# Verbs whose positional arguments are services; `run` and `exec` take one service, then a command.
SERVICE_VERBS = {"up", "ps", "logs", "pull", "build", "stop", "start", "restart", "rm", "kill", "create", "config",
                 "down", "top", "images", "pause", "unpause", "port", "run", "exec"}  # fmt: skip
SHELL_STOP = {"|", "||", "&&", ";", "#", ">", ">>", "2>&1"}
# A command ends at a backtick or `)`: the end of a code span inside a code block, or of a `$(...)`.
COMPOSE_CALL = re.compile(r"docker compose\s+([^`)]*)")


def named_services(command: str) -> list[str]:
    """The services a `docker compose ...` command line names (text after `docker compose`)."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        words = command.split()
    tokens: list[str] = []
    for word in words:
        if word in SHELL_STOP or word.startswith(("$(", "`")) or word.endswith(")"):
            break
        tokens.append(word)
    i = 0
    while i < len(tokens) and tokens[i].startswith("-"):
        i += 2 if tokens[i] in GLOBAL_VALUE else 1
    if i >= len(tokens) or tokens[i] not in SERVICE_VERBS:
        return []
    verb, rest = tokens[i], tokens[i + 1 :]
    takes_value = VERB_VALUE.get(verb, set())
    services: list[str] = []
    j = 0
    while j < len(rest):
        word = rest[j]
        if word.startswith("-"):
            j += 2 if word in takes_value and "=" not in word else 1
            continue
        services.append(word)
        if verb in {"run", "exec"} or (verb == "port" and services):
            break
        j += 1
    return services


def compose_commands(text: str, markdown: bool) -> Iterator[str]:
    """Every `docker compose ...` command in a page (code blocks and inline code) or in plain text (inline code)."""
    if markdown:
        commands, prose = blocks(text)
        pieces = [*commands, *code_spans(prose)]
    else:
        pieces = [" ".join(m.group(2).split()) for m in CODE_SPAN.finditer(text)]
    for piece in pieces:
        for match in COMPOSE_CALL.finditer(piece):
            yield match.group(1)


def alert_texts() -> Iterator[tuple[str, str]]:
    for path in sorted((REPO / "prometheus" / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                for key, value in (rule.get("annotations") or {}).items():
                    yield f"{path.name}:{rule.get('alert')}.{key}", str(value)


@pytest.fixture(scope="module")
def rendered(env_file: Path) -> dict[str, Any]:
    """Every profile's services at once, as the compose binary renders them."""
    result = compose(env_file, "config", "--format", "json", profiles=ALL_PROFILES)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def test_the_command_parser_finds_services() -> None:
    """The parser the next test relies on: flags, their values, profiles, `-a`, and where the command ends."""
    assert named_services("logs engine") == ["engine"]
    assert named_services("ps -a") == []
    assert named_services("--profile sim up -d sim gateway") == ["sim", "gateway"]
    assert named_services("-p x --profile gpu logs --tail 100 -f vllm | grep OOM") == ["vllm"]
    assert named_services("run --rm --no-deps --entrypoint hf vllm download x/y") == ["vllm"]
    assert named_services("exec -u 0 elasticsearch chown 1000:0 /x") == ["elasticsearch"]
    assert named_services('exec gateway python -c "import x; print(1)"') == ["gateway"]
    assert named_services("config --format json") == []
    assert list(compose_commands("Check `docker compose logs\nengine` first.", markdown=True)) == ["logs engine"]


def test_every_compose_command_names_a_real_service(rendered: dict[str, Any]) -> None:
    services = set(rendered["services"])
    wrong = []
    sources: list[tuple[str, str, bool]] = [(str(p.relative_to(REPO)), p.read_text(), True) for p in PAGES]
    sources += [(where, text, False) for where, text in alert_texts()]
    sources += [(str(p.relative_to(REPO)), p.read_text(), False) for p in sorted((REPO / "services").rglob("*.py"))]
    found = 0
    for where, text, markdown in sources:
        for command in compose_commands(text, markdown):
            for name in named_services(command):
                found += 1
                if name not in services:
                    wrong.append(f"{where}: `docker compose {command.strip()}` names {name!r}")
    assert found > 20, "the docs name services in many commands; the parser found almost none"
    assert not wrong, f"not compose services ({sorted(services)}):\n" + "\n".join(wrong)


# ---- .env variables -------------------------------------------------------------------------------------------------

UPPER_NAME = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")
# Read by compose itself, not interpolated into a service.


def mentioned_names() -> dict[str, set[str]]:
    """UPPER_CASE names inside code spans or code blocks of the docs -> the pages that mention them."""
    names: dict[str, set[str]] = {}
    for page in PAGES:
        commands, prose = blocks(page.read_text())
        for piece in [*commands, *code_spans(prose)]:
            for name in UPPER_NAME.findall(piece):
                names.setdefault(name, set()).add(page.name)
    return names


def sentinel(index: int, example: str) -> tuple[str, str]:
    """(a value of the same shape as .env.example's, the text compose renders it as) unique to ``index``."""
    if re.fullmatch(r"\d+", example):
        value = str(47100 + index)
        return value, value
    if re.fullmatch(r"\d+\.\d+", example):
        value = f"0.{47100 + index}"
        return value, value
    if re.fullmatch(r"\d+[kmg]", example):
        mib = 4700 + index
        return f"{mib}m", str(mib * 2**20)
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", example):
        return f"10.47.{index}.1", f"10.47.{index}.1"
    if example.startswith(("./", "/")):
        return f"./sentinel{index}x", f"sentinel{index}x"
    if example.startswith("http"):
        return f"http://sentinel{index}.example:1", f"http://sentinel{index}.example:1"
    return f"sentinel{index}x", f"sentinel{index}x"


def test_docs_name_env_variables() -> None:
    """The detection below: names such as `LLMWATCH_SLOW_MS` and `UI_BIND_ADDRESS=0.0.0.0` are found."""
    names = mentioned_names()
    env = parse_env_example()
    assert {"LLMWATCH_SLOW_MS", "UI_BIND_ADDRESS", "KIBANA_PUBLIC_BASE_URL", "WEBUI_ADMIN_EMAIL"} <= set(names)
    assert len(set(names) & set(env)) > 30


def test_every_env_variable_the_docs_mention_reaches_the_stack(tmp_path: Path) -> None:
    """Each .env.example variable the docs mention, set to a value of its own, shows up in the rendered config."""
    example = parse_env_example()
    mentioned = sorted((set(mentioned_names()) & set(example)) - COMPOSE_OWN)
    overrides = {name: sentinel(i, example[name]) for i, name in enumerate(mentioned)}
    lines = [line for line in filled_env_text().splitlines() if line.split("=", 1)[0] not in overrides]
    env = tmp_path / ".env"
    env.write_text("\n".join([*lines, *(f"{name}={value}" for name, (value, _) in overrides.items())]) + "\n")
    result = compose(env, "config", "--format", "json", profiles=ALL_PROFILES)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    lost = [
        name for name, (_, shown) in overrides.items() if not re.search(rf"(?<![\w.]){re.escape(shown)}(?![\w])", text)
    ]
    assert not lost, f"set in .env, these never reach a container: {lost}"


CONFIG_REFERENCE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?::[^}]*)?\}")


def mounted_files(service: dict[str, Any]) -> Iterator[Path]:
    for volume in service.get("volumes") or []:
        source = Path(str(volume.get("source", "")))
        if volume.get("type") == "bind" and source.is_relative_to(REPO) and source.exists():
            yield from ([source] if source.is_file() else (p for p in source.rglob("*") if p.is_file()))


# Read by a product's config with a default that compose never needs to change, documented for other deployments.
NOT_FOR_COMPOSE = {"ELASTICSEARCH_HOSTS": "Logstash's output; in compose always the `elasticsearch` service"}


def test_config_files_get_the_variables_the_docs_mention(rendered: dict[str, Any]) -> None:
    """A variable a product's mounted config reads as `${NAME}` or `${NAME:default}` (Logstash, Kibana, Grafana,
    Filebeat substitute these from their environment) and that the docs mention must be in that service's
    environment; otherwise setting it in .env does nothing, as LLMWATCH_SLOW_MS once did for Logstash. The llmwatch
    image's jobs (setup, kibana-setup) substitute in Python, step by step, and are covered by test_logs_setup."""
    mentioned = set(mentioned_names()) - set(NOT_FOR_COMPOSE)
    missing = []
    checked = 0
    for name, service in rendered["services"].items():
        if str(service.get("image", "")).startswith("llmwatch:"):
            continue
        environment = set(service.get("environment") or {})
        for path in mounted_files(service):
            try:
                text = path.read_text()
            except UnicodeDecodeError:
                continue
            for variable in set(CONFIG_REFERENCE.findall(text)) & mentioned:
                checked += 1
                if variable not in environment:
                    missing.append(f"{name}: {path.relative_to(REPO)} reads ${{{variable}}}")
    assert checked >= 5, "found almost no variable references in mounted configs"
    assert not missing, f"documented, read by a mounted config, but not passed to the container: {missing}"


# ---- markdown tables ------------------------------------------------------------------------------------------------


def table_rows(text: str) -> Iterator[tuple[int, str]]:
    fence = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fence = not fence
        elif not fence and line.lstrip().startswith("|"):
            yield number, line


def split_pipes(row: str) -> list[str]:
    """A GFM table row's cells: split on every `|` not escaped as `\\|`, code spans included (GFM splits first)."""
    inner = row.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return re.split(r"(?<!\\)\|", inner)


def test_the_pipe_check_catches_a_split_cell() -> None:
    assert len(split_pipes("| `--gpu a|b` | x |")) == 3
    assert len(split_pipes("| `--gpu a\\|b` | x |")) == 2


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_table_cell_is_split_by_a_pipe_in_code(page: Path) -> None:
    broken = []
    for number, row in table_rows(page.read_text()):
        for span in CODE_SPAN.finditer(row):
            if re.search(r"(?<!\\)\|", span.group(2)):
                broken.append(f"line {number}: {span.group(0)} (write \\| inside the span)")
    assert not broken, f"{page.name}: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_table_rows_have_the_header_cell_count(page: Path) -> None:
    wrong = []
    header: int | None = None
    previous = -1
    for number, row in table_rows(page.read_text()):
        if number != previous + 1:
            header = None
        cells = len(split_pipes(row))
        header = cells if header is None else header
        if cells != header:
            wrong.append(f"line {number}: {cells} cells, header has {header}")
        previous = number
    assert not wrong, f"{page.name}: {wrong}"


# ---- flags in docs tables -------------------------------------------------------------------------------------------

# Page -> the commands whose --help its flag tables describe.
FLAG_TABLES: dict[str, list[list[str]]] = {
    "gateway.md": [[sys.executable, "-m", "llmwatch.cli", "gateway", "--help"]],
    "alerting.md": [[sys.executable, "-m", "llmwatch.cli", "relay", "--help"]],
    "doctor.md": [[sys.executable, "-m", "llmwatch.cli", "doctor", "--help"]],
    "benchmark.md": [[sys.executable, "bench/overhead.py", "--help"]],
    # Locust's own --help runs before it loads a locustfile, so it never lists a locustfile's arguments: build the
    # parser as Locust does (get_parser fires init_command_line_parser) after importing the locustfile.
    "loadtest.md": [
        [sys.executable, "-c", f"import {module}, locust.argument_parser as a; a.get_parser().print_help()"]
        for module in ("loadtest.locustfile", "loadtest.sweep")
    ],
}
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*(?:\.[a-z0-9-]+)?")


def help_flags(commands: list[list[str]]) -> set[str]:
    flags: set[str] = set()
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO, check=False)
        assert done.returncode == 0, f"{' '.join(command)}: {done.stderr[-2000:]}"
        flags |= set(FLAG.findall(done.stdout))
    return flags


def flag_table_flags(page: Path) -> set[str]:
    """Flags in the first column of tables whose header's first cell starts with "Flag"."""
    flags: set[str] = set()
    in_flag_table = False
    previous = -1
    for number, row in table_rows(page.read_text()):
        first = split_pipes(row)[0].strip()
        if number != previous + 1:
            in_flag_table = first.lower().startswith("flag")
        elif in_flag_table:
            for span in CODE_SPAN.finditer(first):
                flags |= set(FLAG.findall(span.group(2)))
        previous = number
    return flags


def test_every_page_with_a_flag_table_has_its_command() -> None:
    with_tables = {page.name for page in DOCS if flag_table_flags(page)}
    assert with_tables <= set(FLAG_TABLES), (
        f"say which command's --help these pages' flag tables describe: {with_tables}"
    )


@pytest.mark.parametrize("page", sorted(FLAG_TABLES))
def test_every_flag_in_a_docs_table_is_in_its_help(page: str) -> None:
    documented = flag_table_flags(REPO / "docs" / page)
    assert documented, f"docs/{page}: no flag table found"
    unknown = sorted(documented - help_flags(FLAG_TABLES[page]))
    assert not unknown, f"docs/{page} documents flags its command does not have: {unknown}"


def test_llmwatch_demo_offers_only_ports_of_what_it_starts() -> None:
    """The demo starts no node-exporter, so it has no --ports.node-exporter flag."""
    flags = help_flags([[sys.executable, "-m", "llmwatch.cli", "demo", "--help"]])
    ports = {flag for flag in flags if flag.startswith("--ports.")}
    assert ports == {"--ports.engine", "--ports.gateway", "--ports.relay", "--ports.prometheus", "--ports.alertmanager"}


# ---- links and numbers ----------------------------------------------------------------------------------------------

LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    _, prose = blocks(page.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.*)$", prose, re.MULTILINE)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_and_anchors_resolve(page: Path) -> None:
    _, prose = blocks(page.read_text())
    broken = []
    for target in LINK.findall(prose):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        missing_anchor = bool(anchor) and file.suffix == ".md" and file.exists() and anchor not in anchors(file)
        if not file.exists() or missing_anchor:
            broken.append(target)
    assert not broken, f"{page.name}: {broken}"


def test_readme_benchmark_numbers_are_results_md_numbers() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## What the gateway costs", 1)[1].split("\n## ", 1)[0]
    results = (REPO / "bench" / "RESULTS.md").read_text()
    numbers = re.findall(r"[+−-]\d+\.\d+ ms|\d+\.\d+×", section.split("The route allow-list")[0])
    assert len(numbers) >= 6, numbers
    missing = []
    for number in numbers:
        plain = number.replace("−", "-").replace("×", "x").removesuffix(" ms")
        if plain not in results:
            missing.append(number)
    assert not missing, f"README quotes numbers RESULTS.md does not have: {missing}"
    assert "quiet run" not in section, "RESULTS.md marks the 16- and 64-stream rows as disturbed"


# ---- docs/operations.md against the compose file --------------------------------------------------------------------

OPERATIONS = REPO / "docs" / "operations.md"
SIZE = re.compile(r"(\d+(?:\.\d+)?) (GiB|MiB)")


def section(page: Path, heading: str) -> str:
    text = page.read_text()
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def first_column_service(row: str) -> str | None:
    match = re.match(r"`([a-z-]+)`", split_pipes(row)[0].strip())
    return match.group(1) if match else None


def test_operations_memory_table_is_what_compose_renders(rendered: dict[str, Any], env_file: Path) -> None:
    """Each row's limit is the service's mem_limit as the compose binary renders .env.example; the sums too."""
    limits = {name: int(s["mem_limit"]) for name, s in rendered["services"].items() if s.get("mem_limit")}
    text = section(OPERATIONS, "### Memory")
    documented: dict[str, int] = {}
    for _, row in table_rows(text):
        service, cells = first_column_service(row), split_pipes(row)
        size = SIZE.search(cells[1]) if len(cells) > 1 else None
        if service and size:
            documented[service] = int(float(size.group(1)) * (2**30 if size.group(2) == "GiB" else 2**20))
    assert documented == limits, "the memory table differs from `docker compose config`"
    for profile in ALL_PROFILES:
        result = compose(env_file, "config", "--format", "json", profiles=(profile,))
        services = json.loads(result.stdout)["services"]
        total = sum(int(s["mem_limit"]) for s in services.values() if s.get("mem_limit")) / 2**30
        assert re.search(rf"\b{total:.1f} GiB\*{{0,2}} for `{profile}`", text), f"{profile}: {total:.1f} GiB"


def test_operations_healthcheck_table_covers_every_healthcheck(rendered: dict[str, Any]) -> None:
    """One row per service with a healthcheck, naming the port it probes and its start_period."""
    checks = {name: s["healthcheck"] for name, s in rendered["services"].items() if s.get("healthcheck")}
    rows = {}
    for _, row in table_rows(section(OPERATIONS, "## Unhealthy containers")):
        service = first_column_service(row)
        if service:
            rows[service] = split_pipes(row)
    assert set(rows) == set(checks), "the table should list exactly the services with a healthcheck"
    for name, check in checks.items():
        probe = " ".join(check["test"])
        port = re.search(r"127\.0\.0\.1[:/](\d+)", probe)
        assert port and f":{port.group(1)}" in rows[name][1], f"{name}: the table should name port {port}"
        assert seconds(rows[name][2].strip()) == seconds(check["start_period"]), f"{name}: start_period"


@pytest.mark.parametrize("command", ["gateway", "sim", "relay", "demo", "doctor"])
def test_readme_env_twin_rule_holds(command: str) -> None:
    """README: every flag's twin is LLMWATCH_<COMMAND>_ + the flag in upper case (`--help` lists the flags only)."""
    module = importlib.import_module(SUBCOMMANDS[command][0])
    classes = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, BaseSettings)]
    prefixes = {cls.model_config.get("env_prefix") for cls in classes if cls is not BaseSettings}
    assert prefixes == {f"LLMWATCH_{command.upper()}_"}
    assert "LLMWATCH_GATEWAY_READ_TIMEOUT=30" in (REPO / "README.md").read_text()


def test_readme_example_twin_sets_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMWATCH_GATEWAY_READ_TIMEOUT", "30")
    assert GatewaySettings().read_timeout == 30
