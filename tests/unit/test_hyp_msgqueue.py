"""Message queues: semantics, and a Hypothesis state machine against a reference model.

The model is written from gunyah-abi.md 1.4 "Message queue semantics" and the API doc text
quoted there: FIFO of up to depth messages; FULL checked before the size; receive asserts the
send (not-full) virq when the count falls to notfull_thd (default depth-1); send asserts the
receive (not-empty) virq when the count reaches notempty_thd (default 1) or on PUSH; -1 leaves
a threshold unchanged, -2 sets not-empty to the depth. gunyah-net's readings: size 0 is
ARGUMENT_SIZE, a too-small receive buffer is ADDR_OVERFLOW and keeps the message, both virqs
are edge (threshold events only), flush asserts not-full when it discarded anything. It runs
through ``El2.hypercall`` with raw registers and message bytes.
"""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from gunyah_net.abi.errors import Error, HypError, to_x0
from gunyah_net.hyp.effects import AssertVirq
from gunyah_net.hyp.el2 import El2
from gunyah_net.hyp.msgqueue import MsgQueue, create_info, parse_send_flags
from gunyah_net.hyp.object import ObjectState

SENDER, RECEIVER, TX_VIRQ, RX_VIRQ = 0x81, 0x82, 33, 34
SEND, RECEIVE, FLUSH, CONF_SEND, CONF_RECEIVE = 0x1B, 0x1C, 0x1D, 0x1F, 0x20
MINUS_ONE = 2**64 - 1
NOT_FULL, NOT_EMPTY = AssertVirq(SENDER, TX_VIRQ), AssertVirq(RECEIVER, RX_VIRQ)


def _code(fn, *args, **kwargs) -> Error:
    with pytest.raises(HypError) as info:
        fn(*args, **kwargs)
    return info.value.code


def _queue(depth: int, size: int) -> MsgQueue:
    msgqueue = MsgQueue("q")
    msgqueue.configure(create_info(depth, size))
    msgqueue.activate()
    return msgqueue


@pytest.mark.parametrize("info", [
    create_info(0, 8), create_info(257, 8), create_info(4, 0), create_info(4, 1025),
    create_info(4, 8) | (1 << 32),
])
def test_configure_rejects_out_of_range_create_info(info):
    assert _code(MsgQueue().configure, info) is Error.ARGUMENT_INVALID


@pytest.mark.parametrize(("depth", "size"), [(1, 1), (256, 1024), (8, 240)])
def test_configure_accepts_the_limits(depth, size):
    msgqueue = _queue(depth, size)
    assert (msgqueue.depth, msgqueue.max_msg_size) == (depth, size)
    assert (msgqueue.notfull_thd, msgqueue.notempty_thd) == (depth - 1, 1)


def test_lifecycle_errors():
    msgqueue = MsgQueue()
    assert _code(msgqueue.send, 1, b"x") is Error.OBJECT_STATE
    assert _code(msgqueue.activate) is Error.OBJECT_CONFIG
    assert msgqueue.state is ObjectState.FAILED
    assert _code(_queue(2, 2).configure, create_info(2, 2)) is Error.OBJECT_STATE


def test_full_is_checked_before_size_and_sizes_outside_1_to_max_are_argument_size():
    msgqueue = _queue(1, 4)
    assert _code(msgqueue.send, 0, b"") is Error.ARGUMENT_SIZE
    assert _code(msgqueue.send, 5, b"12345") is Error.ARGUMENT_SIZE
    assert msgqueue.send(4, b"1234") == (False, ())
    assert _code(msgqueue.send, 5, b"12345") is Error.MSGQUEUE_FULL
    assert _code(msgqueue.send, 2**40, b"") is Error.MSGQUEUE_FULL


def test_send_flags_other_than_push_are_argument_invalid():
    assert parse_send_flags(0) is False and parse_send_flags(1) is True
    assert _code(parse_send_flags, 2) is Error.ARGUMENT_INVALID
    assert _code(parse_send_flags, 1 << 63 | 1) is Error.ARGUMENT_INVALID


def test_receive_of_a_message_larger_than_the_buffer_keeps_it():
    msgqueue = _queue(2, 8)
    msgqueue.send(3, b"abc")
    assert _code(msgqueue.receive, 2) is Error.ADDR_OVERFLOW
    assert msgqueue.receive(3)[:2] == (b"abc", False)
    assert _code(msgqueue.receive, 8) is Error.MSGQUEUE_EMPTY


def test_fewer_bytes_than_size_is_addr_invalid_after_full_and_size_checks():
    msgqueue = _queue(1, 8)
    assert _code(msgqueue.send, 3, b"ab") is Error.ADDR_INVALID
    assert _code(msgqueue.send, 9, b"") is Error.ARGUMENT_SIZE
    assert msgqueue.count == 0
    msgqueue.send(1, b"a")
    assert _code(msgqueue.send, 3, b"") is Error.MSGQUEUE_FULL
    with pytest.raises(ValueError):
        _queue(2, 8).send(3, b"abcd")  # more bytes than size: a worker bug, not a guest error


@pytest.mark.parametrize(("threshold", "delay", "error"), [
    (0, MINUS_ONE, None), (3, MINUS_ONE, None), (MINUS_ONE, MINUS_ONE, None),
    (0xFFFF_FFFF, MINUS_ONE, None),          # count_t -1 in a 32-bit register
    (4, MINUS_ONE, Error.ARGUMENT_INVALID),  # must be < depth
    (MINUS_ONE - 1, MINUS_ONE, Error.ARGUMENT_INVALID),  # -2 is not accepted for not-full
    (1, 0, Error.UNIMPLEMENTED),
])
def test_configure_send_thresholds(threshold, delay, error):
    msgqueue = _queue(4, 8)
    if error is None:
        msgqueue.configure_send(threshold, delay)
    else:
        assert _code(msgqueue.configure_send, threshold, delay) is error


@pytest.mark.parametrize(("threshold", "expected"), [(1, 1), (4, 4), (MINUS_ONE - 1, 4),
                                                     (MINUS_ONE, 1)])
def test_configure_receive_thresholds(threshold, expected):
    msgqueue = _queue(4, 8)
    msgqueue.configure_receive(threshold, MINUS_ONE)
    assert msgqueue.notempty_thd == expected


@pytest.mark.parametrize("threshold", [0, 5])
def test_configure_receive_rejects_0_and_above_depth(threshold):
    assert _code(_queue(4, 8).configure_receive, threshold, MINUS_ONE) is Error.ARGUMENT_INVALID


# -- the state machine --------------------------------------------------------------------

class MsgQueueModel:
    """The message queue of the reference text, with both virqs edge-triggered."""

    def __init__(self, depth: int, size: int) -> None:
        self.depth, self.size = depth, size
        self.queue: deque[bytes] = deque()
        self.notfull, self.notempty = depth - 1, 1

    def send(self, message: bytes, push: bool):
        if len(self.queue) == self.depth:
            return Error.MSGQUEUE_FULL, [0], ()
        if not 1 <= len(message) <= self.size:
            return Error.ARGUMENT_SIZE, [0], ()
        self.queue.append(message)
        fire = push or len(self.queue) == self.notempty
        return Error.OK, [int(len(self.queue) < self.depth)], (NOT_EMPTY,) if fire else ()

    def receive(self, max_size: int):
        if not self.queue:
            return Error.MSGQUEUE_EMPTY, [0, 0], b"", ()
        if len(self.queue[0]) > max_size:
            return Error.ADDR_OVERFLOW, [0, 0], b"", ()
        message = self.queue.popleft()
        fire = len(self.queue) == self.notfull
        return (Error.OK, [len(message), int(bool(self.queue))], message,
                (NOT_FULL,) if fire else ())

    def flush(self):
        had = bool(self.queue)
        self.queue.clear()
        return (NOT_FULL,) if had else ()

    def configure_send(self, threshold: int):
        if threshold == MINUS_ONE:
            return Error.OK, ()
        if threshold >= self.depth:
            return Error.ARGUMENT_INVALID, ()
        self.notfull = threshold
        return Error.OK, (NOT_FULL,) if len(self.queue) <= threshold else ()

    def configure_receive(self, threshold: int):
        if threshold == MINUS_ONE:
            return Error.OK, ()
        if threshold == MINUS_ONE - 1:
            self.notempty = self.depth
            return Error.OK, ()
        if not 1 <= threshold <= self.depth:
            return Error.ARGUMENT_INVALID, ()
        self.notempty = threshold
        return Error.OK, (NOT_EMPTY,) if len(self.queue) >= threshold else ()


THRESHOLDS = st.one_of(st.integers(0, 9), st.sampled_from([MINUS_ONE, MINUS_ONE - 1]))


class MsgQueueMachine(RuleBasedStateMachine):
    """Random send / receive / flush / configure through raw hypercall registers."""

    @initialize(depth=st.integers(1, 6), size=st.integers(1, 16))
    def setup(self, depth: int, size: int) -> None:
        self.el2 = El2()
        self.el2.add_vm(SENDER, "sender")
        self.el2.add_vm(RECEIVER, "receiver")
        self.tx, self.rx = self.el2.provision_msgqueue(SENDER, RECEIVER, depth, size,
                                                       TX_VIRQ, RX_VIRQ, label="q")
        self.model = MsgQueueModel(depth, size)

    def _call(self, vmid: int, number: int, *args: int, data: bytes = b""):
        return self.el2.hypercall(vmid, 0, number, list(args), data)

    @rule(message=st.binary(min_size=0, max_size=18), push=st.booleans())
    def send(self, message: bytes, push: bool) -> None:
        result = self._call(SENDER, SEND, self.tx, len(message), 0x4000, int(push), 0,
                            data=message)
        error, values, effects = self.model.send(message, push)
        assert result.regs == [to_x0(error)] + values
        assert result.effects == effects

    @rule(max_size=st.integers(0, 20))
    def receive(self, max_size: int) -> None:
        result = self._call(RECEIVER, RECEIVE, self.rx, 0x8000, max_size, 0)
        error, values, message, effects = self.model.receive(max_size)
        assert result.regs == [to_x0(error)] + values
        assert (result.data, result.effects) == (message, effects)

    @rule()
    def flush(self) -> None:
        result = self._call(RECEIVER, FLUSH, self.rx, 0)
        assert (result.regs, result.effects) == ([0], self.model.flush())

    @rule(threshold=THRESHOLDS)
    def configure_send(self, threshold: int) -> None:
        result = self._call(SENDER, CONF_SEND, self.tx, threshold, MINUS_ONE, MINUS_ONE)
        error, effects = self.model.configure_send(threshold)
        assert (result.regs, result.effects) == ([to_x0(error)], effects)

    @rule(threshold=THRESHOLDS)
    def configure_receive(self, threshold: int) -> None:
        result = self._call(RECEIVER, CONF_RECEIVE, self.rx, threshold, MINUS_ONE, MINUS_ONE)
        error, effects = self.model.configure_receive(threshold)
        assert (result.regs, result.effects) == ([to_x0(error)], effects)

    @rule(flags=st.integers(2, 2**64 - 1))
    def send_with_reserved_flags(self, flags: int) -> None:
        result = self._call(SENDER, SEND, self.tx, 1, 0x4000, flags, 0, data=b"x")
        assert (result.regs, result.effects) == ([Error.ARGUMENT_INVALID, 0], ())

    @rule()
    def receiver_cannot_send_and_sender_cannot_receive(self) -> None:
        assert self._call(RECEIVER, SEND, self.rx, 1, 0, 0, 0, data=b"x").regs[0] == \
            Error.CSPACE_INSUFFICIENT_RIGHTS
        assert self._call(SENDER, RECEIVE, self.tx, 0, 16, 0).regs[0] == \
            Error.CSPACE_INSUFFICIENT_RIGHTS
        assert self._call(SENDER, FLUSH, self.tx, 0).regs[0] == Error.CSPACE_INSUFFICIENT_RIGHTS

    @invariant()
    def queue_matches(self) -> None:
        if hasattr(self, "model"):
            assert self.el2.vm(SENDER).cspace.lookup(self.tx, MsgQueue, 0).count == \
                len(self.model.queue)


MsgQueueMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestMsgQueueMachine = MsgQueueMachine.TestCase
