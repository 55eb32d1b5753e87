"""El2 end to end over the ABI table: two VMs, raw registers in, registers/bytes/effects out."""

from __future__ import annotations

import pytest

from gunyah_net.abi.errors import Error, HypError, to_x0
from gunyah_net.abi.hypercalls import BY_NAME, HYPERCALLS, ArgKind, Handler
from gunyah_net.abi.rights import GENERIC_ACTIVATE, DoorbellRights, MsgqueueRights
from gunyah_net.hyp.doorbell import Doorbell
from gunyah_net.hyp.effects import AssertVirq, DeassertVirq
from gunyah_net.hyp.el2 import ALL_SHIMS, El2
from gunyah_net.hyp.hypercalls import SHIMS
from gunyah_net.hyp.msgqueue import MsgQueue, create_info

A, B = 0x81, 0x82
MINUS_ONE = 2**64 - 1
N = {name: spec.number for name, spec in BY_NAME.items()}


@pytest.fixture
def el2() -> El2:
    el2 = El2()
    el2.add_vm(A, "alpha")
    el2.add_vm(B, "beta")
    return el2


def hvc(el2: El2, vmid: int, name: str, *args: int, data: bytes = b""):
    return el2.hypercall(vmid, 0, N[name], list(args), data)


def test_every_doorbell_and_msgqueue_call_is_implemented_and_named_as_in_the_table():
    wanted = set(range(0x10, 0x16)) | set(range(0x17, 0x1E)) | {0x1F, 0x20, 0x21}
    implemented = {BY_NAME[name].number for name in SHIMS}
    assert wanted <= implemented
    assert set(SHIMS) <= set(BY_NAME)


def test_every_call_the_table_sends_to_el2_has_a_shim():
    forwarded = {spec.name for spec in HYPERCALLS.values() if spec.handler is Handler.EL2}
    assert forwarded <= set(ALL_SHIMS)


def test_doorbell_from_a_to_b_through_raw_registers(el2):
    tx, rx = el2.provision_doorbell(A, B, 40, label="bell")
    assert tx != rx
    sent = hvc(el2, A, "doorbell_send", tx, 0b101, 0)
    assert (sent.regs, sent.effects) == ([0, 0], (AssertVirq(B, 40),))
    got = hvc(el2, B, "doorbell_receive", rx, MINUS_ONE, 0)
    assert (got.regs, got.effects) == ([0, 0b101], (DeassertVirq(B, 40),))


def test_msgqueue_from_a_to_b_through_raw_registers(el2):
    tx, rx = el2.provision_msgqueue(A, B, 2, 240, 50, 51, label="rm-tx")
    first = hvc(el2, A, "msgqueue_send", tx, 5, 0x1000, 0, 0, data=b"hello")
    assert (first.regs, first.effects) == ([0, 1], (AssertVirq(B, 51),))
    second = hvc(el2, A, "msgqueue_send", tx, 3, 0x1000, 1, 0, data=b"bye")
    assert (second.regs, second.effects) == ([0, 0], (AssertVirq(B, 51),))
    full = hvc(el2, A, "msgqueue_send", tx, 1, 0x1000, 0, 0, data=b"!")
    assert full.regs == [Error.MSGQUEUE_FULL, 0]
    got = hvc(el2, B, "msgqueue_receive", rx, 0x2000, 240, 0)
    assert (got.regs, got.data, got.effects) == ([0, 5, 1], b"hello", (AssertVirq(A, 50),))
    got = hvc(el2, B, "msgqueue_receive", rx, 0x2000, 240, 0)
    assert (got.regs, got.data, got.effects) == ([0, 3, 0], b"bye", ())
    empty = hvc(el2, B, "msgqueue_receive", rx, 0x2000, 240, 0)
    assert (empty.regs, empty.data) == ([Error.MSGQUEUE_EMPTY, 0, 0], b"")


def test_the_same_object_has_different_cap_ids_in_the_two_vms(el2):
    tx, rx = el2.provision_doorbell(A, B, 40)
    mq_tx, mq_rx = el2.provision_msgqueue(A, B, 4, 16, 41, 42)
    assert el2.vic_cap(A) != el2.vic_cap(B)
    assert not {tx, mq_tx, el2.vic_cap(A)} & {rx, mq_rx, el2.vic_cap(B)}
    doorbell = el2.vm(A).cspace.lookup(tx, Doorbell, 0)
    assert el2.vm(B).cspace.lookup(rx, Doorbell, 0) is doorbell


def test_a_vm_using_a_cap_it_does_not_hold_gets_the_exact_cspace_error(el2):
    tx, rx = el2.provision_doorbell(A, B, 40)
    # B's cap ID does not decode in A's cspace, as with Gunyah's per-cspace encoding.
    assert hvc(el2, A, "doorbell_receive", rx, 1, 0).regs == [Error.ARGUMENT_INVALID, 0]
    # An ID of A's own encoding whose slot is empty.
    assert hvc(el2, A, "doorbell_send", tx + 7, 1, 0).regs == [Error.CSPACE_CAP_NULL, 0]


CAP_CASES = [
    ("minus one", lambda el2, tx, rx: MINUS_ONE, Error.ARGUMENT_INVALID),
    ("index beyond 1024 caps", lambda el2, tx, rx: (A << 16) | 1024, Error.ARGUMENT_INVALID),
    ("above 32 bits", lambda el2, tx, rx: tx | 1 << 40, Error.ARGUMENT_INVALID),
    ("empty slot", lambda el2, tx, rx: (A << 16) | 500, Error.CSPACE_CAP_NULL),
    ("wrong type: own vic", lambda el2, tx, rx: el2.vic_cap(A), Error.CSPACE_WRONG_OBJECT_TYPE),
    ("missing right", lambda el2, tx, rx: tx, Error.CSPACE_INSUFFICIENT_RIGHTS),
]


@pytest.mark.parametrize(("case", "cap_of", "error"), CAP_CASES, ids=[c[0] for c in CAP_CASES])
def test_cap_errors_of_doorbell_receive(el2, case, cap_of, error):
    tx, rx = el2.provision_doorbell(B, A, 40)  # A holds rx (Receive), B the source
    tx_a, _ = el2.provision_doorbell(A, B, 41)  # A holds a Send-only cap
    assert hvc(el2, A, "doorbell_receive", cap_of(el2, tx_a, rx), 1, 0).regs == [error, 0]


def test_revoked_and_deleted_caps(el2):
    tx, rx = el2.provision_msgqueue(A, B, 2, 8, None, 60, label="q")
    queue = el2.vm(A).cspace.lookup(tx, MsgQueue, 0)
    el2.root.revoke_caps(el2.master_cap(queue))
    assert hvc(el2, A, "msgqueue_send", tx, 1, 0, 0, 0, data=b"x").regs == \
        [Error.CSPACE_CAP_REVOKED, 0]
    assert el2.guest_resources(A) == [] and el2.guest_resources(B) == []
    el2.vm(B).cspace.delete_cap(rx)
    assert hvc(el2, B, "msgqueue_flush", rx, 0).regs == [Error.CSPACE_CAP_NULL]
    # A later provisioning that reuses B's freed slot is listed once, as itself.
    _, reused = el2.provision_doorbell(A, B, 61, label="new")
    assert reused == rx
    assert [r["label"] for r in el2.guest_resources(B)] == ["new"]


@pytest.mark.parametrize(("name", "holder", "cap"), [
    ("doorbell_send", B, "rx"), ("doorbell_reset", A, "tx"), ("doorbell_mask", A, "tx"),
    ("doorbell_bind_virq", A, "tx"), ("doorbell_unbind_virq", A, "tx"),
])
def test_doorbell_rights(el2, name, holder, cap):
    caps = dict(zip(("tx", "rx"), el2.provision_doorbell(A, B, 40)))
    args = [caps[cap]] + [el2.vic_cap(holder) if a.name == "vic" else 40 if a.name == "virq_info"
                          else 0 for a in BY_NAME[name].inputs[1:]]
    assert hvc(el2, holder, name, *args).regs[0] == Error.CSPACE_INSUFFICIENT_RIGHTS


def test_source_can_clear_gives_the_sender_receive_rights(el2):
    tx, _ = el2.provision_doorbell(A, B, 40, source_can_clear=True)
    assert hvc(el2, A, "doorbell_mask", tx, 1, 1, 0).regs == [0]
    assert hvc(el2, A, "doorbell_send", tx, 1, 0).effects == (AssertVirq(B, 40),)
    assert hvc(el2, A, "doorbell_receive", tx, 1, 0).regs == [0, 0]


def test_guests_rebind_virqs_with_their_vic_cap(el2):
    tx, rx = el2.provision_doorbell(A, B, 40)
    vic_b = el2.vic_cap(B)
    assert hvc(el2, B, "doorbell_bind_virq", rx, vic_b, 41, 0).regs == [Error.VIRQ_BOUND]
    assert hvc(el2, B, "doorbell_unbind_virq", rx, 0).regs == [0]
    assert hvc(el2, B, "doorbell_unbind_virq", rx, 0).regs == [0]  # unbound: OK (API doc)
    assert hvc(el2, A, "doorbell_send", tx, 1, 0).effects == ()
    _, other_rx = el2.provision_doorbell(A, B, 42)
    assert hvc(el2, B, "doorbell_bind_virq", rx, vic_b, 42, 0).regs == [Error.BUSY]
    assert hvc(el2, B, "doorbell_bind_virq", rx, vic_b, 1020, 0).regs == [Error.ARGUMENT_INVALID]
    assert hvc(el2, B, "doorbell_bind_virq", rx, vic_b, 43, 0).regs == [0]
    # Binding does not assert the flag sent while unbound; the next send does.
    assert el2.vm(B).vic.is_asserted(43) is False
    assert hvc(el2, A, "doorbell_send", tx, 2, 0).effects == (AssertVirq(B, 43),)
    assert hvc(el2, B, "doorbell_receive", rx, 1, 0).effects == (AssertVirq(B, 43),)
    assert hvc(el2, B, "doorbell_receive", rx, 2, 0).effects == (DeassertVirq(B, 43),)
    assert other_rx != rx


def test_msgqueue_virq_binding_through_hypercalls(el2):
    tx, rx = el2.provision_msgqueue(A, B, 2, 8, None, None)
    vic_a, vic_b = el2.vic_cap(A), el2.vic_cap(B)
    assert hvc(el2, B, "msgqueue_bind_receive_virq", rx, vic_b, 70, 0).regs == [0]
    assert hvc(el2, A, "msgqueue_bind_send_virq", tx, vic_a, 71, 0).regs == [0]
    assert hvc(el2, A, "msgqueue_bind_receive_virq", tx, vic_a, 72, 0).regs == \
        [Error.CSPACE_INSUFFICIENT_RIGHTS]
    assert hvc(el2, B, "msgqueue_bind_receive_virq", rx, vic_b, 73, 0).regs == [Error.VIRQ_BOUND]
    assert hvc(el2, A, "msgqueue_send", tx, 1, 0, 0, 0, data=b"x").effects == \
        (AssertVirq(B, 70),)
    assert hvc(el2, B, "msgqueue_unbind_receive_virq", rx, 0).regs == [0]
    assert hvc(el2, A, "msgqueue_unbind_send_virq", tx, 0).regs == [0]
    assert hvc(el2, A, "msgqueue_send", tx, 1, 0, 1, 0, data=b"y").effects == ()


def test_objects_in_init_configure_and_activate_through_hypercalls(el2):
    queue, master = el2.partition.create_msgqueue(el2.root, "late")
    cap = el2.vm(A).cspace.copy_cap_from(el2.root, master,
                                         GENERIC_ACTIVATE | MsgqueueRights.SEND)
    assert hvc(el2, A, "msgqueue_send", cap, 1, 0, 0, 0, data=b"x").regs == \
        [Error.OBJECT_STATE, 0]
    assert hvc(el2, A, "object_activate", cap, 0).regs == [Error.OBJECT_CONFIG]
    queue2, master2 = el2.partition.create_msgqueue(el2.root, "late2")
    cap2 = el2.vm(A).cspace.copy_cap_from(el2.root, master2,
                                          GENERIC_ACTIVATE | MsgqueueRights.SEND)
    assert hvc(el2, A, "msgqueue_configure", cap2, create_info(300, 8), 0).regs == \
        [Error.ARGUMENT_INVALID]
    assert hvc(el2, A, "msgqueue_configure", cap2, create_info(3, 8), 0).regs == [0]
    assert hvc(el2, A, "object_activate", cap2, 0).regs == [0]
    assert hvc(el2, A, "object_activate", cap2, 0).regs == [Error.OBJECT_STATE]
    assert hvc(el2, A, "msgqueue_configure", cap2, create_info(3, 8), 0).regs == \
        [Error.OBJECT_STATE]
    assert hvc(el2, A, "msgqueue_send", cap2, 1, 0, 0, 0, data=b"x").regs == [0, 1]
    # Provisioned caps carry no Activate right; a doorbell cap is the wrong type.
    tx, _ = el2.provision_doorbell(A, B, 40)
    assert hvc(el2, A, "msgqueue_configure", tx, create_info(3, 8), 0).regs == \
        [Error.CSPACE_INSUFFICIENT_RIGHTS]
    db, db_master = el2.partition.create_doorbell(el2.root)
    db_cap = el2.vm(A).cspace.copy_cap_from(el2.root, db_master, GENERIC_ACTIVATE)
    assert hvc(el2, A, "msgqueue_configure", db_cap, create_info(3, 8), 0).regs == \
        [Error.CSPACE_WRONG_OBJECT_TYPE]


def _reserved_cases():
    for name in sorted(SHIMS):
        spec = BY_NAME[name]
        for index, arg in enumerate(spec.inputs):
            if arg.kind is ArgKind.RESERVED or arg.name == "reserved_minus_one":
                yield pytest.param(name, index, id=f"{name}-{arg.name}")


@pytest.mark.parametrize(("name", "index"), list(_reserved_cases()))
def test_reserved_registers_are_checked_before_anything_else(el2, name, index):
    spec = BY_NAME[name]
    args = [MINUS_ONE if a.name == "reserved_minus_one" else 0 for a in spec.inputs]
    args[index] = 1 if spec.inputs[index].kind is ArgKind.RESERVED else 0
    result = el2.hypercall(A, 0, spec.number, args, b"")
    assert result.regs == [to_x0(Error.ARGUMENT_INVALID)] + [0] * (len(spec.outputs) - 1)
    assert result.effects == ()


@pytest.mark.parametrize("number", [0x16, 0x1E, 0x01, 0x0E, 0x22, 0x65, 0x1FF, 0x7000])
def test_calls_not_implemented_here_are_unimplemented_with_zeroed_results(el2, number):
    spec = HYPERCALLS.get(number)
    args = [0] * (len(spec.inputs) if spec else 0)
    result = el2.hypercall(A, 0, number, args, b"")
    assert result.regs[0] == to_x0(Error.UNIMPLEMENTED) == 2**64 - 1
    assert result.regs[1:] == [0] * (len(result.regs) - 1)


def test_wrong_register_count_and_unknown_vm_are_contract_errors(el2):
    with pytest.raises(ValueError):
        el2.hypercall(A, 0, N["doorbell_send"], [1, 2], b"")
    with pytest.raises(ValueError):
        el2.hypercall(0x99, 0, N["doorbell_send"], [1, 2, 0], b"")


def test_vm_and_provisioning_errors(el2):
    with pytest.raises(ValueError):
        el2.add_vm(A, "again")
    with pytest.raises(ValueError):
        el2.add_vm(0, "hyp")
    el2.provision_doorbell(A, B, 40)
    with pytest.raises(HypError) as busy:
        el2.provision_msgqueue(A, B, 4, 8, 45, 40)
    assert busy.value.code is Error.BUSY
    # The failed provisioning left nothing bound: virq 45 of A is free again.
    el2.provision_doorbell(B, A, 45)
    with pytest.raises(HypError) as bad:
        el2.provision_msgqueue(A, B, 0, 8, None, None)
    assert bad.value.code is Error.ARGUMENT_INVALID


def test_guest_resources_describe_every_cap_for_the_dt(el2):
    tx, rx = el2.provision_doorbell(A, B, 40, edge=True, label="bell")
    mq_tx, mq_rx = el2.provision_msgqueue(A, B, 8, 240, 41, 960, label="chan")
    assert el2.guest_resources(A) == [
        {"kind": "doorbell-source", "cap": tx, "label": "bell", "peer": B, "virq": None,
         "edge": False},
        {"kind": "msgqueue-tx", "cap": mq_tx, "label": "chan", "peer": B, "virq": 41,
         "edge": True, "depth": 8, "size": 240},
    ]
    assert el2.guest_resources(B) == [
        {"kind": "doorbell", "cap": rx, "label": "bell", "peer": A, "virq": 40, "edge": True},
        {"kind": "msgqueue-rx", "cap": mq_rx, "label": "chan", "peer": A, "virq": 960,
         "edge": True, "depth": 8, "size": 240},
    ]


def test_doorbell_rights_granted_by_provisioning(el2):
    tx, rx = el2.provision_doorbell(A, B, 40)
    assert el2.vm(A).cspace.lookup(tx, Doorbell, DoorbellRights.SEND)
    assert el2.vm(B).cspace.lookup(rx, Doorbell, DoorbellRights.RECEIVE | DoorbellRights.BIND)
