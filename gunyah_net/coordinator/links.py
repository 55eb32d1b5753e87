"""Worker links: admitting a connection's Hello, serving its session, and judging how it ended.

A connection must send its Hello within ``hello_timeout`` seconds. ``handshake.admit`` decides it
(while the topology goes down every Hello is rejected); a rejected connection gets its ``Reject``
written and drained, then the link is closed. An admitted VM gets its ``Welcome`` (a VM without
an image, i.e. one the RM created, with its current stage-2 view, ``stage2.regions_of``) and a
``WorkerSession``, and its virq outbox is attached to the link until the session ends. The RM
VM's link also gets ``RmBoot`` right after the Welcome: the RM VM is running from then on, and
its link is where ``VmHalted`` reports go.

When a session ends, a link the worker broke (malformed frame, protocol violation, silence) fails
the VM; so does a worker that closed its link cleanly but is still running ``LINK_EOF_GRACE``
seconds later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace

from ..abi.rm import ExitType
from ..console.hub import ConsoleHub
from ..hyp.memory import Memory
from ..wire.messages import Hello, Hvc, Message, Reject, RmBoot, VmHalted, VmState, Welcome
from ..wire.transport import Link, LinkClosed
from .handshake import VmBoot, admit
from .session import HvcAnswer, LinkEnd, WorkerSession
from .stage2 import Stage2Carrier, regions_of
from .virqs import VirqRouter
from .vmtable import RM_NAME, VmRecord, VmTable
from .workers import Workers

log = logging.getLogger(__name__)

HELLO_TIMEOUT = 5.0
"""A connection must send its Hello within this many seconds."""
LINK_EOF_GRACE = 1.0
"""A worker that closes its link but keeps running this long is killed."""


class LinkServer:
    """The coordinator's side of every worker link: one ``WorkerSession`` per connected VM."""

    def __init__(self, table: VmTable, workers: Workers, boots: Mapping[str, VmBoot], *,
                 token: str, heartbeat_interval: float, hello_timeout: float,
                 hub: ConsoleHub, virqs: VirqRouter, stage2: Stage2Carrier, memory: Memory,
                 on_hvc: Callable[[str, Hvc], HvcAnswer], rm_boot: Callable[[], RmBoot],
                 notify: Callable[[VmRecord | None], None]) -> None:
        """``boots`` is the coordinator's live table of how each VM boots; ``on_hvc`` answers a
        forwarded hypercall (``WorkerSession``); ``rm_boot()`` builds the RM VM's ``RmBoot``;
        ``notify(record)`` publishes a VM state change."""
        self._table = table
        self._workers = workers
        self._boots = boots
        self._token = token
        self._interval = heartbeat_interval
        self._hello_timeout = hello_timeout
        self._hub = hub
        self._virqs = virqs
        self._stage2 = stage2
        self._memory = memory
        self._on_hvc = on_hvc
        self._rm_boot = rm_boot
        self._notify = notify
        self._sessions: dict[str, WorkerSession] = {}
        self._rm_link: Link | None = None

    def session(self, name: str) -> WorkerSession | None:
        """Returns VM ``name``'s connected worker session, if there is one."""
        return self._sessions.get(name)

    def close(self, name: str, reason: str) -> None:
        """Closes VM ``name``'s link now, if it has one."""
        session = self._sessions.get(name)
        if session is not None:
            session.close(reason)

    def close_all(self, reason: str) -> None:
        """Closes every worker link now."""
        for session in list(self._sessions.values()):
            session.close(reason)

    def console_input(self, vm: str, data: bytes) -> bool:
        """Sends console input to VM ``vm``'s guest UART; False if it has no usable link."""
        session = self._sessions.get(vm)
        return session is not None and session.send_input(data)

    def send_vm_halted(self, record: VmRecord) -> None:
        """Tells the RM VM that VM ``record`` stopped running on its own (VmHalted); a worker
        that died without reporting why is ASYNC_HW_ERROR (the emulated platform failed)."""
        exit_type = record.exit_type
        if exit_type is None:
            exit_type = int(ExitType.ASYNC_HW_ERROR)
        if self._rm_link is None or self._workers.closing:
            return
        try:
            self._rm_link.send(VmHalted(record.vmid, exit_type, record.reason))
        except LinkClosed:
            log.warning("%s halted (%s) but the RM VM's link is gone", record.name, record.reason)

    # -- one link ----------------------------------------------------------------------------

    async def serve(self, link: Link) -> None:
        """Serves one new connection: its Hello, then its VM's session until the link ends."""
        try:
            hello = await asyncio.wait_for(link.receive(), self._hello_timeout)
        except (LinkClosed, TimeoutError) as exc:
            link.close("no hello")
            log.warning("worker connection dropped before its Hello: %s",
                        exc.reason if isinstance(exc, LinkClosed) else "timed out")
            return
        verdict = self._admit(hello)
        if isinstance(verdict, Reject):
            await self._reject(link, verdict)
            return
        record = self._table[verdict.name]
        session = WorkerSession(verdict.name, record.vmid, link, self._interval, self._hub,
                                self._on_vm_state, self._on_hvc, self._stage2.acknowledged)
        self._sessions[verdict.name] = session
        link.send(verdict)
        if verdict.name == RM_NAME:
            self._rm_welcomed(link)
        outbox = self._virqs.outbox(record.vmid)
        outbox.attach(link)
        try:
            end = await session.run()
        finally:
            if self._sessions.get(verdict.name) is session:
                del self._sessions[verdict.name]
            outbox.detach()
            self._stage2.link_ended(record.vmid)
        await self._link_ended(verdict.name, end)

    def _admit(self, hello: Message) -> Welcome | Reject:
        if not isinstance(hello, Hello):
            return Reject(f"expected Hello as the first frame, got {type(hello).__name__}")
        if self._workers.closing:
            return Reject("the topology is shutting down")
        verdict = admit(hello, token=self._token, boots=self._boots,
                        records={r.name: r for r in self._table.records()},
                        connected=frozenset(self._sessions), heartbeat_interval=self._interval,
                        started=self._workers.started())
        if isinstance(verdict, Welcome) and not verdict.image:
            # Stage 2 as it is now: MemUpdates only reach connected workers (stage2.py).
            verdict = replace(verdict, regions=regions_of(self._memory, verdict.vmid))
        return verdict

    def _rm_welcomed(self, link: Link) -> None:
        """Sends ``RmBoot`` right after the RM VM's Welcome; the RM VM is running from now on."""
        link.send(self._rm_boot())
        self._rm_link = link
        self._notify(self._table.reported(RM_NAME, VmState("running", 0, "")))

    async def _reject(self, link: Link, reject: Reject) -> None:
        log.warning("rejected a worker connection: %s", reject.reason)
        try:
            link.send(reject)
            await link.drain()
        except LinkClosed:
            pass
        link.close(f"rejected: {reject.reason}")

    def _on_vm_state(self, vm: str, report: VmState) -> None:
        if vm in self._table:  # Not a destroyed VM's last words.
            self._notify(self._table.reported(vm, report))

    async def _link_ended(self, vm: str, end: LinkEnd) -> None:
        if end.fault:
            log.warning("%s: link closed: %s", vm, end.reason)
            self._workers.fail(vm, end.reason)
            return
        worker = self._workers.process(vm)
        if self._workers.closing or worker is None or self._table[vm].terminal:
            return
        try:
            await asyncio.wait_for(asyncio.shield(worker.wait()), LINK_EOF_GRACE)
        except TimeoutError:
            self._workers.fail(vm, f"worker closed its link ({end.reason}) but kept running")
