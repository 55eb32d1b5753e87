"""The hypercalls the RM makes, as values: ``HvcCall``, plans of them, and their encodings. Pure.

A *plan* is a generator that yields one ``HvcCall`` at a time and is sent the result registers
(X0..) of each before it chooses the next; the runtime (``el2_link``) makes the calls, the
planners (``el2_memory``) choose them. ``issue`` is the one step every plan is built from: it
yields a call and raises ``El2CallFailed`` when the call's X0 is not 0, so a plan stops at the
first error.

The encodings of the memory calls' flag words (gunyah-abi.md): ``map_attrs`` builds an
addrspace_map attribute word from memparcel rights and attrs; ``MAP_PARTIAL``,
``DONATE_TO_SIBLING``, ``MODIFY_ZERO_RANGE`` and ``NOSYNC`` are the option bits the RM uses.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

from gunyah_net.abi.errors import Error
from gunyah_net.abi.hypercalls import BY_NAME, ArgKind, lookup
from gunyah_net.abi.rm import MemAttr, MemRights

MAP_PARTIAL = 1
"""map_flags bit 0."""
DONATE_TO_SIBLING = 2
"""memextent_donate options bits 7:0."""
MODIFY_ZERO_RANGE = 1
"""memextent_modify flags bits 7:0."""
NOSYNC = 1 << 31
"""memextent_modify flags bit 31: needed by ZERO_RANGE."""
MEMTYPE = {MemAttr.NORMAL: 0b1111, MemAttr.CACHED: 0b1111, MemAttr.UNCACHED: 0b0101,
           MemAttr.DEVICE: 0b0001}
"""Stage-2 memtype (map_attrs 23:16, pgtable_vm_memtype) of each memparcel attr."""
ACCESS_BITS = 0x77
"""The user (2:0) and kernel (6:4) access of a map_attrs word: an update_attrs word."""

_U64 = (1 << 64) - 1


def map_attrs(rights: int, attr: int = MemAttr.NORMAL) -> int:
    """Returns the map_attrs word: user access 2:0 and kernel access 6:4 both ``rights``
    (R = 4, W = 2, X = 1), memtype 23:16 from the memparcel ``attr``."""
    if attr not in MEMTYPE or not 0 <= rights <= MemRights.RWX:
        raise ValueError(f"no mapping for rights {rights:#x} attr {attr}")
    return rights | rights << 4 | MEMTYPE[MemAttr(attr)] << 16


@dataclass(frozen=True)
class HvcCall:
    """One hypercall the RM must make: table number, input registers in table order."""

    number: int
    args: tuple[int, ...]

    @classmethod
    def of(cls, name: str, **inputs: int) -> HvcCall:
        """Builds hypercall ``name`` from its inputs by table name; reserved registers are 0."""
        spec = BY_NAME.get(name)
        if spec is None:
            raise ValueError(f"no hypercall named {name!r}")
        wanted = {a.name for a in spec.inputs if a.kind is not ArgKind.RESERVED}
        if set(inputs) != wanted:
            raise ValueError(f"{name} takes {sorted(wanted)}, got {sorted(inputs)}")
        return cls(spec.number, tuple(0 if a.kind is ArgKind.RESERVED else inputs[a.name] & _U64
                                      for a in spec.inputs))

    @property
    def name(self) -> str:
        """The hypercall's table name."""
        spec = lookup(self.number)
        return spec.name if spec else f"hypercall {self.number:#x}"


class El2CallFailed(Exception):
    """A hypercall of a plan returned an error in X0; the plan stopped there."""

    def __init__(self, call: HvcCall, x0: int) -> None:
        self.call = call
        self.number = call.number
        self.x0 = x0 & _U64
        signed = self.x0 - (1 << 64) if self.x0 >> 63 else self.x0
        try:
            self.error = Error(signed)
        except ValueError:
            self.error = Error.FAILURE  # a code outside the enumeration: ``x0`` has it raw
        args = ", ".join(f"{a:#x}" for a in call.args)
        super().__init__(f"{call.name}({args}) -> {self.error.name} (X0 {self.x0:#x})")


Plan = Generator[HvcCall, list[int], None]
"""Yields the calls one by one; ``send`` it each call's result registers (X0 first)."""
Steps = Generator[HvcCall, list[int], int]
"""A part of a plan that returns a value (a cap it made) to the plan it is part of."""


def issue(call: HvcCall) -> Generator[HvcCall, list[int], list[int]]:
    """Yields ``call``; returns its result registers, or raises El2CallFailed on X0 != 0."""
    regs = yield call
    if not regs:
        raise ValueError(f"{call.name}: the runtime sent no result registers")
    if regs[0] != 0:
        raise El2CallFailed(call, regs[0])
    return regs
