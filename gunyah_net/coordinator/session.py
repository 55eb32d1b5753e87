"""One admitted worker's link: heartbeats, the liveness watchdog and routing of its messages.

The session ends when the link does. ``run`` returns a ``LinkEnd`` telling the coordinator why, and
whether the worker is at fault (malformed frame, protocol violation, heartbeat silence), in which
case the coordinator marks the VM crashed and kills the worker.

Backpressure: after every frame it handles, the receive loop waits until this link's write buffer
is below its high-water mark, so a worker that stops reading stops being read from; its frames wait
in the kernel's socket buffer, not in the coordinator. Hypercalls are request/response per vCPU (a
vCPU waits for its HvcReturn), so a worker has at most one Hvc in flight per vCPU and the replies
it has not read are bounded by that too. Virq frames that peers cause are bounded by ``virqs``.

Most hypercalls are answered at once. One with memory effects is answered later: ``on_hvc``
then returns an awaitable (the stage-2 updates must be applied by every affected worker first),
and the session sends its reply when that ends; the receive loop keeps serving the link
meanwhile, so this worker's ``MemUpdated`` answers (routed to ``on_mem_updated``) and its other
vCPUs' calls still get through.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..console.hub import ConsoleHub
from ..wire.codec import FrameError
from ..wire.messages import (ConsoleIn, ConsoleOut, Heartbeat, Hvc, HvcReturn, MemUpdated, Message,
                             Stop, VmState)
from ..wire.transport import Link, LinkClosed

log = logging.getLogger(__name__)

SILENT_INTERVALS = 4
"""A link with no frame at all for this many heartbeat intervals is lost."""
INPUT_BUFFER_LIMIT = 1 << 20
"""Console input is dropped while this many bytes are queued to a worker that is not reading."""

HvcAnswer = HvcReturn | Awaitable[HvcReturn | None] | None
"""What ``on_hvc`` returns: the reply now, an awaitable of the reply, or None (no reply)."""


@dataclass(frozen=True)
class LinkEnd:
    """Why a worker link ended; ``fault`` means the worker broke the protocol or went silent."""

    reason: str
    fault: bool


class WorkerSession:
    """The coordinator's side of one worker link."""

    def __init__(self, vm: str, vmid: int, link: Link, heartbeat_interval: float,
                 hub: ConsoleHub, on_state: Callable[[str, VmState], None],
                 on_hvc: Callable[[str, Hvc], HvcAnswer],
                 on_mem_updated: Callable[[int, int], None] | None = None) -> None:
        """``on_hvc(vm, call)`` executes a forwarded hypercall and returns the reply to send, or
        an awaitable of it (None: no reply, the VM is being failed); ``on_mem_updated(vmid,
        seq)`` takes the worker's MemUpdated answers (without it they are a protocol error)."""
        self.vm = vm
        self.vmid = vmid
        self._link = link
        self._interval = heartbeat_interval
        self._hub = hub
        self._on_state = on_state
        self._on_hvc = on_hvc
        self._on_mem_updated = on_mem_updated
        self._replies: set[asyncio.Task] = set()
        self._fault: str | None = None
        self._last_rx = 0.0

    async def run(self) -> LinkEnd:
        """Serves the link until it ends and returns why."""
        self._last_rx = asyncio.get_running_loop().time()
        watchdog = asyncio.create_task(self._heartbeat(), name=f"heartbeat-{self.vm}")
        try:
            return await self._receive_loop()
        finally:
            watchdog.cancel()
            for task in self._replies:
                task.cancel()
            self._link.close("session ended")

    async def _receive_loop(self) -> LinkEnd:
        while True:
            try:
                message = await self._link.receive()
            except LinkClosed as exc:
                if self._fault is not None:
                    return LinkEnd(self._fault, fault=True)
                return LinkEnd(exc.reason, fault=isinstance(exc.__cause__, FrameError))
            self._last_rx = asyncio.get_running_loop().time()
            violation = self._handle(message)
            if violation is not None:
                self._link.close(violation)
                return LinkEnd(violation, fault=True)
            await self._drain()

    def _handle(self, message: Message) -> str | None:
        """Acts on one message from the worker; returns a protocol-violation reason, if any."""
        match message:
            case Heartbeat():
                pass
            case ConsoleOut(data=data):
                self._hub.publish(self.vm, data)
            case VmState():
                self._on_state(self.vm, message)
            case Hvc():
                reply = self._on_hvc(self.vm, message)
                if isinstance(reply, HvcReturn):
                    self._send(reply)
                elif reply is not None:
                    self._reply_later(reply)
            case MemUpdated(seq=seq) if self._on_mem_updated is not None:
                self._on_mem_updated(self.vmid, seq)
            case _:
                return f"protocol error: worker sent {type(message).__name__}"
        return None

    def _reply_later(self, reply: Awaitable[HvcReturn | None]) -> None:
        """Sends the reply ``reply`` resolves to, once it does (unless the session ends first)."""
        async def answer() -> None:
            message = await reply
            if message is not None:
                self._send(message)
        task = asyncio.get_running_loop().create_task(answer(), name=f"hvc-reply-{self.vm}")
        self._replies.add(task)
        task.add_done_callback(self._replies.discard)

    async def _heartbeat(self) -> None:
        """Sends a Heartbeat every interval; declares the link lost after too much silence."""
        loop = asyncio.get_running_loop()
        seq = 0
        while True:
            await asyncio.sleep(self._interval)
            silence = loop.time() - self._last_rx
            if silence > SILENT_INTERVALS * self._interval:
                self._fault = f"link lost: no frame from the worker for {silence:.1f} s"
                log.warning("%s: %s", self.vm, self._fault)
                self._link.close(self._fault)
                return
            seq += 1
            if not self._send(Heartbeat(seq)):
                return

    def send(self, message: Message) -> bool:
        """Writes ``message`` to the worker; False if the link is gone."""
        return self._send(message)

    def _send(self, message: Message) -> bool:
        try:
            self._link.send(message)
        except LinkClosed:
            return False
        return True

    async def _drain(self) -> None:
        try:
            await self._link.drain()
        except LinkClosed:
            pass  # The next receive reports the end of the link.

    def send_input(self, data: bytes) -> bool:
        """Queues console input for the guest UART; False if the link is gone or backed up."""
        if self._link.closed_reason is not None:
            return False
        if self._link.write_buffer_size() > INPUT_BUFFER_LIMIT:
            log.warning("%s: worker is not reading; dropped %d bytes of console input",
                        self.vm, len(data))
            return False
        return self._send(ConsoleIn(data))

    def stop(self, reason: str) -> None:
        """Asks the worker to stop its vCPUs and exit."""
        self._send(Stop(reason))

    def close(self, reason: str) -> None:
        """Closes the link now."""
        self._link.close(reason)
