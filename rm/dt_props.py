"""Typed reads of VM device-tree properties for the RM's parsers, failing with ``VmConfigError``.

Each reader names the node path and property in its error, so a VMM that wrote a bad DT learns
exactly what to fix. A property that is absent reads as the given default; one that is present
but malformed (wrong length, not a string, out of range) is an error, never a silent default.
``interrupts`` specifiers are decoded here too: <class number flags> with class 0 SPI
(INTID 32..1019), 1 PPI (16..31), 2 extended SPI (4096..5119), 3 extended PPI (1056..1119), and
flags 1 (edge rising) or 4 (level high) in bits 3:0 (RM ``read_interrupts_config``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from gunyah_net.dt.fdt import FdtError, Node


class VmConfigError(ValueError):
    """A VM device tree the RM cannot use; ``reason`` says where and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Irq:
    """One interrupt of a vdevice: its global INTID and whether it is edge-triggered."""

    intid: int
    edge: bool


IRQ_CLASSES = {0: (32, 1020), 1: (16, 32), 2: (4096, 5120), 3: (1056, 1120)}
"""Interrupt specifier class: (first INTID, end INTID); the cell holds INTID - first."""
IRQ_TYPE_EDGE_RISING = 1
IRQ_TYPE_LEVEL_HIGH = 4


class Props:
    """The properties of one node at ``path``, read with types."""

    def __init__(self, node: Node, path: str) -> None:
        self.node = node
        self.path = path

    def error(self, name: str, what: str) -> VmConfigError:
        """Returns the error for property ``name`` of this node."""
        return VmConfigError(f"{self.path}: property {name!r} {what}")

    def has(self, name: str) -> bool:
        """True when the property is present (a boolean property is true by being there)."""
        return self.node.prop(name) is not None

    def string(self, name: str, default: str | None = None) -> str | None:
        """A single string (the first of a list, as libfdt's stringlist_get index 0 reads)."""
        strings = self.strings(name)
        return strings[0] if strings else default

    def strings(self, name: str) -> tuple[str, ...]:
        """A string list; empty when absent."""
        prop = self.node.prop(name)
        if prop is None:
            return ()
        try:
            texts = prop.as_strings()
        except FdtError as exc:
            raise self.error(name, f"is not a string list: {exc}") from exc
        if any(not t for t in texts):
            raise self.error(name, "holds an empty string")
        return texts

    def u32(self, name: str, default: int | None = None) -> int | None:
        """One 32-bit cell."""
        return self.number(name, 1, default)

    def number(self, name: str, cells: int, default: int | None = None) -> int | None:
        """A number of exactly ``cells`` cells (1 or 2)."""
        prop = self.node.prop(name)
        if prop is None:
            return default
        if len(prop.value) != 4 * cells:
            raise self.error(name, f"is {len(prop.value)} bytes, expected {4 * cells}")
        return int.from_bytes(prop.value, "big")

    def u32_or_u64(self, name: str) -> int | None:
        """A number of one or two cells."""
        prop = self.node.prop(name)
        if prop is not None and len(prop.value) not in (4, 8):
            raise self.error(name, f"is {len(prop.value)} bytes, expected 4 or 8")
        return None if prop is None else int.from_bytes(prop.value, "big")

    def cells(self, name: str) -> tuple[int, ...] | None:
        """A list of 32-bit cells, or None when absent."""
        prop = self.node.prop(name)
        if prop is None:
            return None
        if len(prop.value) % 4:
            raise self.error(name, f"is {len(prop.value)} bytes, not whole cells")
        return struct.unpack(f">{len(prop.value) // 4}I", prop.value)

    def s32(self, name: str) -> int | None:
        """One signed 32-bit cell."""
        value = self.u32(name)
        return None if value is None else value - (1 << 32) * (value >> 31)

    def label(self) -> int:
        """``qcom,label`` or else ``label``; 0 when neither is present (RM default)."""
        for name in ("qcom,label", "label"):
            value = self.u32(name)
            if value is not None:
                return value
        return 0

    def irqs(self, count: int) -> tuple[Irq, ...] | None:
        """``interrupts`` holding exactly ``count`` specifiers; None when absent."""
        cells = self.cells("interrupts")
        if cells is None:
            return None
        if len(cells) != 3 * count:
            raise self.error("interrupts", f"holds {len(cells)} cells, expected {3 * count}")
        return tuple(self._irq(cells[i:i + 3]) for i in range(0, len(cells), 3))

    def _irq(self, spec: tuple[int, ...]) -> Irq:
        kind, number, flags = spec
        if kind not in IRQ_CLASSES:
            raise self.error("interrupts", f"has unknown interrupt class {kind}")
        first, end = IRQ_CLASSES[kind]
        if number >= end - first:
            raise self.error("interrupts", f"number {number} is out of range for class {kind}")
        trigger = flags & 0xF
        if trigger not in (IRQ_TYPE_EDGE_RISING, IRQ_TYPE_LEVEL_HIGH):
            raise self.error("interrupts", f"trigger {trigger:#x} is neither edge nor level")
        return Irq(first + number, trigger == IRQ_TYPE_EDGE_RISING)


def cells_of(chain: list[Node], path: str) -> tuple[int, int]:
    """The (#address-cells, #size-cells) that apply to the last node of ``chain`` (root
    first): the nearest definition, the node's own included; default 2 and 1. Only 1 or 2 are
    accepted."""
    found: list[int] = []
    for name, default in (("#address-cells", 2), ("#size-cells", 1)):
        value = default
        for node in reversed(chain):
            prop = Props(node, path).u32(name)
            if prop is not None:
                value = prop
                break
        if value not in (1, 2):
            raise VmConfigError(f"{path}: {name} = {value}, expected 1 or 2")
        found.append(value)
    return found[0], found[1]
