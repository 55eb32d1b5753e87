"""Capability spaces: per-VM tables of caps; ``Cspace.lookup`` is the one rights check.

Model (HYP ``core/cspace_twolevel``):

- A cap ID is an opaque 64-bit value valid only in its cspace. Gunyah encodes the 16-bit slot
  index as ``(index * mult) XOR base``; gunyah-net uses the no-randomisation debug encoding
  (``mult = 1``) with a deterministic per-cspace ``id_base`` in bits 31:16 (El2 uses
  ``vmid << 16``). IDs are therefore sequential inside one cspace (``0x810000``, ``0x810001``, ...)
  and, by construction, never equal across cspaces: the same object has different IDs in
  different VMs. -1 (``CAP_ID_INVALID``) never decodes.
- Decoding: ``r = id XOR id_base`` must fit in 32 bits and then in 16 bits, and the index must
  be below ``max_caps``; otherwise ERROR_ARGUMENT_INVALID. A free slot is ERROR_CSPACE_CAP_NULL.
- Slots are allocated lowest-free-first; a full cspace is ERROR_CSPACE_FULL.
- The cap created with an object is its *master* cap; copies carry a subset of its rights. A
  master cap can revoke every copy (they turn REVOKED in whatever cspace holds them); deleting a
  valid or revoked cap frees its slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from gunyah_net.abi.errors import Error, HypError
from gunyah_net.abi.rights import GENERIC_ACTIVATE, RIGHTS_WORD_MASK, CspaceRights
from gunyah_net.hyp.object import KernelObject, ObjectState, ObjectType

CAP_ID_INVALID = 0xFFFF_FFFF_FFFF_FFFF
"""-1 as a register image: Gunyah's CSPACE_CAP_INVALID."""

MAX_CAPS_SUPPORTED = 1 << 16
"""The encoding has a 16-bit index, so no cspace holds more caps than this."""

VM_MAX_CAPS = 1024
"""The RM creates every VM's cspace with this many slots (RM ``include/vm_creation.h``)."""

_U32 = 0xFFFF_FFFF
_U64 = 0xFFFF_FFFF_FFFF_FFFF

T = TypeVar("T", bound=KernelObject)


class CapState(Enum):
    """The state of an occupied slot (an empty slot is Gunyah's CAP_STATE_NULL)."""

    VALID = 1
    REVOKED = 2


@dataclass(eq=False)
class Cap:
    """One occupied slot: the object it names (None once revoked) and the rights it grants."""

    obj: KernelObject | None
    rights: int
    master: bool
    state: CapState = CapState.VALID


class Cspace(KernelObject):
    """A capability space: slot index -> cap, with Gunyah's cap-ID encoding and errors."""

    object_type = ObjectType.CSPACE
    rights_type = CspaceRights

    def __init__(self, *, id_base: int = 0, max_caps: int = 0, name: str = "") -> None:
        super().__init__(name)
        if id_base & 0xFFFF or not 0 <= id_base <= _U32:
            raise ValueError(f"id_base {id_base:#x} must be a 32-bit value with bits 15:0 clear")
        self.id_base = id_base
        self.max_caps = 0
        self._slots: dict[int, Cap] = {}
        if max_caps:
            self.configure(max_caps)

    def configure(self, max_caps: int) -> None:
        """Sets the number of slots; only in INIT (cspace_configure)."""
        self.require_init()
        if not 0 < max_caps <= MAX_CAPS_SUPPORTED:
            raise HypError(Error.ARGUMENT_INVALID, f"max_caps {max_caps} out of range")
        self.max_caps = max_caps

    def _check_activate(self) -> None:
        if self.max_caps == 0:
            raise HypError(Error.OBJECT_CONFIG, "cspace has no max_caps")

    # -- encoding -------------------------------------------------------------------------

    def cap_id(self, index: int) -> int:
        """Returns the cap ID of slot ``index`` (mult 1, base ``id_base``)."""
        return index ^ self.id_base

    def index_of(self, cap_id: int) -> int:
        """Returns the slot index ``cap_id`` names; ERROR_ARGUMENT_INVALID if it names none."""
        raw = (cap_id & _U64) ^ self.id_base
        if raw > _U32 or raw > 0xFFFF or raw >= self.max_caps:
            raise HypError(Error.ARGUMENT_INVALID, f"cap id {cap_id & _U64:#x} is not a slot")
        return raw

    # -- lookup ---------------------------------------------------------------------------

    def _occupied(self, cap_id: int) -> Cap:
        """Returns the cap in the slot ``cap_id`` names, valid or revoked."""
        cap = self._slots.get(self.index_of(cap_id))
        if cap is None:
            raise HypError(Error.CSPACE_CAP_NULL, f"cap id {cap_id:#x} is empty")
        return cap

    def _valid(self, cap_id: int) -> Cap:
        """Returns the valid cap ``cap_id`` names; CAP_NULL or CAP_REVOKED otherwise."""
        cap = self._occupied(cap_id)
        if cap.state is CapState.REVOKED or cap.obj is None:
            raise HypError(Error.CSPACE_CAP_REVOKED, f"cap id {cap_id:#x} was revoked")
        return cap

    def lookup(self, cap_id: int, obj_type: type[T], rights: int, *,
               active_only: bool = True) -> T:
        """Returns the ``obj_type`` object ``cap_id`` names if the cap grants every right in
        ``rights``; with ``active_only`` the object must also be ACTIVE (ERROR_OBJECT_STATE)."""
        cap = self._valid(cap_id)
        obj = cap.obj
        if not isinstance(obj, obj_type):
            kind = obj.object_type.value if obj is not None else "nothing"
            raise HypError(Error.CSPACE_WRONG_OBJECT_TYPE,
                           f"cap id {cap_id:#x} names a {kind}, not a {obj_type.object_type.value}")
        self._check_rights(cap, cap_id, rights)
        if active_only and obj.state is not ObjectState.ACTIVE:
            raise HypError(Error.OBJECT_STATE, f"{obj.describe()} is {obj.state.name}")
        return obj

    def lookup_any(self, cap_id: int, rights: int = GENERIC_ACTIVATE) -> KernelObject:
        """Returns the object of any type ``cap_id`` names if the cap grants ``rights``
        (generic rights only, as Gunyah's cspace_lookup_object_any); any state."""
        cap = self._valid(cap_id)
        self._check_rights(cap, cap_id, rights)
        assert cap.obj is not None
        return cap.obj

    @staticmethod
    def _check_rights(cap: Cap, cap_id: int, rights: int) -> None:
        missing = int(rights) & ~cap.rights
        if missing:
            raise HypError(Error.CSPACE_INSUFFICIENT_RIGHTS,
                           f"cap id {cap_id:#x} lacks rights {missing:#x}")

    # -- creation, copy, delete, revoke ---------------------------------------------------

    def _allocate(self, cap: Cap) -> int:
        """Places ``cap`` in the lowest free slot and returns its ID; ERROR_CSPACE_FULL."""
        self.require_active()
        for index in range(self.max_caps):
            if index not in self._slots:
                self._slots[index] = cap
                return self.cap_id(index)
        raise HypError(Error.CSPACE_FULL, f"{self.describe()} holds {self.max_caps} caps")

    def create_master_cap(self, obj: KernelObject) -> int:
        """Creates the master cap of a new object here, with all its rights; returns its ID."""
        if obj.cap_list:
            raise ValueError(f"{obj.describe()} already has a master cap")
        cap = Cap(obj, obj.master_rights(), master=True)
        cap_id = self._allocate(cap)
        obj.cap_list.append(cap)
        return cap_id

    def copy_cap_from(self, src: Cspace, src_cap_id: int, rights_mask: int) -> int:
        """Copies ``src_cap_id`` of ``src`` into a new slot here with its rights ANDed with
        ``rights_mask``; returns the new ID (cspace_copy_cap: the slot is allocated first)."""
        index = self.index_of(self._allocate(Cap(None, 0, master=False)))
        try:
            parent = src._valid(src_cap_id)
            masked = parent.rights & rights_mask & RIGHTS_WORD_MASK
            if masked == 0:
                raise HypError(Error.CSPACE_INSUFFICIENT_RIGHTS,
                               f"rights mask {rights_mask:#x} leaves no rights")
        except HypError:
            del self._slots[index]
            raise
        assert parent.obj is not None
        cap = Cap(parent.obj, masked, master=False)
        self._slots[index] = cap
        parent.obj.cap_list.append(cap)
        return self.cap_id(index)

    def delete_cap(self, cap_id: int) -> None:
        """Frees the slot of a valid or revoked cap; ERROR_CSPACE_CAP_NULL for a free slot."""
        cap = self._occupied(cap_id)
        if cap.state is CapState.VALID and cap.obj is not None:
            cap.obj.cap_list.remove(cap)
        del self._slots[self.index_of(cap_id)]

    def revoke_caps(self, master_cap_id: int) -> int:
        """Revokes every other cap naming the object of master cap ``master_cap_id`` (in any
        cspace); returns how many. A cap that is not a master: ERROR_CSPACE_INSUFFICIENT_RIGHTS."""
        master = self._valid(master_cap_id)
        if not master.master or master.obj is None:
            raise HypError(Error.CSPACE_INSUFFICIENT_RIGHTS,
                           f"cap id {master_cap_id:#x} is not a master cap")
        children = [cap for cap in master.obj.cap_list if cap is not master]
        for cap in children:
            cap.state = CapState.REVOKED
            cap.obj = None
        master.obj.cap_list[:] = [master]
        return len(children)

    def valid_caps(self) -> list[tuple[int, Cap]]:
        """Returns (cap ID, cap) for every valid cap, in slot order."""
        return [(self.cap_id(i), cap) for i, cap in sorted(self._slots.items())
                if cap.state is CapState.VALID]
