"""User errors in a topology file: one `ConfigIssue` per problem, all raised together.

Every issue names the file, the line, the key path (``vm[1].memory``) and what is wrong, and prints
as one line: ``examples/bad.toml:7: vm[1].memory: "16MB" is not a size; ...``. The CLI prints every
issue of a `TopologyError` and exits with status 2.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

KeyPart = str | int
KeyPath = tuple[KeyPart, ...]
"""A key path as parts: ``("vm", 1, "memory")``; integers index arrays."""

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def render_key(path: KeyPath) -> str:
    """Returns the key path as users read it: ``vm[1].memory``, ``shm[0].vms[1]``, ``x."a b"``."""
    out = ""
    for part in path:
        match part:
            case int():
                out += f"[{part}]"
            case str() if _BARE_KEY.fullmatch(part):
                out += f".{part}" if out else part
            case _:
                quoted = '"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"'
                out += f".{quoted}" if out else quoted
    return out


def quote(text: str) -> str:
    """Returns ``text`` as a one-line TOML basic string: in double quotes, with escapes."""
    return json.dumps(text, ensure_ascii=False)


def show_value(value: object) -> str:
    """Returns a scalar as TOML spells it (``"16MB"``, ``true``, ``40``), shortened if long."""
    match value:
        case bool():
            return "true" if value else "false"
        case str():
            return quote(value if len(value) <= 60 else value[:57] + "...")
        case int() if value.bit_length() > 64:  # str() refuses huge ints; hex literals can be huge
            return f"{value:#_x}"
        case _:
            return str(value)


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a topology file, located by file, line (None if unknown) and key path."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class TopologyError(Exception):
    """A topology file has problems; ``errors`` lists every one of them, in file order."""

    def __init__(self, errors: list[ConfigIssue]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(issue) for issue in self.errors))

    def __str__(self) -> str:
        return "\n".join(str(issue) for issue in self.errors)


def sort_issues(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    """Returns the issues in file order (by line, stable); issues without a line come first."""
    return sorted(issues, key=lambda issue: issue.line or 0)
