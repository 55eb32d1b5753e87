"""The RM VM's link to EL2 (the coordinator): hypercalls out, virqs and stage-2 updates in.

Once the handshake is done the link carries, like a worker's:

- ``Hvc`` / ``HvcReturn``: ``await call(number, args, data)`` sends one hypercall with the next
  seq and returns its ``HvcReturn`` (registers and output bytes). Calls may overlap (every
  destination's sender is its own task); each return is matched to its call by seq. A return
  whose seq answers no call is a protocol violation.
- ``Virq``: handed to ``on_virq(virq, asserted)`` (the runtime).
- ``MemUpdate``: carried out on the RM's own stage 2 (``rm.stage2``) and answered
  ``MemUpdated(seq)`` at once: the coordinator holds the hypercall that caused it until then.
- ``VmHalted``: handed to ``on_vm_halted``.
- ``Heartbeat``: both sides send one every interval; four silent intervals mean the
  coordinator is gone. ``ConsoleIn`` (someone typed into ``console rm``) is ignored.
- ``Stop``: the session ends with EXIT_OK.

``run`` serves the link until it ends and reports through ``finish(status, why)``; every call
still waiting then raises ``El2LinkClosed``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gunyah_net.abi.errors import Error
from gunyah_net.wire.messages import (
    ConsoleIn,
    ConsoleOut,
    Heartbeat,
    Hvc,
    HvcReturn,
    MemUpdate,
    MemUpdated,
    Message,
    Stop,
    Virq,
    VmHalted,
)
from gunyah_net.spawned import EXIT_ERROR, EXIT_LINK_LOST, EXIT_OK
from gunyah_net.wire.transport import Link, LinkClosed

from .el2_memory import Plan
from .stage2 import RmStage2, Stage2Error

log = logging.getLogger(__name__)

SILENCE_INTERVALS = 4
_U64 = (1 << 64) - 1


class El2LinkClosed(ConnectionError):
    """The link to EL2 ended while a hypercall waited for its return."""


@dataclass(frozen=True)
class HvcResult:
    """What one hypercall returned: X0.. and any output bytes."""

    regs: tuple[int, ...]
    data: bytes = b""

    @property
    def error(self) -> Error | int:
        """X0 as a Gunyah error (the raw signed value if it is none of them)."""
        x0 = self.regs[0] if self.regs else 0
        signed = x0 - (1 << 64) if x0 >> 63 else x0
        return Error(signed) if signed in Error._value2member_map_ else signed


def _ignore_virq(virq: int, asserted: bool) -> None:
    log.warning("virq %d arrived before the RM runtime was ready; ignored", virq)


def _ignore_halted(halted: VmHalted) -> None:
    log.warning("VmHalted(%#x) arrived before the RM runtime was ready; ignored", halted.vmid)


class El2Link:
    """The RM's side of its coordinator link after the handshake."""

    def __init__(self, link: Link, stage2: RmStage2, heartbeat_interval: float,
                 finish: Callable[[int, str], None]) -> None:
        self._link = link
        self.stage2 = stage2
        self._interval = heartbeat_interval
        self._finish = finish
        self._loop = asyncio.get_running_loop()
        self._last_heard = self._loop.time()
        self._seq = 0
        self._waiting: dict[int, asyncio.Future[HvcResult]] = {}
        self._closed: str | None = None
        self.on_virq: Callable[[int, bool], None] = _ignore_virq
        self.on_vm_halted: Callable[[VmHalted], None] = _ignore_halted

    # --- hypercalls -------------------------------------------------------------------------------

    async def call(self, number: int, args: Sequence[int], data: bytes = b"") -> HvcResult:
        """Makes hypercall ``number`` with ``args`` (table order) and input ``data``; returns
        its result. Raises ``El2LinkClosed`` if the link ends first."""
        if self._closed is not None:
            raise El2LinkClosed(self._closed)
        self._seq = (self._seq + 1) & _U64
        future: asyncio.Future[HvcResult] = self._loop.create_future()
        self._waiting[self._seq] = future
        self._send(Hvc(self._seq, 0, number, [a & _U64 for a in args], bytes(data)))
        return await future

    async def drive(self, plan: Plan) -> None:
        """Makes every call of a memory plan in turn, sending each one's registers back into
        it; ``El2CallFailed`` from the plan propagates."""
        try:
            call = next(plan)
            while True:
                result = await self.call(call.number, call.args)
                call = plan.send(list(result.regs))
        except StopIteration:
            return

    # --- console ----------------------------------------------------------------------------------

    def console(self, text: str) -> None:
        """Shows one line of RM activity on the ``rm`` console."""
        self._send(ConsoleOut((text.rstrip("\n") + "\n").encode("utf-8", "replace")))

    # --- serving the link -------------------------------------------------------------------------

    async def run(self) -> None:
        """Serves the link (frames in, heartbeats out) until it ends."""
        heartbeat = asyncio.create_task(self._heartbeat_loop(), name="rm-heartbeat")
        try:
            await self._receive_loop()
        finally:
            heartbeat.cancel()

    def close(self, reason: str) -> None:
        """Closes the link; waiting calls raise ``El2LinkClosed``."""
        if self._closed is None:
            self._closed = reason
        self._link.close(reason)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(El2LinkClosed(reason))
        self._waiting.clear()

    async def drain(self, timeout: float) -> None:
        """Waits up to ``timeout`` s for queued frames to be written."""
        try:
            await asyncio.wait_for(self._link.drain(), timeout)
        except (LinkClosed, asyncio.TimeoutError):
            pass  # the coordinator is gone or stuck; nothing more to tell it

    async def _receive_loop(self) -> None:
        while True:
            try:
                message = await self._link.receive()
            except LinkClosed as closed:
                self._end(EXIT_LINK_LOST, f"coordinator link closed: {closed.reason}")
                return
            self._last_heard = self._loop.time()
            violation = self._dispatch(message)
            if violation is not None:
                self._end(EXIT_ERROR, f"protocol violation: {violation}")
                return

    def _dispatch(self, message: Message) -> str | None:
        """Acts on one frame; returns a protocol violation, if it is one."""
        match message:
            case HvcReturn(seq=seq, regs=regs, data=data):
                future = self._waiting.pop(seq, None)
                if future is None:
                    return f"HvcReturn seq {seq} answers no hypercall"
                if not future.done():
                    future.set_result(HvcResult(tuple(regs), data))
            case Virq(virq=virq, asserted=asserted):
                self.on_virq(virq, asserted)
            case MemUpdate(seq=seq, ops=ops):
                try:
                    self.stage2.apply(ops)
                except Stage2Error as exc:
                    return f"MemUpdate {seq}: {exc}"
                self._send(MemUpdated(seq))
            case VmHalted():
                self.on_vm_halted(message)
            case Stop(reason=reason):
                self._end(EXIT_OK, f"Stop: {reason}")
            case Heartbeat() | ConsoleIn():
                pass
            case _:
                return f"unexpected {type(message).__name__} from the coordinator"
        return None

    async def _heartbeat_loop(self) -> None:
        seq = 0
        while True:
            await asyncio.sleep(self._interval)
            if self._loop.time() - self._last_heard > SILENCE_INTERVALS * self._interval:
                self._end(EXIT_LINK_LOST, f"coordinator silent for {SILENCE_INTERVALS} "
                          "heartbeat intervals")
                return
            seq += 1
            self._send(Heartbeat(seq))

    def _send(self, message: Message) -> None:
        if self._closed is not None:
            return
        try:
            self._link.send(message)
        except LinkClosed as closed:
            self._end(EXIT_LINK_LOST, f"coordinator link closed: {closed.reason}")

    def _end(self, status: int, why: str) -> None:
        self._finish(status, why)
        if status != EXIT_OK:
            self.close(why)

