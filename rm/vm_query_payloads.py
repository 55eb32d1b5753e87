"""Payloads of the RM's VM queries about the caller itself: VM_GET_OWNER and VM_GET_PEERS.

Both requests are empty and ask about the calling VM (gunyah-abi.md 3.5). VM_GET_OWNER answers
the u32 vmid of the VM that created the caller (the RM, 0xFF, for a statically configured VM);
VM_GET_PEERS answers a u32 count followed by that many u32 vmids. Pure: bytes in, values out.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from gunyah_net.abi.rm import RmCall

from .fields import EmptyPayload, FixedPayload, PayloadError, PayloadReader

_U32 = struct.Struct("<I")


@dataclass(frozen=True)
class VmGetOwner(EmptyPayload):
    """VM_GET_OWNER: empty; asks who owns the caller."""

    MSG_ID: ClassVar[int] = RmCall.VM_GET_OWNER


@dataclass(frozen=True)
class VmGetOwnerReply(FixedPayload):
    """VM_GET_OWNER's reply: the owner's vmid as a u32."""

    MSG_ID: ClassVar[int] = RmCall.VM_GET_OWNER
    LAYOUT: ClassVar[struct.Struct] = _U32
    owner: int


@dataclass(frozen=True)
class VmGetPeers(EmptyPayload):
    """VM_GET_PEERS: empty; asks which VMs the caller shares resources with."""

    MSG_ID: ClassVar[int] = RmCall.VM_GET_PEERS


@dataclass(frozen=True)
class VmGetPeersReply:
    """VM_GET_PEERS's reply: u32 count, then count u32 vmids."""

    MSG_ID: ClassVar[int] = RmCall.VM_GET_PEERS
    peers: tuple[int, ...] = ()

    def pack(self) -> bytes:
        """Returns the payload bytes."""
        return struct.pack(f"<I{len(self.peers)}I", len(self.peers), *self.peers)

    @classmethod
    def unpack(cls, data: bytes) -> Self:
        """Decodes the payload; its length must be exactly 4 + 4 count."""
        reader = PayloadReader(data, cls.__name__)
        (count,) = reader.take(_U32, "the peer count")
        if reader.remaining() != count * _U32.size:
            raise PayloadError(f"{cls.__name__}: {count} peers need {count * _U32.size} bytes, "
                               f"got {reader.remaining()}")
        return cls(tuple(reader.take(_U32, f"peer {i}")[0] for i in range(count)))


QUERY_REQUESTS: dict[int, Any] = {cls.MSG_ID: cls for cls in (VmGetOwner, VmGetPeers)}
"""Request payload class by message ID."""
