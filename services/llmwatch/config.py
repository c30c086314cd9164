"""Shared pieces for each subcommand's pydantic-settings ``Settings``: one flag, one env twin."""

from __future__ import annotations

import sys
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, ValidationError
from pydantic_settings import BaseSettings, CliApp, NoDecode, SettingsConfigDict, SettingsError

S = TypeVar("S", bound=BaseSettings)


def _split_commas(value: Any) -> Any:
    # Env vars carry lists as "a,b"; the CLI repeats the flag. Both end up a list.
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_commas)]


def settings_config(env_prefix: str, prog: str) -> SettingsConfigDict:
    """The config every subcommand shares: kebab-case flags, and an env twin under ``env_prefix``."""
    return SettingsConfigDict(
        env_prefix=env_prefix,
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_prog_name=prog,
        # Parse errors come back as SettingsError, so parse_cli can say them in one line.
        cli_exit_on_error=False,
        extra="ignore",
    )


def explain(
    exc: ValidationError, values: bool = True, flags: str = "", secret: frozenset[str] = frozenset()
) -> list[str]:
    """One line per problem: where, the value given (unless ``values`` is off or the field is ``secret``), and
    what is allowed. With ``flags`` (an env prefix) the place is named as a command-line flag and its env twin.
    """
    lines = []
    for error in exc.errors():
        parts = [str(part) for part in error["loc"]]
        place = ".".join(parts) or "body"
        if flags:
            place = "--" + ".".join(part.replace("_", "-") for part in parts)
        shown = values and parts and parts[0] not in secret and not isinstance(error.get("input"), dict)
        given = f"={error['input']!r}" if shown else ""
        twin = f" (env {flags}{'__'.join(parts).upper()})" if flags else ""
        lines.append(f"{place}{given}: {error['msg']}{twin}")
    return lines


def parse_cli(cls: type[S], argv: list[str]) -> S:
    """``cls`` from flags and env; bad input is one line a problem on stderr naming the flag, then exit status 2."""
    config = cls.model_config
    try:
        return CliApp.run(cls, cli_args=argv)
    except ValidationError as exc:
        # Secret fields (webhook URLs carry tokens) are never echoed; other values are, to say what was wrong.
        secret = frozenset(name for name, f in cls.model_fields.items() if "Secret" in str(f.annotation))
        problems = explain(exc, flags=config.get("env_prefix", ""), secret=secret)
    except SettingsError as exc:
        problems = [str(exc).removeprefix("error parsing CLI: ") + "; see --help"]
    prog = config.get("cli_prog_name") or cls.__name__
    for problem in problems:
        sys.stderr.write(f"{prog}: {problem}\n")
    raise SystemExit(2)
