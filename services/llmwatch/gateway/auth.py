"""API keys: a file of `name=key` lines; the name goes into the access log, the key never does."""

from __future__ import annotations

import hmac
from pathlib import Path


def load_api_keys(path: Path) -> dict[str, str]:
    """Map key -> name. Blank lines and `#` comments are skipped; a malformed line is an error."""
    keys: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, key = line.partition("=")
        if not sep or not name.strip() or not key.strip():
            raise ValueError(f"{path}:{number}: expected `name=key`")
        keys[key.strip()] = name.strip()
    if not keys:
        raise ValueError(f"{path}: no keys found; add `name=key` lines or drop --api-keys")
    return keys


class KeyRing:
    """Checks bearer tokens in constant time per key."""

    def __init__(self, keys: dict[str, str]) -> None:
        self._keys = [(key.encode(), name) for key, name in keys.items()]

    def name_for(self, authorization: bytes | None) -> str | None:
        if not authorization or authorization[:7].lower() != b"bearer ":
            return None
        token = authorization[7:].strip()
        found = None
        for key, name in self._keys:
            if hmac.compare_digest(key, token):
                found = name
        return found
