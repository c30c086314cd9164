"""Rison decoding, as Kibana reads the `_g` / `_a` state in its URLs (no maintained rison package is on PyPI).

Follows the grammar of Kibana's `@kbn/rison` (src/platform/packages/shared/kbn-rison/kbn_rison.ts, from rison-node):
`(k:v,...)` objects, `!(v,...)` arrays, `!t` `!f` `!n`, `'...'` strings with `!!` and `!'` the only escapes, JSON
numbers, and bare ids made of any character but space and `'!:(),*@$` (and not starting with `-` or a digit). No
whitespace is skipped and anything else is an error, as in Kibana.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

_NOT_ID_CHAR = " '!:(),*@$"
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_ID = re.compile(r"[^-0-9" + re.escape(_NOT_ID_CHAR) + r"][^" + re.escape(_NOT_ID_CHAR) + r"]*")


T = TypeVar("T")


class RisonError(ValueError):
    """The text is not rison; the message says where."""


def decode(text: str) -> Any:
    value, end = _value(text, 0)
    if end != len(text):
        raise RisonError(f"extra characters at {end}: {text[end:]!r}")
    return value


def _value(text: str, i: int) -> tuple[Any, int]:
    if i >= len(text):
        raise RisonError("unexpected end of input")
    c = text[i]
    if c == "(":
        return _object(text, i + 1)
    if c == "'":
        return _string(text, i + 1)
    if c == "!":
        word = text[i + 1 : i + 2]
        if word == "(":
            return _array(text, i + 2)
        if word in ("t", "f", "n"):
            return {"t": True, "f": False, "n": None}[word], i + 2
        raise RisonError(f"unknown literal !{word} at {i}")
    if match := _NUMBER.match(text, i):
        number = match.group()
        return (float(number) if any(ch in number for ch in ".eE") else int(number)), match.end()
    if match := _ID.match(text, i):
        return match.group(), match.end()
    raise RisonError(f"invalid character {c!r} at {i}")


def _string(text: str, i: int) -> tuple[str, int]:
    out: list[str] = []
    while i < len(text):
        c = text[i]
        if c == "'":
            return "".join(out), i + 1
        if c == "!":
            if text[i + 1 : i + 2] not in ("!", "'"):
                raise RisonError(f"invalid string escape !{text[i + 1 : i + 2]} at {i}")
            c, i = text[i + 1], i + 1
        out.append(c)
        i += 1
    raise RisonError("unmatched ' in a string")


def _array(text: str, i: int) -> tuple[list[Any], int]:
    return _sequence(text, i, _value, "an array")


def _object(text: str, i: int) -> tuple[dict[str, Any], int]:
    pairs, i = _sequence(text, i, _pair, "an object")
    return dict(pairs), i


def _pair(text: str, i: int) -> tuple[tuple[str, Any], int]:
    key, i = _value(text, i)
    if not isinstance(key, str) or text[i : i + 1] != ":":
        raise RisonError(f"object key {key!r} without : at {i}")
    value, i = _value(text, i + 1)
    return (key, value), i


def _sequence(text: str, i: int, item: Callable[[str, int], tuple[T, int]], what: str) -> tuple[list[T], int]:
    """Items separated by `,` up to the closing `)`."""
    items: list[T] = []
    while text[i : i + 1] != ")":
        if items:
            if text[i : i + 1] != ",":
                raise RisonError(f"missing , in {what} at {i}")
            i += 1
        value, i = item(text, i)
        items.append(value)
    return items, i + 1
