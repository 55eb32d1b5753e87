"""The attribute words of the memory hypercalls, decoded into values (HYP ``memextent.tc``).

- **me_attrs** (memextent_configure / _derive): access 2:0, memtype 9:8 (0 ANY, 1 DEVICE,
  2 UNCACHED, 3 CACHED), type 17:16 (0 BASIC, 1 SPARSE), bit 31 list append (refused);
  other bits reserved. An extent's access may not be NONE or WX; CACHED is refused, as on HYP
  builds without S2FWB.
- **map_attrs** (addrspace_map): user access 2:0, kernel access 6:4, memtype 23:16 (Arm
  stage-2 ``pgtable_vm_memtype``: DEVICE_* 0..3, NORMAL_NC 5, NORMAL_WB 15, ...); bits 31:24,
  15:8, 7 and 3 reserved.
- **update_attrs** (addrspace_update_access): user 2:0, kernel 6:4; bits 31:8, 7, 3 reserved.
- **map_flags**: bit 0 PARTIAL, bit 31 NOSYNC; bits 30:1 reserved (LNX17's PRIVATE and VMMIO
  are newer than public HYP).

Every word is a 32-bit bitfield in HYP: the upper half of the register is ignored. Reserved bits
are ERROR_ARGUMENT_INVALID.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum

from gunyah_net.abi.errors import Error, HypError
from gunyah_net.hyp.mem_effects import Access

_U32 = 0xFFFF_FFFF
_ATTRS_RES0 = 0x7FFC_FCF8
"""me_attrs bits 30:18, 15:10 and 7:3."""
_ATTRS_APPEND = 1 << 31
_EXTENT_ACCESS = {Access.X, Access.W, Access.R, Access.RX, Access.RW, Access.RWX}
_MAP_ATTRS_RES0 = 0xFF00_FF88
_ACCESS_ATTRS_RES0 = 0xFFFF_FF88
MAP_FLAG_PARTIAL = 1
MAP_FLAG_NOSYNC = 1 << 31

NORMAL_WB = 0b1111
"""pgtable_vm_memtype NORMAL_WB: how RAM and shared memory are mapped."""
_DEVICE_MEMTYPES = {0, 1, 2, 3}
_NORMAL_NC = 0b0101
_NORMAL_ANY_ONLY = {0b0110, 0b0111, 0b1001, 0b1010, 0b1011, 0b1101, 0b1110, NORMAL_WB}


class MemType(IntEnum):
    """memextent_memtype: what mapping memtypes an extent allows."""

    ANY = 0
    DEVICE = 1
    UNCACHED = 2
    CACHED = 3


class ExtentType(IntEnum):
    """memextent_type: BASIC maps whole; SPARSE maps partially and donates."""

    BASIC = 0
    SPARSE = 1


@dataclass(frozen=True)
class ExtentAttrs:
    """Decoded me_attrs: access (2:0), memtype (9:8), type (17:16)."""

    access: Access
    memtype: MemType
    ext_type: ExtentType

    @classmethod
    def decode(cls, word: int) -> ExtentAttrs:
        """Decodes me_attrs; ERROR_ARGUMENT_INVALID for reserved bits, list append, NONE or
        WX access, CACHED memtype, or an unknown type."""
        word &= _U32
        access, memtype, ext_type = word & 7, (word >> 8) & 3, (word >> 16) & 3
        if word & (_ATTRS_RES0 | _ATTRS_APPEND) or access not in _EXTENT_ACCESS \
                or memtype == MemType.CACHED or ext_type > ExtentType.SPARSE:
            raise HypError(Error.ARGUMENT_INVALID, f"me_attrs {word:#x}")
        return cls(Access(access), MemType(memtype), ExtentType(ext_type))

    def word(self) -> int:
        """Returns the me_attrs register image."""
        return int(self.access) | int(self.memtype) << 8 | int(self.ext_type) << 16


def memtype_allows(extent_memtype: MemType, map_memtype: int) -> bool:
    """Returns True if a mapping memtype (pgtable_vm_memtype) suits the extent's memtype
    (HYP ``memextent_check_memtype`` without S2FWB)."""
    if map_memtype in _DEVICE_MEMTYPES:
        return extent_memtype in (MemType.ANY, MemType.DEVICE, MemType.UNCACHED)
    if map_memtype == _NORMAL_NC:
        return extent_memtype in (MemType.ANY, MemType.UNCACHED)
    return map_memtype in _NORMAL_ANY_ONLY and extent_memtype is MemType.ANY


@dataclass(frozen=True)
class MapAttrs:
    """A mapping's attributes (memextent_mapping_attrs): user and kernel access, memtype."""

    user: Access
    kernel: Access
    memtype: int

    @classmethod
    def decode(cls, word: int) -> MapAttrs:
        """Decodes map_attrs; ERROR_ARGUMENT_INVALID for reserved bits."""
        word &= _U32
        if word & _MAP_ATTRS_RES0:
            raise HypError(Error.ARGUMENT_INVALID, f"map_attrs {word:#x}")
        return cls(Access(word & 7), Access((word >> 4) & 7), (word >> 16) & 0xFF)

    def word(self) -> int:
        """Returns the map_attrs register image: user 2:0, kernel 6:4, memtype 23:16."""
        return int(self.user) | int(self.kernel) << 4 | self.memtype << 16

    def masked(self, access: Access) -> MapAttrs:
        """Returns the attributes with both accesses limited to ``access``."""
        return replace(self, user=self.user & access, kernel=self.kernel & access)


def decode_access_attrs(word: int) -> tuple[Access, Access]:
    """Decodes update_attrs into (user, kernel) access; ERROR_ARGUMENT_INVALID if reserved
    bits are set."""
    word &= _U32
    if word & _ACCESS_ATTRS_RES0:
        raise HypError(Error.ARGUMENT_INVALID, f"update_attrs {word:#x}")
    return Access(word & 7), Access((word >> 4) & 7)


def decode_map_flags(word: int) -> bool:
    """Returns PARTIAL from map_flags; ERROR_ARGUMENT_INVALID if bits 30:1 are set."""
    word &= _U32
    if word & ~(MAP_FLAG_PARTIAL | MAP_FLAG_NOSYNC):
        raise HypError(Error.ARGUMENT_INVALID, f"map_flags {word:#x}")
    return bool(word & MAP_FLAG_PARTIAL)
