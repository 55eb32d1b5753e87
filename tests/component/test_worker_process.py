"""``python -m gunyah_net.worker`` as a real process against a tiny in-test coordinator.

The server below speaks protocol v1 over a real Unix socket (Hello/Welcome, heartbeats, console,
Stop) with real RAM files in /dev/shm and the committed guest images, and checks what the
coordinator depends on: the hello, the state reports, console bytes, and how fast and with which
status the worker exits. Every wait is bounded with asyncio.wait_for.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path


from gunyah_net.wire.messages import (ConsoleIn, ConsoleOut, Heartbeat, Hello, Message, Reject,
                                      Stop, VmState, Welcome)
from gunyah_net.wire.transport import Link, LinkClosed

IMAGES = Path(__file__).resolve().parents[2] / "nodes" / "images"
MEMORY = 32 << 20
TOKEN = "t0ken"


class FakeCoordinator:
    """Accepts one worker, answers its Hello, heartbeats it, and records what it sends."""

    def __init__(self, tmp_path: Path, image: Path, args: str = "", reject: str | None = None,
                 heartbeat: float = 0.1, vcpus: int = 1, welcome: Welcome | None = None) -> None:
        self.socket = str(tmp_path / "coord.sock")
        self.ram_path = Path("/dev/shm") / f"gn-worker-test-{os.getpid()}-{time.monotonic_ns()}"
        self.image, self.args, self.reject = image, args, reject
        self.heartbeat, self.vcpus = heartbeat, vcpus
        self.welcome = welcome
        """Sent instead of the default Welcome (a VM of ``image`` with RAM at ``ram_path``)."""
        self.log = tmp_path / "worker.log"
        self.hello: Hello | None = None
        self.received: asyncio.Queue[Message | None] = asyncio.Queue()
        self.console = bytearray()
        self._console_grew = asyncio.Event()
        self.heartbeats = 0
        self.link: Link | None = None
        self.beating = True
        self._tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> FakeCoordinator:
        with open(self.ram_path, "wb") as ram:
            ram.truncate(MEMORY)
        self._server = await asyncio.start_unix_server(self._serve, self.socket)
        return self

    async def __aexit__(self, *exc) -> None:
        for task in self._tasks:
            task.cancel()
        if self.link is not None:
            self.link.close("test over")
        self._server.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.ram_path.unlink(missing_ok=True)

    def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tasks.append(asyncio.create_task(self._session(Link(reader, writer))))

    async def _session(self, link: Link) -> None:
        self.link = link
        self.hello = await link.receive()
        if self.reject is not None:
            link.send(Reject(self.reject))
            await link.drain()
            link.close("rejected")
            return
        bootargs = "vm=alpha" + (f" {self.args}" if self.args else "")
        link.send(self.welcome or Welcome(1, "alpha", 0x80, self.vcpus, MEMORY, str(self.image),
                                          bootargs, str(self.ram_path), self.heartbeat))
        self._tasks.append(asyncio.create_task(self._beat(link)))
        try:
            while True:
                self._record(await link.receive())
        except LinkClosed:
            await self.received.put(None)

    def _record(self, message: Message) -> None:
        match message:
            case Heartbeat():
                self.heartbeats += 1
            case ConsoleOut(data=data):
                self.console += data
                self._console_grew.set()
            case _:
                self.received.put_nowait(message)

    async def _beat(self, link: Link) -> None:
        seq = 0
        while True:
            await asyncio.sleep(self.heartbeat)
            if self.beating:
                seq += 1
                link.send(Heartbeat(seq))

    async def spawn(self, extra_env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
        env = dict(os.environ, GUNYAH_NET_TOKEN=TOKEN, **(extra_env or {}))
        log = open(self.log, "ab")
        try:
            return await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gunyah_net.worker", "--socket", self.socket, "--vm",
                "alpha", env=env, stdout=log, stderr=log, start_new_session=True)
        finally:
            log.close()

    async def expect(self, kind: type, timeout: float = 10.0) -> Message:
        """Returns the next message other than a heartbeat or console output; checks its type."""
        message = await asyncio.wait_for(self.received.get(), timeout)
        assert message is not None, f"link closed while waiting for {kind.__name__}"
        assert isinstance(message, kind), f"expected {kind.__name__}, got {message}"
        return message

    async def console_until(self, text: bytes, timeout: float = 10.0) -> bytes:
        """Waits until the console output so far contains ``text``; returns all of it."""
        async def grow() -> None:
            while text not in self.console:
                self._console_grew.clear()
                await self._console_grew.wait()
        await asyncio.wait_for(grow(), timeout)
        return bytes(self.console)


async def _exit_status(proc: asyncio.subprocess.Process, timeout: float) -> int:
    try:
        return await asyncio.wait_for(proc.wait(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"worker still running after {timeout} s")


async def test_hello_console_and_stop(tmp_path):
    async with FakeCoordinator(tmp_path, IMAGES / "hello.elf") as coord:
        proc = await coord.spawn()
        assert await coord.expect(VmState) == VmState("running", 0, "")
        assert coord.hello == Hello(1, "alpha", proc.pid, TOKEN)
        assert await coord.console_until(b"hello from alpha\n") == b"hello from alpha\n"
        coord.link.send(ConsoleIn(b"ping\r"))
        assert await coord.console_until(b"ping\r\n") == b"hello from alpha\nping\r\n"
        await asyncio.sleep(0.3)
        assert coord.heartbeats >= 1, "the worker sends heartbeats every interval"
        coord.link.send(Stop("test done"))
        started = time.monotonic()
        assert await _exit_status(proc, 5.0) == 0
        assert time.monotonic() - started < 2.0


async def test_eof_from_the_coordinator_ends_the_worker_fast(tmp_path):
    async with FakeCoordinator(tmp_path, IMAGES / "testsvc.elf", "svc=spin") as coord:
        proc = await coord.spawn()
        assert await coord.expect(VmState) == VmState("running", 0, "")
        await coord.console_until(b"svc spin: start")
        coord.link.close("coordinator gone")
        started = time.monotonic()
        assert await _exit_status(proc, 5.0) == 1
        assert time.monotonic() - started < 2.0


async def test_system_off_reports_exited_after_the_console_output(tmp_path):
    async with FakeCoordinator(tmp_path, IMAGES / "hello.elf", "poweroff") as coord:
        proc = await coord.spawn()
        assert await coord.expect(VmState) == VmState("running", 0, "")
        assert await coord.expect(VmState) == VmState("exited", 1, "PSCI SYSTEM_OFF")
        assert bytes(coord.console) == b"hello from alpha\n", "output is flushed before the exit"
        assert await _exit_status(proc, 5.0) == 0


async def test_guest_fault_reports_software_error_and_dumps_registers(tmp_path):
    async with FakeCoordinator(tmp_path, IMAGES / "testsvc.elf", "svc=fault-undef") as coord:
        proc = await coord.spawn()
        assert await coord.expect(VmState) == VmState("running", 0, "")
        state = await coord.expect(VmState)
        assert state.state == "exited" and state.exit_type == 5
        assert state.reason.startswith("guest fault: undefined instruction 0x00000000 on vcpu 0 "
                                       "at pc=0x")
        assert await _exit_status(proc, 5.0) == 0
        log = coord.log.read_text()
        assert "vcpu 0 registers:" in log and "x30=" in log and "pstate=" in log


async def test_reset_reports_resetting_then_running(tmp_path):
    async with FakeCoordinator(tmp_path, IMAGES / "testsvc.elf", "svc=reset") as coord:
        proc = await coord.spawn()
        assert await coord.expect(VmState) == VmState("running", 0, "")
        assert await coord.expect(VmState) == VmState("resetting", 2, "PSCI SYSTEM_RESET")
        assert await coord.expect(VmState) == VmState("running", 0, "")
        coord.link.send(Stop("enough"))
        assert await _exit_status(proc, 5.0) == 0


async def test_rejected_worker_exits_with_status_2(tmp_path):
    async with FakeCoordinator(tmp_path, IMAGES / "hello.elf", reject="bad token") as coord:
        proc = await coord.spawn()
        assert await _exit_status(proc, 5.0) == 2
        assert "coordinator rejected us: bad token" in coord.log.read_text()


async def test_boot_failure_is_reported_with_its_reason(tmp_path):
    async with FakeCoordinator(tmp_path, tmp_path / "missing.elf") as coord:
        proc = await coord.spawn()
        state = await coord.expect(VmState)
        assert state.state == "exited" and state.exit_type == 5
        assert state.reason.startswith("boot failed: cannot read guest image")
        assert await _exit_status(proc, 5.0) == 0


async def test_silent_coordinator_is_treated_as_gone(tmp_path):
    async with FakeCoordinator(tmp_path, IMAGES / "hello.elf", heartbeat=0.05) as coord:
        proc = await coord.spawn()
        assert await coord.expect(VmState) == VmState("running", 0, "")
        coord.beating = False
        assert await _exit_status(proc, 5.0) == 1
        assert "silent for 4 heartbeat intervals" in coord.log.read_text()


async def test_sigint_is_ignored_and_sigterm_exits_cleanly(tmp_path):
    async with FakeCoordinator(tmp_path, IMAGES / "hello.elf") as coord:
        proc = await coord.spawn()
        assert await coord.expect(VmState) == VmState("running", 0, "")
        proc.send_signal(signal.SIGINT)
        await asyncio.sleep(0.3)
        assert proc.returncode is None, "SIGINT must not stop a worker"
        proc.send_signal(signal.SIGTERM)
        assert await coord.expect(VmState) == VmState("exited", 7, "worker received SIGTERM")
        assert await _exit_status(proc, 5.0) == 0


async def test_missing_token_is_an_error(tmp_path):
    async with FakeCoordinator(tmp_path, IMAGES / "hello.elf") as coord:
        env = {k: v for k, v in os.environ.items() if k != "GUNYAH_NET_TOKEN"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gunyah_net.worker", "--socket", coord.socket, "--vm", "alpha",
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), 10)
        assert proc.returncode == 3
        assert b"GUNYAH_NET_TOKEN is not set" in err
