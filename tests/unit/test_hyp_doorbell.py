"""Doorbells: semantics, and a Hypothesis state machine against a reference model of the text.

The model is written from gunyah-abi.md 1.4 "Doorbell semantics" and section 8 (level virqs follow
the source: asserted while enabled flags are set), plus gunyah-net's documented readings:
send(0) is ARGUMENT_INVALID (HYP code), reset restores enable = all ones and ack = 0, an ack that
leaves no enabled flags releases the line without a deassert, and a receive that leaves enabled
flags re-asserts a level virq (Gunyah re-pends it at deactivation). It runs through
``El2.hypercall`` with raw registers: the sender VM holds Send, the receiver Receive and Bind.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from gunyah_net.abi.errors import Error, HypError, to_x0
from gunyah_net.hyp.doorbell import FLAGS_MASK, Doorbell
from gunyah_net.hyp.effects import AssertVirq, DeassertVirq
from gunyah_net.hyp.el2 import El2
from gunyah_net.hyp.vic import Vic

SENDER, RECEIVER, VIRQ = 0x81, 0x82, 40
SEND, RECEIVE, RESET, MASK = 0x12, 0x13, 0x14, 0x15
ASSERT, DEASSERT = AssertVirq(RECEIVER, VIRQ), DeassertVirq(RECEIVER, VIRQ)


def _bound_doorbell(edge: bool = False) -> Doorbell:
    vic = Vic(RECEIVER)
    vic.configure(1)
    vic.activate()
    doorbell = Doorbell("d")
    doorbell.activate()
    doorbell.bind_virq(vic, VIRQ, edge=edge)
    return doorbell


def _code(fn, *args) -> Error:
    with pytest.raises(HypError) as info:
        fn(*args)
    return info.value.code


def test_send_ors_flags_returns_old_and_asserts_a_level_virq_once():
    doorbell = _bound_doorbell()
    assert doorbell.send(0b01) == (0, (ASSERT,))
    assert doorbell.send(0b10) == (0b01, ())
    assert doorbell.flags == 0b11


def test_edge_virq_asserts_on_every_send_with_enabled_flags():
    doorbell = _bound_doorbell(edge=True)
    assert doorbell.send(1) == (0, (ASSERT,))
    assert doorbell.send(1) == (1, (ASSERT,))
    assert doorbell.receive(FLAGS_MASK) == (1, ())


def test_zero_send_and_zero_receive_are_argument_invalid():
    doorbell = _bound_doorbell()
    assert _code(doorbell.send, 0) is Error.ARGUMENT_INVALID
    assert _code(doorbell.receive, 0) is Error.ARGUMENT_INVALID


def test_receive_deasserts_when_no_enabled_flag_is_left_and_repends_otherwise():
    doorbell = _bound_doorbell()
    doorbell.send(0b11)
    assert doorbell.receive(0b01) == (0b11, (ASSERT,))
    assert doorbell.receive(0b10) == (0b10, (DEASSERT,))
    assert doorbell.receive(0b10) == (0, ())


def test_disabled_flags_do_not_assert_until_enabled():
    doorbell = _bound_doorbell()
    assert doorbell.mask(0b01, 0) == ()
    assert doorbell.send(0b10) == (0, ())
    assert doorbell.mask(0b10, 0) == (ASSERT,)
    assert doorbell.mask(0b01, 0) == (DEASSERT,)


def test_linux_irqfd_level_pattern_pulses_once_per_send_and_never_deasserts():
    # Linux irqfd LEVEL: doorbell_mask(cap, 1, 1) then doorbell_send(cap, 1) per trigger.
    doorbell = _bound_doorbell()
    assert doorbell.mask(1, 1) == ()
    for _ in range(3):
        assert doorbell.send(1) == (0, (ASSERT,))
        assert doorbell.flags == 0


def test_mask_with_ack_on_already_enabled_flags_acks_without_a_second_assert():
    doorbell = _bound_doorbell()
    doorbell.send(0b11)
    assert doorbell.mask(FLAGS_MASK, 0b01) == ()
    assert doorbell.flags == 0b10
    assert doorbell.mask(FLAGS_MASK, 0b10) == ()
    assert doorbell.flags == 0
    assert doorbell.send(0b100) == (0, (ASSERT,))


def test_reset_clears_flags_deasserts_and_restores_default_masks():
    doorbell = _bound_doorbell()
    doorbell.mask(0b1, 0b1000)
    doorbell.send(0b1)
    assert doorbell.reset() == (DEASSERT,)
    assert (doorbell.flags, doorbell.enable_mask, doorbell.ack_mask) == (0, FLAGS_MASK, 0)


def test_unbound_doorbell_keeps_flags_but_emits_nothing():
    doorbell = Doorbell()
    doorbell.activate()
    assert doorbell.send(5) == (0, ())
    assert doorbell.receive(1) == (5, ())
    assert doorbell.unbind_virq() == ()


def test_doorbell_not_yet_active_is_object_state():
    doorbell = Doorbell()
    assert _code(doorbell.send, 1) is Error.OBJECT_STATE


# -- the state machine --------------------------------------------------------------------

FLAG_VALUES = st.one_of(st.integers(0, 15), st.just(FLAGS_MASK),
                        st.integers(0, FLAGS_MASK), st.sampled_from([1 << 63, 0xF0]))


class DoorbellModel:
    """The doorbell of the reference text, with L = 'enabled flags are set' for level virqs."""

    def __init__(self, edge: bool) -> None:
        self.edge = edge
        self.flags, self.enable, self.ack = 0, FLAGS_MASK, 0

    def level(self) -> bool:
        return bool(self.flags & self.enable)

    def send(self, new: int):
        if new == 0:
            return Error.ARGUMENT_INVALID, None, ()
        old, was = self.flags, self.level()
        self.flags |= new
        effects = ()
        if self.flags & self.enable:
            effects = (ASSERT,) if self.edge or not was else ()
            self.flags &= ~self.ack
        return Error.OK, old, effects

    def receive(self, clear: int):
        if clear == 0:
            return Error.ARGUMENT_INVALID, None, ()
        old, was = self.flags, self.level()
        self.flags &= ~clear
        if self.edge:
            return Error.OK, old, ()
        if self.level():
            return Error.OK, old, (ASSERT,)
        return Error.OK, old, (DEASSERT,) if was else ()

    def mask(self, enable: int, ack: int):
        was = self.level()
        self.enable, self.ack = enable, ack
        now = self.level()
        if now:
            self.flags &= ~ack
        if was and not now:
            return () if self.edge else (DEASSERT,)
        return (ASSERT,) if now and not was else ()

    def reset(self):
        was = self.level()
        self.flags, self.enable, self.ack = 0, FLAGS_MASK, 0
        return (DEASSERT,) if was and not self.edge else ()


class DoorbellMachine(RuleBasedStateMachine):
    """Random send / receive / mask / reset through raw hypercall registers."""

    @initialize(edge=st.booleans())
    def setup(self, edge: bool) -> None:
        self.el2 = El2()
        self.el2.add_vm(SENDER, "sender")
        self.el2.add_vm(RECEIVER, "receiver")
        self.tx, self.rx = self.el2.provision_doorbell(SENDER, RECEIVER, VIRQ, edge)
        self.model = DoorbellModel(edge)

    def _call(self, vmid: int, number: int, *args: int):
        return self.el2.hypercall(vmid, 0, number, list(args), b"")

    @rule(new=FLAG_VALUES)
    def send(self, new: int) -> None:
        result = self._call(SENDER, SEND, self.tx, new, 0)
        error, old, effects = self.model.send(new)
        assert result.regs == [to_x0(error), old or 0]
        assert result.effects == effects

    @rule(clear=FLAG_VALUES)
    def receive(self, clear: int) -> None:
        result = self._call(RECEIVER, RECEIVE, self.rx, clear, 0)
        error, old, effects = self.model.receive(clear)
        assert result.regs == [to_x0(error), old or 0]
        assert result.effects == effects

    @rule(enable=FLAG_VALUES, ack=FLAG_VALUES)
    def mask(self, enable: int, ack: int) -> None:
        result = self._call(RECEIVER, MASK, self.rx, enable, ack, 0)
        assert result.regs == [0]
        assert result.effects == self.model.mask(enable, ack)

    @rule()
    def reset(self) -> None:
        result = self._call(RECEIVER, RESET, self.rx, 0)
        assert result.regs == [0]
        assert result.effects == self.model.reset()

    @rule(number=st.sampled_from([RECEIVE, RESET, MASK]))
    def sender_lacks_receive_rights(self, number: int) -> None:
        args = {RECEIVE: (self.tx, 1, 0), RESET: (self.tx, 0), MASK: (self.tx, 1, 1, 0)}[number]
        result = self._call(SENDER, number, *args)
        assert result.regs[0] == Error.CSPACE_INSUFFICIENT_RIGHTS
        assert result.effects == ()

    @invariant()
    def level_line_follows_enabled_flags(self) -> None:
        if not hasattr(self, "model"):
            return
        vic = self.el2.vm(RECEIVER).vic
        expected = self.model.level() and not self.model.edge
        assert vic.is_asserted(VIRQ) == expected


DoorbellMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestDoorbellMachine = DoorbellMachine.TestCase
