"""Compose's variable interpolation, for renderings of compose-file text outside compose (the engine sizing).

The rules of compose-spec's interpolation: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
`${VAR:?error}`, `${VAR?error}`. tests/unit/test_compose.py holds the result equal to the compose binary's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|(?P<plain>[A-Za-z_][A-Za-z0-9_]*)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})"
)


class RenderError(ValueError):
    """A required variable is unset, as compose would refuse it."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Expand ``text`` the way compose expands a compose file against .env and the environment."""

    def expand(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["plain"] or match["name"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(name)
        if op in (":-", ":?") and value == "":
            value = None
        if value is not None:
            return value
        if op is not None and op.endswith("?"):
            raise RenderError(f"{name} is required: {arg}")
        return arg if op is not None and op.endswith("-") else ""

    return _VARIABLE.sub(expand, text)
