"""Shared pieces for each subcommand's pydantic-settings ``Settings``: one flag, one env twin."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_settings import NoDecode, SettingsConfigDict


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
        cli_exit_on_error=True,
        extra="ignore",
    )
