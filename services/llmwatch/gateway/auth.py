"""API keys: a file of `name=key` lines; the name goes into the access log, the key never does.

A line may end with flags after the key, separated by whitespace. One flag exists: `forward-user` marks a trusted
forwarder (Open WebUI's key), the only kind of key whose requests may name their user with X-OpenWebUI-User-*.
Every other request is logged under its key's name, whatever headers it sends.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path

FORWARD_USER = "forward-user"
FLAGS = frozenset({FORWARD_USER})


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    forward_user: bool = False  # a trusted forwarder: may name the user it sends requests for


def load_api_keys(path: Path) -> dict[str, ApiKey]:
    return parse_api_keys(path.read_text(), str(path))


def parse_api_keys(text: str, path: str) -> dict[str, ApiKey]:
    """Map key -> ApiKey. Blank lines and `#` comments are skipped; a malformed line is an error naming ``path``."""
    keys: dict[str, ApiKey] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, rest = line.partition("=")
        parts = rest.split()
        if not sep or not name.strip() or not parts:
            raise ValueError(f"{path}:{number}: expected `name=key`, optionally followed by `{FORWARD_USER}`")
        key, flags = parts[0], parts[1:]
        unknown = set(flags) - FLAGS
        if unknown:
            raise ValueError(f"{path}:{number}: unknown flag {sorted(unknown)[0]!r}; the one flag is `{FORWARD_USER}`")
        keys[key] = ApiKey(name.strip(), FORWARD_USER in flags)
    if not keys:
        raise ValueError(f"{path}: no keys found; add `name=key` lines or drop --api-keys")
    return keys


class KeyRing:
    """Checks bearer tokens in constant time per key."""

    def __init__(self, keys: dict[str, ApiKey]) -> None:
        self._keys = [(key.encode(), api_key) for key, api_key in keys.items()]

    def find(self, authorization: bytes | None) -> ApiKey | None:
        if not authorization or authorization[:7].lower() != b"bearer ":
            return None
        token = authorization[7:].strip()
        found = None
        for key, api_key in self._keys:
            if hmac.compare_digest(key, token):
                found = api_key
        return found
