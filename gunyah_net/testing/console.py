"""A synchronous websocket console client for tests: collects a VM's output, waits for patterns.

The websocket runs on a private event loop in a daemon thread, so plain (non-async) pytest tests
can use it. Output is accumulated in full; ``expect`` searches from a cursor that advances past each
match, so successive expectations read the console in order.
"""

from __future__ import annotations

import asyncio
import re
import threading

import aiohttp


class ConsoleTimeout(AssertionError):
    """The expected console output did not appear in time; carries what did appear."""


class ConsoleClient:
    """One live websocket attachment to a VM console."""

    def __init__(self, url: str, token: str, name: str) -> None:
        self.name = name
        self._url = url
        self._token = token
        self._buffer = bytearray()
        self._cursor = 0
        self._cond = threading.Condition()
        self._closed: str | None = None
        self._loop = asyncio.new_event_loop()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"console-{name}", daemon=True)
        self._thread.start()
        if not self._connected.wait(10):
            raise ConnectionError(f"console {name}: websocket did not connect within 10 s")
        if self._closed:
            raise ConnectionError(f"console {name}: {self._closed}")

    def _run(self) -> None:
        self._loop.run_until_complete(self._pump())

    async def _pump(self) -> None:
        try:
            async with aiohttp.ClientSession() as session:
                headers = {"Authorization": f"Bearer {self._token}"}
                async with session.ws_connect(self._url, headers=headers) as ws:
                    self._ws = ws
                    self._connected.set()
                    async for msg in ws:
                        if msg.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                            data = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
                            with self._cond:
                                self._buffer += data
                                self._cond.notify_all()
                    self._set_closed(f"websocket closed (code {ws.close_code})")
        except (aiohttp.ClientError, OSError) as exc:
            self._set_closed(f"websocket error: {exc}")
        finally:
            self._connected.set()

    def _set_closed(self, reason: str) -> None:
        with self._cond:
            self._closed = reason
            self._cond.notify_all()

    @property
    def output(self) -> bytes:
        """Returns everything received so far (scrollback included)."""
        with self._cond:
            return bytes(self._buffer)

    def expect(self, pattern: str | bytes | re.Pattern, timeout: float = 10.0) -> re.Match:
        """Waits until ``pattern`` appears after the cursor; returns the match, advancing past it."""
        regex = _compile(pattern)
        with self._cond:
            found = self._cond.wait_for(lambda: self._search(regex) or self._closed, timeout)
            match = self._search(regex)
            if match is None:
                tail = bytes(self._buffer[self._cursor:])[-2000:]
                why = self._closed or f"not seen within {timeout} s"
                raise ConsoleTimeout(f"console {self.name}: {regex.pattern!r} {why}; "
                                     f"output after cursor: {tail!r}") from None
            del found
            self._cursor = match.end()
            return match

    def _search(self, regex: re.Pattern) -> re.Match | None:
        return regex.search(bytes(self._buffer), self._cursor)

    def send(self, data: str | bytes) -> None:
        """Sends ``data`` to the VM's UART receive path."""
        payload = data.encode() if isinstance(data, str) else data
        if self._ws is None or self._closed:
            raise ConnectionError(f"console {self.name}: {self._closed or 'not connected'}")
        future = asyncio.run_coroutine_threadsafe(self._ws.send_bytes(payload), self._loop)
        future.result(5)

    def close(self) -> None:
        """Closes the websocket and stops the client thread."""
        if self._ws is not None and not self._ws.closed:
            asyncio.run_coroutine_threadsafe(self._ws.close(), self._loop).result(5)
        self._thread.join(5)


def _compile(pattern: str | bytes | re.Pattern) -> re.Pattern:
    if isinstance(pattern, re.Pattern):
        return pattern if isinstance(pattern.pattern, bytes) else re.compile(
            pattern.pattern.encode(), pattern.flags & ~re.UNICODE)
    raw = pattern.encode() if isinstance(pattern, str) else pattern
    return re.compile(re.escape(raw))
