"""Message queues: a FIFO of up to ``depth`` messages of at most ``max_msg_size`` bytes.

Semantics (Gunyah API doc "Message Queue Management", HYP ``ipc/msgqueue/src/*``):

- ``configure(create_info)`` in INIT: bits 15:0 depth (1..256), bits 31:16 max message size
  (1..1024), bits 63:32 zero; anything else ERROR_ARGUMENT_INVALID. Activation without a
  configuration is ERROR_OBJECT_CONFIG. Activation sets notfull_thd = depth - 1, notempty_thd = 1.
- ``send``: a full queue is ERROR_MSGQUEUE_FULL, checked *before* the size. A size of 0 or
  above max_msg_size is ERROR_ARGUMENT_SIZE. Size 0: the API doc says "must be non-zero" and
  HYP's guest-copy path (``useraccess_copy_from_guest_va``) rejects it too, although the
  Dec-2023 shim then drops that error code; gunyah-net returns ERROR_ARGUMENT_SIZE. The worker
  ships the bytes it could read from the guest buffer; fewer than size (an unmapped buffer) is
  ERROR_ADDR_INVALID, after the FULL and size checks, as in HYP's copy-in. After the
  enqueue the receive virq is asserted if count == notempty_thd or PUSH is set; returns
  not_full (count < depth).
- ``receive(max_size)``: empty is ERROR_MSGQUEUE_EMPTY. A head message larger than max_size
  stays queued and the call fails with ERROR_ADDR_OVERFLOW (API doc). After the dequeue the send
  virq is asserted if count == notfull_thd; returns (message, not_empty).
- ``flush``: if the queue held messages, asserts the send virq and clears the receive virq
  (HYP code; the API doc's "send virq deasserted" contradicts it), then empties the queue.
- ``configure_send(thd, delay)`` / ``configure_receive(thd, delay)`` on an ACTIVE queue take
  count_t (32-bit) values: -1 leaves a value unchanged; the only supported delay is -1 (other
  delays: ERROR_UNIMPLEMENTED). notfull_thd must be < depth (-2 is not accepted, as in HYP);
  notempty_thd must be 1..depth or -2 (= depth). A new threshold re-evaluates its virq: assert
  if the condition holds now, clear otherwise (not for -2, as in HYP).

Interrupts are *threshold events*, not levels: Gunyah asserts when a threshold is crossed and the
RM's DT declares both msgqueue virqs edge-triggered, so the sources bind as edge and EL2 emits
``AssertVirq`` on those events only. A receiver must drain until not_empty is false (Linux's RM
driver does); a sender that saw not_full false waits for the send (not-full) virq.
"""

from __future__ import annotations

from collections import deque

from gunyah_net.abi.errors import Error, HypError
from gunyah_net.abi.rights import MsgqueueRights
from gunyah_net.hyp.effects import Effects
from gunyah_net.hyp.object import KernelObject, ObjectType
from gunyah_net.hyp.vic import Vic, VirqSource

MAX_QUEUE_DEPTH = 256
MAX_MAX_MSG_SIZE = 1024
COUNT_MASK = 0xFFFF_FFFF
"""count_t is 32-bit: threshold and delay registers are truncated to it, as HYP's C cast does."""
THRESHOLD_UNCHANGED = 0xFFFF_FFFF
THRESHOLD_MAXIMUM = 0xFFFF_FFFE
DELAY_UNCHANGED = 0xFFFF_FFFF
SEND_FLAG_PUSH = 0x1


def create_info(depth: int, max_msg_size: int) -> int:
    """Returns the msgqueue_create_info word for ``depth`` and ``max_msg_size``."""
    return (depth & 0xFFFF) | ((max_msg_size & 0xFFFF) << 16)


def parse_send_flags(send_flags: int) -> bool:
    """Returns PUSH from msgqueue_send's flags; other set bits are ERROR_ARGUMENT_INVALID."""
    if send_flags & ~SEND_FLAG_PUSH:
        raise HypError(Error.ARGUMENT_INVALID, f"reserved send_flags bits {send_flags:#x}")
    return bool(send_flags & SEND_FLAG_PUSH)


class MsgQueue(KernelObject):
    """A message queue object: the FIFO, its thresholds and a send and a receive virq source."""

    object_type = ObjectType.MSGQUEUE
    rights_type = MsgqueueRights

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self.depth = 0
        self.max_msg_size = 0
        self.notfull_thd = 0
        self.notempty_thd = 0
        self._messages: deque[bytes] = deque()
        tag = f"msgqueue {name!r}" if name else "msgqueue"
        self.send_source = VirqSource(f"{tag} send (not-full)")
        self.rcv_source = VirqSource(f"{tag} receive (not-empty)")

    @property
    def count(self) -> int:
        """The number of queued messages."""
        return len(self._messages)

    def configure(self, info: int) -> None:
        """Sets depth and maximum message size from a create_info word; only in INIT."""
        self.require_init()
        depth, size = info & 0xFFFF, (info >> 16) & 0xFFFF
        if info >> 32 or not 1 <= depth <= MAX_QUEUE_DEPTH or not 1 <= size <= MAX_MAX_MSG_SIZE:
            raise HypError(Error.ARGUMENT_INVALID,
                           f"create_info {info:#x}: depth 1..256 and size 1..1024 required")
        self.depth, self.max_msg_size = depth, size

    def _check_activate(self) -> None:
        if self.depth == 0:
            raise HypError(Error.OBJECT_CONFIG, f"{self.describe()} is not configured")
        self._messages.clear()
        self.notfull_thd = self.depth - 1
        self.notempty_thd = 1

    # -- virq bindings --------------------------------------------------------------------

    def bind_send_virq(self, vic: Vic, virq_info: int) -> None:
        """Binds the send-side (not-full) interrupt to ``virq_info`` of ``vic``."""
        self.require_active()
        vic.bind(self.send_source, virq_info, edge=True)

    def bind_receive_virq(self, vic: Vic, virq_info: int) -> None:
        """Binds the receive-side (not-empty) interrupt to ``virq_info`` of ``vic``."""
        self.require_active()
        vic.bind(self.rcv_source, virq_info, edge=True)

    def unbind_send_virq(self) -> Effects:
        """Unbinds the send-side interrupt; already unbound is not an error (API doc)."""
        self.require_active()
        return self.send_source.unbind() if self.send_source.bound else ()

    def unbind_receive_virq(self) -> Effects:
        """Unbinds the receive-side interrupt; already unbound is not an error (API doc)."""
        self.require_active()
        return self.rcv_source.unbind() if self.rcv_source.bound else ()

    # -- data path ------------------------------------------------------------------------

    def send(self, size: int, message: bytes, *, push: bool = False) -> tuple[bool, Effects]:
        """Appends a ``size``-byte message; returns (not_full, effects)."""
        self.require_active()
        if self.count == self.depth:
            raise HypError(Error.MSGQUEUE_FULL, f"{self.describe()} holds {self.depth} messages")
        if not 0 < size <= self.max_msg_size:
            raise HypError(Error.ARGUMENT_SIZE,
                           f"message size {size} not in 1..{self.max_msg_size}")
        if len(message) > size:
            raise ValueError(f"msgqueue_send of size {size} carried {len(message)} bytes")
        if len(message) < size:
            raise HypError(Error.ADDR_INVALID,
                           f"only {len(message)} of {size} message bytes were readable")
        self._messages.append(bytes(message))
        effects: Effects = ()
        if push or self.count == self.notempty_thd:
            effects = self.rcv_source.assert_virq()
        return self.count < self.depth, effects

    def receive(self, max_size: int) -> tuple[bytes, bool, Effects]:
        """Removes the head message if it fits ``max_size``; returns (message, not_empty,
        effects)."""
        self.require_active()
        if not self._messages:
            raise HypError(Error.MSGQUEUE_EMPTY, f"{self.describe()} is empty")
        if len(self._messages[0]) > max_size:
            raise HypError(Error.ADDR_OVERFLOW,
                           f"head message of {len(self._messages[0])} bytes > buffer {max_size}")
        message = self._messages.popleft()
        effects: Effects = ()
        if self.count == self.notfull_thd:
            effects = self.send_source.assert_virq()
        return message, self.count > 0, effects

    def flush(self) -> Effects:
        """Discards every message; asserts not-full and clears not-empty if any were queued."""
        self.require_active()
        effects: Effects = ()
        if self._messages:
            effects = self.send_source.assert_virq() + self.rcv_source.clear_virq()
        self._messages.clear()
        return effects

    def configure_send(self, notfull_thd: int, delay: int) -> Effects:
        """Sets the not-full threshold (count at or below which the send virq asserts)."""
        self.require_active()
        notfull_thd, delay = notfull_thd & COUNT_MASK, delay & COUNT_MASK
        if delay != DELAY_UNCHANGED:
            raise HypError(Error.UNIMPLEMENTED, "not-full delay is not implemented")
        if notfull_thd == THRESHOLD_UNCHANGED:
            return ()
        if notfull_thd >= self.depth:
            raise HypError(Error.ARGUMENT_INVALID,
                           f"not-full threshold {notfull_thd} must be < depth {self.depth}")
        self.notfull_thd = notfull_thd
        if self.count <= notfull_thd:
            return self.send_source.assert_virq()
        return self.send_source.clear_virq()

    def configure_receive(self, notempty_thd: int, delay: int) -> Effects:
        """Sets the not-empty threshold (count at or above which the receive virq asserts)."""
        self.require_active()
        notempty_thd, delay = notempty_thd & COUNT_MASK, delay & COUNT_MASK
        if delay != DELAY_UNCHANGED:
            raise HypError(Error.UNIMPLEMENTED, "not-empty delay is not implemented")
        if notempty_thd == THRESHOLD_UNCHANGED:
            return ()
        if notempty_thd == THRESHOLD_MAXIMUM:
            self.notempty_thd = self.depth
            return ()
        if not 0 < notempty_thd <= self.depth:
            raise HypError(Error.ARGUMENT_INVALID,
                           f"not-empty threshold {notempty_thd} not in 1..{self.depth}")
        self.notempty_thd = notempty_thd
        if self.count >= notempty_thd:
            return self.rcv_source.assert_virq()
        return self.rcv_source.clear_virq()
