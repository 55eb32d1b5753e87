"""Finds the line on which each key path of a TOML document is written.

tomllib returns plain dicts with no positions, so this module scans the source text once more and
records, for every key path it meets, the 1-based line of its first character:

- table headers ``[topology]`` and array-of-tables headers ``[[vm]]`` (the n-th ``[[vm]]`` is
  ``vm[n]``; the first one also locates ``vm`` itself);
- ``key = value`` lines, dotted keys (``a.b = 1`` locates ``a.b`` and ``a``) and quoted keys;
- the keys of inline tables and the elements of arrays, even when they span several lines.

Strings and comments are skipped correctly, so text inside a multi-line string never looks like a
key. The scanner is meant for documents tomllib accepted, but it is total: on any input it stops
without raising, and paths it could not reach fall back to their enclosing table (`line_of`).
"""

from __future__ import annotations

from collections.abc import Callable

import re
from collections.abc import Mapping

from gunyah_net.config.issues import KeyPath

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\", "e": "\x1b"}
_HEX_LEN = {"u": 4, "U": 8, "x": 2}


def locate_keys(text: str) -> dict[KeyPath, int]:
    """Returns the line of every key path written in ``text``; the root path ``()`` is line 1."""
    scanner = _Scanner(text)
    try:
        scanner.scan()
    except RecursionError:
        pass  # absurdly deep nesting: deeper paths fall back to their enclosing table's line
    return scanner.lines


def line_of(lines: Mapping[KeyPath, int], path: KeyPath) -> int | None:
    """Returns the line of ``path``, else of its nearest located ancestor; None if none is."""
    while path not in lines:
        if not path:
            return None
        path = path[:-1]
    return lines[path]


class _Scanner:
    """One pass over a TOML document, recording key-path lines in ``lines``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.lines: dict[KeyPath, int] = {(): 1}
        self._aot_counts: dict[KeyPath, int] = {}
        self._table: KeyPath = ()

    # --- low-level cursor -------------------------------------------------------------------

    def _at(self, chars: str) -> bool:
        return self.pos < len(self.text) and self.text[self.pos] in chars

    def _starts(self, prefix: str) -> bool:
        return self.text.startswith(prefix, self.pos)

    def _advance(self, n: int = 1) -> None:
        self.line += self.text.count("\n", self.pos, self.pos + n)
        self.pos = min(self.pos + n, len(self.text))

    def _skip_blank(self) -> None:
        while self._at(" \t"):
            self._advance()

    def _skip_comment(self) -> None:
        end = self.text.find("\n", self.pos)
        self._advance((len(self.text) if end < 0 else end) - self.pos)

    def _skip_space_and_comments(self) -> None:
        while True:
            while self._at(" \t\r\n"):
                self._advance()
            if not self._at("#"):
                return
            self._skip_comment()

    # --- document structure -----------------------------------------------------------------

    def scan(self) -> None:
        """Walks the whole document."""
        while self.pos < len(self.text):
            before = self.pos
            self._skip_blank()
            if self._at("#"):
                self._skip_comment()
            elif self._at("\r\n"):
                self._advance()
            elif self._starts("[["):
                self._header(array=True)
            elif self._at("["):
                self._header(array=False)
            elif self.pos < len(self.text):
                self._key_value(self._table)
            if self.pos == before:
                self._advance()  # never stall on text tomllib would have refused

    def _header(self, array: bool) -> None:
        line = self.line
        self._advance(2 if array else 1)
        parts = self._key()
        self._skip_blank()
        if self._starts("]]" if array else "]"):
            self._advance(2 if array else 1)
        if parts:
            self._table = self._resolve_header(parts, array, line)

    def _resolve_header(self, parts: list[str], array: bool, line: int) -> KeyPath:
        """Turns header parts into a concrete path, indexing arrays of tables by their count."""
        path: KeyPath = ()
        for i, part in enumerate(parts):
            path += (part,)
            last = i == len(parts) - 1
            if last and array:
                count = self._aot_counts.get(path, 0)
                self._aot_counts[path] = count + 1
                self.lines.setdefault(path, line)
                path += (count,)
            elif path in self._aot_counts:
                path += (self._aot_counts[path] - 1,)
            if last:
                self.lines[path] = line
            else:
                self.lines.setdefault(path, line)
        return path

    def _key_value(self, table: KeyPath) -> None:
        line = self.line
        parts = self._key()
        if not parts:
            return
        path = table
        for part in parts[:-1]:
            path += (part,)
            self.lines.setdefault(path, line)
        path += (parts[-1],)
        self.lines[path] = line
        self._skip_blank()
        if self._at("="):
            self._advance()
            self._skip_blank()
            self._value(path)

    def _key(self) -> list[str]:
        """Reads a possibly dotted key; returns its decoded parts (empty if there is no key)."""
        parts: list[str] = []
        while True:
            self._skip_blank()
            part = self._key_part()
            if part is None:
                return parts
            parts.append(part)
            self._skip_blank()
            if not self._at("."):
                return parts
            self._advance()

    def _key_part(self) -> str | None:
        if self._at('"'):
            return self._basic_string()
        if self._at("'"):
            return self._literal_string()
        match = _BARE.match(self.text, self.pos)
        if match is None:
            return None
        self._advance(match.end() - self.pos)
        return match.group()

    # --- values -----------------------------------------------------------------------------

    def _value(self, path: KeyPath) -> None:
        if self._starts('"""') or self._starts("'''"):
            self._multiline_string(self.text[self.pos] * 3)
        elif self._at('"'):
            self._basic_string()
        elif self._at("'"):
            self._literal_string()
        elif self._at("["):
            self._array(path)
        elif self._at("{"):
            self._inline_table(path)
        else:
            while self.pos < len(self.text) and not self._at(",]}\n#"):
                self._advance()

    def _array(self, path: KeyPath) -> None:
        index = 0

        def element() -> None:
            nonlocal index
            self.lines[path + (index,)] = self.line
            self._value(path + (index,))
            index += 1

        self._sequence("]", element)

    def _inline_table(self, path: KeyPath) -> None:
        self._sequence("}", lambda: self._key_value(path))

    def _sequence(self, close: str, item: Callable[[], None]) -> None:
        """Scans a comma-separated sequence up to ``close``, calling ``item`` for each entry."""
        self._advance()
        while self.pos < len(self.text):
            self._skip_space_and_comments()
            if self._at(close):
                self._advance()
                return
            if self._at(","):
                self._advance()
                continue
            before = self.pos
            item()
            if self.pos == before:
                self._advance()

    def _multiline_string(self, delimiter: str) -> None:
        self._advance(3)
        while self.pos < len(self.text):
            if delimiter == '"""' and self._at("\\"):
                self._advance(2)
            elif self._starts(delimiter):
                self._advance(3)
                for _ in range(2):  # up to two quotes may end the content itself
                    if self._at(delimiter[0]):
                        self._advance()
                return
            else:
                self._advance()

    def _literal_string(self) -> str:
        start = self.pos + 1
        end = start
        while end < len(self.text) and self.text[end] not in "'\n":
            end += 1
        self._advance(end - self.pos + (1 if end < len(self.text) and self.text[end] == "'" else 0))
        return self.text[start:end]

    def _basic_string(self) -> str:
        """Reads a one-line basic string at the cursor; returns it with its escapes decoded."""
        self._advance()
        out: list[str] = []
        while self.pos < len(self.text) and not self._at('"\n'):
            if self._at("\\"):
                out.append(self._escape())
            else:
                out.append(self.text[self.pos])
                self._advance()
        if self._at('"'):
            self._advance()
        return "".join(out)

    def _escape(self) -> str:
        letter = self.text[self.pos + 1 : self.pos + 2]
        if letter in _HEX_LEN:
            digits = self.text[self.pos + 2 : self.pos + 2 + _HEX_LEN[letter]]
            if len(digits) == _HEX_LEN[letter] and all(c in "0123456789abcdefABCDEF" for c in digits):
                self._advance(2 + len(digits))
                code = int(digits, 16)
                return chr(code) if code <= 0x10FFFF else ""
        self._advance(2)
        return _ESCAPES.get(letter, letter)
