"""The RM's message-queue pair with every VM: receiving what a VM sent, sending in FIFO order.

Each VM's pair (gunyah-abi.md 3.1) is, on the RM's side, a receive cap (VM to RM) whose
not-empty virq says "the VM sent something", and a send cap (RM to VM) whose not-full virq says
"the VM made room". Both are threshold events, so:

- ``receive(vmid)`` is msgqueue_receive (0x1C, up to 240 bytes, the message in the return's
  data); it reports whether more is queued, and the caller keeps receiving until not.
- ``send(vmid, fragment)`` appends to that VM's outbox, which one task per VM empties with
  msgqueue_send (0x1B), PUSH on the last fragment of each message as Linux does. When EL2
  answers ERROR_MSGQUEUE_FULL the task waits for the not-full virq and sends the same fragment
  again: nothing is dropped or reordered, and a VM that stops reading holds up only its own
  outbox. Any other EL2 error means the queue is gone (the VM was destroyed): that fragment is
  dropped and logged.

Backpressure: while a VM's outbox holds ``OUTBOX_BOUND`` fragments or more, ``receive(vmid)``
makes no hypercall and returns nothing, so the VM's own VM-to-RM queue fills and its
msgqueue_send gets ERROR_MSGQUEUE_FULL (and the not-full virq once the RM receives again). When
the outbox drains below the bound, ``on_readable(vmid)`` is called: the not-empty virq is a
threshold event that will not fire again for messages already queued, so the caller has to be
told to receive. Nothing is lost or reordered, other VMs are served meanwhile, and what the RM
buffers for a VM is bounded by the bound plus one request's output and the notifications other
VMs cause, however fast that VM sends.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from gunyah_net.abi.errors import Error
from gunyah_net.abi.hypercalls import BY_NAME
from gunyah_net.abi.rm import RPC_MAX_FRAGMENTS, RPC_MESSAGE_SIZE

from .el2_link import El2LinkClosed, HvcResult
from .rpc import Header, parse_header

log = logging.getLogger(__name__)

MSGQUEUE_SEND = BY_NAME["msgqueue_send"].number
MSGQUEUE_RECEIVE = BY_NAME["msgqueue_receive"].number
SEND_FLAG_PUSH = 0x1
OUTBOX_BOUND = RPC_MAX_FRAGMENTS
"""Fragments waiting for a VM at which the RM stops receiving from it: one maximal RM message
(1 + 62 fragments). The RM holds a whole message it produced anyway (a reply is made at once,
then sent fragment by fragment), so it takes a new request only while less than one maximal
message waits: what waits because of the VM's own requests stays under two maximal messages
(62 + one reply of at most 63). A VM that reads its replies as they come never reaches it."""

Caller = Callable[[int, Sequence[int], bytes], Awaitable[HvcResult]]
"""``El2Link.call``: (number, args, data) -> the hypercall's result."""


@dataclass(frozen=True)
class RmQueue:
    """The RM's end of one VM's RM queue pair: caps and the RM's virqs."""

    vmid: int
    tx_cap: int
    """RM to VM: the RM sends with it."""
    rx_cap: int
    """VM to RM: the RM receives with it."""
    tx_virq: int
    """Not-full of the RM-to-VM queue."""
    rx_virq: int
    """Not-empty of the VM-to-RM queue."""


class _Outbox:
    """One VM's fragments waiting to be sent, in order; one task at a time sends them."""

    def __init__(self, queue: RmQueue, call: Caller, on_room: Callable[[], None]) -> None:
        self.queue = queue
        self._call = call
        self._on_room = on_room
        self.fragments: deque[tuple[bytes, int]] = deque()
        self.not_full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._left = 0
        """Fragments of the message being queued that are still to come."""
        self._holding = False
        """A receive was held back; ``on_room`` is due once fewer than the bound wait."""

    def hold(self) -> bool:
        """True if ``OUTBOX_BOUND`` fragments or more wait: the RM must not receive from the VM
        now, and ``on_room`` is called once the outbox drains below the bound."""
        if len(self.fragments) < OUTBOX_BOUND:
            return False
        self._holding = True
        return True

    def put(self, fragment: bytes) -> None:
        header = parse_header(fragment)
        if isinstance(header, Header):
            self._left = header.fragments if header.rpc_type else self._left - 1
        flags = SEND_FLAG_PUSH if self._left <= 0 else 0
        self.fragments.append((fragment, flags))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._send_all(), name=f"rm-tx-{self.queue.vmid:x}")

    def cancel(self) -> int:
        """Stops sending; returns how many fragments were still waiting."""
        if self._task is not None:
            self._task.cancel()
        return len(self.fragments)

    async def _send_all(self) -> None:
        cap = self.queue.tx_cap
        while self.fragments:
            fragment, flags = self.fragments[0]
            self.not_full.clear()
            try:
                result = await self._call(MSGQUEUE_SEND, (cap, len(fragment), 0, flags, 0),
                                          fragment)
            except El2LinkClosed:
                return
            match result.error:
                case Error.OK:
                    self._pop()
                case Error.MSGQUEUE_FULL:
                    await self.not_full.wait()
                case error:
                    self._pop()
                    log.error("msgqueue_send to VM %#x (cap %#x) failed with %s; fragment "
                              "dropped", self.queue.vmid, cap, _name(error))

    def _pop(self) -> None:
        self.fragments.popleft()
        if self._holding and len(self.fragments) < OUTBOX_BOUND:
            self._holding = False
            self._on_room()


class VmQueues:
    """Every VM's RM queue pair by vmid; virqs route to ``on_readable`` or the outboxes, and an
    outbox that drains below ``OUTBOX_BOUND`` after a held receive calls ``on_readable`` too."""

    def __init__(self, call: Caller, on_readable: Callable[[int], None]) -> None:
        self._call = call
        self._on_readable = on_readable
        self._outboxes: dict[int, _Outbox] = {}
        self._virqs: dict[int, tuple[int, bool]] = {}
        """RM virq -> (vmid, True for not-empty / False for not-full)."""

    def add(self, queue: RmQueue) -> None:
        """Starts serving ``queue``; raises ``ValueError`` if its vmid or virqs are in use."""
        if queue.vmid in self._outboxes:
            raise ValueError(f"VM {queue.vmid:#x} already has an RM queue pair")
        for virq in (queue.tx_virq, queue.rx_virq):
            if virq in self._virqs:
                raise ValueError(f"RM virq {virq} of VM {queue.vmid:#x} is VM "
                                 f"{self._virqs[virq][0]:#x}'s")
        self._outboxes[queue.vmid] = _Outbox(queue, self._call,
                                             lambda: self._on_readable(queue.vmid))
        self._virqs[queue.rx_virq] = (queue.vmid, True)
        self._virqs[queue.tx_virq] = (queue.vmid, False)

    def remove(self, vmid: int) -> int:
        """Stops serving ``vmid``'s queues; returns how many fragments were never sent."""
        outbox = self._outboxes.pop(vmid, None)
        if outbox is None:
            return 0
        self._virqs = {v: owner for v, owner in self._virqs.items() if owner[0] != vmid}
        return outbox.cancel()

    def __contains__(self, vmid: object) -> bool:
        return vmid in self._outboxes

    def waiting(self, vmid: int) -> int:
        """How many fragments to ``vmid`` are not sent yet."""
        outbox = self._outboxes.get(vmid)
        return len(outbox.fragments) if outbox else 0

    def on_virq(self, virq: int, asserted: bool) -> bool:
        """Routes an RM virq; returns False if it belongs to no queue."""
        target = self._virqs.get(virq)
        if target is None:
            return False
        vmid, not_empty = target
        if asserted and not_empty:
            self._on_readable(vmid)
        elif asserted:
            self._outboxes[vmid].not_full.set()
        return True

    def send(self, vmid: int, fragment: bytes) -> bool:
        """Queues ``fragment`` for ``vmid``; False if the RM has no queue to it."""
        outbox = self._outboxes.get(vmid)
        if outbox is None:
            return False
        outbox.put(fragment)
        return True

    async def receive(self, vmid: int) -> tuple[bytes | None, bool]:
        """Receives one message from ``vmid``: (the message or None if there was none or EL2
        refused, whether more are queued). Held back, (None, False) without a hypercall, while
        ``OUTBOX_BOUND`` or more fragments to ``vmid`` wait; ``on_readable(vmid)`` follows once
        they drain below it."""
        outbox = self._outboxes.get(vmid)
        if outbox is None or outbox.hold():
            return None, False
        cap = outbox.queue.rx_cap
        result = await self._call(MSGQUEUE_RECEIVE, (cap, 0, RPC_MESSAGE_SIZE, 0), b"")
        match result.error:
            case Error.OK:
                more = len(result.regs) > 2 and bool(result.regs[2])
                return result.data, more
            case Error.MSGQUEUE_EMPTY:
                return None, False
            case error:
                log.error("msgqueue_receive from VM %#x (cap %#x) failed with %s", vmid, cap,
                          _name(error))
                return None, False

    def close(self) -> None:
        """Stops every sender."""
        for vmid in list(self._outboxes):
            self.remove(vmid)


def _name(error: Error | int) -> str:
    return error.name if isinstance(error, Error) else f"error {error}"
