"""Reads typed values out of parsed TOML tables, logging every problem instead of stopping.

Each getter of `TableReader` returns a value of the right type even when the input is wrong (the
default, or a placeholder such as ``""``), so one pass reports every mistake in a file. The
`IssueLog` marks each key path it reports as *broken*; later issues at or under a broken path are
dropped, so one mistake is reported once and validation never complains about a placeholder.
"""

from __future__ import annotations

import datetime
import difflib
from collections.abc import Mapping, Set
from enum import StrEnum
from typing import TypeVar

from gunyah_net.config.issues import ConfigIssue, KeyPath, render_key, show_value
from gunyah_net.config.locator import line_of
from gunyah_net.config.size import SIZE_HINT, parse_size

E = TypeVar("E", bound=StrEnum)


class IssueLog:
    """The issues found so far in one file, and the key paths they are about."""

    def __init__(self, file: str, lines: Mapping[KeyPath, int], broken: Set[KeyPath] = frozenset()):
        self.file = file
        self.lines = lines
        self.issues: list[ConfigIssue] = []
        self.broken: set[KeyPath] = set(broken)

    def add(self, path: KeyPath, message: str) -> None:
        """Records ``message`` about ``path`` unless an issue already covers it or an ancestor."""
        if not self.ok(path):
            return
        self.issues.append(ConfigIssue(self.file, self.line(path), render_key(path), message))
        if path:
            self.broken.add(path)

    def ok(self, path: KeyPath) -> bool:
        """Returns True if no issue was recorded at ``path`` or at any ancestor of it."""
        return not any(path[:end] in self.broken for end in range(1, len(path) + 1))

    def line(self, path: KeyPath) -> int | None:
        """Returns the line of ``path``, or of its nearest enclosing table."""
        return line_of(self.lines, path)


def describe(value: object) -> str:
    """Returns the TOML type of ``value`` with an article, and the value when it is short."""
    match value:
        case bool():
            return f"a boolean ({show_value(value)})"
        case int():
            return f"an integer ({show_value(value)})"
        case float():
            return f"a float ({show_value(value)})"
        case str():
            return f"a string ({show_value(value)})"
        case list():
            return "an array"
        case dict():
            return "a table"
        case datetime.datetime():
            return "a date-time"
        case datetime.date():
            return "a date"
        case datetime.time():
            return "a time"
        case _:
            return type(value).__name__


def unknown_key_message(key: str, allowed: tuple[str, ...]) -> str:
    """Returns "unknown key" with the closest allowed key as a hint, else the allowed keys."""
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean '{close[0]}'?"
    return f"unknown key; the keys allowed here are {', '.join(allowed)}"


class _Missing:
    """The value of a key that the table does not have."""


_MISSING = _Missing()


class TableReader:
    """Typed access to one TOML table at ``path``; reports its unknown keys when created."""

    def __init__(self, log: IssueLog, path: KeyPath, table: dict, allowed: tuple[str, ...]):
        self.log = log
        self.path = path
        self._table = table
        for key in table:
            if key not in allowed:
                log.add(path + (key,), unknown_key_message(key, allowed))

    def _fetch(self, key: str, required: bool) -> object:
        if key in self._table:
            return self._table[key]
        if required:
            self.log.add(self.path + (key,), "required key is missing")
        return _MISSING

    def _wrong(self, key: str | int, expected: str, value: object) -> None:
        self.log.add(self.path + (key,), f"expected {expected}, got {describe(value)}")

    def string(self, key: str, default: str | None = None) -> str:
        """Returns the string at ``key``; a missing key is an issue unless ``default`` is given."""
        value = self._fetch(key, required=default is None)
        match value:
            case str():
                return value
            case _Missing():
                return default or ""
        self._wrong(key, "a string", value)
        return default or ""

    def integer(self, key: str, default: int | None = None) -> int:
        """Returns the integer at ``key``; a missing key is an issue unless ``default`` is given."""
        value = self._fetch(key, required=default is None)
        match value:
            case bool():
                pass
            case int():
                return value
            case _Missing():
                return default or 0
        self._wrong(key, "an integer", value)
        return default or 0

    def boolean(self, key: str, default: bool) -> bool:
        """Returns the boolean at ``key``, or ``default`` if the key is absent or not a boolean."""
        value = self._fetch(key, required=False)
        match value:
            case bool():
                return value
            case _Missing():
                return default
        self._wrong(key, "a boolean (true or false)", value)
        return default

    def optional_integer(self, key: str) -> int | None:
        """Returns the integer at ``key``, or None if the key is absent (or not an integer)."""
        return self.integer(key, default=0) if key in self._table else None

    def size(self, key: str, default: int | None = None) -> int:
        """Returns the byte size at ``key`` (integer or "16MiB" string), see `parse_size`."""
        value = self._fetch(key, required=default is None)
        match value:
            case _Missing():
                return default or 0
            case int() | str() if not isinstance(value, bool):
                try:
                    return parse_size(value)
                except ValueError as error:
                    self.log.add(self.path + (key,), str(error))
                    return default or 0
        self._wrong(key, f"a size ({SIZE_HINT})", value)
        return default or 0

    def choice(self, key: str, options: type[E], default: E) -> E:
        """Returns the member of ``options`` named by the string at ``key``, else ``default``."""
        value = self._fetch(key, required=False)
        names = [member.value for member in options]
        match value:
            case _Missing():
                return default
            case str() if value in names:
                return options(value)
            case str():
                spelled = ", ".join(f'"{name}"' for name in names)
                close = difflib.get_close_matches(value, names, n=1, cutoff=0.6)
                hint = f'; did you mean "{close[0]}"?' if close else ""
                self.log.add(self.path + (key,), f"{show_value(value)} is not one of {spelled}{hint}")
                return default
        self._wrong(key, f"one of {', '.join(names)} as a string", value)
        return default

    def strings(self, key: str) -> tuple[str, ...]:
        """Returns the required array of strings at ``key``; a bad element becomes ``""``."""
        value = self._fetch(key, required=True)
        match value:
            case _Missing():
                return ()
            case list():
                return tuple(self._element_string(key, i, item) for i, item in enumerate(value))
        self._wrong(key, "an array of strings", value)
        return ()

    def _element_string(self, key: str, index: int, item: object) -> str:
        if isinstance(item, str):
            return item
        self.log.add(self.path + (key, index), f"expected a string, got {describe(item)}")
        return ""

    def table(self, key: str, allowed: tuple[str, ...]) -> TableReader:
        """Returns a reader for the required table at ``key`` (an empty one if it is bad)."""
        value = self._fetch(key, required=False)
        match value:
            case dict():
                return TableReader(self.log, self.path + (key,), value, allowed)
            case _Missing():
                self.log.add(self.path + (key,), f"required table [{key}] is missing")
            case _:
                self._wrong(key, f"a table, written [{key}]", value)
        return TableReader(self.log, self.path + (key,), {}, allowed)

    def tables(self, key: str, allowed: tuple[str, ...]) -> list[TableReader]:
        """Returns readers for the array of tables at ``key`` (``[[key]]``), one per element.

        An element that is not a table still gets a (silent, empty) reader, so positions in the
        model match positions in the file.
        """
        value = self._fetch(key, required=False)
        match value:
            case _Missing():
                return []
            case list():
                return [self._element_table(key, i, item, allowed) for i, item in enumerate(value)]
            case dict():
                message = f"expected an array of tables, written [[{key}]], got a table ([{key}])"
                self.log.add(self.path + (key,), message)
            case _:
                self._wrong(key, f"an array of tables, written [[{key}]]", value)
        return []

    def _element_table(
        self, key: str, index: int, item: object, allowed: tuple[str, ...]
    ) -> TableReader:
        path = self.path + (key, index)
        if not isinstance(item, dict):
            self.log.add(path, f"expected a table, got {describe(item)}")
            item = {}
        return TableReader(self.log, path, item, allowed)
