"""Carries EL2's virq effects to the workers: one VirqOutbox per VM, routed by vmid.

``AssertVirq(vmid, virq)`` becomes ``Virq(virq, True)`` on that VM's link, ``DeassertVirq``
becomes ``Virq(virq, False)``, with the meaning ``hyp/effects.py`` gives them for either trigger:
True latches the virq pending (GICD_ISPENDR), False withdraws it if not yet acknowledged
(GICD_ICPENDR). Neither holds a line high: EL2 itself re-asserts a level source that is still
pending, and an auto-acknowledged level doorbell must be delivered exactly once (a worker that
drove a level line from these frames would re-pend it at every EOI).

A frame is written at once, so every frame on a link stays in the order the coordinator produced
it (the transport is FIFO), and the caller of a hypercall gets its ``HvcReturn`` after the effects
on it: the coordinator flushes the caller's own outbox first.

An outbox holds changes instead of writing them in three cases:

- **The worker has not connected yet.** A peer that boots first may ring this VM; its level
  assertion would otherwise be lost, and EL2 never repeats a level assertion. Held changes are
  written right after the Welcome (``attach``).
- **The worker is not reading** (the link's write buffer is above ``HOLD_THRESHOLD``). Held
  changes are coalesced per virq, keeping only the latest state, so what a stuck worker costs
  the coordinator is bounded by the number of virqs (988 SPIs), however fast its peers ring.
  A task writes them once the link drains. Coalescing changes nothing a guest may rely on: a
  held change has not reached the vGIC, a GIC's pending state is one bit (two assertions before
  the guest acknowledges are one interrupt), and an assertion withdrawn before delivery is one a
  slower guest would not have seen either.
- **The worker is gone** (``detach``): changes are dropped with a debug log; the VM is dead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from ..hyp.effects import AssertVirq, DeassertVirq, Effect
from ..wire.messages import Virq
from ..wire.transport import Link, LinkClosed

log = logging.getLogger(__name__)

HOLD_THRESHOLD = 64 * 1024
"""Bytes queued on a link above which virq changes for it are held and coalesced."""


class VirqOutbox:
    """The virq changes on their way to one VM's worker."""

    def __init__(self, vm: str) -> None:
        self.vm = vm
        self.dropped = 0
        """Changes dropped because the worker was gone."""
        self._link: Link | None = None
        self._gone = False
        self._held: dict[int, bool] = {}
        self._flusher: asyncio.Task | None = None

    @property
    def held(self) -> int:
        """How many virqs have a change waiting to be written."""
        return len(self._held)

    def attach(self, link: Link) -> None:
        """The worker is connected on ``link`` (its Welcome is queued): write what was held."""
        if not self._gone:
            self._link = link
            self.flush()

    def detach(self) -> None:
        """The worker is gone for good: drop what is held and everything that comes later."""
        self._gone = True
        self._link = None
        self._held.clear()
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None

    def deliver(self, virq: int, asserted: bool) -> None:
        """Writes the change of ``virq`` now, or holds it (see the module docstring)."""
        if self._gone:
            self.dropped += 1
            log.debug("%s: worker gone; dropped Virq %d=%s", self.vm, virq, asserted)
            return
        link = self._link
        if link is None or self._held or link.write_buffer_size() > HOLD_THRESHOLD:
            self._held.pop(virq, None)
            self._held[virq] = asserted
            if link is not None and self._flusher is None:
                self._flusher = asyncio.get_running_loop().create_task(
                    self._flush_when_drained(link), name=f"virq-flush-{self.vm}")
            return
        self._write(link, virq, asserted)

    def flush(self) -> None:
        """Writes every held change now, in the order of their latest update."""
        link = self._link
        if link is None or not self._held:
            return
        held, self._held = self._held, {}
        for virq, asserted in held.items():
            self._write(link, virq, asserted)

    async def _flush_when_drained(self, link: Link) -> None:
        try:
            await link.drain()
        except LinkClosed:
            return  # The session ends too and detaches this outbox.
        finally:
            self._flusher = None
        self.flush()

    def _write(self, link: Link, virq: int, asserted: bool) -> None:
        try:
            link.send(Virq(virq, asserted))
        except LinkClosed:
            self.dropped += 1
            log.debug("%s: link closed; dropped Virq %d=%s", self.vm, virq, asserted)


class VirqRouter:
    """Every VM's outbox, by vmid: carries out the effects of EL2 operations."""

    def __init__(self, vms: Iterable[tuple[int, str]]) -> None:
        self._outboxes = {vmid: VirqOutbox(name) for vmid, name in vms}

    def outbox(self, vmid: int) -> VirqOutbox:
        """Returns VM ``vmid``'s outbox."""
        return self._outboxes[vmid]

    def add_vm(self, vmid: int, name: str) -> None:
        """Gives VM ``vmid``, created at run time, a new outbox (replacing a gone one)."""
        old = self._outboxes.get(vmid)
        if old is not None:
            old.detach()
        self._outboxes[vmid] = VirqOutbox(name)

    def remove_vm(self, vmid: int) -> None:
        """Drops VM ``vmid``'s outbox and whatever it holds (the VM was destroyed)."""
        outbox = self._outboxes.pop(vmid, None)
        if outbox is not None:
            outbox.detach()

    def carry_out(self, effects: Iterable[Effect]) -> None:
        """Delivers each effect, in order, to the outbox of the VM it names."""
        for effect in effects:
            match effect:
                case AssertVirq(vmid=vmid, virq=virq) if vmid in self._outboxes:
                    self._outboxes[vmid].deliver(virq, True)
                case DeassertVirq(vmid=vmid, virq=virq) if vmid in self._outboxes:
                    self._outboxes[vmid].deliver(virq, False)
                case AssertVirq() | DeassertVirq():
                    log.debug("dropped %s: the VM was destroyed", effect)

    def detach_all(self) -> None:
        """Drops everything held (the topology is stopping)."""
        for outbox in self._outboxes.values():
            outbox.detach()
