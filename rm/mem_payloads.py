"""Typed payloads of the RM's memparcel messages (gunyah-abi.md 3.5 and 4.2).

Layouts follow the RM's `memparcel_msg.h`: a fixed head, then RM lists (see ``rm.fields``) of
ACL entries {u16 vmid, u8 rights, u8 res}, SGL entries {u64 ipa, u64 size} and attribute entries
{u16 attr, u16 vmid}. A trailing list that is absent reads as empty, as in the RM, so that the
memparcel layer, not the codec, rejects an empty ACL or SGL (RM_ERROR_ARGUMENT_INVALID). Reserved
fields are written as zero and ignored on input, as the RM does.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from gunyah_net.abi.rm import RmCall, RmNotify, TransType

from .fields import (
    FixedPayload,
    PayloadError,
    PayloadReader,
    field_values,
    pack_list,
    pack_struct,
)


@dataclass(frozen=True)
class AclEntry:
    """Who may access a memparcel, and how (``rights`` is ``MemRights``)."""

    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<HBx")
    vmid: int
    rights: int


@dataclass(frozen=True)
class SglEntry:
    """One range of a memparcel: in the owner's IPA space, or where an accept mapped it."""

    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<QQ")
    ipa: int
    size: int


@dataclass(frozen=True)
class AttrEntry:
    """A per-VM memory attribute (``attr`` is ``MemAttr``)."""

    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<HH")
    attr: int
    vmid: int


_SIZE = struct.Struct("<Q")
_VMID_ENTRY = struct.Struct("<H2x")


def _read_acl(reader: PayloadReader) -> tuple[AclEntry, ...]:
    return reader.take_list(AclEntry.LAYOUT, AclEntry, "ACL")[0]


def _read_attrs(reader: PayloadReader) -> tuple[AttrEntry, ...]:
    return reader.take_list(AttrEntry.LAYOUT, AttrEntry, "attribute")[0]


# --- requests -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemCreate:
    """The create request MEM_LEND, MEM_SHARE and MEM_DONATE share (``flags``: MemCreateFlag)."""

    MSG_ID: ClassVar[int]
    TRANS_TYPE: ClassVar[TransType]
    HEAD: ClassVar[struct.Struct] = struct.Struct("<BxBxI")
    mem_type: int
    flags: int
    label: int
    acl: tuple[AclEntry, ...]
    sgl: tuple[SglEntry, ...]
    attrs: tuple[AttrEntry, ...] = ()

    def pack(self) -> bytes:
        """Returns the payload bytes."""
        name = type(self).__name__
        return b"".join((pack_struct(self.HEAD, (self.mem_type, self.flags, self.label), name),
                         pack_list(self.acl, AclEntry.LAYOUT, "ACL"),
                         pack_list(self.sgl, SglEntry.LAYOUT, "SGL"),
                         pack_list(self.attrs, AttrEntry.LAYOUT, "attribute")))

    @classmethod
    def unpack(cls, data: bytes) -> Self:
        """Decodes the payload."""
        reader = PayloadReader(data, cls.__name__)
        mem_type, flags, label = reader.take(cls.HEAD, "the header")
        acl = _read_acl(reader)
        sgl = reader.take_list(SglEntry.LAYOUT, SglEntry, "SGL")[0]
        attrs = _read_attrs(reader)
        reader.finish()
        return cls(mem_type, flags, label, acl, sgl, attrs)


@dataclass(frozen=True)
class MemLend(MemCreate):
    """MEM_LEND: the owner loses access until reclaim; the owner must not be in the ACL."""

    MSG_ID: ClassVar[int] = RmCall.MEM_LEND
    TRANS_TYPE: ClassVar[TransType] = TransType.LEND


@dataclass(frozen=True)
class MemShare(MemCreate):
    """MEM_SHARE: the owner keeps access and must be in the ACL."""

    MSG_ID: ClassVar[int] = RmCall.MEM_SHARE
    TRANS_TYPE: ClassVar[TransType] = TransType.SHARE


@dataclass(frozen=True)
class MemDonate(MemCreate):
    """MEM_DONATE: ownership moves to the one ACL entry, which must have full rights."""

    MSG_ID: ClassVar[int] = RmCall.MEM_DONATE
    TRANS_TYPE: ClassVar[TransType] = TransType.DONATE


@dataclass(frozen=True)
class MemAccept:
    """MEM_ACCEPT: ``map_vmid`` rides in the SGL list header; an empty SGL lets the RM choose."""

    MSG_ID: ClassVar[int] = RmCall.MEM_ACCEPT
    HEAD: ClassVar[struct.Struct] = struct.Struct("<IBBBxI")
    handle: int
    mem_type: int
    trans_type: int
    flags: int
    label: int
    acl: tuple[AclEntry, ...] = ()
    sgl: tuple[SglEntry, ...] = ()
    map_vmid: int = 0
    attrs: tuple[AttrEntry, ...] = ()

    def pack(self) -> bytes:
        """Returns the payload bytes."""
        head = (self.handle, self.mem_type, self.trans_type, self.flags, self.label)
        return b"".join((pack_struct(self.HEAD, head, "MemAccept"),
                         pack_list(self.acl, AclEntry.LAYOUT, "ACL"),
                         pack_list(self.sgl, SglEntry.LAYOUT, "SGL", second=self.map_vmid),
                         pack_list(self.attrs, AttrEntry.LAYOUT, "attribute")))

    @classmethod
    def unpack(cls, data: bytes) -> Self:
        """Decodes the payload."""
        reader = PayloadReader(data, cls.__name__)
        handle, mem_type, trans_type, flags, label = reader.take(cls.HEAD, "the header")
        acl = _read_acl(reader)
        sgl, map_vmid = reader.take_list(SglEntry.LAYOUT, SglEntry, "SGL")
        attrs = _read_attrs(reader)
        reader.finish()
        return cls(handle, mem_type, trans_type, flags, label, acl, sgl, map_vmid, attrs)


@dataclass(frozen=True)
class MemRelease(FixedPayload):
    """MEM_RELEASE (``flags``: MemReleaseFlag)."""

    MSG_ID: ClassVar[int] = RmCall.MEM_RELEASE
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<IB3x")
    handle: int
    flags: int = 0


@dataclass(frozen=True)
class MemReclaim(FixedPayload):
    """MEM_RECLAIM (``flags``: MemReclaimFlag)."""

    MSG_ID: ClassVar[int] = RmCall.MEM_RECLAIM
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<IB3x")
    handle: int
    flags: int = 0


@dataclass(frozen=True)
class MemNotify:
    """MEM_NOTIFY (``flags``: one MemNotifyFlag); SHARED and RECALL name the VMs to tell."""

    MSG_ID: ClassVar[int] = RmCall.MEM_NOTIFY
    HEAD: ClassVar[struct.Struct] = struct.Struct("<IB3xI")
    handle: int
    flags: int
    mem_info_tag: int = 0
    vmids: tuple[int, ...] = ()

    def pack(self) -> bytes:
        """Returns the payload bytes; the VMID list is present only when ``vmids`` is not empty."""
        head = pack_struct(self.HEAD, (self.handle, self.flags, self.mem_info_tag), "MemNotify")
        return head + (pack_list(self.vmids, _VMID_ENTRY, "VMID") if self.vmids else b"")

    @classmethod
    def unpack(cls, data: bytes) -> Self:
        """Decodes the payload."""
        reader = PayloadReader(data, cls.__name__)
        handle, flags, tag = reader.take(cls.HEAD, "the header")
        vmids = reader.take_list(_VMID_ENTRY, int, "VMID")[0]
        reader.finish()
        return cls(handle, flags, tag, vmids)


@dataclass(frozen=True)
class MemAppend:
    """MEM_APPEND: more SGL for a parcel created with APPEND (``flags``: MemAppendFlag)."""

    MSG_ID: ClassVar[int] = RmCall.MEM_APPEND
    HEAD: ClassVar[struct.Struct] = struct.Struct("<IB3x")
    handle: int
    flags: int
    sgl: tuple[SglEntry, ...]

    def pack(self) -> bytes:
        """Returns the payload bytes."""
        return (pack_struct(self.HEAD, (self.handle, self.flags), "MemAppend")
                + pack_list(self.sgl, SglEntry.LAYOUT, "SGL"))

    @classmethod
    def unpack(cls, data: bytes) -> Self:
        """Decodes the payload."""
        reader = PayloadReader(data, cls.__name__)
        handle, flags = reader.take(cls.HEAD, "the header")
        sgl = reader.take_list(SglEntry.LAYOUT, SglEntry, "SGL")[0]
        reader.finish()
        return cls(handle, flags, sgl)


# --- replies --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemHandleReply(FixedPayload):
    """The reply to MEM_LEND, MEM_SHARE and MEM_DONATE: the new parcel's handle."""

    MSG_ID: ClassVar[int] = RmCall.MEM_LEND
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<I")
    handle: int


_ACCEPT_REPLY = struct.Struct("<HBx")


@dataclass(frozen=True)
class MemAcceptReply:
    """MEM_ACCEPT's reply when the request had no SGL: where the RM mapped the parcel.

    u16 n_sgl, u8 flags (MemAcceptReplyFlag.INCOMPLETE), u8 res, then n SGL entries. With an SGL in
    the request the RM sends a standard reply instead.
    """

    MSG_ID: ClassVar[int] = RmCall.MEM_ACCEPT
    sgl: tuple[SglEntry, ...]
    flags: int = 0

    def pack(self) -> bytes:
        """Returns the payload bytes."""
        head = pack_struct(_ACCEPT_REPLY, (len(self.sgl), self.flags), "MemAcceptReply")
        return head + b"".join(pack_struct(SglEntry.LAYOUT, field_values(e), "an SGL entry")
                               for e in self.sgl)

    @classmethod
    def unpack(cls, data: bytes) -> Self:
        """Decodes the payload; its length must be exactly 4 + 16 n."""
        reader = PayloadReader(data, cls.__name__)
        count, flags = reader.take(_ACCEPT_REPLY, "the header")
        if reader.remaining() != count * SglEntry.LAYOUT.size:
            need = count * SglEntry.LAYOUT.size
            raise PayloadError(f"{cls.__name__}: {count} SGL entries need {need} bytes, "
                               f"{reader.remaining()} present")
        return cls(tuple(SglEntry(*reader.take(SglEntry.LAYOUT, f"SGL entry {i}"))
                         for i in range(count)), flags)


# --- notifications --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemSharedNotify:
    """MEM_SHARED (to each borrower): a parcel awaits MEM_ACCEPT; ``sizes`` has no addresses."""

    MSG_ID: ClassVar[int] = RmNotify.MEM_SHARED
    HEAD: ClassVar[struct.Struct] = struct.Struct("<IBBBxH2xII")
    handle: int
    mem_type: int
    trans_type: int
    flags: int
    owner_vmid: int
    label: int
    mem_info_tag: int
    acl: tuple[AclEntry, ...]
    sizes: tuple[int, ...]
    attrs: tuple[AttrEntry, ...] = ()

    def pack(self) -> bytes:
        """Returns the payload bytes."""
        head = (self.handle, self.mem_type, self.trans_type, self.flags, self.owner_vmid,
                self.label, self.mem_info_tag)
        return b"".join((pack_struct(self.HEAD, head, "MemSharedNotify"),
                         pack_list(self.acl, AclEntry.LAYOUT, "ACL"),
                         pack_list(self.sizes, _SIZE, "region size"),
                         pack_list(self.attrs, AttrEntry.LAYOUT, "attribute")))

    @classmethod
    def unpack(cls, data: bytes) -> Self:
        """Decodes the payload."""
        reader = PayloadReader(data, cls.__name__)
        head = reader.take(cls.HEAD, "the header")
        acl = _read_acl(reader)
        sizes = reader.take_list(_SIZE, int, "region size")[0]
        attrs = _read_attrs(reader)
        reader.finish()
        return cls(*head, acl, sizes, attrs)


@dataclass(frozen=True)
class MemReleasedNotify(FixedPayload):
    """MEM_RELEASED (to the owner): borrower ``vmid`` released the parcel."""

    MSG_ID: ClassVar[int] = RmNotify.MEM_RELEASED
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<IH2xI")
    handle: int
    vmid: int
    mem_info_tag: int = 0


@dataclass(frozen=True)
class MemAcceptedNotify(FixedPayload):
    """MEM_ACCEPTED (to the owner): borrower ``vmid`` accepted the parcel."""

    MSG_ID: ClassVar[int] = RmNotify.MEM_ACCEPTED
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<IH2xI")
    handle: int
    vmid: int
    mem_info_tag: int = 0


@dataclass(frozen=True)
class MemRecallNotify(FixedPayload):
    """MEM_RECALL (to a borrower): the owner asks for the parcel back."""

    MSG_ID: ClassVar[int] = RmNotify.MEM_RECALL
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<II")
    handle: int
    mem_info_tag: int = 0


MEM_REQUESTS: dict[int, Any] = {cls.MSG_ID: cls for cls in (
    MemLend, MemShare, MemDonate, MemAccept, MemRelease, MemReclaim, MemNotify, MemAppend)}
"""Request payload class by message ID."""

MEM_NOTIFICATIONS: dict[int, Any] = {cls.MSG_ID: cls for cls in (
    MemSharedNotify, MemReleasedNotify, MemAcceptedNotify, MemRecallNotify)}
"""Notification payload class by message ID."""
