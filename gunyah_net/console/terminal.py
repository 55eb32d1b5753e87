"""Interactive console attachment: a terminal (or pipe) joined to a VM's console websocket.

On a TTY the terminal goes into raw mode (restored on every exit path) so keystrokes, Ctrl-C
included, reach the guest; Ctrl-] detaches. When stdin is not a TTY, termios is left alone and
stdin is simply piped to the VM: at end of input the session lingers until the VM has been quiet
for ``PIPE_LINGER`` seconds, so the reply to the piped input is printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import termios
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp

DETACH_KEY = b"\x1d"
"""Ctrl-]: ends an interactive console session."""
PIPE_LINGER = 0.5


class ConsoleError(Exception):
    """The console could not be attached; ``status`` is the HTTP status if the server refused."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SessionEnd:
    """Why a console session ended; ``clean`` is False if the server dropped it unexpectedly."""

    reason: str
    clean: bool


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Puts terminal ``fd`` in raw mode (output post-processing kept) and restores it after."""
    saved = termios.tcgetattr(fd)
    raw = termios.tcgetattr(fd)
    raw[0] &= ~(termios.BRKINT | termios.ICRNL | termios.INPCK | termios.ISTRIP | termios.IXON)
    raw[2] = (raw[2] & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
    raw[3] &= ~(termios.ECHO | termios.ICANON | termios.IEXTEN | termios.ISIG)
    raw[6][termios.VMIN] = 1
    raw[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSAFLUSH, raw)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)


def _start_stdin_reader(fd: int, queue: asyncio.Queue) -> None:
    """Reads ``fd`` on a daemon thread (works for TTYs, pipes and files); None marks EOF."""
    loop = asyncio.get_running_loop()

    def run() -> None:
        while True:
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
            loop.call_soon_threadsafe(queue.put_nowait, data or None)
            if not data:
                return

    threading.Thread(target=run, name="console-stdin", daemon=True).start()


class ConsoleSession:
    """One attached console: websocket output to ``out_fd``, ``in_fd`` input to the websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, in_fd: int, out_fd: int,
                 interactive: bool) -> None:
        self._ws = ws
        self._in_fd = in_fd
        self._out_fd = out_fd
        self._interactive = interactive
        self._last_output = 0.0

    async def run(self) -> SessionEnd:
        """Pumps both directions until detach, end of piped input, or the server closing."""
        loop = asyncio.get_running_loop()
        self._last_output = loop.time()
        output = asyncio.create_task(self._pump_output())
        feeding = asyncio.create_task(self._pump_input())
        done, _ = await asyncio.wait({output, feeding}, return_when=asyncio.FIRST_COMPLETED)
        if output in done:
            feeding.cancel()
            return output.result()
        ended = feeding.result()
        if not self._interactive:
            await self._linger(output)
        output.cancel()
        await asyncio.gather(output, return_exceptions=True)
        return ended

    async def _pump_output(self) -> SessionEnd:
        while True:
            msg = await self._ws.receive()
            match msg.type:
                case aiohttp.WSMsgType.BINARY | aiohttp.WSMsgType.TEXT:
                    data = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
                    await asyncio.to_thread(_write_all, self._out_fd, data)
                    self._last_output = asyncio.get_running_loop().time()
                case aiohttp.WSMsgType.CLOSE:
                    reason = f": {msg.extra}" if msg.extra else ""
                    going_away = msg.data == aiohttp.WSCloseCode.GOING_AWAY
                    return SessionEnd(f"console closed by the coordinator (code {msg.data}"
                                      f"{reason})", clean=going_away)
                case _:
                    return SessionEnd("console connection lost", clean=False)

    async def _pump_input(self) -> SessionEnd:
        queue: asyncio.Queue = asyncio.Queue()
        _start_stdin_reader(self._in_fd, queue)
        while (data := await queue.get()) is not None:
            if self._interactive and DETACH_KEY in data:
                data = data[:data.index(DETACH_KEY)]
                if data:
                    await self._ws.send_bytes(data)
                return SessionEnd("detached", clean=True)
            for start in range(0, len(data), 4096):
                await self._ws.send_bytes(data[start:start + 4096])
        return SessionEnd("end of input", clean=True)

    async def _linger(self, output: asyncio.Task) -> None:
        loop = asyncio.get_running_loop()
        while not output.done() and loop.time() - self._last_output < PIPE_LINGER:
            await asyncio.sleep(0.05)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


async def attach(url: str, token: str, in_fd: int | None = None,
                 out_fd: int | None = None) -> SessionEnd:
    """Attaches to the console websocket at ``url`` until the session ends."""
    in_fd = sys.stdin.fileno() if in_fd is None else in_fd
    out_fd = sys.stdout.fileno() if out_fd is None else out_fd
    interactive = os.isatty(in_fd)
    async with aiohttp.ClientSession() as http:
        try:
            ws = await http.ws_connect(url, headers={"Authorization": f"Bearer {token}"},
                                       max_msg_size=0)
        except aiohttp.WSServerHandshakeError as exc:
            raise ConsoleError(f"{url}: {exc.status} {exc.message}", exc.status) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ConsoleError(f"cannot connect to {url}: {exc}") from exc
        async with ws:
            session = ConsoleSession(ws, in_fd, out_fd, interactive)
            if not interactive:
                return await session.run()
            with raw_terminal(in_fd):
                return await session.run()
