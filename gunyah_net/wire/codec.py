"""Length-prefixed msgpack frames: a sans-IO encoder and incremental decoder.

A frame is a 4-byte big-endian payload length followed by a msgpack map (see messages.py). The
decoder is fed arbitrary byte chunks and returns whole messages. Any violation (a length above
``MAX_FRAME``, an empty frame, bytes that are not msgpack, trailing bytes inside a frame, or a map
that is not a valid message) raises ``FrameError``; the caller closes that link and logs the reason.
"""

from __future__ import annotations

import struct

import msgpack

from .messages import Message, MessageError, from_wire, to_wire

MAX_FRAME = 1 << 20
"""Largest accepted payload, 1 MiB. Console chunks and buffers stay far below it."""

_HEADER = struct.Struct(">I")


class FrameError(ValueError):
    """A byte stream violated the framing or message rules; the link must close."""


def encode(message: Message) -> bytes:
    """Returns the frame (length prefix plus msgpack payload) for ``message``."""
    payload = msgpack.packb(to_wire(message), use_bin_type=True)
    if len(payload) > MAX_FRAME:
        raise FrameError(f"{type(message).__name__} frame of {len(payload)} bytes exceeds "
                         f"{MAX_FRAME}")
    return _HEADER.pack(len(payload)) + payload


def decode_payload(payload: bytes) -> Message:
    """Decodes one frame payload into a validated message."""
    try:
        obj = msgpack.unpackb(payload, raw=False, strict_map_key=True, use_list=True)
    except (msgpack.ExtraData, ValueError, TypeError, msgpack.UnpackException) as exc:
        raise FrameError(f"payload is not a single msgpack object: {exc}") from exc
    try:
        return from_wire(obj)
    except MessageError as exc:
        raise FrameError(str(exc)) from exc


class FrameDecoder:
    """Incremental decoder: ``feed`` bytes in, get whole validated messages out."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        self._max_frame = max_frame

    def feed(self, data: bytes) -> list[Message]:
        """Consumes ``data`` and returns every message completed by it, in order."""
        self._buffer += data
        messages = []
        while len(self._buffer) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self._buffer)
            self._check_length(length)
            end = _HEADER.size + length
            if len(self._buffer) < end:
                break
            payload = bytes(self._buffer[_HEADER.size:end])
            del self._buffer[:end]
            messages.append(decode_payload(payload))
        return messages

    def pending(self) -> int:
        """Returns how many bytes of an incomplete frame are buffered."""
        return len(self._buffer)

    def _check_length(self, length: int) -> None:
        if length == 0:
            raise FrameError("empty frame")
        if length > self._max_frame:
            raise FrameError(f"frame length {length} exceeds the {self._max_frame}-byte limit")
