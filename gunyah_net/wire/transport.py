"""asyncio transport for frames: a ``Link`` reads and writes whole messages on a stream pair."""

from __future__ import annotations

import asyncio

from .codec import FrameDecoder, FrameError, encode
from .messages import Message

_READ_CHUNK = 64 * 1024


class LinkClosed(ConnectionError):
    """The peer closed the link, or it was closed for a protocol violation (see ``reason``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Link:
    """One framed, validated message link over an asyncio stream (Unix socket or TCP)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._decoder = FrameDecoder()
        self._inbox: list[Message] = []
        self.closed_reason: str | None = None

    @classmethod
    async def connect_unix(cls, path: str) -> "Link":
        """Opens a link to the Unix socket at ``path``."""
        reader, writer = await asyncio.open_unix_connection(path)
        return cls(reader, writer)

    @classmethod
    async def connect_tcp(cls, host: str, port: int) -> "Link":
        """Opens a link to ``host:port`` over TCP."""
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def receive(self) -> Message:
        """Returns the next message; raises LinkClosed on EOF, on a malformed frame, and once the
        link was closed (frames already read but not yet returned are dropped with it)."""
        if self.closed_reason is not None:
            self._inbox.clear()
            raise LinkClosed(self.closed_reason)
        while not self._inbox:
            data = await self._read_chunk()
            try:
                self._inbox.extend(self._decoder.feed(data))
            except FrameError as exc:
                self.close(f"malformed frame: {exc}")
                raise LinkClosed(f"malformed frame: {exc}") from exc
        return self._inbox.pop(0)

    async def _read_chunk(self) -> bytes:
        try:
            data = await self._reader.read(_READ_CHUNK)
        except (ConnectionError, OSError) as exc:
            self.close(f"read failed: {exc}")
            raise LinkClosed(f"read failed: {exc}") from exc
        if not data:
            reason = "peer closed the link"
            if self._decoder.pending():
                reason += f" mid-frame ({self._decoder.pending()} bytes pending)"
            self.close(reason)
            raise LinkClosed(reason)
        return data

    def send(self, message: Message) -> None:
        """Queues ``message`` for sending; raises LinkClosed if the link is closed."""
        if self.closed_reason is not None or self._writer.is_closing():
            raise LinkClosed(self.closed_reason or "link is closing")
        self._writer.write(encode(message))

    async def drain(self) -> None:
        """Waits until the write buffer is below its high-water mark."""
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            self.close(f"write failed: {exc}")
            raise LinkClosed(f"write failed: {exc}") from exc

    def write_buffer_size(self) -> int:
        """Returns the bytes queued but not yet written."""
        return self._writer.transport.get_write_buffer_size()

    def close(self, reason: str) -> None:
        """Closes the link once, remembering why."""
        if self.closed_reason is None:
            self.closed_reason = reason
        if not self._writer.is_closing():
            self._writer.close()
