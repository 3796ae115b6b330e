"""Validate the raw TOML of an evidence plan, naming the file and line of every mistake; stdlib-only.

tomllib reports line numbers for syntax errors only, so we locate a table header or `key =` line ourselves.
"""

from __future__ import annotations

import math
import re
import string
from pathlib import Path
from typing import Any, Collection, Iterable, Mapping

from harness import UserError


class PlanError(UserError, ValueError):
    """The plan file is invalid; the message names the file, the line and the fix."""


_HEADER_RE = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]\]?")
_KEY_RE = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")
_STRING_RE = re.compile(r"\"[^\"]*\"?|'[^']*'?")  # an unclosed string runs to the end of the line
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class Lines:
    """Map (table, key) to line numbers in the raw TOML text."""

    def __init__(self, text: str) -> None:
        self.tables: dict[Any, int] = {}
        self.keys: dict[tuple[Any, str], int] = {}
        current: Any = None
        counts: dict[str, int] = {}
        depth = 0  # bracket depth of a multi-line array value
        for number, raw in enumerate(text.splitlines(), start=1):
            # Strings emptied first, so brackets and '#' inside them do not count.
            line = _STRING_RE.sub('""', raw).partition("#")[0]
            header = _HEADER_RE.match(line) if depth == 0 else None
            if header:
                current = name = header.group(2)
                if header.group(1) == "[[":
                    counts[name] = counts.get(name, -1) + 1
                    current = (name, counts[name])
                self.tables.setdefault(current, number)
                continue
            key = _KEY_RE.match(line) if depth == 0 else None
            if key:
                self.keys.setdefault((current, key.group(1)), number)
            depth = max(0, depth + line.count("[") - line.count("]"))

    def of(self, table: Any, key: str | None = None) -> int:
        return self.keys.get((table, key)) or self.tables.get(table, 1)


class Checker:
    """Type and value checks whose PlanError names the line of the table or key at fault."""

    def __init__(self, path: Path, lines: Lines) -> None:
        self.path = path
        self.lines = lines

    def fail(self, table: Any, key: str | None, message: str) -> PlanError:
        return PlanError(f"{self.path}:{self.lines.of(table, key)}: {message}")

    def table(self, data: Mapping[str, Any], name: str, allowed: set[str], required: Collection[str] = ()
              ) -> dict[str, Any]:
        """The table `[name]` ({} when absent), its keys checked."""
        value = data.get(name, {})
        if not isinstance(value, dict):
            raise self.fail(None, name, f"{name!r} must be a table [{name}]")
        self.keys(name, f"[{name}]", value, allowed, required)
        return value

    def keys(self, table_id: Any, label: str, data: Mapping[str, Any], allowed: set[str],
             required: Collection[str]) -> None:
        for key in data:
            if key not in allowed:
                raise self.fail(table_id, key, f"unknown key {key!r} in {label}; allowed: {sorted(allowed)}")
        for key in sorted(required):
            if key not in data:
                raise self.fail(table_id, None, f"missing key {key!r} in {label}")

    def string(self, table_id: Any, data: Mapping[str, Any], key: str) -> str:
        value = data[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(table_id, key, f"{key!r} must be a non-empty string, got {value!r}")
        return value

    def number(self, table_id: Any, data: Mapping[str, Any], key: str, *, positive: bool = False) -> float:
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(table_id, key, f"{key!r} must be a number, got {value!r}")
        if positive and value <= 0:
            raise self.fail(table_id, key, f"{key!r} must be > 0, got {value!r}")
        return float(value)

    def integer(self, table_id: Any, data: Mapping[str, Any], key: str, minimum: int) -> int:
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(table_id, key, f"{key!r} must be an integer >= {minimum}, got {value!r}")
        return value

    def strings(self, table_id: Any, data: Mapping[str, Any], key: str) -> tuple[str, ...]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(table_id, key, f"{key!r} must be a list of non-empty strings, got {value!r}")
        return tuple(value)

    def lists_of_strings(self, table_id: Any, data: Mapping[str, Any], key: str) -> tuple[tuple[str, ...], ...]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, list) and v and all(isinstance(a, str) and a for a in v)
                                                  for v in value):
            raise self.fail(table_id, key, f"{key!r} must be a list of non-empty lists of strings, got {value!r}")
        return tuple(tuple(v) for v in value)

    def templates(self, table_id: Any, key: str, texts: Iterable[str], allowed: tuple[str, ...]) -> None:
        """Every `{placeholder}` in `texts` is one of `allowed`."""
        for text in texts:
            try:
                unknown = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None and f not in allowed]
            except ValueError as exc:
                raise self.fail(table_id, key, f"bad placeholder in {text!r}: {exc}") from exc
            if unknown:
                raise self.fail(table_id, key,
                                f"unknown placeholder {{{unknown[0]}}} in {text!r}; allowed: {list(allowed)}")

    def relative_paths(self, table_id: Any, data: Mapping[str, Any], key: str) -> tuple[str, ...]:
        paths = self.strings(table_id, data, key)
        for value in paths:
            if Path(value).is_absolute() or ".." in Path(value).parts:
                raise self.fail(table_id, key, f"{key!r}: {value!r} must be a relative path inside the project")
        return paths

    def name(self, table_id: Any, key: str, value: str) -> None:
        if not _NAME_RE.match(value):
            raise self.fail(table_id, key, f"{key} {value!r} may hold only letters, digits, '_', '.', '-'")
