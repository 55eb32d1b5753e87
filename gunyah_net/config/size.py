"""Byte sizes as topology files write them: ``16777216``, ``"16MiB"``, ``"64 KiB"``, ``"1GiB"``."""

from __future__ import annotations

import re

from gunyah_net.abi.platform import GiB, KiB, MiB
from gunyah_net.config.issues import show_value

_UNITS = {"": 1, "KiB": KiB, "MiB": MiB, "GiB": GiB}
_SIZE = re.compile(r"\s*([0-9]+(?:_[0-9]+)*)\s*(KiB|MiB|GiB)?\s*")
SIZE_HINT = "use a number of bytes or a suffix KiB, MiB, GiB"


def parse_size(value: int | str) -> int:
    """Returns the number of bytes ``value`` denotes; raises ValueError naming the bad value.

    Accepts a non-negative integer of bytes, or a string of decimal digits (``_`` separators
    allowed) with an optional binary suffix KiB, MiB or GiB, e.g. ``"16MiB"``, ``"64 KiB"``.
    """
    match value:
        case bool():
            pass
        case int() if value >= 0:
            return value
        case str():
            found = _SIZE.fullmatch(value)
            if found is not None and len(found.group(1)) <= 24:
                return int(found.group(1)) * _UNITS[found.group(2) or ""]
    raise ValueError(f"{show_value(value)} is not a size; {SIZE_HINT}")


def format_size(size: int) -> str:
    """Returns ``size`` in the largest binary unit that divides it: ``16 MiB``, ``12 KiB``, ``100 bytes``."""
    for unit, factor in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"
