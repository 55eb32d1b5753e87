"""The RM RPC wire codec: sans-IO fragmenting encoder and reassembling decoder.

Every RM message travels as one or more msgqueue messages (fragments) of at most 240 bytes, each
with an 8-byte little-endian header (gunyah-abi.md 3.2):

    byte 0     0x21: API version 1 (bits 3:0), header length 2 words (bits 7:4)
    byte 1     (additional fragments << 2) | type
               (type 0 continuation, 1 request, 2 reply, 3 notification)
    bytes 2-3  u16 seq (chosen by the requester, echoed in the reply)
    bytes 4-7  u32 msg_id

A body of L bytes takes ceil(L/232) fragments (one 8-byte fragment when L is 0); the first carries
the real type, later ones type 0 with the same msg_id, seq and fragment count. A reply's body is a
u32 RM error followed by the reply payload.

The encoder refuses bodies above 14616 bytes with ``ValueError``. The decoder, ``RpcReceiver``,
never raises on input: anything malformed becomes a ``ProtocolViolation`` event, and it keeps one
reassembly in progress, like the RM and Linux. A new message that starts mid-reassembly aborts the
partial one (reported as a violation) and is then processed; a continuation that does not match the
message in progress is dropped (reported) and the reassembly goes on, as the RM does.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from gunyah_net.abi.rm import (
    RPC_API_BYTE,
    RPC_FRAGMENT_PAYLOAD,
    RPC_HEADER_SIZE,
    RPC_MAX_ADDITIONAL_FRAGMENTS,
    RPC_MAX_FRAGMENTS,
    RPC_MAX_PAYLOAD,
    RPC_MESSAGE_SIZE,
    RpcType,
)

_HEADER = struct.Struct("<BBHI")
_ERROR = struct.Struct("<I")


@dataclass(frozen=True)
class Request:
    """A complete request: ``payload`` is the reassembled body."""

    msg_id: int
    seq: int
    payload: bytes = b""


@dataclass(frozen=True)
class Reply:
    """A complete reply: ``error`` is the leading u32 RM error, ``payload`` what follows it."""

    msg_id: int
    seq: int
    error: int
    payload: bytes = b""


@dataclass(frozen=True)
class Notification:
    """A complete notification (the seq is the sender's counter; receivers ignore it)."""

    msg_id: int
    seq: int
    payload: bytes = b""


@dataclass(frozen=True)
class ProtocolViolation:
    """A fragment or message was malformed and dropped; ``reason`` says exactly why."""

    reason: str


Message = Request | Reply | Notification
Event = Request | Reply | Notification | ProtocolViolation


@dataclass(frozen=True)
class Header:
    """One decoded 8-byte fragment header."""

    rpc_type: RpcType
    fragments: int
    """How many fragments follow the first one (0..62)."""
    seq: int
    msg_id: int

    def pack(self) -> bytes:
        """Returns the 8 header bytes."""
        return _HEADER.pack(RPC_API_BYTE, (self.fragments << 2) | self.rpc_type,
                            self.seq, self.msg_id)


def fragment_count(body_length: int) -> int:
    """Returns how many fragments carry a body of ``body_length`` bytes (at least one)."""
    return max(1, -(-body_length // RPC_FRAGMENT_PAYLOAD))


def encode_request(msg_id: int, seq: int, payload: bytes = b"") -> list[bytes]:
    """Returns the fragments, each at most 240 bytes, that carry a request."""
    return _encode(RpcType.REQUEST, msg_id, seq, bytes(payload))


def encode_reply(msg_id: int, seq: int, error: int, payload: bytes = b"") -> list[bytes]:
    """Returns the fragments that carry a reply: the u32 ``error`` and then ``payload``."""
    if not 0 <= error <= 0xFFFF_FFFF:
        raise ValueError(f"RM error {error:#x} does not fit in a u32")
    return _encode(RpcType.REPLY, msg_id, seq, _ERROR.pack(error) + bytes(payload))


def encode_notification(msg_id: int, seq: int, payload: bytes = b"") -> list[bytes]:
    """Returns the fragments that carry a notification."""
    return _encode(RpcType.NOTIFICATION, msg_id, seq, bytes(payload))


def encode(message: Message) -> list[bytes]:
    """Returns the fragments that carry ``message``."""
    match message:
        case Request(msg_id, seq, payload):
            return encode_request(msg_id, seq, payload)
        case Reply(msg_id, seq, error, payload):
            return encode_reply(msg_id, seq, error, payload)
        case Notification(msg_id, seq, payload):
            return encode_notification(msg_id, seq, payload)
    raise TypeError(f"not an RM message: {message!r}")


def _encode(rpc_type: RpcType, msg_id: int, seq: int, body: bytes) -> list[bytes]:
    if len(body) > RPC_MAX_PAYLOAD:
        raise ValueError(f"RM message body of {len(body)} bytes exceeds {RPC_MAX_PAYLOAD} "
                         f"({RPC_MAX_FRAGMENTS} fragments of "
                         f"{RPC_FRAGMENT_PAYLOAD})")
    if not 0 <= msg_id <= 0xFFFF_FFFF:
        raise ValueError(f"msg_id {msg_id:#x} does not fit in a u32")
    if not 0 <= seq <= 0xFFFF:
        raise ValueError(f"seq {seq} does not fit in a u16")
    count = fragment_count(len(body))
    first = Header(rpc_type, count - 1, seq, msg_id).pack()
    rest = Header(RpcType.CONTINUATION, count - 1, seq, msg_id).pack()
    step = RPC_FRAGMENT_PAYLOAD
    return [(first if i == 0 else rest) + body[i * step:(i + 1) * step] for i in range(count)]


def parse_header(fragment: bytes) -> Header | ProtocolViolation:
    """Decodes the header of one fragment, or says why it is not a valid RM RPC fragment."""
    if len(fragment) > RPC_MESSAGE_SIZE:
        return ProtocolViolation(f"fragment of {len(fragment)} bytes exceeds {RPC_MESSAGE_SIZE}")
    if len(fragment) < RPC_HEADER_SIZE:
        return ProtocolViolation(f"fragment of {len(fragment)} bytes is shorter than the "
                                 f"{RPC_HEADER_SIZE}-byte header")
    api, kind, seq, msg_id = _HEADER.unpack_from(fragment)
    if api & 0xF != RPC_API_BYTE & 0xF:
        return ProtocolViolation(f"API version {api & 0xF} in header byte {api:#04x}, expected 1")
    if api >> 4 != RPC_API_BYTE >> 4:
        return ProtocolViolation(f"header length of {api >> 4} words in header byte {api:#04x}, "
                                 f"expected 2")
    fragments = kind >> 2
    if fragments > RPC_MAX_ADDITIONAL_FRAGMENTS:
        return ProtocolViolation(f"{fragments} additional fragments exceed the limit of "
                                 f"{RPC_MAX_ADDITIONAL_FRAGMENTS} (msg_id {msg_id:#x} seq {seq})")
    return Header(RpcType(kind & 0x3), fragments, seq, msg_id)


@dataclass
class _Partial:
    """The one message being reassembled."""

    first: Header
    chunks: list[bytes]

    def matches(self, header: Header) -> bool:
        return (header.msg_id, header.seq, header.fragments) == (
            self.first.msg_id, self.first.seq, self.first.fragments)

    def describe(self) -> str:
        return (f"{self.first.rpc_type.name.lower()} msg_id {self.first.msg_id:#x} "
                f"seq {self.first.seq}")


class RpcReceiver:
    """Reassembles the fragments of one link into messages; never raises on input."""

    def __init__(self) -> None:
        self._partial: _Partial | None = None

    @property
    def in_progress(self) -> bool:
        """True while a multi-fragment message is partly received."""
        return self._partial is not None

    def receive(self, fragment: bytes) -> list[Event]:
        """Consumes one msgqueue message; returns the messages it completes and any violations."""
        header = parse_header(bytes(fragment))
        match header:
            case ProtocolViolation():
                return [header]
            case Header(rpc_type=RpcType.CONTINUATION):
                return self._continue(header, bytes(fragment[RPC_HEADER_SIZE:]))
            case _:
                return self._start(header, bytes(fragment[RPC_HEADER_SIZE:]))

    def _start(self, header: Header, chunk: bytes) -> list[Event]:
        events: list[Event] = []
        if self._partial is not None:
            partial = self._partial
            events.append(ProtocolViolation(
                f"{partial.describe()} aborted after {len(partial.chunks)} of "
                f"{partial.first.fragments + 1} fragments by a new "
                f"{header.rpc_type.name.lower()} msg_id {header.msg_id:#x} seq {header.seq}"))
            self._partial = None
        if header.fragments == 0:
            events.append(_complete(header, chunk))
        else:
            self._partial = _Partial(header, [chunk])
        return events

    def _continue(self, header: Header, chunk: bytes) -> list[Event]:
        partial = self._partial
        if partial is None:
            return [ProtocolViolation(f"continuation of msg_id {header.msg_id:#x} seq "
                                      f"{header.seq} with no message in progress")]
        if not partial.matches(header):
            return [ProtocolViolation(
                f"continuation (msg_id {header.msg_id:#x} seq {header.seq}, "
                f"{header.fragments + 1} fragments) does not match {partial.describe()} "
                f"({partial.first.fragments + 1} fragments); dropped")]
        partial.chunks.append(chunk)
        if len(partial.chunks) <= partial.first.fragments:
            return []
        self._partial = None
        return [_complete(partial.first, b"".join(partial.chunks))]


def _complete(first: Header, body: bytes) -> Event:
    match first.rpc_type:
        case RpcType.REQUEST:
            return Request(first.msg_id, first.seq, body)
        case RpcType.NOTIFICATION:
            return Notification(first.msg_id, first.seq, body)
        case RpcType.REPLY if len(body) < _ERROR.size:
            return ProtocolViolation(f"reply msg_id {first.msg_id:#x} seq {first.seq} of "
                                     f"{len(body)} bytes is shorter than its error word")
        case RpcType.REPLY:
            (error,) = _ERROR.unpack_from(body)
            return Reply(first.msg_id, first.seq, error, body[_ERROR.size:])
    raise AssertionError(f"unreachable RPC type {first.rpc_type!r}")
